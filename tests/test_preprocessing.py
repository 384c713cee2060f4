"""Every backbone's preprocessing is NumPy data (``precompute.preprocessing.PixelAffine``) equal to the function it
stands for: ``keras.applications.<module>.preprocess_input``, the EfficientNet-Lite port's, the pixels baseline's."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from precompute.backbones import BACKBONES, get_backbone
from precompute.preprocessing import PixelAffine, apply_pixel_affine

REPO = Path(__file__).resolve().parent.parent


def reference_preprocess(name: str):
    """The function the registry's preprocessing replaced, imported from where it lives."""
    backbone = get_backbone(name)
    if backbone.keras_module:
        from keras import applications

        function = getattr(applications, backbone.keras_module).preprocess_input
        return lambda x: function(np.array(x, dtype=np.float32, copy=True))
    if backbone.family == "EfficientNet-Lite":
        from precompute.architectures.efficientnet_lite import preprocess_input

        return preprocess_input
    assert name == "pixels", f"{name}: no reference preprocessing known; add one here"
    return lambda x: np.asarray(x, dtype=np.float32) / 255.0


def images() -> np.ndarray:
    """Every 8-bit value in each channel, and resized (non-integer) values as load_for_model gives."""
    rng = np.random.default_rng(0)
    ramp = np.stack([np.arange(256), np.arange(256)[::-1], (np.arange(256) * 7) % 256], axis=-1)
    return np.concatenate([ramp.reshape(1, 16, 16, 3).astype(np.float32),
                           rng.uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)])


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_the_numpy_preprocessing_equals_the_backbones_own(name: str) -> None:
    x = images()
    expected = reference_preprocess(name)(x.copy())
    got = get_backbone(name).preprocess(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    # float32 rounding: Keras divides and subtracts in two or three steps, the affine map multiplies and adds once.
    tolerance = 4 * np.finfo(np.float32).eps * max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
    # uint8 input and a single image (no batch axis) give the same
    as_uint8 = np.round(x[:1]).astype(np.uint8)
    np.testing.assert_array_equal(get_backbone(name).preprocess(as_uint8[0]),
                                  get_backbone(name).preprocess(as_uint8.astype(np.float32))[0])


def test_the_input_is_not_modified_and_bgr_reverses_the_channels() -> None:
    x = images()
    before = x.copy()
    out = apply_pixel_affine(x, PixelAffine("bgr", (1.0, 2.0, 3.0), (0.0, 0.0, 1.0)))
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(out, np.stack([x[..., 2], 2 * x[..., 1], 3 * x[..., 0] + 1], axis=-1))


def test_batches_preprocessed_in_place_in_the_decoding_threads_are_the_same_bits(tmp_path: Path) -> None:
    """``load_batches(transform=preprocess in place)`` (what extraction runs) gives, bit for bit, the batches of
    decoding, stacking and then ``x * scale + offset``: every affine, a last batch shorter than the others."""
    from PIL import Image

    from precompute.datasets import load_batches, load_for_model

    rng = np.random.default_rng(3)
    paths = []
    for i in range(7):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (9 + i, 13, 3), dtype=np.uint8)).save(tmp_path / name)
        paths.append(name)
    for name in ("efficientnet-lite0", "vgg16", "densenet121", "nasnetmobile", "efficientnetb0", "pixels"):
        backbone = get_backbone(name)
        affine = backbone.pixel_affine
        transform = partial(backbone.preprocess, in_place=True)
        got = list(load_batches(tmp_path, paths, 16, 3, transform=transform))
        for start, batch in zip(range(0, 7, 3), got, strict=True):
            raw = np.stack([load_for_model(tmp_path / p, 16) for p in paths[start : start + 3]])
            pixels = raw[..., ::-1] if affine.channel_order == "bgr" else raw
            expected = pixels * np.asarray(affine.scale, np.float32) + np.asarray(affine.offset, np.float32)
            assert batch.flags.c_contiguous and batch.dtype == np.float32
            np.testing.assert_array_equal(batch.view(np.uint32), expected.view(np.uint32), err_msg=name)


def test_bad_affines_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="'rbg'.*rgb, bgr"):
        PixelAffine("rbg", (1.0,) * 3, (0.0,) * 3)
    with pytest.raises(ValueError, match="3 scales"):
        PixelAffine("rgb", (1.0,) * 2, (0.0,) * 3)
    with pytest.raises(ValueError, match=r"last axis of 3.*\(4, 4\)"):
        apply_pixel_affine(np.zeros((4, 4)), PixelAffine("rgb", (1.0,) * 3, (0.0,) * 3))


def test_preprocessing_imports_no_tensorflow() -> None:
    code = ("import sys, numpy as np; from precompute.backbones import BACKBONES; "
            "[b.preprocess(np.zeros((1, 4, 4, 3), np.uint8)) for b in BACKBONES.values()]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
