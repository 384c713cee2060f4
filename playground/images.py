"""Full-size views of dataset images: the source file, decoded and downscaled to a bounded JPEG in memory.

The page never receives an original file: ``/images/<dataset>/<id>.jpg`` answers with a JPEG of at most
:data:`MAX_SIDE` px on its longer side, made from the file the manifest names inside the dataset's source
folder (see ``Store.source_file``). Files over :data:`MAX_FILE_BYTES` or images over :data:`MAX_PIXELS`
are refused without being decoded. Recent answers are kept in memory, keyed by path, size and mtime.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

from PIL import Image

from precompute.datasets import ImageDecodeError, decode_image

MAX_SIDE = 1600
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 60_000_000
JPEG_QUALITY = 88
_CACHE_SIZE = 32


class ImageUnavailable(ValueError):
    """A source file that is too big or cannot be decoded; the message says which."""


def full_size_jpeg(path: Path) -> bytes:
    """JPEG bytes of the image at ``path``, upright, in RGB (transparency on white), at most MAX_SIDE px.

    Raises ImageUnavailable for a file over MAX_FILE_BYTES, over MAX_PIXELS, or not decodable.
    """
    stat = os.stat(path)
    if stat.st_size > MAX_FILE_BYTES:
        raise ImageUnavailable(f"{path.name} is {stat.st_size / 2**20:.0f} MB, above {MAX_FILE_BYTES / 2**20:.0f} MB.")
    return _encoded(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=_CACHE_SIZE)
def _encoded(path: str, size: int, mtime_ns: int) -> bytes:
    try:
        image = decode_image(Path(path), max_pixels=MAX_PIXELS, draft_size=MAX_SIDE)
    except ImageDecodeError as exc:
        raise ImageUnavailable(str(exc)) from None
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
