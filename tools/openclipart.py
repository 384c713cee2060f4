"""Open Clip Art Library drawings: the sampler behind the embedded default dataset ``data/openclipart-200``.

Debian's ``openclipart-png`` package installs the library's drawings (public domain) as PNG files in one
folder per topic under ``/usr/share/openclipart/png``; any folder with that layout works (``--source``).

    python -m tools.openclipart data/openclipart-200          # the embedded sample: 10 classes x 20

Each class is one topic folder that holds one kind of object (birds, fruit, hats, ...). Every drawing is
cropped to its drawn content (the bounding box of its non-transparent pixels: the library renders many of
them small in the middle of a wide transparent canvas) and downscaled to at most 256 px, transparency kept.

The library holds the same drawing more than once (copied into two topics, or twice in one topic under two
names) and recoloured variants of one drawing. A sample keeps one of each: a drawing whose pixels, as the
pipeline decodes them, equal those of a drawing already kept, or whose perceptual hash is within
``precompute.duplicates.PHASH_MAX_DISTANCE`` bits of one, in any class, is passed over for the next candidate.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from tools._export import run_export

if TYPE_CHECKING:
    from precompute.duplicates import KeptHashes

DEFAULT_SOURCE = Path("/usr/share/openclipart/png")
# Class folder name -> topic folder in the library. Chosen as the topics of >= 20 drawings that each show one
# kind of object; topics of symbols, diagrams, icons or mixed scenes (music, boating, vehicles) were left out.
CLASSES = {
    "birds": "animals/birds",
    "bugs": "animals/bugs",
    "fish": "animals/fish",
    "mammals": "animals/mammals",
    "fruit": "food/fruit",
    "beverages": "food/beverages",
    "flowers": "plants/flowers",
    "hats": "people/clothing/hats",
    "computer_hardware": "computer/hardware",
    "books": "education/books",
}
MAX_SIDE = 256
MIN_CONTENT_SIDE = 16  # drawings whose content is smaller than this are render failures (a dot), not pictures


def candidates(topic_dir: Path) -> list[Path]:
    """The drawings of a topic folder, sorted, without ``*_bw*`` files.

    Those are black-and-white copies of a colour drawing beside them: a near-duplicate pair would be a free hit
    for any similarity measure.
    """
    return sorted(p for p in topic_dir.glob("*.png") if "_bw" not in p.name)


def crop_to_drawing(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image | None:
    """The drawn part of an image (RGBA, cropped to its non-transparent pixels), at most ``max_side`` px.

    Returns None when there is nothing or almost nothing drawn (content under ``MIN_CONTENT_SIDE`` px).
    """
    rgba = image.convert("RGBA")
    box = rgba.getchannel("A").getbbox()
    if box is None or min(box[2] - box[0], box[3] - box[1]) < MIN_CONTENT_SIDE:
        return None
    drawing = rgba.crop(box)
    drawing.thumbnail((max_side, max_side))
    return drawing


def export_image_folder(out: str | Path, per_class: int = 20, seed: int = 0,
                        source: str | Path = DEFAULT_SOURCE, classes: dict[str, str] | None = None) -> int:
    """Write a class-per-folder PNG dataset (``<class>/<original name>.png``); returns the image count.

    Per class, the topic's drawings are shuffled with ``numpy.random.default_rng(seed)`` (one generator, classes
    in the order of ``classes``) and taken in that order, passing over files that do not decode (the pipeline's
    own decoder and pixel limit), drawings with almost nothing drawn, and duplicates of a drawing kept before
    (:func:`distinct_drawings`, across classes too), until ``per_class`` are kept.
    Written into a temporary sibling folder and renamed into place, so an interrupted export leaves nothing.
    """
    from tqdm.auto import tqdm

    from precompute.artifacts import atomic_dir

    source, classes = Path(source), classes or CLASSES
    if not source.is_dir():
        raise FileNotFoundError(f"{source} not found. Install the Open Clip Art Library "
                                "(Debian: `apt-get install openclipart-png`) or pass --source with its png folder.")
    from precompute.duplicates import KeptHashes

    rng = np.random.default_rng(seed)
    kept = KeptHashes()  # hashes of every drawing kept so far, in all classes
    with atomic_dir(Path(out)) as tmp, tqdm(total=per_class * len(classes), desc="export", unit="img") as bar:
        for name, topic in classes.items():
            files = candidates(source / topic)
            drawings = usable_drawings(files, rng.permutation(len(files)))
            picked = list(islice(distinct_drawings(drawings, kept), per_class))
            if len(picked) < per_class:
                raise ValueError(f"{source / topic} has only {len(picked)} usable drawings that duplicate no other; "
                                 f"need {per_class} (lower --per-class or choose another topic).")
            (tmp / name).mkdir()
            for path, drawing in picked:
                drawing.save(tmp / name / path.name, optimize=True)
                bar.update()
    return per_class * len(classes)


def usable_drawings(files: list[Path], order: Iterable[int]) -> Iterator[tuple[Path, Image.Image]]:
    """``(file, cropped drawing)`` for the files in ``order`` that decode and have something drawn."""
    from precompute.datasets import ImageDecodeError, open_image

    for index in order:
        try:
            drawing = crop_to_drawing(open_image(files[index]))
        except ImageDecodeError:
            continue
        if drawing is not None:
            yield files[index], drawing


def distinct_drawings(drawings: Iterable[tuple[Path, Image.Image]], kept: KeptHashes
                      ) -> Iterator[tuple[Path, Image.Image]]:
    """The drawings that duplicate none kept before them; each one yielded adds its hashes to ``kept``.

    A duplicate has the same pixels as a kept drawing or a perceptual hash within
    ``precompute.duplicates.PHASH_MAX_DISTANCE`` bits of its hash (the rule of
    :func:`precompute.duplicates.hash_pairs`), both taken on the image the pipeline will decode from the written
    file. ``kept`` (:class:`precompute.duplicates.KeptHashes`) holds the hashes of the drawings kept; share one
    between classes to drop duplicates across them.
    """
    for path, drawing in drawings:
        hashes = _decoded_hashes(drawing)
        if not kept.duplicates(*hashes):
            kept.add(*hashes)
            yield path, drawing


def _decoded_hashes(drawing: Image.Image) -> tuple[str, str]:
    """Content and perceptual hash of a drawing as the pipeline decodes it from a PNG file (on white, RGB)."""
    from precompute.datasets import decode_image
    from precompute.duplicates import content_hash, perceptual_hash

    buffer = io.BytesIO()
    drawing.save(buffer, "PNG", compress_level=1)  # lossless: the pixels of the file export writes
    decoded = decode_image(buffer.getvalue())
    return content_hash(decoded), perceptual_hash(decoded)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openclipart",
                                     description="Sample Open Clip Art Library topics into a class-per-folder dataset.")
    parser.add_argument("out", type=Path, help="folder to create")
    parser.add_argument("--per-class", type=int, default=20, help="drawings per class (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help=f"png folder (default {DEFAULT_SOURCE})")
    args = parser.parse_args(argv)
    return run_export("openclipart", export_image_folder, args.out, args.per_class, args.seed, args.source)


if __name__ == "__main__":
    sys.exit(main())
