"""Decoding what real folders hold, and the manifest of a dataset folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute.datasets import (
    DatasetError,
    ImageDecodeError,
    build_manifest,
    dataset_name,
    decode_image,
    load_batches,
    load_for_model,
    scan_folder,
)


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def _jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


def test_grayscale_becomes_rgb(tmp_path: Path) -> None:
    path = _save(Image.new("L", (10, 6), 77), tmp_path / "g.png")
    image = decode_image(path)
    assert image.mode == "RGB" and image.size == (10, 6)
    assert np.asarray(image)[0, 0].tolist() == [77, 77, 77]


def test_rgba_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    image = decode_image(_save(rgba, tmp_path / "a.png"))
    pixels = np.asarray(image)
    assert pixels[1, 1].tolist() == [255, 255, 255]  # fully transparent -> white, not red or black
    assert pixels[0, 0].tolist() == [0, 0, 255]


def test_palette_with_transparency(tmp_path: Path) -> None:
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    palette.putpixel((2, 2), 1)
    image = decode_image(_save(palette, tmp_path / "p.png", transparency=0))
    pixels = np.asarray(image)
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[2, 2].tolist() == [10, 200, 10]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # pure red in CMYK
    image = decode_image(_save(cmyk, tmp_path / "c.jpg"))
    red, green, blue = np.asarray(image)[4, 4].astype(int)
    assert image.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_16_bit_png_uses_its_full_range(tmp_path: Path) -> None:
    array = np.linspace(1000, 5000, 64, dtype=np.uint16).reshape(8, 8)
    path = _save(Image.fromarray(array), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    pixels = np.asarray(decode_image(path))[..., 0]
    assert pixels.min() == 0 and pixels.max() == 255  # stretched, not clipped to white


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    wide = Image.new("RGB", (20, 10), (0, 128, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rot.jpg"
    path.write_bytes(_jpeg_bytes(wide, exif=exif))
    assert decode_image(path).size == (10, 20)


def test_truncated_and_non_image_files_raise_with_reason(tmp_path: Path) -> None:
    good = _jpeg_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.jpg").write_text("not an image at all")
    with pytest.raises(ImageDecodeError, match="truncated"):
        decode_image(tmp_path / "cut.jpg")
    with pytest.raises(ImageDecodeError, match="not an image"):
        decode_image(tmp_path / "text.jpg")
    with pytest.raises(ImageDecodeError, match="not an image"):
        decode_image(b"\x00\x01garbage")


def test_huge_images_are_refused_before_decoding(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (1200, 1000)), tmp_path / "big.png")
    with pytest.raises(ImageDecodeError, match="above the limit"):
        decode_image(path, max_pixels=1_000_000)
    assert decode_image(path).size == (1200, 1000)


def test_load_for_model_resizes_to_square_float(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (300, 100), (10, 20, 30)), tmp_path / "x.JPEG")
    array = load_for_model(path, 32)
    assert array.shape == (32, 32, 3) and array.dtype == np.float32
    assert np.allclose(array[16, 16], [10, 20, 30], atol=3)


def _messy_dataset(root: Path) -> Path:
    _save(Image.new("RGB", (40, 30), "red"), root / "cats" / "a.JPG")
    _save(Image.new("L", (30, 30), 10), root / "cats" / "nested" / "b.png")
    _save(Image.new("CMYK", (30, 30)), root / "dogs" / "c.jpeg")
    _save(Image.new("RGBA", (30, 30)), root / "dogs" / "d.PNG")
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "dogs" / "notes.txt").write_text("hello")
    (root / "dogs" / ".DS_Store").write_bytes(b"\x00")
    (root / "readme.md").write_text("stray file at the top")
    return root


def test_manifest_keeps_good_images_and_reports_bad_ones(tmp_path: Path) -> None:
    root = _messy_dataset(tmp_path / "pets")
    manifest, skipped, labeled = build_manifest(root, tmp_path / "thumbs", progress=False)
    assert labeled
    assert manifest["path"].tolist() == ["cats/a.JPG", "cats/nested/b.png", "dogs/c.jpeg", "dogs/d.PNG"]
    assert manifest["label"].tolist() == ["cats", "cats", "dogs", "dogs"]
    assert manifest["id"].tolist() == [0, 1, 2, 3]
    assert manifest.loc[0, ["width", "height"]].tolist() == [40, 30]
    reasons = {item["path"]: item["reason"] for item in skipped}
    assert set(reasons) == {"readme.md", "dogs/broken.jpg", "dogs/notes.txt"}
    assert "truncated" in reasons["dogs/broken.jpg"] or "not an image" in reasons["dogs/broken.jpg"]
    assert sorted(p.name for p in (tmp_path / "thumbs").iterdir()) == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert max(Image.open(tmp_path / "thumbs" / "0.jpg").size) <= 160


def test_flat_folder_is_unlabeled(tmp_path: Path) -> None:
    for i in range(3):
        _save(Image.new("RGB", (8, 8), (i * 50, 0, 0)), tmp_path / "flat" / f"{i}.png")
    manifest, skipped, labeled = build_manifest(tmp_path / "flat", progress=False)
    assert not labeled and skipped == [] and manifest["label"].isna().all() and len(manifest) == 3


def test_empty_or_unusable_folders_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="No image files"):
        build_manifest(tmp_path / "empty", progress=False)
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / "1.png").write_bytes(b"nope")
    with pytest.raises(DatasetError, match="could be decoded"):
        build_manifest(tmp_path / "bad", progress=False)
    with pytest.raises(DatasetError, match="does not exist"):
        scan_folder(tmp_path / "missing")


def test_load_batches_keeps_order(tmp_path: Path) -> None:
    paths = []
    for i in range(7):
        _save(Image.new("RGB", (8, 8), (i * 30, 0, 0)), tmp_path / f"{i}.png")
        paths.append(f"{i}.png")
    batches = list(load_batches(tmp_path, paths, 8, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert np.concatenate(batches)[:, 0, 0, 0].tolist() == [i * 30 for i in range(7)]


def test_dataset_name_is_path_safe(tmp_path: Path) -> None:
    assert dataset_name(tmp_path / "My Photos (2024)") == "My-Photos--2024"


def test_folder_fingerprint_changes_with_the_files(tmp_path: Path) -> None:
    from precompute.datasets import folder_fingerprint

    _save(Image.new("RGB", (8, 8), "red"), tmp_path / "a" / "1.png")
    _save(Image.new("RGB", (8, 8), "blue"), tmp_path / "b" / "1.png")
    first = folder_fingerprint(tmp_path)
    assert folder_fingerprint(tmp_path) == first
    _save(Image.new("RGB", (8, 8), "green"), tmp_path / "b" / "2.png")
    second = folder_fingerprint(tmp_path)
    assert second != first
    (tmp_path / "b" / "2.png").rename(tmp_path / "a" / "2.png")  # same file, other class
    assert folder_fingerprint(tmp_path) not in (first, second)
