"""The Fashion-MNIST idx reader, the sampler behind data/fashion-mnist-200, and the embedded dataset itself."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from precompute.datasets import scan_folder
from precompute.duplicates import PHASH_MAX_DISTANCE, content_hash, hash_pairs, perceptual_hash
from tools.fashion_mnist import (
    CLASS_NAMES,
    DEFAULT_SOURCE,
    export_image_folder,
    load_fashion_mnist,
    read_idx,
    sample_indices,
)

REPO = Path(__file__).resolve().parents[1]


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = images.shape
    header = (2051).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (n, rows, cols))
    with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + images.tobytes())
    (folder / f"{prefix}-labels-idx1-ubyte").write_bytes((2049).to_bytes(4, "big") + n.to_bytes(4, "big")
                                                          + labels.tobytes())


def fake_source(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 30)):
        images = rng.integers(0, 255, size=(n, 28, 28), dtype=np.uint8)
        write_idx(tmp_path / "src", prefix, images, (np.arange(n) % 10).astype(np.uint8))
    return tmp_path / "src"


def test_read_idx_round_trip_and_errors(tmp_path: Path) -> None:
    source = fake_source(tmp_path)
    images = read_idx(source / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x09\x99" + b"\x00" * 20)
    with pytest.raises(ValueError, match="not an idx"):
        read_idx(bad)
    truncated = tmp_path / "t.idx"
    truncated.write_bytes((source / "t10k-labels-idx1-ubyte").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(truncated)


def test_export_samples_per_class_reproducibly(tmp_path: Path) -> None:
    source = fake_source(tmp_path)
    images, labels = load_fashion_mnist("all", source)
    assert images.shape == (70, 28, 28) and len(labels) == 70
    assert (sample_indices(labels, 2, seed=3) == sample_indices(labels, 2, seed=3)).all()
    assert export_image_folder(tmp_path / "out", per_class=2, split="test", source=source) == 20
    scan = scan_folder(tmp_path / "out")
    assert scan.labeled and len(scan.files) == 20
    assert sorted({label for _, label in scan.files}) == sorted(CLASS_NAMES)
    with pytest.raises(FileExistsError):
        export_image_folder(tmp_path / "out", per_class=2, source=source)
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist("test", tmp_path / "nowhere")


def test_sample_passes_over_duplicates_and_keeps_the_rest_of_the_sample(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3, dtype=np.uint8), 12)
    images = rng.integers(0, 256, size=(36, 28, 28), dtype=np.uint8)  # noise: no two alike
    plain = sample_indices(labels, 5, seed=2)
    assert np.array_equal(sample_indices(labels, 5, seed=2, images=images), plain)  # nothing to pass over
    first, second, third = (plain[labels[plain] == c] for c in range(3))
    images[second[0]] = images[first[0]]  # a copy in another class
    images[second[1]] = images[second[2]]  # a copy in the same class
    images[third[0]] = images[first[1]] ^ (np.arange(28 * 28).reshape(28, 28) == 400)  # one grey level off
    assert bin(int(perceptual_hash(_rgb(images[third[0]])), 16) ^ int(perceptual_hash(_rgb(images[first[1]])), 16)
               ).count("1") <= PHASH_MAX_DISTANCE
    chosen = sample_indices(labels, 5, seed=2, images=images)
    assert np.array_equal(sample_indices(labels, 5, seed=2, images=images), chosen)  # reproducible
    assert [int((labels[chosen] == c).sum()) for c in range(3)] == [5, 5, 5]  # full classes still
    assert set(first) <= set(chosen)  # the first class has nothing to pass over
    assert len(set(plain) - set(chosen)) == 3  # only the three duplicates are replaced...
    assert third[0] not in chosen and len({second[1], second[2]} & set(chosen)) == 1  # ...whichever came second
    decoded = [_rgb(images[i]) for i in chosen]
    assert hash_pairs([content_hash(i) for i in decoded], [perceptual_hash(i) for i in decoded]).empty
    images[labels == 2] = 7  # class 2 is one image twelve times: it cannot give five
    with pytest.raises(ValueError, match="Class 2 has only 1 images that duplicate no other; need 5"):
        sample_indices(labels, 5, seed=2, images=images)
    assert len(sample_indices(labels, 0, images=images)) == 36  # everything: exported as it is


def _rgb(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image, mode="L").convert("RGB")


def test_embedded_default_dataset_matches_its_readme() -> None:
    scan = scan_folder(REPO / "data" / "fashion-mnist-200")
    assert scan.labeled and not scan.skipped and len(scan.files) == 200
    counts = {name: sum(1 for _, label in scan.files if label == name) for name in CLASS_NAMES}
    assert set(counts.values()) == {20}


def test_embedded_dataset_is_what_the_script_rebuilds(tmp_path: Path) -> None:
    if not (DEFAULT_SOURCE / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Fashion-MNIST idx files not in {DEFAULT_SOURCE} (apt-get install dataset-fashion-mnist)")
    export_image_folder(tmp_path / "rebuilt", per_class=20, split="test", seed=0)
    shipped = sorted(p.relative_to(REPO / "data" / "fashion-mnist-200")
                     for p in (REPO / "data" / "fashion-mnist-200").rglob("*.png"))
    rebuilt = sorted(p.relative_to(tmp_path / "rebuilt") for p in (tmp_path / "rebuilt").rglob("*.png"))
    assert shipped == rebuilt
    from PIL import Image

    for rel in shipped[::25]:
        a = np.asarray(Image.open(REPO / "data" / "fashion-mnist-200" / rel))
        assert (a == np.asarray(Image.open(tmp_path / "rebuilt" / rel))).all()
