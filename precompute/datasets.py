"""Find the images of a dataset folder and decode them, whatever real folders hold.

A dataset is a folder with one sub-folder per class (the ImageFolder convention: the first-level
folder is the label, deeper folders are walked too), or a flat folder of images (unlabeled).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
# Above this many pixels an image is refused rather than risk exhausting memory (a decompression bomb).
MAX_PIXELS = 180_000_000
THUMB_SIZE = 160
# content_hash / phash: the decoded image's hashes (precompute.duplicates), for duplicate pairs.
MANIFEST_COLUMNS = ["id", "path", "label", "width", "height", "content_hash", "phash"]
T = TypeVar("T")
R = TypeVar("R")

# Never decode a truncated file silently: PIL would fill the rest with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class DatasetError(ValueError):
    """A dataset folder that cannot be used at all (missing, empty, no decodable image)."""


class ImageDecodeError(ValueError):
    """One file that is not a usable image; the message says why."""


@dataclass(frozen=True)
class ScanResult:
    """What a dataset folder holds: candidate images and files passed over, with reasons."""

    files: list[tuple[str, str | None]]  # (path relative to the root, label or None)
    skipped: list[dict[str, str]]  # {"path": ..., "reason": ...}
    labeled: bool


def scan_folder(root: str | Path) -> ScanResult:
    """List candidate image files of a dataset folder, sorted, with their labels.

    Hidden files and folders are ignored; files with other extensions are reported as skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Dataset folder {root} does not exist or is not a folder.")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in entries if p.is_dir()]
    labeled = bool(class_dirs)
    files: list[tuple[str, str | None]] = []
    skipped: list[dict[str, str]] = []
    if labeled:
        for path in entries:
            if path.is_file():
                skipped.append({"path": path.name, "reason": "outside the class sub-folders"})
        for class_dir in class_dirs:
            for path in _walk_files(class_dir):
                _add_candidate(root, path, class_dir.name, files, skipped)
    else:
        for path in entries:
            _add_candidate(root, path, None, files, skipped)
    return ScanResult(files=files, skipped=skipped, labeled=labeled)


def _walk_files(folder: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _add_candidate(root: Path, path: Path, label: str | None, files: list, skipped: list) -> None:
    rel = path.relative_to(root).as_posix()
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        files.append((rel, label))
    else:
        skipped.append({"path": rel, "reason": f"not an image file extension ({path.suffix or 'none'})"})


# ------------------------------------------------------------------------------------------- decoding


def decode_image(
    source: str | Path | bytes, max_pixels: int = MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Decode a file (path or bytes) into an 8-bit RGB image, upright, transparency on white.

    Handles EXIF orientation, grayscale, palette/RGBA transparency, CMYK, 16-bit and float images.
    ``draft_size`` lets JPEG decode at a reduced scale when only a small image is needed.
    Raises ImageDecodeError with the reason for anything that is not a complete, decodable image.
    """
    image = open_image(source, max_pixels, draft_size)
    try:
        return _to_rgb(image)
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"{_source_name(source)}: unsupported image mode {image.mode} ({exc})") from exc


def open_image(
    source: str | Path | bytes, max_pixels: int = MAX_PIXELS, draft_size: int | None = None
) -> Image.Image:
    """Load a file (path or bytes) fully, upright, in its own mode; the checks of :func:`decode_image`."""
    name = _source_name(source)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"{name}: {width}x{height} pixels is above the limit of {max_pixels:,}; downscale it first."
                )
            if draft_size and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"{name}: not an image PIL can read") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{name}: too many pixels ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc})") from exc
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: unsupported image mode {image.mode} ({exc})") from exc


def _source_name(source: str | Path | bytes) -> str:
    return "upload" if isinstance(source, bytes) else str(source)


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit or float: stretch the actual value range into 0..255 instead of clipping.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scaled = (array - low) * (255.0 / (high - low)) if high > low else np.zeros_like(array)
        image = Image.fromarray(np.nan_to_num(scaled).astype(np.uint8), mode="L")
        mode = "L"
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa") or (mode == "L" and "transparency" in image.info):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image


def load_for_model(path: str | Path | bytes, size: int) -> np.ndarray:
    """Decode an image and resize it to ``size`` x ``size``: float32 RGB in 0..255, shape (size, size, 3).

    The whole image is resized (no crop), as ``keras.utils.load_img(target_size=...)`` does.
    """
    image = decode_image(path, draft_size=size * 2)
    image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(image, dtype=np.float32)


# ------------------------------------------------------------------------------------------- manifest


def build_manifest(
    dataset_root: str | Path,
    thumbs_dir: Path | None = None,
    workers: int = 4,
    progress: bool = True,
) -> tuple[pd.DataFrame, list[dict[str, str]], bool]:
    """Decode every candidate image once: keep the good ones, report the bad, write thumbnails.

    Returns ``(manifest, skipped, labeled)``. The manifest has one row per usable image with columns
    id (0..n-1, the row of every feature matrix), path (relative), label (None if unlabeled), width, height,
    and the decoded image's ``content_hash`` and ``phash`` (:mod:`precompute.duplicates`).
    Raises DatasetError when no usable image is found.
    """
    from tqdm.auto import tqdm

    root = Path(dataset_root)
    scan = scan_folder(root)
    if not scan.files:
        raise DatasetError(
            f"No image files in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, any case). "
            "Point precompute at a folder of images, or one sub-folder of images per class."
        )
    if thumbs_dir is not None:
        thumbs_dir.mkdir(parents=True, exist_ok=True)

    def inspect(item: tuple[str, str | None]) -> tuple[Image.Image, str, str] | str:
        from precompute.duplicates import content_hash, perceptual_hash

        rel, _ = item
        try:
            image = decode_image(root / rel)
        except ImageDecodeError as exc:
            return str(exc).replace(str(root / rel), rel)
        return image, content_hash(image), perceptual_hash(image)

    rows, skipped = [], list(scan.skipped)
    results = _ordered_map(inspect, scan.files, workers)
    bar = tqdm(results, total=len(scan.files), desc="scan images", unit="img", disable=not progress)
    for (rel, label), result in zip(scan.files, bar, strict=True):
        if isinstance(result, str):
            skipped.append({"path": rel, "reason": result})
            continue
        image, pixels_hash, phash = result
        image_id = len(rows)
        if thumbs_dir is not None:
            _write_thumbnail(image, thumbs_dir / f"{image_id}.jpg")
        width, height = image.size
        rows.append({"id": image_id, "path": rel, "label": label, "width": width, "height": height,
                     "content_hash": pixels_hash, "phash": phash})
    if not rows:
        raise DatasetError(
            f"None of the {len(scan.files)} image files in {root} could be decoded; see the reasons: "
            + "; ".join(f"{s['path']}: {s['reason']}" for s in skipped[:5])
        )
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    manifest["label"] = manifest["label"].astype("string") if scan.labeled else None
    return manifest, skipped, scan.labeled


def _write_thumbnail(image: Image.Image, path: Path) -> None:
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    tmp = path.with_name(f".{path.name}.tmp")
    thumb.save(tmp, format="JPEG", quality=85)
    os.replace(tmp, path)


def folder_fingerprint(dataset_root: str | Path) -> str:
    """A hash of what a dataset folder holds (relative paths, labels, sizes, modification times).

    Cheap (no decoding): a rerun compares it with the stored one to notice added, removed or replaced files.
    """
    root = Path(dataset_root)
    scan = scan_folder(root)
    digest = hashlib.sha256()
    for rel, label in scan.files:
        stat = (root / rel).stat()
        digest.update(f"{rel}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def dataset_name(dataset_root: str | Path) -> str:
    """A safe artifact name for a dataset folder: its folder name with odd characters replaced."""
    name = Path(dataset_root).resolve().name
    cleaned = "".join(c if c.isalnum() or c in "._+-" else "-" for c in name).strip("-.") or "dataset"
    return cleaned[:128]


def load_batches(
    root: Path, paths: list[str], size: int, batch_size: int, workers: int = 2
) -> Iterator[np.ndarray]:
    """Yield float32 batches (b, size, size, 3) in order, decoding the next batches while the caller works."""

    def load_chunk(chunk: list[str]) -> np.ndarray:
        return np.stack([load_for_model(root / rel, size) for rel in chunk])

    chunks = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]
    yield from _ordered_map(load_chunk, chunks, workers)


def _ordered_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, in order, with at most ``workers + 1`` results waiting.

    Unlike ``ThreadPoolExecutor.map``, which submits everything at once, decoded images cannot pile up in
    memory when the consumer is slower than the decoders.
    """
    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
