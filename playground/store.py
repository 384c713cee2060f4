"""Read-only, cached access to precomputed artifacts, through ``precompute.artifacts`` readers only.

Every array and table is read once and kept (``functools.lru_cache``) keyed by its path and
modification time, so switching model, layer or metric in the app costs a dictionary look-up; a
recomputed file (new mtime) is read again. Arrays come back read-only: callers never change them.

A combination that was not computed (a metric missing for a layer, a model missing for a dataset)
raises :class:`MissingArtifact`, whose message says what is missing and how to compute it; views
show that message instead of failing.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from precompute import artifacts as art

# Array and table caches: enough for every (model, layer, metric) of a few datasets.
_ARRAY_CACHE_SIZE = 256
_TABLE_CACHE_SIZE = 256


class MissingArtifact(LookupError):
    """A dataset, model, layer, metric or file that the artifacts do not hold."""

    def __str__(self) -> str:  # LookupError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


def _mtime_ns(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        raise MissingArtifact(f"{path} does not exist. Run precompute again to create it.") from None


@lru_cache(maxsize=8)
def _cached_index(root: str, mtime_ns: int) -> dict[str, Any]:
    return art.read_index(Path(root))


@lru_cache(maxsize=_ARRAY_CACHE_SIZE)
def _cached_array(path: str, mtime_ns: int) -> np.ndarray:
    array = art.read_array(Path(path), mmap=True)
    array.flags.writeable = False
    return array


@lru_cache(maxsize=_ARRAY_CACHE_SIZE)
def _cached_neighbors(path: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    indices, distances = art.read_neighbors(Path(path))
    indices.flags.writeable = False
    distances.flags.writeable = False
    return indices, distances


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


@lru_cache(maxsize=16)  # an index holds about its features' size in memory: keep only a few
def _cached_ann_index(path: str, mtime_ns: int, metric: str, params: tuple) -> Any:
    from precompute import ann

    return ann.read_index(Path(path), metric, dict(params) or None)


def clear_caches() -> None:
    """Forget every cached file (tests; the mtime keys already catch recomputed files)."""
    caches = (_cached_index, _cached_array, _cached_neighbors, _cached_table, _cached_summary, _cached_paired)
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

    # ------------------------------------------------------------------------------------- index
    def index(self) -> dict[str, Any]:
        """The artifact index (an empty one when there is none yet); re-read when the file changes."""
        path = art.index_path(self.root)
        if not path.exists():
            return art.empty_index()
        return _cached_index(str(path.resolve().parent), os.stat(path).st_mtime_ns)

    def datasets(self) -> list[str]:
        return list(self.index()["datasets"])

    def dataset(self, dataset: str) -> dict[str, Any]:
        entry = self.index()["datasets"].get(dataset)
        if entry is None:
            raise MissingArtifact(
                f"Dataset {dataset!r} is not in {art.index_path(self.root)}. "
                f"Available: {', '.join(self.datasets()) or 'none'}. Run `precompute DATASET_DIR --out {self.root}`."
            )
        return entry

    def is_labeled(self, dataset: str) -> bool:
        return bool(self.dataset(dataset).get("labeled"))

    def n_images(self, dataset: str) -> int:
        return int(self.dataset(dataset)["n_images"])

    def models(self, dataset: str) -> list[str]:
        return list(self.dataset(dataset).get("models", {}))

    def model(self, dataset: str, model: str) -> dict[str, Any]:
        entry = self.dataset(dataset).get("models", {}).get(model)
        if entry is None:
            raise MissingArtifact(
                f"Model {model!r} was not computed for {dataset!r}. "
                f"Computed: {', '.join(self.models(dataset)) or 'none'}."
            )
        return entry

    def layers(self, dataset: str, model: str) -> list[str]:
        """Layer names of a model in network order (the index ``order``)."""
        layers = self.model(dataset, model).get("layers", {})
        return sorted(layers, key=lambda name: (layers[name].get("order", 0), name))

    def layer(self, dataset: str, model: str, layer: str) -> dict[str, Any]:
        entry = self.model(dataset, model).get("layers", {}).get(layer)
        if entry is None:
            raise MissingArtifact(
                f"Layer {layer!r} of {model} was not computed for {dataset!r}. "
                f"Computed: {', '.join(self.layers(dataset, model)) or 'none'}."
            )
        return entry

    def metrics(self, dataset: str, model: str, layer: str) -> list[str]:
        return list(self.layer(dataset, model, layer).get("metrics", {}))

    def all_metrics(self, dataset: str) -> list[str]:
        """Every metric computed for any layer of the dataset, in first-seen order."""
        seen: dict[str, None] = {}
        for model in self.dataset(dataset).get("models", {}).values():
            for layer in model.get("layers", {}).values():
                seen.update(dict.fromkeys(layer.get("metrics", {})))
        return list(seen)

    def metric(self, dataset: str, model: str, layer: str, metric: str) -> dict[str, Any]:
        entry = self.layer(dataset, model, layer).get("metrics", {}).get(metric)
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
        table = _cached_table(str(path), _mtime_ns(path))
        if len(table) != expected:
            raise art.ArtifactError(f"{path} has {len(table)} rows, the index says {expected}. Rerun precompute.")
        return table

    def labels(self, dataset: str) -> np.ndarray | None:
        """Class label of each image as strings (n_images,), or None for an unlabeled dataset."""
        if not self.is_labeled(dataset):
            return None
        return self.manifest(dataset)["label"].astype(str).to_numpy()

    def _array(self, path: Path, dataset: str) -> np.ndarray:
        array = _cached_array(str(path), _mtime_ns(path))
        if len(array) != self.n_images(dataset):
            raise art.ArtifactError(
                f"{path} has {len(array)} rows, the dataset {self.n_images(dataset)}. Rerun precompute."
            )
        return array

    def features(self, dataset: str, model: str, layer: str) -> np.ndarray:
        """float32 (n_images, dim), read-only (memory-mapped)."""
        self.layer(dataset, model, layer)
        return self._array(art.features_path(self.root, dataset, model, layer), dataset)

    def ann_index(self, dataset: str, model: str, layer: str, metric: str) -> Any:
        """The FAISS index precompute stored for a big dataset (``precompute.ann.AnnIndex``), or None where
        its rankings were exact; searches for new queries then go through it too."""
        from precompute.ann import stored_index

        stored = stored_index(self.metric(dataset, model, layer, metric))
        if stored is None:
            return None
        path, params = self.root / stored[0], stored[1]
        return _cached_ann_index(str(path), _mtime_ns(path), metric, tuple(sorted(params.items())))

    def umap(self, dataset: str, model: str, layer: str) -> np.ndarray:
        """float32 (n_images, 2), read-only."""
        self.layer(dataset, model, layer)
        return self._array(art.umap_path(self.root, dataset, model, layer), dataset)

    def neighbors(self, dataset: str, model: str, layer: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Stored rankings: indices int32 (n_images, top_n) and distances float32, best first, read-only."""
        self.metric(dataset, model, layer, metric)
        path = art.neighbors_path(self.root, dataset, model, layer, metric)
        indices, distances = _cached_neighbors(str(path), _mtime_ns(path))
        if len(indices) != self.n_images(dataset):
            raise art.ArtifactError(f"{path} has {len(indices)} rows, the dataset {self.n_images(dataset)}.")
        return indices, distances

    def scores(self, dataset: str, model: str, layer: str, metric: str) -> pd.DataFrame | None:
        """Per-query scores (index ``query``), or None for an unlabeled dataset."""
        entry = self.metric(dataset, model, layer, metric)
        if not self.is_labeled(dataset) or not entry.get("scores"):
            return None
        path = art.scores_path(self.root, dataset, model, layer, metric)
        return _cached_table(str(path), _mtime_ns(path))

    def class_summary(self, dataset: str, model: str, layer: str, metric: str) -> pd.DataFrame | None:
        """``summarize_scores`` of the per-query scores: one row per class and ``__all__``."""
        entry = self.metric(dataset, model, layer, metric)
        if not self.is_labeled(dataset) or not entry.get("scores"):
            return None
        path = art.scores_path(self.root, dataset, model, layer, metric)
        return _cached_summary(str(path), _mtime_ns(path))

    def baseline(self, dataset: str) -> pd.DataFrame | None:
        """Random-ranking scores per class and ``__all__``, or None (unlabeled, or not computed)."""
        if not self.is_labeled(dataset):
            return None
        path = art.baseline_path(self.root, dataset)
        if not path.exists():
            return None
        return _cached_table(str(path), _mtime_ns(path))

    def duplicates(self, dataset: str) -> pd.DataFrame | None:
        """Duplicate pairs found by hashing the images (``duplicates.parquet``), or None when not computed.

        Columns ``a``, ``b`` (row ids, a < b), ``kind`` ("exact" or "near"), ``phash_distance`` and
        ``cross_class``; the index entry (``dataset(ds)["duplicates"]``) holds the threshold and the counts.
        Artifacts written before duplicates were looked for have no entry: None, not an error.
        """
        if not self.dataset(dataset).get("duplicates"):
            return None
        return self._pairs(art.duplicates_path(self.root, dataset), dataset)

    def layer_duplicates(self, dataset: str, model: str, layer: str) -> pd.DataFrame | None:
        """Pairs far closer in this layer's features than its typical nearest neighbour, or None when not computed.

        Columns ``a``, ``b`` (row ids, a < b), ``distance`` and ``cross_class``; the layer's index entry
        (``layer(...)["duplicates"]``) holds the metric, the threshold and the counts.
        """
        if not self.layer(dataset, model, layer).get("duplicates"):
            return None
        return self._pairs(art.layer_duplicates_path(self.root, dataset, model, layer), dataset)

    def _pairs(self, path: Path, dataset: str) -> pd.DataFrame:
        table = _cached_table(str(path), _mtime_ns(path))
        n_images = self.n_images(dataset)
        # Row ids index the manifest and name thumbnails: an out-of-range id is a stale file, not a pair to show.
        ids = table[["a", "b"]].to_numpy()
        if ids.size and not (ids.min() >= 0 and ids.max() < n_images):
            raise art.ArtifactError(f"{path} names images outside 0..{n_images - 1}. Rerun precompute.")
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
            paths.append((str(path), _mtime_ns(path)))
        return _cached_paired(*paths[0], *paths[1], score)

    def baseline_summary(self, dataset: str) -> dict[str, float]:
        return dict((self.dataset(dataset).get("baseline") or {}).get("summary") or {})

    def source_file(self, dataset: str, image_id: int) -> Path:
        """Path of a dataset image's original file, checked: a known dataset, an id in range, a manifest path
        that stays inside the dataset's ``source`` folder once symlinks are resolved, an existing file.

        The source folder is the one precompute read (``source`` in the index); the app only reads it.
        Raises MissingArtifact for anything else (a moved dataset, a manifest path with ``..``, a link out).
        """
        art.check_name(dataset, "dataset name")
        if not 0 <= int(image_id) < self.n_images(dataset):
            raise MissingArtifact(f"No image {image_id} in {dataset!r}.")
        source = self.dataset(dataset).get("source")
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
        if not path.is_file():
            raise MissingArtifact(f"{path} does not exist.")
        return path
