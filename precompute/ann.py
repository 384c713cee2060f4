"""Approximate nearest-neighbour search with FAISS, for datasets too big for exact all-pairs rankings.

How each metric is searched (``METRIC_PLANS``, from each entry's ``faiss`` and ``pool`` in the registry
``precompute.similarity.METRICS``):

- ``cosine``: inner product of L2-normalised vectors (``1 - <a/|a|, b/|b|>`` is the cosine distance).
- ``euclidean``: FAISS' L2 (squared distances rank like distances).
- ``manhattan`` / ``chebyshev``: FAISS' own L1 / L-infinity distances (HNSW and flat indexes support them).
- ``minkowski-pP``: FAISS has an Lp metric, but its HNSW index ignores ``p`` (it returns garbage), so the
  candidates come from an L2 index with a wider candidate pool (``4 x``): Lp balls lie between L1 and
  L-infinity balls, so L2 neighbours are good Lp candidates; the recall is measured (tests, bench), not proven.

Whatever the metric, FAISS only proposes candidates: they are then ranked by the one exact engine
(:func:`precompute.similarity.rerank_candidates`: the same formulas, float32 ordering and index tie-break as
the stored exact rankings). So every distance written is the true one, and the only approximation is a true
neighbour FAISS did not propose. Without an index, :func:`search` *is* the exact engine.

Index kinds (``ANN_KINDS``, with their default parameters):

- ``hnsw`` (default): a graph; no training, good recall, build time grows ~ n log n.
- ``ivf-flat``: k-means cells (``nlist``, default ~4 sqrt(n)), searching ``nprobe`` of them; faster to build.
- ``flat``: brute force inside FAISS; exact, for tests and comparison.

Example
-------
>>> index = build_index(features, "cosine")                       # doctest: +SKIP
>>> write_index(path, index); index = read_index(path, "cosine")   # doctest: +SKIP
>>> ids, dists = search(query, features, "cosine", top_n=15, index=index)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from precompute.similarity import METRICS, Ranking, concat_rankings, parse_metric, rerank_candidates
from precompute.similarity import rank as exact_rank

# kind -> default parameters; `params` passed by callers may only use these keys.
ANN_KINDS: dict[str, dict[str, int]] = {
    "hnsw": {"M": 32, "ef_construction": 80, "ef_search": 128},
    "ivf-flat": {"nlist": 0, "nprobe": 16},  # nlist 0 = about 4 sqrt(n), at most 1024 and n / 39
    "flat": {},
}
DEFAULT_KIND = "hnsw"
# metric family -> (FAISS metric name, candidate pool factor), from the metric registry. Minkowski borrows L2
# candidates (see above).
METRIC_PLANS: dict[str, tuple[str, int]] = {name: (metric.faiss, metric.pool) for name, metric in METRICS.items()}


# Chebyshev above --exact-max: FAISS' METRIC_Linf has no fast distance code, and its HNSW builds and searches slowly
# (70,000 Fashion-MNIST images: 168 s for a 240-d layer, growing with the dimension), where the compiled exact scan
# (precompute.kernels) ranked the same layer in 69 s. So a chebyshev ranking stays exact above --exact-max up to
# CHEBYSHEV_EXACT_FACTOR times it, for layers of CHEBYSHEV_EXACT_MIN_DIM dimensions or more (at 32-d, 22 s against
# 34 s, HNSW is the faster; the exact scan grows as n^2, HNSW about as n log n).
CHEBYSHEV_EXACT_FACTOR = 5
CHEBYSHEV_EXACT_MIN_DIM = 96


def uses_index(metric: str, n_images: int, dim: int, exact_max: int) -> bool:
    """Whether a layer's ranking under ``metric`` comes from a FAISS index (above ``exact_max`` images), or is exact.

    >>> uses_index("cosine", 70_000, 1280, 20_000), uses_index("chebyshev", 70_000, 1280, 20_000)
    (True, False)
    >>> uses_index("chebyshev", 70_000, 32, 20_000), uses_index("chebyshev", 150_000, 1280, 20_000)
    (True, True)
    """
    if n_images <= exact_max:
        return False
    if parse_metric(metric)[0] == "chebyshev":
        return dim < CHEBYSHEV_EXACT_MIN_DIM or n_images > CHEBYSHEV_EXACT_FACTOR * exact_max
    return True


@dataclass
class AnnIndex:
    """A FAISS index over a feature matrix, with the metric it serves and how it was built."""

    index: Any  # faiss.Index
    metric: str
    kind: str
    params: dict[str, int] = field(default_factory=dict)
    build_seconds: float = 0.0

    @property
    def n(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def search_name(self) -> str:
        """What the artifact index records under ``"search"``: ``faiss-hnsw``, ``faiss-ivf-flat``, ..."""
        return f"faiss-{self.kind}"


def check_params(kind: str, params: dict[str, Any] | None = None) -> dict[str, int]:
    """The kind's default parameters updated with ``params``; a ValueError names unknown kinds or keys."""
    if kind not in ANN_KINDS:
        raise ValueError(f"Unknown ANN index kind {kind!r}; valid kinds: {', '.join(ANN_KINDS)}.")
    merged = dict(ANN_KINDS[kind])
    for key, value in (params or {}).items():
        if key not in merged:
            valid = ", ".join(merged) or "none"
            raise ValueError(f"Unknown parameter {key!r} for a {kind} index; valid parameters: {valid}.")
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
            raise ValueError(f"ANN parameter {key} must be an integer >= 0, got {value!r}.")
        merged[key] = int(value)
    return merged


def parse_params(text: str) -> dict[str, int]:
    """``'M=32,ef_search=200'`` -> ``{'M': 32, 'ef_search': 200}`` (the CLI's ``--ann-params``)."""
    params = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"--ann-params wants KEY=INTEGER pairs separated by commas, got {part!r}.")
        params[key.strip()] = int(value)
    return params


def build_index(features: np.ndarray, metric: str, kind: str = DEFAULT_KIND, params: dict[str, Any] | None = None,
                seed: int = 0, chunk_rows: int = 16384) -> AnnIndex:
    """Build a FAISS index of ``features`` (n, dim) for ``metric``; rows are added chunk by chunk.

    ``features`` may be a memory map: only ``chunk_rows`` rows (plus the IVF training sample) are
    converted at a time, but the index itself holds every vector (n x dim float32, plus the HNSW graph).
    """
    import faiss

    family = _check_features_metric(features, metric)
    params = check_params(kind, params)
    n, dim = features.shape
    faiss_metric = getattr(faiss, METRIC_PLANS[family][0])
    start = time.perf_counter()
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, params["M"] or 32, faiss_metric)
        index.hnsw.efConstruction = params["ef_construction"]
        index.hnsw.efSearch = params["ef_search"]
    elif kind == "flat":
        index = faiss.IndexFlat(dim, faiss_metric)
    else:
        nlist = params["nlist"] or int(np.clip(round(4 * math.sqrt(n)), 1, max(1, min(n // 39, 1024))))
        params["nlist"] = nlist
        index = faiss.IndexIVFFlat(faiss.IndexFlat(dim, faiss_metric), dim, nlist, faiss_metric)
        index.cp.seed = seed
        sample = np.sort(np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False))
        index.train(_prepare(features[sample], family))
        index.nprobe = min(params["nprobe"] or 1, nlist)
    for lo in range(0, n, chunk_rows):
        index.add(_prepare(features[lo : lo + chunk_rows], family))
    return AnnIndex(index, metric, kind, params, time.perf_counter() - start)


def write_index(path: str | Path, ann: AnnIndex) -> None:
    """Save the FAISS index atomically under ``path`` (normally ``artifacts.faiss_index_path``)."""
    import faiss

    from precompute.artifacts import atomic_path

    with atomic_path(Path(path)) as tmp:
        faiss.write_index(ann.index, str(tmp))


def read_index(path: str | Path, metric: str, params: dict[str, Any] | None = None) -> AnnIndex:
    """Load an index written by :func:`write_index`; ``metric`` is the one it was built for (in its file name).

    ``params`` (as recorded in the artifact index) restores search-time settings (``nprobe``) that the FAISS
    file does not keep; ``ef_search`` is kept in the file for HNSW.
    """
    import faiss

    parse_metric(metric)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No FAISS index at {path}; rerun precompute above --exact-max to build one.")
    index = faiss.read_index(str(path))
    if isinstance(index, faiss.IndexHNSW):
        kind = "hnsw"
        stored = {"M": int(index.hnsw.nb_neighbors(1)), "ef_construction": int(index.hnsw.efConstruction),
                  "ef_search": int(index.hnsw.efSearch)}
    elif isinstance(index, faiss.IndexIVF):
        kind = "ivf-flat"
        stored = {"nlist": int(index.nlist), "nprobe": int(index.nprobe)}
    else:
        kind, stored = "flat", {}
    params = check_params(kind, {**stored, **(params or {})})
    if kind == "hnsw":
        index.hnsw.efSearch = params["ef_search"]
    elif kind == "ivf-flat":
        index.nprobe = min(params["nprobe"] or 1, int(index.nlist))
    return AnnIndex(index, metric, kind, params)


def load_layer_index(root: str | Path, dataset: str, model: str, layer: str, metric: str) -> AnnIndex | None:
    """The stored index of one (model, layer, metric) of a precompute run, or None where search was exact.

    Where it is comes from the artifact index (``precompute.artifacts.stored_faiss_index``); this reads the file.
    """
    from precompute import artifacts as art

    stored = art.stored_faiss_index(Path(root), dataset, model, layer, metric)
    if stored is None:
        return None
    path, params = stored
    return read_index(path, metric, params or None)


def search(query_features: np.ndarray, features: np.ndarray, metric: str, top_n: int = 15,
           index: AnnIndex | None = None, exclude: np.ndarray | None = None, chunk_rows: int = 1024,
           groups: np.ndarray | None = None, query_groups: np.ndarray | None = None) -> Ranking:
    """Top-N of each query among ``features``: exact without ``index``, FAISS candidates re-ranked with it.

    Parameters
    ----------
    query_features : array (n_queries, dim) or (dim,)
    features : array (n, dim), row i = image i (a memory map is fine: only candidate rows are read)
    metric : a name from ``similarity.METRICS`` or ``minkowski-p<P>``
    top_n : results per query (at most n, or n - 1 with ``exclude``)
    index : an :class:`AnnIndex` built on ``features`` for ``metric``; None searches exactly
    exclude : int array (n_queries,), a row to leave out of each query's results (the query itself), or -1
    groups, query_groups : class codes of the rows and of the queries, to count same-class ties at the cut

    Returns
    -------
    Ranking
        indices int32 (n_queries, k), best first; distances float32, exact under ``metric``; ties at the cut.
        With an index, a query can get fewer than k FAISS candidates (tiny or badly tuned IVF): missing
        slots hold index -1 and distance inf.
    """
    features = np.asarray(features) if not isinstance(features, np.memmap) else features
    queries = np.atleast_2d(np.asarray(query_features, dtype=np.float32))
    family = _check_features_metric(features, metric)
    if queries.ndim != 2 or queries.shape[1] != features.shape[1]:
        raise ValueError(f"Query shape {queries.shape} does not match the features' dim {features.shape[1]}.")
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=np.int64)
        if exclude.shape != (len(queries),):
            raise ValueError(f"exclude must have one entry per query ({len(queries)}), got shape {exclude.shape}.")
    k = min(int(top_n), len(features) - (0 if exclude is None else 1))
    if k < 1:
        raise ValueError(f"top_n must be >= 1 and the features must hold more rows, got top_n={top_n}.")
    parts = []
    for lo in range(0, len(queries), chunk_rows):
        block = queries[lo : lo + chunk_rows]
        skip = None if exclude is None else exclude[lo : lo + len(block)]
        block_groups = None if query_groups is None else np.asarray(query_groups)[lo : lo + len(block)]
        if index is None:
            parts.append(exact_rank(block, features, metric, k, skip, groups, block_groups))
            continue
        if index.metric != metric or index.dim != features.shape[1] or index.n != len(features):
            raise ValueError(f"The {index.metric} index ({index.n} x {index.dim}) was not built on these "
                             f"{metric} features ({features.shape[0]} x {features.shape[1]}).")
        pool = min(len(features), METRIC_PLANS[family][1] * (k + 1))
        if index.kind == "hnsw":
            index.index.hnsw.efSearch = max(index.params["ef_search"], pool)
        _, candidates = index.index.search(_prepare(block, family), pool)
        parts.append(rerank_candidates(block, features, candidates, metric, k, skip, groups, block_groups))
    return concat_rankings(parts)


def rank_neighbors(features: np.ndarray, metric: str, top_n: int = 50, index: AnnIndex | None = None,
                   chunk_rows: int = 1024, groups: np.ndarray | None = None,
                   progress: Callable[[int], None] | None = None) -> Ranking:
    """Top-N neighbours of every row among the others (itself excluded), as ``similarity.rank_neighbors_exact``
    returns them, but through ``index`` when one is given. Reads ``features`` ``chunk_rows`` rows at a time;
    ``progress`` is called with the rows done after each block."""
    n = len(features)
    if n < 2:
        raise ValueError(f"Need at least 2 images to rank neighbours, got {n}.")
    k = min(int(top_n), n - 1)
    parts = []
    for lo in range(0, n, chunk_rows):
        hi = min(lo + chunk_rows, n)
        parts.append(search(np.asarray(features[lo:hi]), features, metric, k, index, exclude=np.arange(lo, hi),
                            chunk_rows=chunk_rows, groups=groups,
                            query_groups=None if groups is None else np.asarray(groups)[lo:hi]))
        if progress is not None:
            progress(hi - lo)
    ranking = concat_rankings(parts)
    short = int((ranking.indices < 0).any(axis=1).sum())
    if short:
        raise ValueError(f"The {index.kind} index proposed fewer than {k} neighbours for {short} of {n} images; "
                         "search more of it (--ann-params nprobe=... or ef_search=...) or lower --top-n.")
    return ranking


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each row's exact top-k found in its approximate top-k."""
    k = min(k, exact.shape[1], approx.shape[1])
    hits = [len(np.intersect1d(a[:k], e[:k])) for a, e in zip(approx, exact, strict=True)]
    return float(np.mean(hits) / k)


# ------------------------------------------------------------------------------------------ private


def _check_features_metric(features: np.ndarray, metric: str) -> str:
    family, _ = parse_metric(metric)
    if len(getattr(features, "shape", ())) != 2 or features.shape[0] < 1:
        raise ValueError(f"features must be 2-D (n, dim) with n >= 1, got shape {getattr(features, 'shape', None)}.")
    return family


def _prepare(block: np.ndarray, family: str) -> np.ndarray:
    """float32, C-contiguous, L2-normalised rows for cosine (zero rows stay zero)."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    if family == "cosine":
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        block = block / np.where(norms > 0, norms, 1.0)
    return block


__all__ = ["ANN_KINDS", "AnnIndex", "METRIC_PLANS", "build_index", "check_params", "load_layer_index",
           "parse_params", "rank_neighbors", "read_index", "recall_at_k", "search", "write_index"]
