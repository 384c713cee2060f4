"""Content and perceptual hashes, the pairs they find, and the embedded datasets' freedom from duplicates."""

from __future__ import annotations

import io
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import precompute.duplicates as dup
from precompute.datasets import decode_image, scan_folder
from precompute.duplicates import PHASH_MAX_DISTANCE, content_hash, hash_pairs, perceptual_hash

REPO = Path(__file__).resolve().parents[1]
EMBEDDED = [REPO / "data" / "openclipart-200", REPO / "data" / "fashion-mnist-200"]
DTYPES = {"a": np.int64, "b": np.int64, "phash_distance": np.int64, "cross_class": bool}


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def bits_apart(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def first_drawings() -> list[Image.Image]:
    """The first shipped drawing of each class of data/openclipart-200: ten different pictures."""
    return [decode_image(sorted(folder.glob("*.png"))[0]) for folder in sorted(EMBEDDED[0].iterdir())]


# --------------------------------------------------------------------------------------------- hashes


def test_content_hash_sees_pixels_not_encodings() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8), "RGB")
    files = [encoded(image, "PNG"), encoded(image, "PNG", optimize=True), encoded(image, "PNG", compress_level=0),
             encoded(image, "BMP"), encoded(image, "TIFF"), encoded(image, "PNG", pnginfo=_text("note", "a copy"))]
    assert len(set(files)) == len(files)  # six different files...
    assert {content_hash(decode_image(f)) for f in files} == {content_hash(image)}  # ...of the same pixels
    assert len(content_hash(image)) == 64
    changed = np.asarray(image).copy()
    changed[3, 4, 1] ^= 1  # one bit of one pixel
    assert content_hash(Image.fromarray(changed, "RGB")) != content_hash(image)
    # Same bytes, other shape or mode: not the same image.
    raw = np.asarray(image).tobytes()
    assert content_hash(Image.frombytes("RGB", (10, 24), raw)) != content_hash(image)
    assert content_hash(Image.frombytes("L", (60, 12), raw)) != content_hash(image)
    # Palette images: the same indices under another palette are other colours.
    indices = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4), "P")
    indices.putpalette([v for i in range(256) for v in (i, 0, 0)])
    other = indices.copy()
    other.putpalette([v for i in range(256) for v in (0, i, 0)])
    assert content_hash(indices) != content_hash(other)


def _text(key: str, value: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return info


def test_perceptual_hash_tolerates_a_resize_and_recompression_not_another_picture() -> None:
    drawings = first_drawings()
    hashes = [perceptual_hash(d) for d in drawings]
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in hashes)
    for drawing, original in zip(drawings, hashes, strict=True):
        smaller = drawing.resize((round(drawing.width * 0.9), round(drawing.height * 0.9)), Image.Resampling.BICUBIC)
        variant = decode_image(encoded(smaller, "JPEG", quality=85))
        assert content_hash(variant) != content_hash(drawing)
        assert bits_apart(perceptual_hash(variant), original) <= PHASH_MAX_DISTANCE
    assert min(bits_apart(a, b) for a, b in combinations(hashes, 2)) > PHASH_MAX_DISTANCE


def test_perceptual_hash_refuses_transparency_and_non_images() -> None:
    with pytest.raises(ValueError, match="mode 'RGBA' with transparency.*decode_image"):
        perceptual_hash(Image.new("RGBA", (8, 8)))
    with pytest.raises(ValueError, match="mode 'LA'"):
        perceptual_hash(Image.new("LA", (8, 8)))
    with pytest.raises(ValueError, match="got ndarray"):
        perceptual_hash(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="got str"):
        content_hash("cat.png")
    with pytest.raises(ValueError, match="empty .0x5 pixels"):
        content_hash(Image.new("RGB", (0, 5)))
    # On white, as decode_image gives it, a drawing hashes the same as its opaque copy.
    drawing = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    drawing.paste(Image.new("RGBA", (10, 20), (200, 0, 0, 255)), (4, 6))
    opaque = Image.new("RGB", (32, 32), "white")
    opaque.paste(Image.new("RGB", (10, 20), (200, 0, 0)), (4, 6))
    assert perceptual_hash(decode_image(encoded(drawing, "PNG"))) == perceptual_hash(opaque)


# ------------------------------------------------------------------------------------------ hash_pairs


def test_hash_pairs_finds_exact_and_near_pairs_and_marks_classes() -> None:
    content = ["x", "y", "x", "z", "w", "x"]
    perceptual = ["00000000ffffffff",  # 0
                  "00000000fffffff0",  # 1: 4 bits from 0
                  "00000000ffffffff",  # 2: same pixels as 0
                  "ffffffff00000000",  # 3: far from all
                  "00000000ffffff00",  # 4: 8 bits from 0, 4 from 1
                  "0f0f0f0f0f0f0f0f"]  # 5: same pixels as 0 and 2, whatever its perceptual hash says
    labels = ["cat", "cat", "dog", "dog", "cat", "cat"]
    pairs = hash_pairs(content, perceptual, labels, max_distance=4)
    assert list(pairs.columns) == ["a", "b", "kind", "phash_distance", "cross_class"]
    assert pairs[["a", "b", "kind", "phash_distance", "cross_class"]].values.tolist() == [
        [0, 1, "near", 4, False],
        [0, 2, "exact", 0, True],
        [0, 5, "exact", 32, False],
        [1, 2, "near", 4, True],
        [1, 4, "near", 4, False],
        [2, 5, "exact", 32, True],
    ]
    assert {k: pairs[k].dtype for k in DTYPES} == DTYPES
    unlabeled = hash_pairs(content, perceptual, max_distance=4)
    assert not unlabeled["cross_class"].any()
    assert unlabeled.drop(columns="cross_class").equals(pairs.drop(columns="cross_class"))
    assert len(hash_pairs(content, perceptual, max_distance=0)) == 3  # the exact pairs only
    assert len(hash_pairs(content, perceptual, max_distance=8)) == 8  # and 0-4, 2-4 at 8 bits


def test_hash_pairs_with_no_pair_is_an_empty_table_of_the_same_columns() -> None:
    full = hash_pairs(["x", "x"], ["0000000000000000", "0000000000000000"])
    for content, perceptual in (([], []), (["x"], ["0000000000000000"]),
                                (["x", "y"], ["0000000000000000", "ffffffffffffffff"])):
        empty = hash_pairs(content, perceptual, labels=[1] * len(content))
        assert empty.empty and list(empty.columns) == list(full.columns)
        assert (empty.dtypes == full.dtypes).all(), (empty.dtypes, full.dtypes)


@pytest.mark.parametrize("block", [1, 5, 1 << 20])
def test_hash_pairs_matches_brute_force_on_random_hashes(monkeypatch, block: int) -> None:
    """Clustered random hashes (so that every distance occurs), blocks of any size, against a plain double loop."""
    monkeypatch.setattr(dup, "_BLOCK_ELEMENTS", block)
    rng = np.random.default_rng(7)
    n = 150
    centres = rng.integers(0, 1 << 63, size=12, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 12, np.uint64)
    values = centres[rng.integers(0, 12, n)]
    for _ in range(3):  # flip up to three random bits of each
        flip = rng.random(n) < 0.6
        values = values ^ (flip.astype(np.uint64) << rng.integers(0, 64, n).astype(np.uint64))
    perceptual = [f"{int(v):016x}" for v in values]
    content = [f"c{int(i)}" for i in rng.integers(0, 120, n)]  # some equal by chance: exact pairs
    labels = rng.choice(["a", "b", None], n).tolist()
    for max_distance in (0, 3, 6, 64):
        expected = []
        for a, b in combinations(range(n), 2):
            distance = bits_apart(perceptual[a], perceptual[b])
            if content[a] == content[b] or distance <= max_distance:
                expected.append((a, b, "exact" if content[a] == content[b] else "near", distance,
                                 labels[a] != labels[b]))
        got = hash_pairs(content, perceptual, labels, max_distance)
        assert list(got.itertuples(index=False, name=None)) == expected, max_distance
    assert 0 < sum(k == "exact" for *_, k, _, _ in expected) < len(expected)


def test_kept_hashes_keeps_what_hash_pairs_would_keep() -> None:
    """The samplers' incremental check (KeptHashes, growing past its first buffer) against rebuilding the pairs
    table of every kept hash plus the candidate, as the samplers did before: the same images kept."""
    rng = np.random.default_rng(3)
    n = 1500
    centres = rng.integers(0, 1 << 63, size=300, dtype=np.uint64)
    values = centres[rng.integers(0, 300, n)]
    for _ in range(4):
        flip = rng.random(n) < 0.7
        values = values ^ (flip.astype(np.uint64) << rng.integers(0, 64, n).astype(np.uint64))
    perceptual = [f"{int(v):016x}" for v in values]
    content = [f"c{int(i)}" for i in rng.integers(0, 1400, n)]
    kept_slow: list[int] = []
    for i in range(0, n, 7):  # every seventh: the slow reference is quadratic
        rows = [*kept_slow, i]
        pairs = hash_pairs([content[r] for r in rows], [perceptual[r] for r in rows])
        if not (pairs["b"] == len(kept_slow)).any():
            kept_slow.append(i)
    kept, kept_fast = dup.KeptHashes(), []
    for i in range(0, n, 7):
        if not kept.duplicates(content[i], perceptual[i]):
            kept.add(content[i], perceptual[i])
            kept_fast.append(i)
    assert kept_fast == kept_slow and len(kept) == len(kept_fast)
    assert 20 < n // 7 - len(kept_fast) < n // 7 // 2  # both kinds of duplicates were met, most images kept
    big = dup.KeptHashes()
    for i in range(n):
        big.add(content[i], perceptual[i])
    assert len(big) == n > 1024 and big.duplicates("new", perceptual[-1]) and big.duplicates(content[0], "0" * 16)
    with pytest.raises(ValueError, match="expected 16 hex digits"):
        big.duplicates("new", "xyz")


def test_hash_pairs_names_what_is_wrong() -> None:
    zero = "0000000000000000"
    with pytest.raises(ValueError, match=r"perceptual_hashes\[1\] is 'xyz'; expected 16 hex digits"):
        hash_pairs(["a", "b"], [zero, "xyz"])
    with pytest.raises(ValueError, match=r"perceptual_hashes\[0\] is '0x00000000000000'"):
        hash_pairs(["a"], ["0x00000000000000"])
    with pytest.raises(ValueError, match="perceptual_hashes has 1 entries for 2 content hashes"):
        hash_pairs(["a", "b"], [zero])
    with pytest.raises(ValueError, match="labels has 3 entries for 2"):
        hash_pairs(["a", "b"], [zero, zero], labels=[1, 2, 3])
    with pytest.raises(ValueError, match=r"content_hashes\[1\] is 7 \(int\)"):
        hash_pairs(["a", 7], [zero, zero])
    with pytest.raises(ValueError, match="not the single string 'ab'"):
        hash_pairs("ab", [zero, zero])
    for bad in (-1, 65, 2.5, True, "4"):
        with pytest.raises(ValueError, match=f"max_distance={bad!r} is not a whole number of bits in 0..64"):
            hash_pairs(["a"], [zero], max_distance=bad)
    assert hash_pairs(pd.Series(["a", "a"]), np.array([zero, zero]), max_distance=np.int64(3)).shape == (1, 5)


def test_hash_pairs_is_quick_on_many_images() -> None:
    """20,000 hashes (200 million pairs) in well under the time a user would notice; the 70k figure is documented."""
    import time

    rng = np.random.default_rng(0)
    perceptual = [f"{int(v):016x}" for v in rng.integers(0, 1 << 63, size=20_000, dtype=np.uint64)]
    start = time.perf_counter()
    pairs = hash_pairs([str(i) for i in range(20_000)], perceptual)
    assert time.perf_counter() - start < 10
    assert pairs.empty  # random 64-bit hashes are about 32 bits apart


# ----------------------------------------------------------------------------------- embedded datasets


def test_embedded_datasets_hold_no_duplicate_images() -> None:
    """No two images of data/ (both datasets together), as the pipeline decodes them, are the same or nearly."""
    files = [(root / rel, f"{root.name}/{label}") for root in EMBEDDED for rel, label in scan_folder(root).files]
    assert len(files) == 400
    images = [decode_image(path) for path, _ in files]
    pairs = hash_pairs([content_hash(i) for i in images], [perceptual_hash(i) for i in images],
                       [label for _, label in files])
    found = [(str(files[a][0].relative_to(REPO)), str(files[b][0].relative_to(REPO)), kind, distance)
             for a, b, kind, distance in pairs[["a", "b", "kind", "phash_distance"]].itertuples(index=False)]
    assert not found, found
