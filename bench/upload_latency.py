"""The first upload's cost in a fresh server process, and one upload's feature extraction after warm-up.

Runs, in a fresh interpreter (as a server that has served no upload yet), the app's own upload path
(``playground.uploads.upload_features``) on one image of the dataset, and reports:

- the first upload: seconds (decoding, loading the extractor, the first forward pass), the process' resident memory
  before and after and its peak (``VmHWM``), and whether TensorFlow / Keras got imported;
- after warm-up: the median of ``--repeats`` calls of the extractor alone on the prepared image
  (``extract(image[None])``: preprocessing and the forward pass, all stored layers; the issue's "one upload's
  feature extraction") and of the whole ``upload_features`` with its feature cache cleared (decoding included).

``--code-root`` runs another checkout's code in the child (e.g. ``git archive <commit>`` unpacked) to get a
"before" figure with the same script. The model must already be converted for LiteRT (a precompute run did it).

    .venv/bin/python -m bench upload_latency --artifacts artifacts --model efficientnet-lite0
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, statistics, sys, time
from pathlib import Path

def memory_mib():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return [int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")]

t0 = time.perf_counter()
from playground.store import Store
from playground import uploads
import_s = time.perf_counter() - t0
store = Store(ARTIFACTS)
layers = store.layers(DATASET, MODEL)
data = Path(IMAGE).read_bytes()
rss_before, _ = memory_mib()
t0 = time.perf_counter()
features = uploads.upload_features(store, DATASET, MODEL, layers[-1], data)
first_s = time.perf_counter() - t0
rss_after, peak = memory_mib()
imported = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")})
config = store.model(DATASET, MODEL).config
image = uploads.prepare_image(data, int(config.input_size))
extract = uploads.get_extractor(config, layers)
for _ in range(3):
    extract(image[None])
extract_ms = []
for _ in range(REPEATS):
    t0 = time.perf_counter(); extract(image[None]); extract_ms.append(1000 * (time.perf_counter() - t0))
upload_ms = []
for _ in range(REPEATS):
    uploads._feature_cache.clear()
    t0 = time.perf_counter(); uploads.upload_features(store, DATASET, MODEL, layers[-1], data)
    upload_ms.append(1000 * (time.perf_counter() - t0))
print(json.dumps({"import_s": import_s, "first_upload_s": first_s, "rss_before_mib": rss_before,
                  "rss_after_mib": rss_after, "peak_mib": peak, "imported": imported,
                  "extract_ms_median": statistics.median(extract_ms), "extract_ms_min": min(extract_ms),
                  "upload_ms_median": statistics.median(upload_ms), "n_layers": len(layers),
                  "runtime": getattr(store.model(DATASET, MODEL).cost, "runtime", None)}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", default=os.environ.get("SISP_ARTIFACTS", "artifacts"))
    parser.add_argument("--dataset", default="openclipart-200")
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--image", default=None, help="image file to upload (default: the dataset's first image)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--runs", type=int, default=2, help="fresh processes, one after the other")
    parser.add_argument("--code-root", default=str(REPO), help="the checkout whose code the child runs")
    args = parser.parse_args(argv)

    image = args.image or str(_first_image(Path(args.artifacts), args.dataset))
    code = CHILD.replace("ARTIFACTS", repr(str(args.artifacts))).replace("DATASET", repr(args.dataset)) \
        .replace("MODEL", repr(args.model)).replace("IMAGE", repr(image)).replace("REPEATS", str(args.repeats))
    env = {**os.environ, "PYTHONPATH": str(Path(args.code_root).resolve()), "TF_CPP_MIN_LOG_LEVEL": "2"}
    print(f"{args.dataset} / {args.model}, code {args.code_root}, image {Path(image).name}")
    for run in range(args.runs):
        load_before = os.getloadavg()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                             cwd=args.code_root)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"run {run + 1} ({r['runtime']}, {r['n_layers']} layers): first upload {r['first_upload_s']:.2f} s, "
              f"RSS {r['rss_before_mib']:.0f} -> {r['rss_after_mib']:.0f} MiB (peak {r['peak_mib']:.0f}), "
              f"imported {r['imported'] or 'no TensorFlow/Keras'}; warm: extraction {r['extract_ms_median']:.1f} ms "
              f"median (min {r['extract_ms_min']:.1f}), whole upload_features {r['upload_ms_median']:.1f} ms; "
              f"load {' '.join(f'{v:.2f}' for v in load_before)} -> {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


def _first_image(artifacts: Path, dataset: str) -> Path:
    sys.path.insert(0, str(REPO))
    from precompute import artifacts as art

    source = art.read_index(artifacts).datasets[dataset].source
    manifest = art.read_table(art.manifest_path(artifacts, dataset))
    return Path(source) / manifest["path"].tolist()[0]


if __name__ == "__main__":
    sys.exit(main())
