"""assets/private_search.js against the Python side it mirrors (issue #16: a private query in the browser).

- Node (fast tier): ``resizeLikePIL`` equals ``datasets.load_for_model`` exactly on random images of many sizes
  (reduce + resample, up and down); ``search`` returns ``similarity.search_exact``'s ids and float32 distances,
  ties in the same order, for every metric; ``preprocess`` and ``similarity``.
- Headless Chromium (slow): ``decodeToRGB`` and ``loadImageForModel`` on scikit-image's photos as PNG and JPEG,
  transparent PNGs, EXIF orientation, grayscale; the pixel differences from PIL are printed (``-s``) and bounded.

The script is driven the same way in both: a list of calls ``{fn, args}`` whose arrays travel as base64
(``_wire``), run by ``window.sispPrivate``; errors come back as messages.
"""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute import similarity
from precompute.datasets import decode_image, load_for_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "assets" / "private_search.js"
NODE = shutil.which("node")
METRICS = ("cosine", "euclidean", "manhattan", "chebyshev", "minkowski-p3", "minkowski-p1.5")

# The wire format of both drivers: typed arrays as {dtype, b64}; {url} arguments become fetched Blobs (browser).
CODEC_JS = r"""
const DTYPES = {u8: Uint8Array, i32: Int32Array, f32: Float32Array, f64: Float64Array};
function toBase64(bytes) {
  if (typeof Buffer !== "undefined") return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}
function fromBase64(text) {
  if (typeof Buffer !== "undefined") return new Uint8Array(Buffer.from(text, "base64"));
  const raw = atob(text), bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}
async function fromWire(value) {
  if (Array.isArray(value)) return Promise.all(value.map(fromWire));
  if (value && typeof value === "object") {
    if (value.b64 !== undefined) return new DTYPES[value.dtype](fromBase64(value.b64).buffer);
    if (value.url !== undefined) return (await fetch(value.url)).blob();
    const out = {};
    for (const key of Object.keys(value)) out[key] = await fromWire(value[key]);
    return out;
  }
  return value;
}
function toWire(value) {
  for (const [dtype, type] of Object.entries(DTYPES)) {
    if (value instanceof type) return {dtype: dtype, b64: toBase64(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))};
  }
  if (value && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) out[key] = toWire(value[key]);
    return out;
  }
  return value;
}
async function runCalls(calls) {
  const results = [];
  for (const call of calls) {
    try {
      const args = await fromWire(call.args);
      results.push({ok: toWire(await window.sispPrivate[call.fn](...args))});
    } catch (error) {
      results.push({error: String(error && error.message || error)});
    }
  }
  return JSON.stringify(results);
}
"""

NODE_DRIVER = CODEC_JS + r"""
globalThis.window = globalThis;
require(process.env.SISP_PRIVATE_JS);
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", async () => { process.stdout.write(await runCalls(JSON.parse(input))); });
"""

_DTYPES = {"u8": np.uint8, "i32": np.int32, "f32": np.float32, "f64": np.float64}


def _wire(value):
    if isinstance(value, np.ndarray):
        dtype = {np.dtype(v): k for k, v in _DTYPES.items()}[value.dtype]
        return {"dtype": dtype, "b64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode("ascii")}
    if isinstance(value, dict):
        return {key: _wire(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    return value


def _unwire(value):
    if isinstance(value, dict):
        if "b64" in value:
            return np.frombuffer(base64.b64decode(value["b64"]), dtype=_DTYPES[value["dtype"]])
        return {key: _unwire(v) for key, v in value.items()}
    return value


def _results(raw: str) -> list:
    return [_unwire(r["ok"]) if "ok" in r else JsError(r["error"]) for r in json.loads(raw)]


class JsError(str):
    """The message of an exception the script raised."""


def call_node(calls: list[tuple[str, list]]) -> list:
    """Run ``window.sispPrivate[fn](*args)`` for each call in one node process; results, or JsError messages."""
    payload = json.dumps([{"fn": fn, "args": _wire(list(args))} for fn, args in calls])
    done = subprocess.run([NODE, "-e", NODE_DRIVER], input=payload, capture_output=True, text=True, timeout=300,
                          check=False, env={**os.environ, "SISP_PRIVATE_JS": str(SCRIPT)})
    assert done.returncode == 0, done.stderr
    return _results(done.stdout)


def rgb_arg(array: np.ndarray) -> dict:
    return {"width": int(array.shape[1]), "height": int(array.shape[0]), "data": array.astype(np.uint8).ravel()}


def png_bytes(array: np.ndarray, **info) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **info)
    return buffer.getvalue()


needs_node = pytest.mark.skipif(NODE is None, reason="needs node (apt-get install nodejs) to run the script's maths")


# ------------------------------------------------------------------------------------------- resize (node)


SMALL_RESIZES = [(1, 1, 16), (3, 500, 32), (500, 3, 32), (96, 96, 32), (97, 95, 32), (190, 40, 16), (40, 190, 16),
                 (7, 13, 5), (50, 80, 99), (33, 300, 64), (64, 64, 64), (65, 64, 64), (700, 20, 31), (20, 700, 31)]
LARGE_RESIZES = [(224, 224, 224), (672, 672, 224), (673, 671, 224), (1345, 700, 224), (1500, 1499, 224),
                 (2000, 90, 224), (90, 2000, 224), (451, 300, 224), (299, 299, 224), (896, 1792, 224),
                 (640, 427, 299), (97, 1203, 31), (1000, 1000, 64)]


def random_resizes(seed: int, count: int, largest: int, sizes: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(width, height, size) at random: reduce factors with and without remainders, both pass orders, up and down."""
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(1, largest)), int(rng.integers(1, largest)), int(rng.choice(sizes))) for _ in range(count)]


def check_resizes(cases: list[tuple[int, int, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    calls, expected = [], []
    for width, height, size in cases:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        if width * height > 4:  # smooth areas too: rounding ties show where random noise would not
            image[: height // 2] = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
        calls.append(("resizeLikePIL", [rgb_arg(image), size]))
        expected.append(load_for_model(png_bytes(image), size))
    for (width, height, size), got, want in zip(cases, call_node(calls), expected, strict=True):
        assert not isinstance(got, JsError), got
        assert got.dtype == np.float32 and got.shape == (size * size * 3,)
        diff = np.abs(got.reshape(size, size, 3) - want)
        assert diff.max() == 0, f"{width}x{height} -> {size}: {int((diff > 0).sum())} values differ, max {diff.max()}"


@needs_node
def test_resize_equals_load_for_model_on_random_small_images():
    check_resizes(SMALL_RESIZES + random_resizes(0, 100, 400, (5, 16, 32, 64, 100)), seed=1)


@needs_node
@pytest.mark.slow
def test_resize_equals_load_for_model_on_random_large_images():
    check_resizes(LARGE_RESIZES + random_resizes(1, 30, 1600, (96, 224, 299)), seed=2)


@needs_node
def test_resize_rejects_bad_input():
    bad_size, bad_data = call_node([("resizeLikePIL", [rgb_arg(np.zeros((4, 4, 3))), 0]),
                                    ("resizeLikePIL", [{"width": 4, "height": 4, "data": np.zeros(5, np.uint8)}, 2])])
    assert isinstance(bad_size, JsError) and "size must be a positive integer, got 0" in bad_size
    assert isinstance(bad_data, JsError) and "4x4 and 5 values" in bad_data


# ------------------------------------------------------------------------------------------- search (node)


def tied_features(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Features with ties of every kind: duplicated rows, small integers (equal L1/Linf distances between
    different rows), a zero row (cosine's convention: similarity 0) and scaled copies (cosine ties)."""
    features = rng.integers(-3, 4, (n, dim)).astype(np.float32)
    features[n // 2 :] = rng.normal(size=(n - n // 2, dim)).astype(np.float32)
    features[5] = features[17] = features[40]
    features[7] = 0.0
    features[9] = 2.0 * features[3]
    return features


def search_cases(seed: int = 2) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    cases = []
    for metric in METRICS:
        features = tied_features(rng, 300, 16)
        queries = [features[5].copy(), features[3].copy(), rng.integers(-3, 4, 16).astype(np.float32),
                   rng.normal(size=16).astype(np.float32), np.zeros(16, np.float32)]
        for i, query in enumerate(queries):
            cases.append((metric, query, features, (10, 50, 1, 300, 1000)[i]))
    # Above FLOAT64_SCAN_MAX values the Python side scans in float32 first: the same results.
    big = rng.normal(size=(2000, 300)).astype(np.float32)
    big[10] = big[1500] = big[99]
    for metric in ("cosine", "euclidean"):
        cases.append((metric, big[99] + np.float32(0.01), big, 15))
    return cases


@needs_node
def test_search_equals_search_exact_for_every_metric_with_ties():
    cases = search_cases()
    calls = [("search", [query, features.ravel(), features.shape[1], metric, k]) for metric, query, features, k in cases]
    for (metric, query, features, k), got in zip(cases, call_node(calls), strict=True):
        assert not isinstance(got, JsError), got
        ranking = similarity.search_exact(query, features, metric, top_n=k)
        assert got["ids"].dtype == np.int32 and got["distances"].dtype == np.float64
        np.testing.assert_array_equal(got["ids"], ranking.indices[0], err_msg=f"{metric}, k={k}")
        np.testing.assert_array_equal(got["distances"], ranking.distances[0].astype(np.float64), err_msg=metric)


@needs_node
def test_search_and_similarity_errors_and_values():
    features = np.eye(3, dtype=np.float32).ravel()
    unknown, dim, nan, sim_cos, sim_l1 = call_node([
        ("search", [np.ones(3, np.float32), features, 3, "hamming", 2]),
        ("search", [np.ones(2, np.float32), features, 3, "cosine", 2]),
        ("search", [np.array([1, np.nan, 0], np.float32), features, 3, "cosine", 2]),
        ("similarity", ["cosine", np.array([0.0, 0.25, 2.0])]),
        ("similarity", ["manhattan", 3.0]),
    ])
    assert "Unknown metric \"hamming\"" in unknown and "minkowski-p<P>" in unknown
    assert "Query dim 2 != dataset dim 3" in dim
    assert "NaN or inf" in nan
    np.testing.assert_array_equal(sim_cos, similarity.similarity_from_distance("cosine", np.array([0.0, 0.25, 2.0])))
    assert sim_l1 == similarity.similarity_from_distance("manhattan", np.array([3.0]))[0]


@needs_node
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_preprocess_is_the_exports_affine_map(order):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
    spec = {"channel_order": order, "scale": [1 / 58.395, 1 / 57.12, 1 / 57.375], "offset": [-2.1179, -2.0357, -1.8044]}
    (got,) = call_node([("preprocess", [pixels.ravel(), spec])])
    x = pixels.astype(np.float64)[..., ::-1] if order == "bgr" else pixels.astype(np.float64)
    want = (x * np.asarray(spec["scale"]) + np.asarray(spec["offset"])).astype(np.float32)
    np.testing.assert_array_equal(got.reshape(8, 8, 3), want)
