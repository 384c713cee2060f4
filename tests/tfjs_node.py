"""Run an exported TF.js layers model in node with TensorFlow.js' own ``tf.min.js`` (``tests/tfjs_predict.js``).

``tfjs_unavailable()`` says why it cannot run here (no ``node``, no cached ``tf.min.js``), else None.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).with_name("tfjs_predict.js")
REPO_ASSETS = Path(__file__).resolve().parent.parent / "assets"


def tfjs_path() -> Path | None:
    from precompute.npm_files import TFJS, NpmFileUnavailable

    try:
        return TFJS.find(fetch=False)
    except NpmFileUnavailable:
        return None


def tfjs_unavailable() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if tfjs_path() is None:
        return "TensorFlow.js' tf.min.js is not cached (run `python -m precompute.npm_files`)"
    return None


def predict_in_node(variant_dir: Path, inputs: np.ndarray, timeout: float = 600) -> tuple[list[np.ndarray], dict]:
    """Outputs of the model in ``variant_dir`` for ``inputs`` (n, s, s, 3), already transformed: one (n, dim)
    array per output, and the script's timings (``load_ms``, ``predict_ms``)."""
    inputs = np.ascontiguousarray(inputs, dtype="<f4")
    n, size = inputs.shape[0], inputs.shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.f32", Path(tmp) / "out.f32"
        src.write_bytes(inputs.tobytes())
        done = subprocess.run(["node", str(SCRIPT), str(tfjs_path()), str(variant_dir), str(src), str(n), str(size),
                               str(dst)], capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"TF.js failed on {variant_dir}: {done.stderr.strip()[-2000:]}")
        info = json.loads(done.stdout.strip().splitlines()[-1])
        flat = np.frombuffer(dst.read_bytes(), dtype="<f4").reshape(n, -1)
    dims = info["dims"]
    bounds = np.cumsum([0, *dims])
    return [flat[:, bounds[i]:bounds[i + 1]].copy() for i in range(len(dims))], info
