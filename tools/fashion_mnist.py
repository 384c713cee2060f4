"""Fashion-MNIST from its idx files: the embedded default dataset and the full 70,000 images for scale runs.

Debian's ``dataset-fashion-mnist`` package installs the four idx files in ``/usr/share/datasets/fashion-mnist``;
any folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` works (``--source``).

    python -m tools.fashion_mnist data/fashion-mnist-200 --per-class 20          # the embedded sample
    python -m tools.fashion_mnist /tmp/fashion-mnist-70k --per-class 0 --split all  # everything

A sample (``--per-class`` above 0) holds no two copies of one picture: an image whose pixels equal those of an
image already chosen, or whose perceptual hash is within ``precompute.duplicates.PHASH_MAX_DISTANCE`` bits of
one, in any class, is passed over for the next candidate. ``--per-class 0`` exports every image as it is.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tools._export import run_export

if TYPE_CHECKING:
    from precompute.duplicates import KeptHashes

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


def sample_indices(labels: np.ndarray, per_class: int, seed: int = 0, images: np.ndarray | None = None
                   ) -> np.ndarray:
    """``per_class`` random indices of each class (all of them if 0), sorted; seeded so a rebuild is identical.

    Per class, in label order, ``numpy.random.default_rng(seed)`` draws ``per_class`` members without
    replacement. With ``images`` (n, rows, cols), those are taken in the order drawn, passing over any image that
    duplicates one chosen before it (:func:`distinct_indices`, across classes too), and the class's further
    candidates follow in an order of their own, drawn by ``numpy.random.default_rng([seed, label])``: the first
    generator, and so every later class's first draw, is the same whether or not a duplicate was replaced.
    """
    from precompute.duplicates import KeptHashes

    rng = np.random.default_rng(seed)
    kept = KeptHashes()  # hashes of every image chosen so far, in all classes
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if per_class == 0:
            chosen.append(members)
            continue
        first = rng.choice(members, size=per_class, replace=False)
        if images is None:
            chosen.append(first)
            continue
        spares = np.random.default_rng([seed, int(label)]).permutation(np.setdiff1d(members, first))
        picked = list(islice(distinct_indices(np.concatenate([first, spares]), images, kept), per_class))
        if len(picked) < per_class:
            raise ValueError(f"Class {label} has only {len(picked)} images that duplicate no other; need {per_class} "
                             "(lower --per-class).")
        chosen.append(np.array(picked, dtype=np.int64))
    return np.sort(np.concatenate(chosen))


def distinct_indices(order: Iterable[int], images: np.ndarray, kept: KeptHashes) -> Iterator[int]:
    """The indices in ``order`` whose image duplicates none kept before it; each one yielded adds to ``kept``.

    A duplicate has the same pixels as a kept image or a perceptual hash within
    ``precompute.duplicates.PHASH_MAX_DISTANCE`` bits of its hash (the rule of
    :func:`precompute.duplicates.hash_pairs`), both taken on the image the pipeline will decode from the written
    PNG. ``kept`` (:class:`precompute.duplicates.KeptHashes`) holds the hashes of the images kept; share one
    between classes to drop duplicates across them.
    """
    from PIL import Image

    from precompute.datasets import decode_image
    from precompute.duplicates import content_hash, perceptual_hash

    for index in order:
        buffer = io.BytesIO()
        Image.fromarray(images[index], mode="L").save(buffer, "PNG", compress_level=1)
        decoded = decode_image(buffer.getvalue())  # grey to RGB, as the pipeline reads the file
        hashes = content_hash(decoded), perceptual_hash(decoded)
        if not kept.duplicates(*hashes):
            kept.add(*hashes)
            yield int(index)


def export_image_folder(out: str | Path, per_class: int = 20, split: str = "test", seed: int = 0,
                        source: str | Path = DEFAULT_SOURCE) -> int:
    """Write a class-per-folder PNG dataset (``<Class>/<split>-<index>.png``); returns the image count.

    The sample is :func:`sample_indices`'s, duplicates passed over.

    Written into a temporary sibling folder and renamed into place, so an interrupted export leaves nothing.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    from precompute.artifacts import atomic_dir

    images, labels = load_fashion_mnist(split, source)
    chosen = sample_indices(labels, per_class, seed, images)
    with atomic_dir(Path(out)) as tmp:
        for name in CLASS_NAMES:
            (tmp / name).mkdir()
        for index in tqdm(chosen, desc="export", unit="img"):
            Image.fromarray(images[index], mode="L").save(
                tmp / CLASS_NAMES[labels[index]] / f"{split}-{index:05d}.png", optimize=True)
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fashion_mnist",
                                     description="Export Fashion-MNIST idx files as a class-per-folder PNG dataset.")
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--per-class", type=int, default=20, help="images per class; 0 = all (default 20)")
    parser.add_argument("--split", choices=["train", "test", "all"], default="test",
                        help="which images to sample from (default: test, the 10k held-out set)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help=f"idx folder (default {DEFAULT_SOURCE})")
    args = parser.parse_args(argv)
    return run_export("fashion_mnist", export_image_folder, args.out, args.per_class, args.split, args.seed,
                      args.source)


if __name__ == "__main__":
    sys.exit(main())
