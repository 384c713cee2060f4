"""Queries by uploaded image: decode in memory, extract with the dataset's own model, search.

Nothing here writes to disk: the upload arrives as a base64 data URL in the callback, is decoded to
bytes, turned into the model's input and features, and dropped. Feature models are built once per
(model config, layers) and kept; every layer of a model comes from one extractor and one forward pass.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import threading
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from playground.store import Store
from precompute.datasets import ImageDecodeError, decode_image, load_for_model

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# The browser refuses bigger files before reading them (dcc.Upload's max_size), and assets/playground.js, which
# sees every file chosen or dropped, reports the size so that the page says why (dcc.Upload has no rejection
# event). The server checks again: a request can come from elsewhere.
BROWSER_MAX_BYTES = MAX_UPLOAD_BYTES
# Refuse images with more pixels than this before decoding them (a small file can hold a huge image).
MAX_UPLOAD_PIXELS = 60_000_000
PREVIEW_SIZE = 192
_FEATURE_CACHE_SIZE = 16

_model_lock = threading.Lock()
_feature_cache: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()


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
    return f"The file is {n_bytes / mib:.1f} MB; the limit is {MAX_UPLOAD_BYTES / mib:.0f} MB. Downscale it first."


def too_big_message(n_bytes: int) -> str:
    """The page's message for a file of ``n_bytes`` over the limit (the browser refused to send it)."""
    return _too_big(n_bytes) + " It was not sent."


def check_size(data: bytes) -> None:
    if len(data) == 0:
        raise UploadError("The file is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(_too_big(len(data)))


def _check_pixels(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            width, height = image.size
    except Exception:  # load_for_model below gives the precise reason
        return
    if width * height > MAX_UPLOAD_PIXELS:
        raise UploadError(
            f"The image is {width}x{height} pixels, above the upload limit of {MAX_UPLOAD_PIXELS:,}; downscale it."
        )


def prepare_image(data: bytes, size: int) -> np.ndarray:
    """The model input of an uploaded image: float32 (size, size, 3) in 0..255, or an UploadError."""
    check_size(data)
    _check_pixels(data)
    try:
        return load_for_model(data, size)
    except ImageDecodeError as exc:
        reason = str(exc).removeprefix("upload: ")
        raise UploadError(f"This file cannot be used as an image: {reason}.") from None
    except (MemoryError, Image.DecompressionBombError) as exc:
        raise UploadError(f"The image is too large to decode ({type(exc).__name__}).") from None


def preview_data_url(data: bytes, size: int = PREVIEW_SIZE) -> str:
    """A small JPEG of the upload as a data URL, for the page (never the full-size image)."""
    image = decode_image(data, max_pixels=MAX_UPLOAD_PIXELS, draft_size=size)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@lru_cache(maxsize=4)
def _extractor(config_json: str, layers: tuple[str, ...]) -> Any:
    from precompute.extract import load_extractor

    return load_extractor(json.loads(config_json), list(layers))


def get_extractor(model_config: dict[str, Any], layers: list[str] | tuple[str, ...]) -> Any:
    """The feature extractor of a model config with all its layers, built once and cached."""
    with _model_lock:
        return _extractor(json.dumps(model_config, sort_keys=True), tuple(layers))


def upload_features(store: Store, dataset: str, model: str, layer: str, data: bytes) -> np.ndarray:
    """Features (1, dim) of an uploaded image at one layer, with the model and settings the dataset used."""
    entry = store.model(dataset, model)
    layers = store.layers(dataset, model)
    store.layer(dataset, model, layer)
    config = entry["config"]
    key = (hashlib.sha256(data).hexdigest(), json.dumps(config, sort_keys=True), tuple(layers))
    with _model_lock:
        cached = _feature_cache.get(key)
        if cached is not None:
            _feature_cache.move_to_end(key)
    if cached is None:
        image = prepare_image(data, int(config["input_size"]))
        extract = get_extractor(config, layers)
        with _model_lock:  # Keras models are not safe to call from several threads at once
            cached = [np.asarray(out, dtype=np.float32) for out in extract(image[None])]
            _feature_cache[key] = cached
            while len(_feature_cache) > _FEATURE_CACHE_SIZE:
                _feature_cache.popitem(last=False)
    return cached[layers.index(layer)]
