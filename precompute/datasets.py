"""Find the images of a dataset folder and decode them, whatever real folders hold.

A dataset is a folder with one sub-folder per class (the ImageFolder convention: the first-level
folder is the label, deeper folders are walked too), or a flat folder of images (unlabeled).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
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

# A very large image is decoded whole (PNG and most formats cannot decode at a reduced scale): at most one such
# decode, with its reduction to what the caller keeps, runs at a time across all threads (scanning, batch loading,
# uploads), so memory stays bounded by about one big image whatever the folder holds.
BIG_IMAGE_PIXELS = 16_000_000
_BIG_DECODES = threading.BoundedSemaphore(1)

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


def scan_folder(root: str | Path, exclude: Sequence[str | Path] = ()) -> ScanResult:
    """List candidate image files of a dataset folder, sorted, with their labels.

    The layout is decided by where the images are: if any first-level sub-folder holds an image file (at any
    depth), each such sub-folder is a class and files beside them are skipped; otherwise the folder is flat
    (unlabeled) and its images are taken whatever empty or image-less sub-folders it also has.

    What is never taken as an image, and reported in ``skipped`` with the true reason instead:

    - folders that hold an artifact index (``index.json`` of a precompute run: an ``--out`` inside the dataset),
      and the folders in ``exclude``;
    - a file reached twice (through a symbolic link, or a link to a folder already scanned): counted once;
    - dangling symbolic links, symbolic link loops, and entries that cannot be listed;
    - files with other extensions; hidden files and folders are ignored silently.

    One bad entry never aborts the scan.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Dataset folder {root} does not exist or is not a folder.")
    scanner = _Scanner(root, exclude)
    first_level = scanner.entries(root, "")
    class_dirs = []
    top_files = []
    for rel, real in first_level:
        if real.is_dir():
            class_dirs.append((rel, real))
        else:
            top_files.append(rel)
    per_class = {rel: list(scanner.walk(real, rel)) for rel, real in class_dirs}
    labeled = any(any(_is_image_name(f) for f in found) for found in per_class.values())
    files: list[tuple[str, str | None]] = []
    skipped = list(scanner.skipped)
    if labeled:
        for rel in top_files:
            skipped.append({"path": rel, "reason": "outside the class sub-folders"})
        for rel, _ in class_dirs:
            for path in per_class[rel]:
                _add_candidate(path, rel, files, skipped)
    else:
        for rel in top_files:
            _add_candidate(rel, None, files, skipped)
        skipped += [{"path": path, "reason": "inside a sub-folder of a flat folder (no sub-folder holds images)"}
                    for found in per_class.values() for path in found]
    return ScanResult(files=files, skipped=skipped, labeled=labeled)


def is_artifacts_folder(folder: Path) -> bool:
    """True when ``folder`` holds a precompute artifact index (an ``index.json`` with datasets)."""
    from precompute.artifacts import holds_index

    return holds_index(folder)


class _Scanner:
    """Walks a dataset folder once: real paths resolved, each file and folder visited at most once."""

    def __init__(self, root: Path, exclude: Sequence[str | Path]) -> None:
        self.root = root
        self.excluded = {Path(p).resolve() for p in exclude}
        self.seen_files: dict[Path, str] = {}
        self.seen_dirs: dict[Path, str] = {root.resolve(): "."}
        self.skipped: list[dict[str, str]] = []

    def entries(self, folder: Path, rel_folder: str) -> list[tuple[str, Path]]:
        """The usable entries of one folder: (relative path, resolved real path), sorted by name."""
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            self.skipped.append({"path": rel_folder or ".", "reason": f"cannot list the folder ({_os_reason(exc)})"})
            return []
        out = []
        for name in names:
            if name.startswith("."):
                continue
            rel = f"{rel_folder}/{name}" if rel_folder else name
            real = self._resolve(folder / name, rel)
            if real is None:
                continue
            if real.is_dir():
                if not self._take_dir(real, rel):
                    continue
            elif real in self.seen_files:
                self.skipped.append({"path": rel, "reason": f"the same file as {self.seen_files[real]}"})
                continue
            else:
                self.seen_files[real] = rel
            out.append((rel, real))
        return out

    def walk(self, folder: Path, rel_folder: str) -> Iterator[str]:
        """Relative paths of every file under ``folder`` (depth first, sorted), each real file once."""
        for rel, real in self.entries(folder, rel_folder):
            if real.is_dir():
                yield from self.walk(real, rel)
            else:
                yield rel

    def _resolve(self, path: Path, rel: str) -> Path | None:
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            self.skipped.append({"path": rel, "reason": "a dangling symbolic link (its target does not exist)"})
            return None
        except RuntimeError:  # Python's "Symlink loop"
            self.skipped.append({"path": rel, "reason": "a symbolic link loop"})
            return None
        except OSError as exc:  # ELOOP on some systems, permission errors on the way
            reason = "a symbolic link loop" if exc.errno == errno.ELOOP else f"cannot be resolved ({_os_reason(exc)})"
            self.skipped.append({"path": rel, "reason": reason})
            return None
        if not (real.is_dir() or real.is_file()):
            self.skipped.append({"path": rel, "reason": "not a regular file or folder"})
            return None
        return real

    def _take_dir(self, real: Path, rel: str) -> bool:
        if real in self.excluded or any(real.is_relative_to(e) for e in self.excluded):
            self.skipped.append({"path": rel, "reason": "the artifacts output folder (--out), not images"})
            return False
        if real in self.seen_dirs:
            self.skipped.append({"path": rel, "reason": f"a link to a folder already scanned ({self.seen_dirs[real]})"})
            return False
        if is_artifacts_folder(real):
            self.skipped.append({"path": rel, "reason": "an artifacts folder (it holds a precompute index.json)"})
            return False
        self.seen_dirs[real] = rel
        return True


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _is_image_name(rel: str) -> bool:
    return Path(rel).suffix.lower() in IMAGE_EXTENSIONS


def _add_candidate(rel: str, label: str | None, files: list, skipped: list) -> None:
    if _is_image_name(rel):
        files.append((rel, label))
    else:
        suffix = Path(rel).suffix
        skipped.append({"path": rel, "reason": f"not an image file extension ({suffix or 'none'})"})


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
        raise ImageDecodeError(f"{name}: not an image file this tool can read (PNG, JPEG, GIF, BMP, TIFF, WebP...)"
                               ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{name}: too many pixels ({exc})") from exc
    except PermissionError as exc:
        raise ImageDecodeError(f"{name}: cannot be read (permission denied)") from exc
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) or exc.errno in (errno.EACCES, errno.EISDIR, errno.EIO):
            raise ImageDecodeError(f"{name}: cannot be read ({_os_reason(exc)})") from exc
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc})") from exc
    except (SyntaxError, ValueError, EOFError) as exc:
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


def load_for_model(path: str | Path | bytes, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode an image and resize it to ``size`` x ``size``: float32 RGB in 0..255, shape (size, size, 3).

    The whole image is resized (no crop), as ``keras.utils.load_img(target_size=...)`` does. ``out``: a float32
    array of that shape to write the pixels into (a row of a batch) and return, instead of a new one.
    """
    with large_decode_slot(path):
        image = decode_image(path, draft_size=size * 2)
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if out is None:
        return np.asarray(image, dtype=np.float32)
    out[...] = np.asarray(image)  # 0..255 integers: exact in float32
    return out


def large_decode_slot(source: str | Path | bytes) -> threading.BoundedSemaphore | nullcontext:
    """A context to hold while decoding ``source`` and reducing it: exclusive for images above BIG_IMAGE_PIXELS."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:  # header only
            width, height = image.size
    except Exception:  # the decode itself reports the precise reason
        return nullcontext()
    return _BIG_DECODES if width * height > BIG_IMAGE_PIXELS else nullcontext()


# ------------------------------------------------------------------------------------------- manifest


def build_manifest(
    dataset_root: str | Path,
    thumbs_dir: Path | None = None,
    workers: int = 4,
    progress: bool = True,
    exclude: Sequence[str | Path] = (),
    on_listed: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, list[dict[str, str]], bool]:
    """Decode every candidate image once: keep the good ones, report the bad, write thumbnails.

    ``on_listed(n)`` is called with the number of candidate files once they are listed, before any is decoded.
    Returns ``(manifest, skipped, labeled)``. The manifest has one row per usable image with columns
    id (0..n-1, the row of every feature matrix), path (relative), label (None if unlabeled), width, height,
    and the decoded image's ``content_hash`` and ``phash`` (:mod:`precompute.duplicates`).
    Raises DatasetError when no usable image is found.
    """
    from tqdm.auto import tqdm

    root = Path(dataset_root)
    scan = scan_folder(root, exclude)
    if on_listed is not None:
        on_listed(len(scan.files))
    if not scan.files:
        raise DatasetError(
            f"No image files in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, any case). "
            "Point precompute at a folder of images, or one sub-folder of images per class."
        )
    if thumbs_dir is not None:
        thumbs_dir.mkdir(parents=True, exist_ok=True)

    def inspect(item: tuple[str, str | None]) -> tuple[Image.Image, tuple[int, int], str, str] | str:
        from precompute.duplicates import content_hash, perceptual_hash

        rel, _ = item
        try:
            with large_decode_slot(root / rel):
                image = decode_image(root / rel)
                # Only the thumbnail and the hashes leave the worker: decoded images never pile up in the queue.
                return _thumbnail(image), image.size, content_hash(image), perceptual_hash(image)
        except ImageDecodeError as exc:
            return str(exc).replace(str(root / rel), rel)

    rows, skipped = [], list(scan.skipped)
    results = _ordered_map(inspect, scan.files, workers)
    bar = tqdm(results, total=len(scan.files), desc="scan images", unit="img", disable=not progress)
    for (rel, label), result in zip(scan.files, bar, strict=True):
        if isinstance(result, str):
            skipped.append({"path": rel, "reason": result})
            continue
        thumb, (width, height), pixels_hash, phash = result
        image_id = len(rows)
        if thumbs_dir is not None:
            _save_thumbnail(thumb, thumbs_dir / f"{image_id}.jpg")
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


def write_thumbnails(dataset_root: str | Path, manifest: pd.DataFrame, thumbs_dir: Path, ids: Sequence[int],
                     workers: int = 2) -> None:
    """(Re)write the thumbnails of manifest rows ``ids`` from the dataset's files (a repair after damage).

    A file that can no longer be decoded gets a grey placeholder, so the app still shows its row.
    """
    root = Path(dataset_root)
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    paths = manifest.set_index("id")["path"]

    def load(image_id: int) -> tuple[int, Image.Image]:
        try:
            with large_decode_slot(root / paths[image_id]):
                return image_id, _thumbnail(decode_image(root / paths[image_id]))
        except ImageDecodeError:
            return image_id, Image.new("RGB", (THUMB_SIZE, THUMB_SIZE), (200, 200, 200))

    for image_id, thumb in _ordered_map(load, list(ids), workers):
        _save_thumbnail(thumb, thumbs_dir / f"{image_id}.jpg")


def _thumbnail(image: Image.Image) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    return thumb


def _save_thumbnail(thumb: Image.Image, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    thumb.save(tmp, format="JPEG", quality=85)
    os.replace(tmp, path)


def folder_fingerprint(dataset_root: str | Path, exclude: Sequence[str | Path] = (), content: bool = False) -> str:
    """A hash of what a dataset folder holds: relative paths, labels, sizes, modification and change times, inodes.

    Cheap (no decoding): a rerun compares it with the stored one to notice added, removed or replaced files. The
    inode and change time catch a same-size replacement whose modification time was kept (``cp -p``, ``touch
    -r``); ``content=True`` also hashes every file's bytes, for file systems where those are not reliable.
    A file that vanishes or cannot be read between the scan and here changes the fingerprint, never aborts it.
    """
    root = Path(dataset_root)
    scan = scan_folder(root, exclude)
    digest = hashlib.sha256()
    for rel, label in scan.files:
        try:
            stat = (root / rel).stat()
            line = f"{rel}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_ctime_ns}\0{stat.st_ino}"
            if content:
                file_hash = hashlib.sha256()
                with open(root / rel, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        file_hash.update(block)
                line += "\0" + file_hash.hexdigest()
        except OSError as exc:
            line = f"{rel}\0unreadable: {_os_reason(exc)}"
        digest.update(f"{line}\n".encode())
    return digest.hexdigest()[:32]


def dataset_name(dataset_root: str | Path) -> str:
    """A safe artifact name for a dataset folder: its folder name with odd characters replaced."""
    name = Path(dataset_root).resolve().name
    cleaned = "".join(c if c.isalnum() or c in "._+-" else "-" for c in name).strip("-.") or "dataset"
    return cleaned[:128]


def load_batches(
    root: Path,
    paths: list[str],
    size: int,
    batch_size: int,
    workers: int = 2,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Iterator[np.ndarray]:
    """Yield float32 batches (b, size, size, 3) in order, decoding the next batches while the caller works.

    ``transform`` (a model's ``preprocess``) is applied to each batch in the same threads, so the caller's forward
    passes do not wait for it; the batch it gets is its own to change in place.
    """

    def load_chunk(chunk: list[str]) -> np.ndarray:
        batch = np.empty((len(chunk), size, size, 3), dtype=np.float32)
        for row, rel in zip(batch, chunk, strict=True):  # decoded straight into the batch: no stack, no copy
            load_for_model(root / rel, size, out=row)
        return batch if transform is None else transform(batch)

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
