"""Uploaded files (playground/uploads.py): what is refused and why, and the image modes that decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from playground import uploads
from tests.helpers import data_url
from tests.playground_fixtures import draw_shape, photo_png, png_bytes


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"this is not an image at all", "not an image"),
        (b"", "empty"),
    ],
)
def test_upload_errors_are_messages(data, reason):
    with pytest.raises(uploads.UploadError, match=reason):
        uploads.prepare_image(data, 32)


def test_truncated_upload_is_a_message():
    data = photo_png()
    with pytest.raises(uploads.UploadError, match="truncated|corrupt"):
        uploads.prepare_image(data[: len(data) // 2], 32)


def test_too_big_upload_is_refused_before_decoding():
    with pytest.raises(uploads.UploadError, match="limit"):
        uploads.decode_contents(data_url(b"\0" * (uploads.MAX_UPLOAD_BYTES + 10)))
    with pytest.raises(uploads.UploadError, match="base64"):
        uploads.decode_contents("data:image/png;base64,@@@@")


def test_huge_pixel_count_is_refused(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_PIXELS", 100)
    with pytest.raises(uploads.UploadError, match="pixels"):
        uploads.prepare_image(png_bytes(Image.new("RGB", (20, 20))), 32)


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "RGBA", "L", "P"])
def test_odd_image_modes_work(mode):
    rgb = draw_shape("circle", (200, 30, 30), np.random.default_rng(0), size=40)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257)
        data = png_bytes(image)
    elif mode == "CMYK":
        buffer = io.BytesIO()
        rgb.convert("CMYK").save(buffer, format="JPEG")
        data = buffer.getvalue()
    else:
        image = rgb.convert(mode)
        if mode == "RGBA":
            image.putalpha(128)
        data = png_bytes(image)
    array = uploads.prepare_image(data, 32)
    assert array.shape == (32, 32, 3) and array.dtype == np.float32
