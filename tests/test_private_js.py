"""assets/private_search.js against the Python side it mirrors (issue #16: a private query in the browser).

- Node (fast tier): ``resizeLikePIL`` equals ``datasets.load_for_model`` exactly on random images of many sizes
  (reduce + resample, up and down); ``search`` returns ``similarity.search_exact``'s ids and float32 distances,
  ties in the same order, for every metric; ``preprocess`` and ``similarity``.
- Headless Chromium (slow): ``decodeToRGB`` and ``loadImageForModel`` on scikit-image's photos as PNG and JPEG,
  openclipart's transparent PNGs, every transparency mode, EXIF orientation, CMYK, 16-bit, ICC/gamma, WebP, AVIF:
  PIL's pixels exactly, except JPEGs that load_for_model drafts (bounded); the differences are printed (``-s``),
  and so are efficientnet-lite0's feature cosines between the browser's and the server's pixels.

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
import PIL
import pytest
from PIL import Image
from PIL import features as pil_features

from precompute import similarity
from precompute.datasets import decode_image, load_for_model

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "assets" / "private_search.js"
NODE = shutil.which("node")
# Every registered metric the script computes (minkowski at its default p and at a fractional one); the registry
# marks the deliberate exceptions (browser=False), test_the_script_computes_every_registered_metric the others.
METRICS = (*(similarity.metric_name(name) for name, metric in similarity.METRICS.items() if metric.browser),
           "minkowski-p1.5")

# The wire format of both drivers: typed arrays as {dtype, b64}; {url} arguments become fetched Blobs (browser).
CODEC_JS = r"""
const DTYPES = {u8: Uint8Array, i32: Int32Array, f32: Float32Array, f64: Float64Array};
function toBase64(bytes) {
  if (typeof Buffer !== "undefined") {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  }
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
    if (value instanceof type) {
      return {dtype: dtype, b64: toBase64(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))};
    }
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
# Chromium (and so slow, tests/conftest.py); selenium 4.2 calls urllib3 APIs that warn on every request.
in_browser = pytest.mark.browser
quiet_selenium = pytest.mark.filterwarnings("ignore::DeprecationWarning:selenium.*")


# ------------------------------------------------------------------------------------------- resize (node)


SMALL_RESIZES = [(1, 1, 16), (3, 500, 32), (500, 3, 32), (96, 96, 32), (97, 95, 32), (190, 40, 16), (40, 190, 16),
                 (7, 13, 5), (50, 80, 99), (33, 300, 64), (64, 64, 64), (65, 64, 64), (700, 20, 31), (20, 700, 31)]
LARGE_RESIZES = [(224, 224, 224), (672, 672, 224), (673, 671, 224), (1345, 700, 224), (1500, 1499, 224),
                 (2000, 90, 224), (90, 2000, 224), (451, 300, 224), (299, 299, 224), (896, 1792, 224),
                 (640, 427, 299), (97, 1203, 31), (1000, 1000, 64)]


def random_resizes(seed: int, count: int, largest: int, sizes: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(width, height, size) at random: reduce factors with and without remainders, both pass orders, up and down."""
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(1, largest)), int(rng.integers(1, largest)), int(rng.choice(sizes)))
            for _ in range(count)]


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
        assert diff.max() == 0, (f"{width}x{height} -> {size}: {int((diff > 0).sum())} values differ, max {diff.max()} "
                                 f"(the script follows Pillow >= 13's pass order; installed: {PIL.__version__})")


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
    calls = [("search", [query, features.ravel(), features.shape[1], metric, k])
             for metric, query, features, k in cases]
    for (metric, query, features, k), got in zip(cases, call_node(calls), strict=True):
        assert not isinstance(got, JsError), got
        ranking = similarity.search_exact(query, features, metric, top_n=k)
        assert got["ids"].dtype == np.int32 and got["distances"].dtype == np.float64
        np.testing.assert_array_equal(got["ids"], ranking.indices[0], err_msg=f"{metric}, k={k}")
        np.testing.assert_array_equal(got["distances"], ranking.distances[0].astype(np.float64), err_msg=metric)


@needs_node
def test_the_script_computes_every_registered_metric():
    """A metric added to precompute.similarity.METRICS needs its formula in private_search.js, or browser=False
    there (then private mode sends the feature vector and the server ranks): the script's list is the registry's."""
    script = f"globalThis.window = globalThis; require({json.dumps(str(SCRIPT))});" \
             "process.stdout.write(JSON.stringify(window.sispPrivate.metrics));"
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=60, check=True)
    in_browser = {name for name, metric in similarity.METRICS.items() if metric.browser}
    assert set(json.loads(done.stdout)) == in_browser
    assert {similarity.parse_metric(m)[0] for m in METRICS} == in_browser  # the searches below cover each


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


# ------------------------------------------------------------------------------------------- decode (Chromium)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class Browser:
    """Headless Chromium on a page that loads the script, and the folder its local server serves."""

    def __init__(self, driver, root: Path):
        self.driver, self.root = driver, root

    def run(self, calls: list[tuple[str, list]], files: dict[str, bytes] | None = None) -> list:
        """Like :func:`call_node`; ``{"url": "/name"}`` arguments are fetched as Blobs from ``files``."""
        for name, data in (files or {}).items():
            (self.root / name).write_bytes(data)
        payload = [{"fn": fn, "args": _wire(list(args))} for fn, args in calls]
        script = CODEC_JS + "\nconst done = arguments[arguments.length - 1];\nrunCalls(arguments[0]).then(done);"
        return _results(self.driver.execute_async_script(script, payload))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    from selenium import webdriver

    from tests.conftest import pytest_setup_options

    root = tmp_path_factory.mktemp("private_js")
    shutil.copy(SCRIPT, root / SCRIPT.name)
    (root / "index.html").write_text(f'<!doctype html><meta charset="utf-8"><script src="{SCRIPT.name}"></script>')
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    driver = webdriver.Chrome(options=pytest_setup_options())
    try:
        driver.set_script_timeout(300)
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        yield Browser(driver, root)
    finally:
        driver.quit()
        server.shutdown()
        thread.join()


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def skimage_photos() -> dict[str, Image.Image]:
    """scikit-image's bundled photos (no download): colour, grayscale, one with alpha, one large enough that
    load_for_model's JPEG draft decodes it at half scale."""
    from skimage import data

    names = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "immunohistochemistry",
             "hubble_deep_field", "retina", "logo")
    return {name: Image.fromarray(getattr(data, name)()) for name in names}


def synthetic_images() -> dict[str, bytes]:
    """Every transparency case of datasets._to_rgb, and EXIF orientation."""
    x, y = np.meshgrid(np.arange(256), np.arange(256))
    colour = np.stack([x, (x * 7 + y) % 256, 255 - x], axis=-1).astype(np.uint8)
    rgba = Image.fromarray(np.dstack([colour, y.astype(np.uint8)]))  # every alpha against every level
    gray = Image.fromarray(x.astype(np.uint8))
    la = Image.fromarray(np.dstack([x, y]).astype(np.uint8), mode="LA")
    palette = rgba.convert("RGB").quantize(64)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees clockwise
    chelsea = skimage_photos()["chelsea"]
    sixteen = Image.fromarray((x * 97 + y * 13 + 1000).astype(np.uint16))
    noise = Image.fromarray(np.random.default_rng(4).integers(300, 60000, (67, 91)).astype(np.uint16))
    return {
        "alpha-every-level.png": encode(rgba, "PNG"),
        "la.png": encode(la, "PNG"),
        "gray-transparent.png": encode(gray, "PNG", transparency=17),
        "palette-transparent.png": encode(palette, "PNG", transparency=3),
        "palette.gif": encode(palette, "GIF"),
        "exif-orientation-6.jpg": encode(chelsea, "JPEG", quality=90, exif=exif.tobytes()),
        "exif-orientation-6.png": encode(chelsea, "PNG", exif=exif.tobytes()),
        "cmyk.jpg": encode(chelsea.convert("CMYK"), "JPEG", quality=90),
        "lossy.webp": encode(chelsea, "WEBP", quality=80),
        "alpha-lossless.webp": encode(rgba, "WEBP", lossless=True),
        "bmp.bmp": encode(chelsea, "BMP"),
        # Colour management stays off, as in PIL: an embedded profile or gamma changes no pixel (Chromium's
        # default colorSpaceConversion would change every pixel of both PNGs).
        "icc-xyz.jpg": encode(chelsea, "JPEG", quality=90, icc_profile=xyz_profile()),
        "icc-xyz.png": encode(chelsea, "PNG", icc_profile=xyz_profile()),
        "gamma-1.png": encode(chelsea, "PNG", pnginfo=gamma_chunk(100000)),
        "gray16.png": encode(sixteen, "PNG"),
        "gray16-noise.png": png16(np.asarray(noise)),
        "gray16-flat.png": encode(Image.fromarray(np.full((5, 7), 999, np.uint16)), "PNG"),
        "rgb16.png": png16(colour.astype(np.uint16) * 257 + y[..., None].astype(np.uint16)),
        "rgba16.png": png16(np.dstack([colour, y]).astype(np.uint16) * 257 + x[..., None].astype(np.uint16)),
    }


def xyz_profile() -> bytes:
    """An ICC profile far from sRGB (a browser that applied it would change every pixel)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("XYZ")).tobytes()


def gamma_chunk(gamma: int):
    """A PNG gAMA chunk (gamma times 100000)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add(b"gAMA", gamma.to_bytes(4, "big"))
    return info


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG (gray, RGB or RGBA), its rows filtered with each of PNG's five filters in turn (PIL writes
    16 bits for grayscale only, and picks its filters itself)."""
    import struct
    import zlib

    array = array if array.ndim == 3 else array[..., None]
    height, width, channels = array.shape
    bpp, lines, previous = 2 * channels, [], np.zeros(width * 2 * channels, np.int64)
    for row in range(height):
        line = np.frombuffer(array[row].astype(">u2").tobytes(), np.uint8).astype(np.int64)
        left = np.concatenate([np.zeros(bpp, np.int64), line[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int64), previous[:-bpp]])
        p = left + previous - corner
        pa, pb, pc = np.abs(p - left), np.abs(p - previous), np.abs(p - corner)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, previous, corner))
        kind = row % 5
        guess = [0 * line, left, previous, (left + previous) // 2, paeth][kind]
        lines.append(bytes([kind]) + ((line - guess) % 256).astype(np.uint8).tobytes())
        previous = line
    raw = b"".join(lines)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 3: 2, 4: 6}[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def decode_cases() -> dict[str, bytes]:
    files = {}
    for name, image in skimage_photos().items():
        files[f"{name}.png"] = encode(image, "PNG")
        if image.mode != "RGBA":
            files[f"{name}.jpg"] = encode(image, "JPEG", quality=90)
    files.update(synthetic_images())
    if pil_features.check("avif"):  # Pillow's wheels have it since 11.3
        files["lossy.avif"] = encode(skimage_photos()["chelsea"], "AVIF", quality=80)
    big = skimage_photos()["rocket"].resize((1923, 1285), Image.Resampling.BICUBIC)
    for orientation in (6, 8):  # rotated: the draft's partial cells lie on other sides of the upright image
        exif = Image.Exif()
        exif[0x0112] = orientation
        files[f"rocket-large-exif-{orientation}.jpg"] = encode(big, "JPEG", quality=85, exif=exif.tobytes())
    for path in sorted((ROOT / "data" / "openclipart-200").glob("*/*.png"))[::20]:
        files[f"openclipart-{path.parent.name}-{path.stem}.png"] = path.read_bytes()
    return files


def pixel_report(name: str, got: np.ndarray, want: np.ndarray) -> tuple[int, float]:
    if got.shape != want.shape:
        print(f"{name:48s} shape {got.shape} != {want.shape}")
        return 999, 999.0
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    print(f"{name:48s} {want.shape[1]:>5d}x{want.shape[0]:<5d} max {int(diff.max()):3d}  mean {diff.mean():.4f}  "
          f"differing {100 * (diff > 0).mean():6.2f}%")
    return int(diff.max()), float(diff.mean())


DRAFT_GAP = 4  # levels of 0..255 (measured: at most 3)


@in_browser
@quiet_selenium
def test_decode_equals_decode_image(browser):
    files = decode_cases()
    results = browser.run([("decodeToRGB", [{"url": f"/{name}"}]) for name in files], files)
    failures = []
    print()
    for (name, data), got in zip(files.items(), results, strict=True):
        assert not isinstance(got, JsError), f"{name}: {got}"
        want = np.asarray(decode_image(data))
        pixels = got["data"].reshape(got["height"], got["width"], 3)
        worst, _ = pixel_report(name, pixels, want)
        if worst:
            failures.append(f"{name}: max difference {worst}")
    assert not failures, failures


def drafted(data: bytes, size: int) -> bool:
    """Whether load_for_model decodes this file at a reduced JPEG scale (PIL's draft, which a browser lacks)."""
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        return image.format == "JPEG" and min(width // (2 * size), height // (2 * size)) >= 2


@in_browser
@quiet_selenium
def test_load_image_for_model_equals_load_for_model(browser):
    files = {name: data for name, data in decode_cases().items() if not name.startswith("openclipart")}
    results = browser.run([("loadImageForModel", [{"url": f"/{name}"}, 224]) for name in files], files)
    print()
    for (name, data), got in zip(files.items(), results, strict=True):
        assert not isinstance(got, JsError), f"{name}: {got}"
        worst, _ = pixel_report(name, got.reshape(224, 224, 3), load_for_model(data, 224))
        # A drafted JPEG: the browser's box mean against libjpeg's scaled IDCT.
        assert worst <= (DRAFT_GAP if drafted(data, 224) else 0), f"{name}: max difference {worst}"


def feature_photos() -> dict[str, bytes]:
    """scikit-image's photos as JPEG (the alpha one as PNG), and large JPEGs that load_for_model drafts."""
    photos = skimage_photos()
    files = {f"{name}.jpg": encode(image, "JPEG", quality=90) for name, image in photos.items() if image.mode != "RGBA"}
    files["logo.png"] = encode(photos["logo"], "PNG")
    for scale in (2, 4, 8):  # a phone photo's size: the draft decodes at 1/2, 1/4, 1/8
        big = photos["astronaut"].resize((512 * scale, 512 * scale * 3 // 4), Image.Resampling.BICUBIC)
        files[f"astronaut-x{scale}.jpg"] = encode(big, "JPEG", quality=90)
    return files


@in_browser
@quiet_selenium
@pytest.mark.slow
def test_browser_pixels_give_the_servers_features(browser):
    """efficientnet-lite0 (ImageNet weights), every stored layer: features of the browser's pixels against the
    server's, cosine per photo (printed with -s)."""
    from precompute.backbones import get_backbone
    from precompute.models import load_extractor

    layers = get_backbone("efficientnet-lite0").default_layers
    config = {"backbone": "efficientnet-lite0", "weights_source": "imagenet", "input_size": 224, "pooling": "avg"}
    try:
        extract = load_extractor(config, layers, runtime="keras")
    except Exception as exc:  # no network and no cached weights
        pytest.skip(f"efficientnet-lite0's ImageNet weights are not available here: {exc}")
    files = feature_photos()
    results = browser.run([("loadImageForModel", [{"url": f"/{name}"}, 224]) for name in files], files)
    server = np.stack([load_for_model(data, 224) for data in files.values()])
    local = np.stack([np.asarray(got).reshape(224, 224, 3) for got in results])
    cosines = np.array([(s * c).sum(axis=1) / (np.linalg.norm(s, axis=1) * np.linalg.norm(c, axis=1))
                        for s, c in zip(extract(server), extract(local), strict=True)]).T  # (photo, layer)
    print(f"\n{'photo':28s} {'pixels max|mean':>16s}  min cosine over {len(layers)} layers (worst layer)")
    for name, data, row, pixels, reference in zip(files, files.values(), cosines, local, server, strict=True):
        diff = np.abs(pixels - reference)
        print(f"{name:28s} {int(diff.max()):6d} {diff.mean():8.4f}  {row.min():.6f} ({layers[int(row.argmin())]})"
              f"{'  JPEG draft' if drafted(data, 224) else ''}")
        assert row.min() >= 0.999, f"{name}: cosine {row.min():.6f} in {layers[int(row.argmin())]}"


@in_browser
@quiet_selenium
def test_decode_names_what_it_refuses(browser):
    (got,) = browser.run([("decodeToRGB", [{"url": "/not-an-image.png"}])], {"not-an-image.png": b"plain text"})
    assert isinstance(got, JsError) and got.startswith("upload: not an image this browser can decode")


@in_browser
@quiet_selenium
def test_time_to_prepare_a_phone_photo(browser):
    """loadImageForModel on a 4032 x 3024 JPEG (12 MP), the best of 3 runs in the page (printed with -s)."""
    photo = skimage_photos()["coffee"].resize((4032, 3024), Image.Resampling.BICUBIC)
    (browser.root / "phone.jpg").write_bytes(encode(photo, "JPEG", quality=90))
    script = """
      const done = arguments[arguments.length - 1];
      (async () => {
        const blob = await (await fetch("/phone.jpg")).blob();
        const times = [];
        for (let i = 0; i < 3; i++) {
          const start = performance.now();
          await window.sispPrivate.loadImageForModel(blob, 224);
          times.push(performance.now() - start);
        }
        done(Math.min(...times));
      })();"""
    best = browser.driver.execute_async_script(script)
    print(f"\nloadImageForModel, 4032x3024 JPEG -> 224: {best:.0f} ms (best of 3)")
    assert best < 10_000
