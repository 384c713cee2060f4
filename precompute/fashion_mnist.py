"""Fashion-MNIST from its idx files: the embedded default dataset and the full 70,000 images for scale runs.

Debian's ``dataset-fashion-mnist`` package installs the four idx files in ``/usr/share/datasets/fashion-mnist``;
any folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` works (``--source``).

    python -m precompute.fashion_mnist data/fashion-mnist-200 --per-class 20          # the embedded sample
    python -m precompute.fashion_mnist /tmp/fashion-mnist-70k --per-class 0 --split all  # everything
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
# Class folder names: the official label names, made safe for paths ("T-shirt/top" has a slash).
CLASS_NAMES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")
SPLITS = {"train": "train", "test": "t10k"}
_IDX_MAGIC = {2049: 1, 2051: 3}  # labels: 1-D, images: 3-D


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a uint8 array: (n,) labels or (n, rows, cols) images."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    magic = int.from_bytes(data[:4], "big")
    if magic not in _IDX_MAGIC:
        raise ValueError(f"{path} is not an idx label/image file (magic number {magic}).")
    ndim = _IDX_MAGIC[magic]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim  # 8 for labels, 16 for images
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: {array.size} bytes for shape {shape}.")
    return array.reshape(shape)


def _find(source: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (source / name).is_file():
            return source / name
    raise FileNotFoundError(
        f"{source / stem}[.gz] not found. Install Fashion-MNIST (Debian: `apt-get install dataset-fashion-mnist`) "
        "or pass --source with the folder of the idx files."
    )


def load_fashion_mnist(split: str = "all", source: str | Path = DEFAULT_SOURCE) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) uint8 of ``train`` (60k), ``test`` (10k) or ``all`` (70k)."""
    if split not in (*SPLITS, "all"):
        raise ValueError(f"Unknown split {split!r}; valid: train, test, all.")
    source = Path(source)
    parts = list(SPLITS) if split == "all" else [split]
    images = [read_idx(_find(source, f"{SPLITS[p]}-images-idx3-ubyte")) for p in parts]
    labels = [read_idx(_find(source, f"{SPLITS[p]}-labels-idx1-ubyte")) for p in parts]
    return np.concatenate(images), np.concatenate(labels)


def sample_indices(labels: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """``per_class`` random indices of each class (all of them if 0), sorted; seeded so a rebuild is identical."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(members if per_class == 0 else rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def export_image_folder(out: str | Path, per_class: int = 20, split: str = "test", seed: int = 0,
                        source: str | Path = DEFAULT_SOURCE) -> int:
    """Write a class-per-folder PNG dataset (``<Class>/<split>-<index>.png``); returns the image count.

    Written into a temporary sibling folder and renamed into place, so an interrupted export leaves nothing.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from precompute.artifacts import atomic_dir

    images, labels = load_fashion_mnist(split, source)
    chosen = sample_indices(labels, per_class, seed)
    with atomic_dir(Path(out)) as tmp:
        for name in CLASS_NAMES:
            (tmp / name).mkdir()
        for index in tqdm(chosen, desc="export", unit="img"):
            Image.fromarray(images[index], mode="L").save(
                tmp / CLASS_NAMES[labels[index]] / f"{split}-{index:05d}.png", optimize=True)
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m precompute.fashion_mnist",
                                     description="Export Fashion-MNIST idx files as a class-per-folder PNG dataset.")
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--per-class", type=int, default=20, help="images per class; 0 = all (default 20)")
    parser.add_argument("--split", choices=["train", "test", "all"], default="test",
                        help="which images to sample from (default: test, the 10k held-out set)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help=f"idx folder (default {DEFAULT_SOURCE})")
    args = parser.parse_args(argv)
    try:
        n = export_image_folder(args.out, args.per_class, args.split, args.seed, args.source)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"fashion_mnist: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
