"""The Fashion-MNIST idx reader, the sampler behind data/fashion-mnist-200, and the embedded dataset itself."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from precompute.datasets import scan_folder
from precompute.fashion_mnist import (
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
