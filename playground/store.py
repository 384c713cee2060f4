"""Read-only, cached access to precomputed artifacts, through ``precompute.artifacts`` readers only.

Every array and table is read once and kept (``functools.lru_cache``) keyed by its path and
modification time, so switching model, layer or metric in the app costs a dictionary look-up; a
recomputed file (new mtime) is read again. Arrays come back read-only: callers never change them.

A combination that was not computed (a metric missing for a layer, a model missing for a dataset)
raises :class:`MissingArtifact`, whose message says what is missing and how to compute it; views
show that message instead of failing. A file that exists but cannot be used (truncated, corrupt, from
another schema version, or disagreeing with the index: wrong row count, neighbour ids out of range)
raises :class:`BrokenArtifact`, a MissingArtifact too, so the same views show it the same way. A file or folder
this process may not read (an ``OSError``: permissions, or an I/O error) is a BrokenArtifact whose message names it
and the fix that fits: permissions for a permission error, a rerun for damage. Every message names files relative
to the artifacts root: the page never shows a server path.
"""

from __future__ import annotations

import errno
import os
import re
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute import artifacts as art
from precompute.readers.tfjs import read_export_spec
from precompute.schema import ArtifactIndex, DatasetEntry, LayerEntry, MetricEntry, ModelEntry
from precompute.schema_export import EXPORT_FILE, TfjsExportSpec

# Array and table caches: enough for every (model, layer, metric) of a few datasets.
_ARRAY_CACHE_SIZE = 256
_TABLE_CACHE_SIZE = 256


class MissingArtifact(LookupError):
    """A dataset, model, layer, metric or file that the artifacts do not hold."""

    def __str__(self) -> str:  # LookupError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


class BrokenArtifact(MissingArtifact, art.ArtifactError):
    """A file the artifacts hold but that cannot be used: unreadable, truncated, or disagreeing with the index."""


class UnreadableArtifact(BrokenArtifact):
    """A file or folder the file system refuses to read (``OSError``: permissions, an I/O error)."""


# What the readers raise on a truncated, corrupt or foreign file: numpy (ValueError, EOFError, BadZipFile for an
# .npz, KeyError for an .npz without the expected array), pyarrow (ArrowInvalid is a ValueError), the index's JSON
# and schema checks (ArtifactError), FAISS (RuntimeError) and the file system (OSError).
READ_ERRORS = (art.ArtifactError, RuntimeError, ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile)


# An absolute POSIX path of two or more components, e.g. in an exception's message: /srv/x/y.npz -> y.npz.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])(?:/[\w.+@-]+)*/(?P<name>[\w.+@-]+)")


_NO_DATASET = "The app shows no dataset until it is fixed."


@lru_cache(maxsize=8)
def _cached_index(root: str, mtime_ns: int) -> ArtifactIndex:
    """The index, checked against the schema by the reader (types, image counts): shared, never changed."""
    return art.read_index(Path(root))


@lru_cache(maxsize=_ARRAY_CACHE_SIZE)
def _cached_array(path: str, mtime_ns: int) -> np.ndarray:
    array = art.read_array(Path(path), mmap=True)
    array.flags.writeable = False
    return array


@lru_cache(maxsize=_ARRAY_CACHE_SIZE)
def _cached_neighbors(path: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Indices, distances, and the smallest and largest id (checked against the dataset on every use)."""
    indices, distances = art.read_neighbors(Path(path))
    if indices.ndim != 2 or indices.shape != distances.shape:
        raise ValueError(f"indices {indices.shape} and distances {distances.shape} are not one (n, top_n) table")
    indices.flags.writeable = False
    distances.flags.writeable = False
    low, high = (int(indices.min()), int(indices.max())) if indices.size else (0, -1)
    return indices, distances, low, high


@lru_cache(maxsize=_TABLE_CACHE_SIZE)
def _cached_table(path: str, mtime_ns: int) -> pd.DataFrame:
    return art.read_table(Path(path))


@lru_cache(maxsize=_TABLE_CACHE_SIZE)
def _cached_summary(path: str, mtime_ns: int) -> pd.DataFrame:
    from precompute.scores import summarize_scores

    return summarize_scores(_cached_table(path, mtime_ns))


@lru_cache(maxsize=_TABLE_CACHE_SIZE)
def _cached_paired(path_a: str, mtime_a: int, path_b: str, mtime_b: int, score: str) -> dict[str, Any] | None:
    from precompute.stats import paired_comparison

    a, b = _cached_table(path_a, mtime_a), _cached_table(path_b, mtime_b)
    if score not in a.columns or score not in b.columns:
        return None
    # Paired means the same queries: align b on a's query ids (NaN where b lacks one, dropped by the test).
    values_b = b[score].reindex(a.index)
    return paired_comparison(a[score].to_numpy(dtype=float), values_b.to_numpy(dtype=float))


@lru_cache(maxsize=64)
def _cached_export_spec(path: str, mtime_ns: int) -> TfjsExportSpec:
    return read_export_spec(Path(path).parent)


@lru_cache(maxsize=16)  # an index holds about its features' size in memory: keep only a few
def _cached_ann_index(path: str, mtime_ns: int, metric: str, params: tuple) -> Any:
    from precompute import ann

    return ann.read_index(Path(path), metric, dict(params) or None)


def clear_caches() -> None:
    """Forget every cached file (tests; the mtime keys already catch recomputed files)."""
    caches = (_cached_index, _cached_array, _cached_neighbors, _cached_table, _cached_summary, _cached_paired,
              _cached_export_spec)
    for cached in (*caches, _cached_ann_index):
        cached.cache_clear()


class Store:
    """The artifacts under one root, read-only.

    Parameters
    ----------
    root : path of an artifacts root (the folder holding ``index.json``)

    Examples
    --------
    >>> store = Store("artifacts")  # doctest: +SKIP
    >>> store.layers("fashion-mnist-200", "pixels")  # doctest: +SKIP
    ['pixels_8x8', 'pixels_16x16', 'pixels_32x32']
    """

    def __init__(self, root: str | Path) -> None:
        # Absolute: Flask resolves a relative file path against the package folder, not the working directory.
        self.root = Path(root).resolve()

    # ------------------------------------------------------------------------------------ messages
    def name_of(self, path: Path) -> str:
        """A file as the page may name it: relative to the artifacts root (never a server path)."""
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).name

    def public_text(self, text: str) -> str:
        """``text`` fit for the page: paths under the artifacts root made relative, any other absolute path cut
        to its file name (a reader's or a library's message can name a file anywhere on the server)."""
        root = str(self.root)
        text = text.replace(root + os.sep, "").replace(root, "the artifacts folder")
        return _ABSOLUTE_PATH.sub(lambda match: match["name"], text)

    def _fix(self, dataset: str | None) -> str:
        if dataset is None:
            return "Rerun precompute to rewrite it."
        return f"Rerun precompute for {dataset} (`precompute DATASET_DIR --out ARTIFACTS`) to rebuild it."

    def _first_unreadable(self, path: Path) -> Path:
        """The first folder on the way from the artifacts root to ``path`` that this process may not enter or
        list, else ``path`` itself (a folder that may not be entered hides the modes of everything below it)."""
        path = Path(path)
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return path
        folder = self.root
        for part in ("", *parts[:-1]):
            folder = folder / part if part else folder
            if not os.access(folder, os.R_OK | os.X_OK):
                return folder
        return path

    def os_problem(self, path: Path, dataset: str | None, exc: OSError) -> UnreadableArtifact:
        """One message for an ``OSError`` on an artifact: what could not be read (relative) and the fix that fits.

        A permission error (``EACCES``, ``EPERM``) names the first folder or file on the way that this process may
        not read, and says to give the account running playground read access; any other error (an I/O error, a
        file that is not what it should be) says the file is damaged and to rerun precompute.
        """
        if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
            blocked = self._first_unreadable(path)
            what = "the artifacts folder" if blocked == self.root else self.name_of(blocked)
            return UnreadableArtifact(
                f"{what} cannot be read by the account running playground (permission denied). Give it read "
                "access, e.g. `chmod -R a+rX` on the artifacts folder, or serve as the account that wrote them."
            )
        reason = exc.strerror or type(exc).__name__
        return UnreadableArtifact(
            f"{self.name_of(path)} cannot be read ({reason}): the file or the disk is damaged. {self._fix(dataset)}"
        )

    def _mtime_ns(self, path: Path, dataset: str | None) -> int:
        try:
            return os.stat(path).st_mtime_ns
        except FileNotFoundError:
            raise MissingArtifact(f"{self.name_of(path)} does not exist. {self._fix(dataset)}") from None
        except OSError as exc:
            raise self.os_problem(path, dataset, exc) from None

    def _read(self, cached: Any, path: Path, dataset: str | None, *extra: Any) -> Any:
        """``cached(str(path), mtime, *extra)``, with any reader failure turned into a BrokenArtifact."""
        mtime = self._mtime_ns(path, dataset)
        try:
            return cached(str(path), mtime, *extra)
        except OSError as exc:
            raise self.os_problem(path, dataset, exc) from None
        except READ_ERRORS as exc:
            reason = self.public_text(str(exc)) or type(exc).__name__
            raise BrokenArtifact(
                f"{self.name_of(path)} cannot be read (truncated or corrupt: {reason}). {self._fix(dataset)}"
            ) from exc

    def _broken(self, path: Path, dataset: str | None, problem: str) -> BrokenArtifact:
        return BrokenArtifact(f"{self.name_of(path)} {problem}. {self._fix(dataset)}")

    # ------------------------------------------------------------------------------------- index
    def index(self) -> ArtifactIndex:
        """The artifact index (an empty one when there is none yet); re-read when the file changes.

        Raises BrokenArtifact when ``index.json`` is unreadable, from another schema version or malformed (the
        message names the field that does not fit the schema). The records are shared: read them, never change them.
        """
        path = art.index_path(self.root)
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return art.empty_index()
        except OSError as exc:
            raise BrokenArtifact(f"{self.os_problem(path, None, exc)} {_NO_DATASET}") from None
        try:
            return _cached_index(str(self.root), mtime)
        except OSError as exc:
            raise BrokenArtifact(f"{self.os_problem(path, None, exc)} {_NO_DATASET}") from None
        except READ_ERRORS as exc:
            if isinstance(exc, art.ArtifactError):  # the reader's own words and fix (schema, version, JSON error)
                reason = self.public_text(str(exc))
            else:
                problem = self.public_text(str(exc))
                reason = f"{self.name_of(path)} is not an artifact index ({problem}). {self._fix(None)}"
            raise BrokenArtifact(f"{reason} The app shows no dataset until it is fixed.") from exc

    def datasets(self) -> list[str]:
        return list(self.index().datasets)

    def dataset(self, dataset: str) -> DatasetEntry:
        entry = self.index().datasets.get(dataset)
        if entry is None:
            raise MissingArtifact(
                f"Dataset {dataset!r} is not in the artifacts' index.json. "
                f"Available: {', '.join(self.datasets()) or 'none'}. Run `precompute DATASET_DIR --out ARTIFACTS`."
            )
        return entry

    def is_labeled(self, dataset: str) -> bool:
        return self.dataset(dataset).labeled

    def n_images(self, dataset: str) -> int:
        return self.dataset(dataset).n_images

    def models(self, dataset: str) -> list[str]:
        return list(self.dataset(dataset).models)

    def model(self, dataset: str, model: str) -> ModelEntry:
        entry = self.dataset(dataset).models.get(model)
        if entry is None:
            raise MissingArtifact(
                f"Model {model!r} was not computed for {dataset!r}. "
                f"Computed: {', '.join(self.models(dataset)) or 'none'}."
            )
        return entry

    def layers(self, dataset: str, model: str) -> list[str]:
        """Layer names of a model in network order (the index ``order``)."""
        return self.model(dataset, model).layer_names()

    def layer(self, dataset: str, model: str, layer: str) -> LayerEntry:
        entry = self.model(dataset, model).layers.get(layer)
        if entry is None:
            raise MissingArtifact(
                f"Layer {layer!r} of {model} was not computed for {dataset!r}. "
                f"Computed: {', '.join(self.layers(dataset, model)) or 'none'}."
            )
        return entry

    def metrics(self, dataset: str, model: str, layer: str) -> list[str]:
        return list(self.layer(dataset, model, layer).metrics)

    def all_metrics(self, dataset: str) -> list[str]:
        """Every metric computed for any layer of the dataset, in first-seen order."""
        seen: dict[str, None] = {}
        for model in self.dataset(dataset).models.values():
            for layer in model.layers.values():
                seen.update(dict.fromkeys(layer.metrics))
        return list(seen)

    def metric(self, dataset: str, model: str, layer: str, metric: str) -> MetricEntry:
        entry = self.layer(dataset, model, layer).metrics.get(metric)
        if entry is None:
            raise MissingArtifact(
                f"The {metric} rankings were not computed for {model} / {layer} on {dataset!r}. "
                f"Computed metrics: {', '.join(self.metrics(dataset, model, layer)) or 'none'} "
                f"(add it with `precompute ... --metrics {metric}`)."
            )
        return entry

    # ------------------------------------------------------------------------------------- files
    def manifest(self, dataset: str) -> pd.DataFrame:
        expected = self.n_images(dataset)
        path = art.manifest_path(self.root, dataset)
        table = self._read(_cached_table, path, dataset)
        if len(table) != expected:
            raise self._broken(path, dataset, f"has {len(table)} rows, the index says {expected}")
        if "path" not in table.columns or (self.is_labeled(dataset) and "label" not in table.columns):
            raise self._broken(path, dataset, "lacks the path or label column")
        return table

    def labels(self, dataset: str) -> np.ndarray | None:
        """Class label of each image as strings (n_images,), or None for an unlabeled dataset."""
        if not self.is_labeled(dataset):
            return None
        return self.manifest(dataset)["label"].astype(str).to_numpy()

    def _array(self, path: Path, dataset: str, columns: int | None = None) -> np.ndarray:
        array = self._read(_cached_array, path, dataset)
        n_images = self.n_images(dataset)
        if array.ndim != 2 or len(array) != n_images:
            raise self._broken(path, dataset, f"has shape {array.shape}, the dataset {n_images} images")
        if columns and array.shape[1] != columns:
            raise self._broken(path, dataset, f"has {array.shape[1]} columns, not {columns}")
        return array

    def features(self, dataset: str, model: str, layer: str) -> np.ndarray:
        """float32 (n_images, dim), read-only (memory-mapped)."""
        dim = self.layer(dataset, model, layer).dim
        path = art.features_path(self.root, dataset, model, layer)
        return self._array(path, dataset, dim)

    def ann_index(self, dataset: str, model: str, layer: str, metric: str) -> Any:
        """The FAISS index precompute stored for a big dataset (``precompute.ann.AnnIndex``), or None where
        its rankings were exact; searches for new queries then go through it too."""
        stored = art.faiss_index_of(self.metric(dataset, model, layer, metric))
        if stored is None:
            return None
        path, params = self.root / stored[0], stored[1]
        return self._read(_cached_ann_index, path, dataset, metric, tuple(sorted(params.items())))

    def umap(self, dataset: str, model: str, layer: str) -> np.ndarray:
        """float32 (n_images, 2), read-only."""
        self.layer(dataset, model, layer)
        return self._array(art.umap_path(self.root, dataset, model, layer), dataset, 2)

    def neighbors(self, dataset: str, model: str, layer: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Stored rankings: indices int32 (n_images, top_n) and distances float32, best first, read-only.

        Raises BrokenArtifact for a table whose rows or ids do not fit the dataset (a negative id included:
        an approximate index's "no result" must never be shown as an image).
        """
        self.metric(dataset, model, layer, metric)
        path = art.neighbors_path(self.root, dataset, model, layer, metric)
        indices, distances, low, high = self._read(_cached_neighbors, path, dataset)
        n_images = self.n_images(dataset)
        if len(indices) != n_images:
            raise self._broken(path, dataset, f"has {len(indices)} rows, the dataset {n_images} images")
        if low < 0 or high >= n_images:
            raise self._broken(path, dataset, f"holds image ids from {low} to {high}, outside 0..{n_images - 1}")
        return indices, distances

    def scores(self, dataset: str, model: str, layer: str, metric: str) -> pd.DataFrame | None:
        """Per-query scores (index ``query``), or None for an unlabeled dataset."""
        entry = self.metric(dataset, model, layer, metric)
        if not self.is_labeled(dataset) or not entry.scores:
            return None
        return self._read(_cached_table, art.scores_path(self.root, dataset, model, layer, metric), dataset)

    def class_summary(self, dataset: str, model: str, layer: str, metric: str) -> pd.DataFrame | None:
        """``summarize_scores`` of the per-query scores: one row per class and ``__all__``."""
        entry = self.metric(dataset, model, layer, metric)
        if not self.is_labeled(dataset) or not entry.scores:
            return None
        return self._read(_cached_summary, art.scores_path(self.root, dataset, model, layer, metric), dataset)

    def baseline(self, dataset: str) -> pd.DataFrame | None:
        """Random-ranking scores per class and ``__all__``, or None (unlabeled, or not computed)."""
        if not self.is_labeled(dataset):
            return None
        path = art.baseline_path(self.root, dataset)
        if not path.exists():
            return None
        return self._read(_cached_table, path, dataset)

    def duplicates(self, dataset: str) -> pd.DataFrame | None:
        """Duplicate pairs found by hashing the images (``duplicates.parquet``), or None when not computed.

        Columns ``a``, ``b`` (row ids, a < b), ``kind`` ("exact" or "near"), ``phash_distance`` and
        ``cross_class``; the index entry (``dataset(ds).duplicates``) holds the threshold and the counts.
        Artifacts written before duplicates were looked for have no entry: None, not an error.
        """
        if self.dataset(dataset).duplicates is None:
            return None
        return self._pairs(art.duplicates_path(self.root, dataset), dataset)

    def label_issues(self, dataset: str) -> pd.DataFrame | None:
        """Likely label mistakes found by confident learning (``label_issues.parquet``, precompute.label_issues),
        worst first, or None when not computed (unlabeled, or older artifacts).

        Columns ``id``, ``label``, ``suggested``, ``confidence`` (the suggested class's probability) and
        ``quality``; the index entry (``dataset(ds).label_issues``) names the layers it learned from.
        """
        if self.dataset(dataset).label_issues is None:
            return None
        path = art.label_issues_path(self.root, dataset)
        table = self._read(_cached_table, path, dataset)
        ids = table["id"].to_numpy() if "id" in table.columns else None
        if ids is None or (ids.size and not (ids.min() >= 0 and ids.max() < self.n_images(dataset))):
            raise self._broken(path, dataset, "lacks image ids in range")
        return table

    def layer_duplicates(self, dataset: str, model: str, layer: str) -> pd.DataFrame | None:
        """Pairs far closer in this layer's features than its typical nearest neighbour, or None when not computed.

        Columns ``a``, ``b`` (row ids, a < b), ``distance`` and ``cross_class``; the layer's index entry
        (``layer(...).duplicates``) holds the metric, the threshold and the counts.
        """
        if self.layer(dataset, model, layer).duplicates is None:
            return None
        return self._pairs(art.layer_duplicates_path(self.root, dataset, model, layer), dataset)

    def _pairs(self, path: Path, dataset: str) -> pd.DataFrame:
        table = self._read(_cached_table, path, dataset)
        n_images = self.n_images(dataset)
        if not {"a", "b"} <= set(table.columns):
            raise self._broken(path, dataset, "lacks the a and b columns")
        # Row ids index the manifest and name thumbnails: an out-of-range id is a stale file, not a pair to show.
        ids = table[["a", "b"]].to_numpy()
        if ids.size and not (ids.min() >= 0 and ids.max() < n_images):
            raise self._broken(path, dataset, f"names images outside 0..{n_images - 1}")
        return table

    def paired_comparison(
        self, dataset: str, a: tuple[str, str, str], b: tuple[str, str, str], score: str
    ) -> dict[str, Any] | None:
        """``precompute.stats.paired_comparison`` of one score between two (model, layer, metric) configurations.

        The per-query scores of both are aligned on their query index; the result is cached by the two score
        files and their modification times (a bootstrap over 70,000 queries takes seconds). None for an
        unlabeled dataset or a score that one file lacks; ValueError when no query has a finite score in both.
        """
        paths = []
        for model, layer, metric in (a, b):
            if self.scores(dataset, model, layer, metric) is None:
                return None
            path = art.scores_path(self.root, dataset, model, layer, metric)
            paths.append((str(path), self._mtime_ns(path, dataset)))
        return _cached_paired(*paths[0], *paths[1], score)

    def tfjs_export(self, dataset: str, model: str) -> TfjsExportSpec:
        """The manifest of a model's TF.js export (``export.json``, ``precompute.schema_export``): its layers and
        their widths, the input size and transform, each variant's files.

        Whether the model should have an export, and its sizes, are the index's (``model(...).tfjs``). Raises
        MissingArtifact when the file does not exist, BrokenArtifact when it cannot be read or does not fit its format.
        """
        self.model(dataset, model)
        return self._read(_cached_export_spec, art.tfjs_export_path(self.root, dataset, model), dataset)

    def tfjs_file(self, dataset: str, model: str, name: str, variant: str | None = None) -> Path:
        """Path of a file of a model's TF.js export, checked: a known model, safe names, an existing file.

        ``export.json`` (``name`` = ``EXPORT_FILE``) has no ``variant``; ``model.json`` and the weight shards sit in
        their variant's folder. Raises MissingArtifact for anything else.
        """
        self.model(dataset, model)
        try:
            art.check_name(name, "file name")
            folder = (art.tfjs_dir(self.root, dataset, model) if variant is None
                      else art.tfjs_variant_dir(self.root, dataset, model, variant))
        except ValueError as exc:
            raise MissingArtifact(str(exc)) from None
        path = folder / name
        if (variant is None) != (name == EXPORT_FILE) or not path.is_file():
            raise MissingArtifact(f"{self.name_of(path)} is not a file of {model}'s TF.js export. {self._fix(dataset)}")
        return path

    def baseline_summary(self, dataset: str) -> dict[str, float]:
        baseline = self.dataset(dataset).baseline
        return dict(baseline.summary) if baseline is not None else {}

    def source_file(self, dataset: str, image_id: int) -> Path:
        """Path of a dataset image's original file, checked: a known dataset, an id in range, a manifest path
        that stays inside the dataset's ``source`` folder once symlinks are resolved, an existing file.

        The source folder is the one precompute read (``source`` in the index); the app only reads it.
        Raises MissingArtifact for anything else (a moved dataset, a manifest path with ``..``, a link out).
        """
        art.check_name(dataset, "dataset name")
        if not 0 <= int(image_id) < self.n_images(dataset):
            raise MissingArtifact(f"No image {image_id} in {dataset!r}.")
        source = self.dataset(dataset).source
        if not source:
            raise MissingArtifact(f"The index names no source folder for {dataset!r}.")
        folder = Path(source)
        if not folder.is_absolute():
            folder = self.root / folder
        try:
            folder = folder.resolve(strict=True)
            relative = str(self.manifest(dataset)["path"].iloc[int(image_id)])
            path = (folder / relative).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            raise MissingArtifact(f"The source file of image {image_id} of {dataset!r} is not available.") from None
        if not path.is_relative_to(folder) or not path.is_file():
            raise MissingArtifact(f"Image {image_id} of {dataset!r} is not a file inside its source folder.")
        return path

    def thumb_file(self, dataset: str, image_id: int) -> Path:
        """Path of a thumbnail, checked: a known dataset, an id in range, an existing file."""
        art.check_name(dataset, "dataset name")
        if not 0 <= int(image_id) < self.n_images(dataset):
            raise MissingArtifact(f"No image {image_id} in {dataset!r}.")
        path = art.thumb_path(self.root, dataset, int(image_id))
        try:
            with open(path, "rb"):  # stat alone passes a file whose mode forbids reading it
                pass
        except FileNotFoundError:
            raise MissingArtifact(f"{self.name_of(path)} does not exist. {self._fix(dataset)}") from None
        except IsADirectoryError:
            raise self._broken(path, dataset, "is a folder, not a thumbnail") from None
        except OSError as exc:
            raise self.os_problem(path, dataset, exc) from None
        return path

    def thumbs_problem(self, dataset: str) -> str | None:
        """Why the dataset's thumbnails cannot be served (their folder unreadable), or None: views say it once
        instead of showing a page of broken images."""
        try:
            self.thumb_file(dataset, 0)
        except BrokenArtifact as exc:
            return f"Thumbnails cannot be shown: {exc}"
        except MissingArtifact:  # a missing thumbnail is named when it is asked for
            return None
        return None
