"""Queries by uploaded image: decode in memory, extract with the dataset's own model, search.

Nothing here writes to disk: the upload arrives once as a base64 data URL in the callback, is decoded to
bytes and kept in memory under a key (its SHA-256) that the page holds instead of the contents, so that a
change of model, layer or metric sends the key, not the file again (:func:`keep_upload`, at most
:data:`KEPT_UPLOAD_BYTES` of the latest uploads, then the oldest go). Feature models are built once per
(model config, layers) and kept; every layer of a model comes from one extractor and one forward pass.

Memory is bounded: at most :data:`DECODE_CONCURRENCY` uploads decode (and go through the model) at once, the
others wait for a slot (:data:`DECODE_SLOTS`), and an image is refused before decoding when decoding it would
take more than :data:`DECODE_BUDGET_BYTES`. Two decodes at once thus stay within 2 x 256 MiB = 512 MiB
above the idle server, however many uploads arrive together.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import io
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image

from playground.store import Store
from precompute.datasets import MAX_PIXELS, ImageDecodeError, decode_image, load_for_model
from precompute.forkserver import M_MMAP_THRESHOLD, mallopt
from precompute.schema import ModelConfig

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# The browser refuses bigger files before reading them (dcc.Upload's max_size), and assets/playground.js, which
# sees every file chosen or dropped, reports the size so that the page says why (dcc.Upload has no rejection
# event). The server checks again: a request can come from elsewhere.
BROWSER_MAX_BYTES = MAX_UPLOAD_BYTES

# Uploads decoded and featurised at once; the others wait up to DECODE_WAIT_S for a slot, then get a message.
DECODE_CONCURRENCY = 2
DECODE_SLOTS = threading.BoundedSemaphore(DECODE_CONCURRENCY)
DECODE_WAIT_S = 60.0
# The memory one decode may take. Decoding holds the whole image, however small the file (a 190 KB PNG can
# declare 7700 x 7700 pixels), so the limit is on pixels, checked from the header before decoding, and scaled by
# what a pixel costs. Peak bytes per decoded pixel, measured with load_for_model on 25-megapixel images (8.4 for
# the 16-bit ones): 5.0 to 8.9 for 8-bit PNG, TIFF, BMP and GIF in every mode (RGBA PNG the most), 16.5 for WebP
# (libwebp decodes into a buffer of its own first), 31 to 34 for 16-bit and float images (converted through
# float64 arrays). A JPEG decodes at a reduced scale (1/2 to 1/8) when the model needs far fewer pixels: its
# reduced size counts, so a 50-megapixel photo passes.
DECODE_BUDGET_BYTES = 256 * 1024 * 1024
DECODE_BYTES_PER_PIXEL = 9
FORMAT_BYTES_PER_PIXEL = {"WEBP": 17}
MODE_BYTES_PER_PIXEL = dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N", "I", "F"), 34)
# 29.8 million pixels of an 8-bit image (a 6,300 x 4,700 photo); 15.8 million of a WebP, 7.9 of a 16-bit image.
MAX_UPLOAD_PIXELS = DECODE_BUDGET_BYTES // DECODE_BYTES_PER_PIXEL
PREVIEW_SIZE = 192
# The longest upload file name the page shows and the server keeps (longer ones are cut in the middle).
MAX_NAME_CHARS = 200
_FEATURE_CACHE_SIZE = 16
# The uploads kept by key for later selections: the latest ones up to this many bytes (the newest is always
# kept); an upload that went asks to be dropped again.
KEPT_UPLOAD_BYTES = 32 * 1024 * 1024
# mallopt's M_MMAP_THRESHOLD: blocks from this size up are mmap'ed, and unmapped when freed.
_MMAP_THRESHOLD_BYTES = 1024 * 1024

_model_lock = threading.Lock()
_feature_cache: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
_kept_lock = threading.Lock()
_kept_uploads: OrderedDict[str, bytes] = OrderedDict()
_previews: OrderedDict[str, str] = OrderedDict()


class UploadError(ValueError):
    """An upload that cannot be used; the message is meant for the page."""


def decode_contents(contents: str | None) -> bytes:
    """Bytes of a ``dcc.Upload`` data URL (``data:<type>;base64,<data>``), size-checked."""
    if not contents:
        raise UploadError("No file was received.")
    header, sep, data = contents.partition(",")
    if not sep or ";base64" not in header:
        raise UploadError("The upload was not received as base64 data; try another browser.")
    # 4 base64 characters carry 3 bytes: refuse before decoding anything too big.
    if len(data) * 3 // 4 > MAX_UPLOAD_BYTES + 3:
        raise UploadError(_too_big(len(data) * 3 // 4))
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError(f"The upload is not valid base64 data ({exc}).") from None
    check_size(raw)
    return raw


def _too_big(n_bytes: int) -> str:
    mib = 1024 * 1024
    # One unit, binary, said as such: 12,005,939 bytes are 11.4 MiB (12.0 MB), over a 10 MiB limit.
    return (f"The file is {n_bytes / mib:.1f} MiB ({n_bytes:,} bytes); the limit is {MAX_UPLOAD_BYTES / mib:.0f} MiB. "
            "Downscale it first.")


def too_big_message(n_bytes: int) -> str:
    """The page's message for a file of ``n_bytes`` over the limit (the browser refused to send it)."""
    return _too_big(n_bytes) + " It was not sent."


def check_size(data: bytes) -> None:
    if len(data) == 0:
        raise UploadError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(_too_big(len(data)))


def pixel_limit(image_format: str | None, mode: str) -> int:
    """The most pixels an image of this format and PIL mode may decode to: MAX_UPLOAD_PIXELS for an 8-bit
    image, fewer where a pixel costs more (DECODE_BUDGET_BYTES over the measured bytes per pixel)."""
    cost = max(DECODE_BYTES_PER_PIXEL, FORMAT_BYTES_PER_PIXEL.get(image_format or "", 0),
               MODE_BYTES_PER_PIXEL.get(mode, 0))
    return MAX_UPLOAD_PIXELS * DECODE_BYTES_PER_PIXEL // cost


def display_name(filename: str | None) -> str | None:
    """An upload's file name as the page shows it (and the server keeps it): at most MAX_NAME_CHARS characters,
    cut in the middle. The browser sends any name it is given (a 9 MB one came back twice in an 18 MB answer)."""
    if not filename or len(filename) <= MAX_NAME_CHARS:
        return filename
    half = (MAX_NAME_CHARS - 1) // 2
    return f"{filename[:half]}…{filename[-half:]}"


# Pillow's refusal of an image far over its own limit: "Image size (N pixels) exceeds limit of M pixels, ...".
_BOMB_PIXELS = re.compile(r"\((?P<pixels>[0-9]+) pixels\)")


def _bomb_message(exc: Exception) -> str:
    """The app's words for Pillow's DecompressionBombError (raised from the header, before any decoding)."""
    match = _BOMB_PIXELS.search(str(exc))
    size = f" is {int(match['pixels']):,} pixels," if match else ""
    return (
        f"The image{size} over the upload limit of {MAX_UPLOAD_PIXELS:,} pixels "
        f"({MAX_UPLOAD_PIXELS / 1e6:.1f} megapixels); downscale it."
    )


def check_pixels(data: bytes, draft_size: int | None = None) -> None:
    """Refuse, from the header alone, an image whose decoding would take more than DECODE_BUDGET_BYTES.

    ``draft_size`` is the size the decoder is asked for (as in ``precompute.datasets.open_image``): a JPEG then
    decodes at a reduced scale, and that reduced size is what counts.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))  # sets the decoder's scale; decodes nothing
            decoded, image_format, mode = image.size, image.format, image.mode
    except Image.DecompressionBombError as exc:  # Pillow refuses to open it at all: far over our limit too
        raise UploadError(_bomb_message(exc)) from None
    except Exception:  # decoding gives the precise reason
        return
    limit = pixel_limit(image_format, mode)
    if decoded[0] * decoded[1] > limit:
        kind = f"{image_format or ''} image in mode {mode}".strip()
        raise UploadError(
            f"The image is {width}x{height} pixels, above the upload limit of {limit:,} pixels for a {kind} "
            f"({limit / 1e6:.1f} megapixels); downscale it."
        )


def keep_upload(data: bytes) -> str:
    """Keep an upload's bytes on the server; its key (the SHA-256 of the bytes) for :func:`kept_upload`."""
    key = hashlib.sha256(data).hexdigest()
    with _kept_lock:
        _kept_uploads[key] = data
        _kept_uploads.move_to_end(key)
        total = sum(len(kept) for kept in _kept_uploads.values())
        while total > KEPT_UPLOAD_BYTES and len(_kept_uploads) > 1:
            total -= len(_kept_uploads.popitem(last=False)[1])
    return key


def kept_upload(key: str | None) -> bytes | None:
    """The bytes kept under ``key`` by :func:`keep_upload`; None when there are none (any more)."""
    with _kept_lock:
        data = _kept_uploads.get(key) if isinstance(key, str) else None
        if data is not None:
            _kept_uploads.move_to_end(key)
    return data


def upload_preview(data: bytes) -> str:
    """:func:`preview_data_url` of an upload, made once (the latest _FEATURE_CACHE_SIZE are kept)."""
    key = hashlib.sha256(data).hexdigest()
    with _kept_lock:
        preview = _previews.get(key)
    if preview is None:
        preview = preview_data_url(data)
        with _kept_lock:
            _previews[key] = preview
            while len(_previews) > _FEATURE_CACHE_SIZE:
                _previews.popitem(last=False)
    return preview


@functools.cache
def _return_freed_memory_to_the_os() -> None:
    """Make glibc's malloc give big freed blocks back to the OS at once (Linux; elsewhere nothing).

    By default glibc raises its mmap threshold after a big block is freed (up to 32 MiB), so the next decoded
    images land in per-thread heaps that keep their pages: 8 uploads in turn on 8 server threads then leave
    8 images' worth of memory resident although only 2 were ever decoded at once (measured: +1.16 GiB peak and
    +0.84 GiB after, against +0.46 GiB and +0 with the threshold fixed at 1 MiB).
    """
    mallopt(M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


@contextlib.contextmanager
def decode_slot() -> Iterator[None]:
    """Hold one of the DECODE_CONCURRENCY decoding slots; an UploadError if none frees up in DECODE_WAIT_S."""
    _return_freed_memory_to_the_os()
    if not DECODE_SLOTS.acquire(timeout=DECODE_WAIT_S):
        raise UploadError("The server is busy with other uploads; try again in a minute.")
    try:
        yield
    finally:
        DECODE_SLOTS.release()


def prepare_image(data: bytes, size: int) -> np.ndarray:
    """The model input of an uploaded image: float32 (size, size, 3) in 0..255, or an UploadError.

    Decodes the whole image: callers hold a :func:`decode_slot` (``upload_features`` does).
    """
    check_size(data)
    check_pixels(data, draft_size=size * 2)  # load_for_model's draft size
    try:
        return load_for_model(data, size)
    except ImageDecodeError as exc:
        reason = str(exc).removeprefix("upload: ")
        raise UploadError(f"This file cannot be used as an image: {reason}.") from None
    except Image.DecompressionBombError as exc:
        raise UploadError(_bomb_message(exc)) from None
    except MemoryError as exc:
        raise UploadError(f"The image is too large to decode ({type(exc).__name__}).") from None


def preview_data_url(data: bytes, size: int = PREVIEW_SIZE) -> str:
    """A small JPEG of the upload as a data URL, for the page (never the full-size image)."""
    check_pixels(data, draft_size=size)
    with decode_slot():
        image = decode_image(data, max_pixels=MAX_PIXELS, draft_size=size)
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=4)
def _extractor(config: ModelConfig, layers: tuple[str, ...]) -> Any:
    from precompute.models import load_extractor

    return load_extractor(config, list(layers))


def get_extractor(model_config: ModelConfig | dict[str, Any], layers: list[str] | tuple[str, ...]) -> Any:
    """The feature extractor of a model config (the index's record, or its dict) with all its layers, built once
    and cached (the frozen record is the cache key)."""
    from precompute.models import checked_config

    with _model_lock:
        return _extractor(checked_config(model_config), tuple(layers))


def upload_features(store: Store, dataset: str, model: str, layer: str, data: bytes) -> np.ndarray:
    """Features (1, dim) of an uploaded image at one layer, with the model and settings the dataset used."""
    stored = store.model(dataset, model).config
    layers = store.layers(dataset, model)
    store.layer(dataset, model, layer)
    from precompute.models import rooted_config

    # The extractor's argument: the config as the index stores it (a trained head's file found under the root).
    config = rooted_config(stored, store.root)
    key = (hashlib.sha256(data).hexdigest(), config, tuple(layers))
    with _model_lock:
        cached = _feature_cache.get(key)
        if cached is not None:
            _feature_cache.move_to_end(key)
    if cached is None:
        check_pixels(data, draft_size=int(stored.input_size) * 2)  # refused at once, not after waiting for a slot
        with decode_slot():
            image = prepare_image(data, int(stored.input_size))
            extract = get_extractor(config, layers)
            with _model_lock:  # Keras models are not safe to call from several threads at once
                cached = [np.asarray(out, dtype=np.float32) for out in extract(image[None])]
                _feature_cache[key] = cached
                while len(_feature_cache) > _FEATURE_CACHE_SIZE:
                    _feature_cache.popitem(last=False)
    return cached[layers.index(layer)]
