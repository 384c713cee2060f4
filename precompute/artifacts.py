"""The on-disk layout of precomputed artifacts: the only module that knows file names.

Layout under an artifacts root (``--out``, default ``./artifacts``)::

    index.json                                  the one index: what was computed, how, with which versions
                                                (its records: precompute.schema; read_index / write_index)
    <dataset>/manifest.parquet                  one row per image: id, path, label, width, height, hashes
    <dataset>/report.json                       run report: skipped files with reasons, models used and why
    <dataset>/baseline.parquet                  scores of a random ranking (labeled datasets only)
    <dataset>/duplicates.parquet                exact and perceptual-hash duplicate pairs (a, b, kind, ...)
    <dataset>/label_issues.parquet              likely label mistakes (id, label, suggested, confidence, quality)
    <dataset>/thumbs/<id>.jpg                   thumbnails the app serves by id
    <dataset>/<model>/<layer>/features.npy      float32 (n_images, dim), row i = manifest row i
    <dataset>/<model>/<layer>/umap.npy          float32 (n_images, 2)
    <dataset>/<model>/<layer>/neighbors-<metric>.npz   indices int32 (n, top_n), distances float32 (n, top_n),
                                                       tied_beyond(_same) int32 (n,): ties past the cut
    <dataset>/<model>/<layer>/scores-<metric>.parquet  per-query retrieval scores (labeled datasets only)
    <dataset>/<model>/<layer>/index-<metric>.faiss     approximate index, only above the exact-search threshold
    <dataset>/<model>/<layer>/duplicates.parquet       pairs far closer than the layer's typical nearest neighbour

Every write goes to a temporary sibling and is renamed into place, so a crash or Ctrl-C never
leaves a half-written file under its final name; a rerun sees only finished files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute.schema import ArtifactIndex, MetricEntry, SchemaError

# The version of index.json's schema (its records: precompute.schema). Bump it when a change would make an older
# reader misread a file (a renamed or retyped field); read_index refuses other versions.
SCHEMA_VERSION = 1
INDEX_FILE = "index.json"

# Names become path components and URL parts: keep them to a safe alphabet.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class ArtifactError(RuntimeError):
    """An artifact is missing, from another schema version, or inconsistent."""


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is safe as a single path component, else raise ValueError."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(
            f"Invalid {what} {name!r}: use letters, digits and . _ + - (no slashes, at most 128 characters)."
        )
    return name


# ---------------------------------------------------------------------------------------------- paths


def index_path(root: Path) -> Path:
    return Path(root) / INDEX_FILE


def dataset_dir(root: Path, dataset: str) -> Path:
    return Path(root) / check_name(dataset, "dataset name")


def manifest_path(root: Path, dataset: str) -> Path:
    return dataset_dir(root, dataset) / "manifest.parquet"


def report_path(root: Path, dataset: str) -> Path:
    return dataset_dir(root, dataset) / "report.json"


def baseline_path(root: Path, dataset: str) -> Path:
    return dataset_dir(root, dataset) / "baseline.parquet"


def duplicates_path(root: Path, dataset: str) -> Path:
    return dataset_dir(root, dataset) / "duplicates.parquet"


def label_issues_path(root: Path, dataset: str) -> Path:
    return dataset_dir(root, dataset) / "label_issues.parquet"


def thumbs_dir(root: Path, dataset: str) -> Path:
    return dataset_dir(root, dataset) / "thumbs"


def thumb_path(root: Path, dataset: str, image_id: int) -> Path:
    return thumbs_dir(root, dataset) / f"{int(image_id)}.jpg"


def layer_dir(root: Path, dataset: str, model: str, layer: str) -> Path:
    return dataset_dir(root, dataset) / check_name(model, "model name") / check_name(layer, "layer name")


def features_path(root: Path, dataset: str, model: str, layer: str) -> Path:
    return layer_dir(root, dataset, model, layer) / "features.npy"


def umap_path(root: Path, dataset: str, model: str, layer: str) -> Path:
    return layer_dir(root, dataset, model, layer) / "umap.npy"


def neighbors_path(root: Path, dataset: str, model: str, layer: str, metric: str) -> Path:
    return layer_dir(root, dataset, model, layer) / f"neighbors-{check_name(metric, 'metric')}.npz"


def scores_path(root: Path, dataset: str, model: str, layer: str, metric: str) -> Path:
    return layer_dir(root, dataset, model, layer) / f"scores-{check_name(metric, 'metric')}.parquet"


def faiss_index_path(root: Path, dataset: str, model: str, layer: str, metric: str) -> Path:
    return layer_dir(root, dataset, model, layer) / f"index-{check_name(metric, 'metric')}.faiss"


def layer_duplicates_path(root: Path, dataset: str, model: str, layer: str) -> Path:
    return layer_dir(root, dataset, model, layer) / "duplicates.parquet"


def tfjs_dir(root: Path, dataset: str, model: str) -> Path:
    """A model's TF.js export (``precompute.tfjs_export``): ``export.json`` and one folder per variant."""
    return dataset_dir(root, dataset) / check_name(model, "model name") / "tfjs"


def tfjs_export_path(root: Path, dataset: str, model: str) -> Path:
    return tfjs_dir(root, dataset, model) / "export.json"


def tfjs_variant_dir(root: Path, dataset: str, model: str, variant: str) -> Path:
    """``model.json`` and ``group1-shard<i>of<n>.bin`` of a variant (``float32``/``float16``/``uint16``/``uint8``)."""
    return tfjs_dir(root, dataset, model) / check_name(variant, "TF.js variant")


def relative(root: Path, path: Path) -> str:
    """Path as stored in the index: relative to the root, with forward slashes."""
    return Path(path).relative_to(root).as_posix()


# ---------------------------------------------------------------------------------------- atomic writes


def current_umask() -> int:
    """This process' umask, read without changing it (Linux: ``/proc/self/status``; elsewhere set and restored)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the only portable reader; another thread creating a file now would see 022
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give ``path`` (and, for a folder, everything in it) the mode ``open()`` and ``mkdir()`` would have given it.

    ``tempfile.mkstemp`` and ``mkdtemp`` create 0600 files and 0700 folders whatever the umask, so artifacts
    written through them would be readable by their owner only: a web service running as another account (a
    common split from the build job) could not serve them. Files get ``0o666 & ~umask``, folders ``0o777 & ~umask``.
    """
    mask = current_umask()
    path = Path(path)
    if not path.is_dir():
        os.chmod(path, 0o666 & ~mask)
        return
    os.chmod(path, 0o777 & ~mask)
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~mask)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name keeps the final suffixes, because some writers append one otherwise (``np.save``) or
    insist on theirs (Keras' ``.weights.h5``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffixes = "".join(path.suffixes[-2:])
    prefix = f".{path.name.removesuffix(suffixes)}."
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=f".tmp{suffixes}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        follow_umask(tmp_path)  # mkstemp made it 0600; after the writer, which may have replaced the file
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` to fill; rename it onto ``path`` only if the block succeeds.

    For whole-folder exports (the embedded datasets): an interrupted export leaves nothing under ``path``.
    Raises FileExistsError if ``path`` exists, since a folder cannot be replaced atomically.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists; remove it first to rebuild.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        follow_umask(tmp)  # mkdtemp made it 0700
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temporaries(folder: Path, older_than_seconds: float = 0.0, recursive: bool = True) -> list[Path]:
    """Delete the temporary files that an interrupted run (kill -9, power loss) left under ``folder``.

    They are the hidden ``.<name>.<random>.tmp<suffix>`` siblings that :func:`atomic_path` writes and renames
    (and ``.<name>.<random>.tmp`` folders of whole-folder exports);
    a finished file never has that name. Only files older than ``older_than_seconds`` go (another process may be
    writing a young one); ``recursive=False`` looks in ``folder`` itself only. Returns the paths removed.
    """
    import time

    removed = []
    if not Path(folder).is_dir():
        return removed
    now = time.time()
    for path in list((Path(folder).rglob if recursive else Path(folder).glob)(".*.tmp*")):
        try:
            if path.is_file() and now - path.stat().st_mtime >= older_than_seconds:
                path.unlink()
                removed.append(path)
            elif path.is_dir() and path.name.endswith(".tmp") and now - path.stat().st_mtime >= older_than_seconds:
                shutil.rmtree(path)  # a whole-folder export's temporary (precompute.tfjs_export)
                removed.append(path)
        except OSError:
            continue
    return removed


def models_on_disk(root: Path) -> list[str]:
    """``dataset/model`` of every model folder under ``root`` that holds features, whatever the index says: what a
    new index (``--force`` over an unreadable one) leaves out of the app unless it is recomputed."""
    found = []
    root = Path(root)
    for dataset in sorted(p for p in root.iterdir() if (p / "manifest.parquet").is_file()) if root.is_dir() else []:
        for model in sorted(p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if any(model.glob("*/features.npy")):
                found.append(f"{dataset.name}/{model.name}")
    return found


def set_aside_index(root: Path) -> Path | None:
    """Rename an unreadable ``index.json`` to ``index.json.broken-<UTC time>`` (``--force`` over a broken index)."""
    import datetime as dt

    path = index_path(root)
    if not path.exists():
        return None
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{INDEX_FILE}.broken-{stamp}")
    os.replace(path, target)
    return target


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=False, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, PermissionError):  # not a damaged file: deleting it would be the wrong fix
        raise
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"Cannot read {path}: {exc}. Delete it and rerun precompute.") from exc


def write_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(array))


def read_array(path: Path, mmap: bool = False) -> np.ndarray:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


@contextlib.contextmanager
def open_array_writer(path: Path, shape: tuple[int, ...], dtype: Any = np.float32) -> Iterator[np.ndarray]:
    """A writable memory-mapped ``.npy`` that appears under ``path`` only once the block finishes.

    Lets large feature matrices be filled chunk by chunk without holding them in memory.
    """
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        # A memory map over a sparse file dies of SIGBUS when the disk fills while pages are written; reserving
        # the blocks first turns that into an OSError (ENOSPC) here, before any work, with nothing lost.
        if hasattr(os, "posix_fallocate"):
            with open(tmp, "r+b") as fh:
                os.posix_fallocate(fh.fileno(), 0, os.path.getsize(tmp))
        try:
            yield array
            array.flush()
        finally:
            del array


def write_neighbors(path: Path, indices: np.ndarray, distances: np.ndarray, tied_beyond: np.ndarray | None = None,
                    tied_beyond_same: np.ndarray | None = None) -> None:
    """Rankings, and optionally the ties at their cut (``precompute.similarity.Ranking``), in one ``.npz``."""
    if indices.shape != distances.shape:
        raise ValueError(f"indices {indices.shape} and distances {distances.shape} differ in shape")
    extra = {name: np.asarray(value, dtype=np.int32)
             for name, value in (("tied_beyond", tied_beyond), ("tied_beyond_same", tied_beyond_same))
             if value is not None}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, indices=indices.astype(np.int32), distances=distances.astype(np.float32), **extra)


def read_neighbors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return data["indices"], data["distances"]


def read_ties(path: Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The ties at the cut stored beside a ranking: ``(tied_beyond, tied_beyond_same)``, None where absent."""
    with np.load(path, allow_pickle=False) as data:
        return tuple(data[name] if name in data.files else None for name in ("tied_beyond", "tied_beyond_same"))


# ----------------------------------------------------------------------------------------------- checks
# What a rerun asks of a file before it trusts it and skips the work that made it: None means sound, a string
# says what is wrong (for the log line that names the file and says it is recomputed).


def check_matrix(path: Path, n_rows: int, n_cols: int | None = None) -> str | None:
    """A float32 ``.npy`` of shape (n_rows, n_cols) with finite values (features, UMAP layouts)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        return "is missing"
    except (OSError, ValueError, EOFError) as exc:
        return f"is not a readable .npy array ({type(exc).__name__})"
    if array.ndim != 2 or array.shape[0] != n_rows or (n_cols is not None and array.shape[1] != n_cols):
        return f"has shape {array.shape}, expected ({n_rows}, {n_cols if n_cols is not None else 'dim'})"
    if array.dtype != np.float32:
        return f"holds {array.dtype}, expected float32"
    for lo in range(0, n_rows, 65536):  # chunked: a memory map is read, not loaded whole
        if not np.isfinite(array[lo : lo + 65536]).all():
            return "holds NaN or inf"
    return None


def check_neighbors(path: Path, n_rows: int, depth: int) -> str | None:
    """A ranking file: indices within the dataset (never the query itself), sorted finite distances, tie counts."""
    try:
        with np.load(path, allow_pickle=False) as data:
            indices, distances = data["indices"], data["distances"]
            ties = [data[name] for name in ("tied_beyond", "tied_beyond_same") if name in data.files]
    except FileNotFoundError:
        return "is missing"
    except Exception as exc:  # zipfile.BadZipFile, KeyError, ValueError, EOFError...: a damaged file
        return f"cannot be read ({type(exc).__name__}: {exc})"
    if indices.shape != (n_rows, depth) or distances.shape != (n_rows, depth):
        return f"has shape {indices.shape}, expected ({n_rows}, {depth})"
    if indices.size and (indices.min() < 0 or indices.max() >= n_rows):
        return f"holds image ids outside 0..{n_rows - 1}"
    if (indices == np.arange(n_rows)[:, None]).any():
        return "lists a query among its own neighbours"
    if not np.isfinite(distances).all() or (np.diff(distances, axis=1) < 0).any():
        return "holds distances that are not finite and sorted"
    if len(ties) != 2 or any(t.shape != (n_rows,) or (t < 0).any() for t in ties):
        return "lacks valid tie counts"
    return None


def check_table(path: Path, n_rows: int | None = None) -> str | None:
    """A readable parquet table, with ``n_rows`` rows when given."""
    try:
        table = read_table(path)
    except FileNotFoundError:
        return "is missing"
    except Exception as exc:  # pyarrow raises several types for damaged files
        return f"cannot be read ({type(exc).__name__})"
    if n_rows is not None and len(table) != n_rows:
        return f"has {len(table)} rows, expected {n_rows}"
    return None


def write_table(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=True)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"Not JSON serialisable: {type(value).__name__}")


# ----------------------------------------------------------------------------------------------- index


def empty_index() -> ArtifactIndex:
    """The index of an artifacts root with nothing computed yet (what a missing ``index.json`` reads as)."""
    return ArtifactIndex.from_dict({"schema_version": SCHEMA_VERSION, "datasets": {}})


def read_index(root: Path) -> ArtifactIndex:
    """Read ``index.json`` as an :class:`~precompute.schema.ArtifactIndex`; an absent index is an empty one.

    Raises ArtifactError, naming the file, for unreadable JSON, another schema version, or a value that does not
    fit the schema (the message names the field, e.g. ``datasets/shapes/models/pixels/layers/x/dim``).
    """
    path = index_path(root)
    if not path.exists():
        return empty_index()
    data = read_json(path)
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(data, dict) and version != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path} has schema version {version!r}, this code reads version {SCHEMA_VERSION}. "
            "Recompute with `precompute --force` or use the matching release."
        )
    try:
        return ArtifactIndex.from_dict(data)
    except SchemaError as exc:
        raise ArtifactError(
            f"{path} does not fit the artifact index schema: {exc}. Recompute with `precompute --force` (which "
            "keeps the invalid index beside it as index.json.broken-<time>)."
        ) from None


def holds_index(folder: Path) -> bool:
    """True when ``folder`` holds an artifact index of any schema version (an ``index.json`` object with a
    ``datasets`` and a ``schema_version`` key), readable or not by this version: a dataset scan skips it."""
    try:
        path = index_path(folder)
        if not path.is_file():
            return False
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "datasets" in data and "schema_version" in data


def write_index(root: Path, index: ArtifactIndex) -> None:
    """Write ``index`` (at this schema version) atomically; checked first, so a bad value never reaches the file."""
    index.schema_version = SCHEMA_VERSION
    data = index.to_dict()
    try:
        ArtifactIndex.from_dict(data)
    except SchemaError as exc:
        raise ValueError(f"Refusing to write {index_path(root)}: {exc}") from None
    write_json(index_path(root), data)


def update_index(root: Path, change: Callable[[ArtifactIndex], None]) -> ArtifactIndex:
    """Read the index, apply ``change`` to it in place, write it back atomically; returns the new index."""
    index = read_index(root)
    change(index)
    write_index(root, index)
    return index


def faiss_index_of(metric_entry: MetricEntry | None) -> tuple[str, dict[str, Any]] | None:
    """Where a metric's entry in the index keeps its FAISS index: ``(path relative to the artifacts root, index
    params)``, or None where its rankings were exact. ``precompute.ann.read_index`` reads the file."""
    if metric_entry is None or not metric_entry.approximate or metric_entry.index is None:
        return None
    return metric_entry.index, metric_entry.index_params or metric_entry.ann_params or {}


def stored_faiss_index(root: Path, dataset: str, model: str, layer: str, metric: str
                       ) -> tuple[Path, dict[str, Any]] | None:
    """``(path, index params)`` of the FAISS index stored for one (model, layer, metric), or None where exact."""
    entry = read_index(root).datasets[dataset].models[model].layers[layer].metrics.get(metric)
    stored = faiss_index_of(entry)
    return None if stored is None else (Path(root) / stored[0], stored[1])


def read_manifest(root: Path, dataset: str) -> pd.DataFrame:
    path = manifest_path(root, dataset)
    if not path.exists():
        raise ArtifactError(f"No manifest at {path}. Run `precompute DATASET_DIR --out {root}` first.")
    return read_table(path)
