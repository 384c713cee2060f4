"""Distance metrics and the one exact search engine behind every ranking the tool shows.

Squared euclidean ranks exactly like euclidean, so it is not a separate metric; minkowski with
p = 2 *is* euclidean, so it is refused. A minkowski metric is named with its p: ``minkowski-p3``.

One engine, one set of formulas
-------------------------------
Every distance comes from :func:`pairwise_distances` (scikit-learn, float64) and is then rounded to float32,
the precision the artifacts store and the app shows. Results are ordered by that float32 distance, ties by
the lower row index. The pipeline's stored rankings (:func:`rank_neighbors_exact`), the app's uploads and deep
queries (:func:`search_exact`) and the re-ranking of FAISS candidates (:func:`rerank_candidates`) all go through
:func:`_select`, so a stored feature vector searched through the app returns the stored ranking exactly.
(Rounding to float32 also absorbs the last-bit differences that BLAS can make between a batch of queries and
a single one.)

Ties are reported, not hidden: two results at the same stored distance are tied, and which comes first is an
arbitrary (index) choice. :class:`Ranking` counts, per query, the candidates *outside* the top k that are tied
with the k-th result (and, given class groups, how many of them share the query's class), so that
:mod:`precompute.scores` can score every tie group by its expected value over all orders (McSherry and
Najork, ECIR 2008) instead of by the index order.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    """One metric family of :data:`METRICS`: what the rest of the tool needs to know of it.

    Attributes
    ----------
    scipy : SciPy ``cdist``'s name of its formula; None for cosine and euclidean, computed from one BLAS
        product by :func:`pairwise_distances` (scikit-learn's formulas)
    scan : how a search of a large set finds its candidates before the exact float64 ranking: ``"blas"`` (a
        float32 BLAS product), ``"kernel"`` (the compiled scans of :mod:`precompute.kernels`), or None (every
        distance in float64)
    faiss : the FAISS metric whose index proposes the candidates of an approximate search (:mod:`precompute.ann`)
    pool : how many candidates FAISS proposes per result wanted: ``pool x (k + 1)``
    browser : whether ``assets/private_search.js`` computes it, so that private mode can search in the browser;
        False is a deliberate exception (the browser then sends the feature vector and the server ranks), and
        tests/test_private_js.py fails on a registered metric the script lacks that is not marked so
    """

    scipy: str | None
    scan: str | None
    faiss: str
    pool: int
    browser: bool = True


# The registry every other module validates against and derives its lists from (the FAISS plans of
# precompute.ann, the metrics private mode computes in the browser, the tests' metric lists). Adding a metric is
# an entry here (with its formula in pairwise_distances unless SciPy has it) and its formula in
# assets/private_search.js.
METRICS: dict[str, Metric] = {
    "cosine": Metric(scipy=None, scan="blas", faiss="METRIC_INNER_PRODUCT", pool=2),
    "euclidean": Metric(scipy=None, scan="blas", faiss="METRIC_L2", pool=2),
    "manhattan": Metric(scipy="cityblock", scan="kernel", faiss="METRIC_L1", pool=2),
    "chebyshev": Metric(scipy="chebyshev", scan="kernel", faiss="METRIC_Linf", pool=2),
    # FAISS' HNSW ignores an Lp metric's p: minkowski borrows L2 candidates, twice as many (precompute.ann).
    "minkowski": Metric(scipy="minkowski", scan="kernel", faiss="METRIC_L2", pool=4),
}
DEFAULT_METRICS = ("cosine", "euclidean", "manhattan", "chebyshev")
DEFAULT_MINKOWSKI_P = 3.0
_MINKOWSKI = re.compile(r"^minkowski-p(\d+(?:\.\d+)?)$")


def metric_name(metric: str, p: float | None = None) -> str:
    """The canonical artifact name: ``minkowski`` becomes ``minkowski-p<p>``; others pass through checked."""
    if metric == "minkowski":
        p = DEFAULT_MINKOWSKI_P if p is None else float(p)
        if p < 1 or p == 2:
            raise ValueError(f"minkowski needs p >= 1 and p != 2 (p = 2 is euclidean), got p={p}.")
        return f"minkowski-p{p:g}"
    parse_metric(metric)
    return metric


def parse_metric(name: str) -> tuple[str, dict[str, float]]:
    """``'minkowski-p3'`` -> ``('minkowski', {'p': 3.0})``; a ValueError lists the valid names."""
    match = _MINKOWSKI.match(name)
    if match:
        p = float(match.group(1))
        if p < 1 or p == 2:
            raise ValueError(f"{name}: minkowski needs p >= 1 and p != 2.")
        return "minkowski", {"p": p}
    if name in METRICS and name != "minkowski":
        return name, {}
    raise ValueError(
        f"Unknown metric {name!r}. Valid metrics: {', '.join(m for m in METRICS if m != 'minkowski')}, "
        "minkowski-p<P> (e.g. minkowski-p3; p != 2)."
    )


def similarity_from_distance(metric: str, distances: np.ndarray) -> np.ndarray:
    """A similarity for display: cosine similarity for cosine, ``1 / (1 + d)`` for the others."""
    distances = np.asarray(distances, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - distances
    return 1.0 / (1.0 + distances)


def pairwise_distances(queries: np.ndarray, features: np.ndarray, metric: str) -> np.ndarray:
    """Distances (n_queries, n_features) under a named metric, in float64: the one set of formulas.

    - cosine: ``1 - <q, x> / (|q| |x|)``, clipped to [0, 2]; a zero vector has similarity 0 with everything
      (scikit-learn's convention).
    - euclidean: ``sqrt(max(|q|^2 + |x|^2 - 2 <q, x>, 0))`` (one BLAS product, as scikit-learn computes it).
    - manhattan, chebyshev, minkowski-pP: SciPy's ``cdist`` (exact per pair).

    Every ranking of the tool (stored, uploaded, deep, FAISS re-ranked) takes its distances from here.
    """
    from scipy.spatial.distance import cdist

    family, kwargs = parse_metric(metric)
    q = np.asarray(queries, dtype=np.float64)
    x = np.asarray(features, dtype=np.float64)
    if METRICS[family].scipy is None:  # cosine, euclidean
        q_sq = np.einsum("ij,ij->i", q, q)[:, None]
        return _blas_formula(family, q @ x.T, q_sq, np.einsum("ij,ij->i", x, x)[None, :])
    return cdist(q, x, metric=METRICS[family].scipy, **kwargs)


def _blas_formula(family: str, dots: np.ndarray, q_sq: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    """cosine or euclidean distances from float64 dot products and squared norms (arrays broadcasting to the dots'
    shape), element by element: the same value for a pair in any block."""
    if family == "euclidean":
        return np.sqrt(np.maximum(q_sq + x_sq - 2.0 * dots, 0.0))
    norms = np.sqrt(q_sq) * np.sqrt(x_sq)
    similarity = np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
    return np.clip(1.0 - similarity, 0.0, 2.0)


# Above this many feature values (n x dim), cosine and euclidean searches first scan in float32 BLAS and compute
# the exact float64 distances of the surviving candidates only: several times faster for one query over 1,000 x
# 1280 features and more, and the same results (every row that can reach the top k survives; _blas_candidates).
FLOAT64_SCAN_MAX = 500_000
# Manhattan, chebyshev and minkowski scan with the compiled kernels of precompute.kernels (float32 SIMD, every
# CPU) above the same size, and rank the surviving candidates with cdist (_kernel_candidates).
_BLAS_FAMILIES = tuple(name for name, metric in METRICS.items() if metric.scan == "blas")
_KERNEL_FAMILIES = tuple(name for name, metric in METRICS.items() if metric.scan == "kernel")
_SCAN_SLACK = 4.0  # safety factor on the float32 error bound


@dataclass(frozen=True)
class Ranking:
    """Ranked results of a batch of queries, with the ties at the cut-off counted.

    Attributes
    ----------
    indices : int32 array (n_queries, k)
        Row ids, best first; ties in index order. -1 marks a missing slot (an approximate index that
        proposed fewer than k candidates).
    distances : float32 array (n_queries, k)
        The distance of each result (inf in missing slots).
    tied_beyond : int32 array (n_queries,)
        Candidates outside the top k whose distance equals the k-th result's.
    tied_beyond_same : int32 array (n_queries,) or None
        Of those, how many share the query's group (class); None when no groups were given.

    ``indices, distances = ranking`` unpacks the two arrays, as the older tuple results did.
    """

    indices: np.ndarray
    distances: np.ndarray
    tied_beyond: np.ndarray
    tied_beyond_same: np.ndarray | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.indices, self.distances))


def top_k_from_distances(
    distances: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ranked top-k per row of a distance matrix, by float32 distance, ties broken by lower index.

    ``exclude[i]`` (a column index, or -1) is removed from row i's ranking (the query itself).
    """
    block = np.array(distances, dtype=np.float32, copy=True)
    _mask_excluded(block, exclude)
    k = min(k, block.shape[1] - (1 if exclude is not None else 0))
    ranking = _select(block, k)
    return ranking.indices, ranking.distances


def rank_neighbors_exact(
    features: np.ndarray,
    metric: str,
    top_n: int = 50,
    chunk_rows: int = 1024,
    groups: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> Ranking:
    """Exact top-N neighbours of every row among the other rows (the row itself excluded).

    Parameters
    ----------
    features : array (n, dim)
    metric : a name from ``METRICS`` or ``minkowski-p<P>``
    top_n : neighbours kept per row (at most n - 1)
    chunk_rows : queries ranked at once; memory is bounded by ``chunk_rows x n`` distances (and, from
        ``ALL_PAIRS_MIN_ROWS`` rows, by the ``n x n`` float32 scan of :func:`rank_neighbors_exact_many`)
    groups : int array (n,), optional
        Class code of each row; with it, :attr:`Ranking.tied_beyond_same` counts the tied candidates
        beyond the cut that share the query's class (what tie-aware scores need).
    progress : callable, optional
        Called with the number of rows ranked after each block of ``chunk_rows`` (a progress bar's ``update``).

    Returns
    -------
    Ranking
        indices int32 (n, min(top_n, n - 1)) best first, distances float32, and the ties at the cut.
    """
    return rank_neighbors_exact_many(features, [metric], top_n, chunk_rows, groups, progress)[metric]


# From this many rows, rank_neighbors_exact_many scans all pairs at once where the n x n float32 matrix fits
# max_matrix_bytes: each pair's approximate distance is computed once and serves both rows (half the work), and
# cosine and euclidean share one matrix of dot products (a quarter of the work for the pair of them).
ALL_PAIRS_MIN_ROWS = 2048
ALL_PAIRS_MAX_BYTES = 2**30


def rank_neighbors_exact_many(
    features: np.ndarray,
    metrics: list[str],
    top_n: int = 50,
    chunk_rows: int = 1024,
    groups: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    max_matrix_bytes: int = ALL_PAIRS_MAX_BYTES,
    seconds: dict[str, float] | None = None,
) -> dict[str, Ranking]:
    """:func:`rank_neighbors_exact` under several metrics: ``{metric: Ranking}``, the same rankings.

    From ``ALL_PAIRS_MIN_ROWS`` rows, where the ``n x n`` float32 matrix fits ``max_matrix_bytes``, the scan that
    proposes candidates covers all pairs at once (:func:`_all_pairs`): one float32 BLAS product of the features
    with themselves for cosine and euclidean together, and one compiled scan each for manhattan and chebyshev,
    each pair computed once and mirrored. The candidates then go through the same bounded-error rule and the same
    exact float64 re-rank as every other search, so the rankings are the ones :func:`rank` gives a block of
    queries at a time (tests/test_similarity.py). ``progress`` is called with each metric's rows as they are
    ranked; ``seconds`` (a dict) receives each metric's wall seconds, a shared scan split evenly.
    """
    features = np.asarray(features) if not isinstance(features, np.memmap) else features
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (n, dim), got shape {features.shape}")
    n = len(features)
    if n < 2:
        raise ValueError(f"Need at least 2 images to rank neighbours, got {n}.")
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    names = list(dict.fromkeys(metrics))
    families = {name: parse_metric(name) for name in names}
    seconds = {} if seconds is None else seconds
    rankings: dict[str, Ranking] = {}
    passes: list[list[str]] = []
    if n >= ALL_PAIRS_MIN_ROWS and 4 * n * n <= max_matrix_bytes:
        matrix = _finite_rows(features, np.float32)
        # Cosine and euclidean only where rank() would scan in float32 too: below FLOAT64_SCAN_MAX it computes every
        # distance in float64 from one BLAS product per block, whose last bits a product per query can differ from.
        wide = n * features.shape[1] > FLOAT64_SCAN_MAX
        blas = [name for name in names if families[name][0] in _BLAS_FAMILIES and wide]
        exact = matrix if features.dtype == np.float32 else np.asarray(features)
        scans = [name for name in names if families[name][0] in ("manhattan", "chebyshev")]
        if scans and not _scannable(exact, "manhattan", 1.0, features.shape[1]):  # chebyshev's rule is the same
            scans = []
        fused = len(scans) == 2 and 2 * 4 * n * n <= max_matrix_bytes  # manhattan and chebyshev in one scan
        passes = ([blas] if blas else []) + ([scans] if fused else [[name] for name in scans])
        if passes:
            for group in passes:
                rankings.update(
                    _all_pairs(matrix, exact, group, min(int(top_n), n - 1), chunk_rows, groups, progress, seconds)
                )
    for metric in names:
        if metric in rankings:
            continue
        start, parts = time.perf_counter(), []
        for lo in range(0, n, chunk_rows):
            hi = min(lo + chunk_rows, n)
            query_groups = None if groups is None else np.asarray(groups)[lo:hi]
            parts.append(
                rank(
                    np.asarray(features[lo:hi]),
                    features,
                    metric,
                    top_n,
                    exclude=np.arange(lo, hi),
                    groups=groups,
                    query_groups=query_groups,
                )
            )
            if progress is not None:
                progress(hi - lo)
        rankings[metric] = concat_rankings(parts)
        seconds[metric] = seconds.get(metric, 0.0) + time.perf_counter() - start
    return {metric: rankings[metric] for metric in names}


# n x n float32 matrices of all-pairs scans, kept between calls inside ``reused_scans()`` (else None).
_SCAN_MATRICES: list[np.ndarray] | None = None


@contextmanager
def reused_scans() -> Iterator[None]:
    """Within it, each all-pairs scan (:func:`rank_neighbors_exact_many`) takes its ``n x n`` matrices from the
    previous scan's instead of new ones, and hands them back for the next; released at the end. A new matrix is
    mapped, faulted in and zeroed page by page by the kernel on its first write: 400 MB at 10,000 images, up to three
    per layer, 12 s of the 44 rankings of a 10,000-image run (docs/benchmarks.md section 19, round 4). No more are
    held than one scan uses at once (two at most: manhattan's and chebyshev's), so the run's peak does not grow. The
    layer stage holds it over one model's layers (one thread)."""
    global _SCAN_MATRICES
    if _SCAN_MATRICES is not None:  # nested: the outer one keeps and releases them
        yield
        return
    _SCAN_MATRICES = []
    try:
        yield
    finally:
        _SCAN_MATRICES = None


def _scan_matrix(n: int) -> np.ndarray:
    """An ``n x n`` float32 matrix: one kept by ``reused_scans()`` if it has one of that size, else a new one."""
    if _SCAN_MATRICES:
        kept = [i for i, m in enumerate(_SCAN_MATRICES) if m.shape == (n, n)]
        if kept:
            return _SCAN_MATRICES.pop(kept[0])
        _SCAN_MATRICES.clear()  # another size: let the old ones go before the new one is mapped
    return np.empty((n, n), dtype=np.float32)


@contextmanager
def _scan_matrices(n: int, keys: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """An ``n x n`` float32 matrix per key (:func:`_scan_matrix`), kept for the next scan at the end inside
    ``reused_scans()``."""
    full = {key: _scan_matrix(n) for key in keys}
    try:
        yield full
    finally:
        if _SCAN_MATRICES is not None:
            _SCAN_MATRICES.extend(full.values())


def _all_pairs(
    matrix: np.ndarray,
    exact: np.ndarray,
    metrics: list[str],
    k: int,
    chunk_rows: int,
    groups: np.ndarray | None,
    progress: Callable[[int], None] | None,
    seconds: dict[str, float],
) -> dict[str, Ranking]:
    """Rank every row under ``metrics`` from one all-pairs scan: cosine and/or euclidean (one matrix of dot
    products), or manhattan and/or chebyshev (a matrix each, both from one compiled pass when both are asked).

    ``matrix`` holds the float32 features the scan reads, ``exact`` the features the float64 re-rank reads. Each
    ``n x n`` scan is filled one block of rows at a time: the block's pairs with itself and every later row are
    computed, and mirrored into the later rows' columns, so when a block is reached its rows are complete.
    """
    from precompute import kernels

    n, dim = matrix.shape
    names = [parse_metric(metric)[0] for metric in metrics]
    blas = names[0] in _BLAS_FAMILIES
    with _scan_matrices(n, ["dots"] if blas else names) as full:
        squares = np.einsum("ij,ij->i", matrix, matrix)
        norms = np.sqrt(squares)
        largest = float(squares.max(initial=0.0))
        parts: dict[str, list[Ranking]] = {metric: [] for metric in metrics}
        for lo in range(0, n, chunk_rows):
            hi = min(lo + chunk_rows, n)
            start = time.perf_counter()
            if blas:
                uppers = {"dots": matrix[lo:hi] @ matrix[lo:].T}
            elif len(names) == 2:
                uppers = dict(
                    zip(
                        ("manhattan", "chebyshev"),
                        kernels.scan_manhattan_chebyshev(matrix[lo:hi], matrix[lo:]),
                        strict=True,
                    )
                )
            else:
                uppers = {names[0]: kernels.scan_distances(matrix[lo:hi], matrix[lo:], names[0])}
            for key, upper in uppers.items():
                full[key][lo:hi, lo:] = upper
                full[key][hi:, lo:hi] = upper[:, hi - lo :].T
            shared = (time.perf_counter() - start) / len(metrics)
            queries, exclude = matrix[lo:hi], np.arange(lo, hi)
            query_groups = None if groups is None else np.asarray(groups)[lo:hi]
            for metric, name in zip(metrics, names, strict=True):
                start = time.perf_counter()
                rows = full["dots" if blas else name][lo:hi]
                if name == "cosine":  # as _blas_candidates: the products divided by both norms
                    scale = np.where(norms[lo:hi] > 0, norms[lo:hi], 1.0)[:, None]
                    approx = 1.0 - np.divide(rows / scale, norms, out=np.zeros(rows.shape, np.float32), where=norms > 0)
                    candidates = _blas_keep(approx, queries, name, dim, largest, k, exclude)
                elif name == "euclidean":
                    candidates = _blas_keep(squares - 2.0 * rows, queries, name, dim, largest, k, exclude)
                else:
                    candidates = _kernel_keep(rows.copy(), name, 1.0, dim, k, exclude)
                parts[metric].append(
                    rerank_candidates(exact[lo:hi], exact, candidates, metric, k, exclude, groups, query_groups)
                )
                seconds[metric] = seconds.get(metric, 0.0) + shared + time.perf_counter() - start
                if progress is not None:
                    progress(hi - lo)
        return {metric: concat_rankings(found) for metric, found in parts.items()}


def search_exact(
    query_features: np.ndarray, features: np.ndarray, metric: str, top_n: int = 15, exclude: np.ndarray | None = None
) -> Ranking:
    """Exact top-N of new queries (n_queries, dim) or (dim,) against a dataset's features.

    ``exclude`` (int (n_queries,), -1 for none) leaves one row out of each query's results (the query itself
    when it is a dataset image). The same engine as :func:`rank_neighbors_exact`: a dataset image's features,
    searched with ``exclude`` set to its row, return its stored ranking exactly.
    """
    query_features = np.atleast_2d(np.asarray(query_features))
    if query_features.shape[1] != features.shape[1]:
        raise ValueError(f"Query dim {query_features.shape[1]} != dataset dim {features.shape[1]}.")
    return rank(query_features, features, metric, top_n, exclude=exclude)


def rank(
    queries: np.ndarray,
    features: np.ndarray,
    metric: str,
    top_n: int,
    exclude: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
    feature_chunk: int = 8192,
) -> Ranking:
    """The exact engine: every feature row is a candidate; distances float64, rounded to float32, ranked.

    ``features`` may be a memory map: ``feature_chunk`` rows are converted at a time, while the
    (n_queries, n) float32 distances are kept whole (callers chunk the queries).
    """
    parse_metric(metric)
    queries = np.atleast_2d(np.asarray(queries))
    if queries.ndim != 2 or len(getattr(features, "shape", ())) != 2 or queries.shape[1] != features.shape[1]:
        raise ValueError(
            f"Query shape {queries.shape} does not match the features' shape {getattr(features, 'shape', None)}."
        )
    if not np.isfinite(queries).all():
        bad = int((~np.isfinite(queries)).any(axis=1).sum())
        raise ValueError(f"{bad} feature rows contain NaN or inf; the model produced invalid features.")
    n = len(features)
    exclude = _check_exclude(exclude, len(queries))
    k = min(int(top_n), n - (0 if exclude is None else 1))
    if k < 1:
        raise ValueError(f"top_n must be >= 1 and the features must hold more rows, got top_n={top_n}.")
    family, kwargs = parse_metric(metric)
    if family in _BLAS_FAMILIES and n * features.shape[1] > FLOAT64_SCAN_MAX:
        candidates = _blas_candidates(queries, features, family, k, exclude, feature_chunk)
        return rerank_candidates(queries, features, candidates, metric, k, exclude, groups, query_groups)
    if family in _KERNEL_FAMILIES and n * features.shape[1] > FLOAT64_SCAN_MAX:
        candidates = _kernel_candidates(queries, features, family, kwargs.get("p", 1.0), k, exclude, feature_chunk)
        if candidates is not None:  # None: values a compiled scan cannot bound (not float32, or huge)
            return rerank_candidates(queries, features, candidates, metric, k, exclude, groups, query_groups)
    block = np.empty((len(queries), n), dtype=np.float32)
    for lo in range(0, n, feature_chunk):
        chunk = np.asarray(features[lo : lo + feature_chunk])
        if not np.isfinite(chunk).all():
            bad = int((~np.isfinite(chunk)).any(axis=1).sum())
            raise ValueError(f"{bad} feature rows contain NaN or inf; the model produced invalid features.")
        block[:, lo : lo + len(chunk)] = pairwise_distances(queries, chunk, metric)
    _mask_excluded(block, exclude)
    return _select(block, k, groups=groups, query_groups=query_groups)


def rerank_candidates(
    queries: np.ndarray,
    features: np.ndarray,
    candidates: np.ndarray,
    metric: str,
    k: int,
    exclude: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
) -> Ranking:
    """Rank each query's own candidate rows (an approximate index's proposals) exactly, as :func:`rank` would.

    ``candidates`` int (n_queries, m), -1 for none. The distances come from the same formulas and the same
    float32 ordering as the exact engine, so a candidate list holding a query's true top k gives its exact
    top k. Ties at the cut are counted among the candidates only (an index does not see the others).
    """
    queries = np.atleast_2d(np.asarray(queries))
    candidates = np.asarray(candidates, dtype=np.int64)
    exclude = _check_exclude(exclude, len(queries))
    valid = candidates >= 0
    if exclude is not None:
        valid &= candidates != exclude[:, None]
    ids = np.where(valid, candidates, np.iinfo(np.int64).max)
    return _select(
        _candidate_distances(queries, features, ids, metric), k, ids=ids, groups=groups, query_groups=query_groups
    )


def _candidate_distances(queries: np.ndarray, features: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """The float32 distance of each query to each of its own candidates (``ids``: a huge id marks no candidate,
    whose distance is inf), each value exactly what :func:`pairwise_distances` gives for one query against its
    candidates read in row order.

    manhattan and chebyshev: the compiled loop of :func:`precompute.kernels.exact_distances` (cdist's order of
    operations, every CPU). cosine and euclidean: :func:`_blas_candidate_distances`. minkowski one query at a time.
    """
    family, _ = parse_metric(metric)
    order = np.argsort(ids, axis=1, kind="stable")  # each query's candidates in row order (memory maps; BLAS)
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    counts = (sorted_ids < np.iinfo(np.int64).max).sum(axis=1)
    found = np.full(ids.shape, np.inf, dtype=np.float32)
    if family in ("manhattan", "chebyshev"):
        from precompute import kernels

        kernels.exact_distances(queries, features, sorted_ids, counts, family, found)  # reads t < counts[r] only
    elif family in _BLAS_FAMILIES:
        _blas_candidate_distances(queries, features, sorted_ids, counts, family, found)
    else:
        for row in np.flatnonzero(counts):
            vectors = np.asarray(features[sorted_ids[row, : counts[row]]])
            found[row, : counts[row]] = pairwise_distances(queries[row : row + 1], vectors, metric)[0]
    distances = np.empty_like(found)
    np.put_along_axis(distances, order, found, axis=1)
    return distances


def _blas_candidate_distances(
    queries: np.ndarray, features: np.ndarray, sorted_ids: np.ndarray, counts: np.ndarray, family: str, out: np.ndarray
) -> None:
    """cosine or euclidean distances of each query to its first ``counts[r]`` candidates ``sorted_ids[r]`` (row
    order), into float32 ``out``: bit for bit what :func:`pairwise_distances` gives one query against its candidates.

    Only the dot products need a call per query (the same BLAS matrix-vector product, same shapes: its last bits
    depend on them). The squared norms are each row's own float64 sum, the same in any array (computed once per
    distinct candidate), and the rest of the formula is element by element, so it runs over the whole block.
    """
    width = sorted_ids.shape[1]
    valid = np.arange(width)[None, :] < counts[:, None]
    distinct, where = np.unique(sorted_ids[valid], return_inverse=True)
    squares = np.empty(len(distinct))
    for lo in range(0, len(distinct), 4096):
        rows = np.asarray(features[distinct[lo : lo + 4096]], dtype=np.float64)
        squares[lo : lo + 4096] = np.einsum("ij,ij->i", rows, rows)
    x_sq = np.zeros(sorted_ids.shape)
    x_sq[valid] = squares[where]
    q = np.asarray(queries, dtype=np.float64)
    q_sq = np.einsum("ij,ij->i", q, q)[:, None]
    dots = np.zeros(sorted_ids.shape)
    for row in np.flatnonzero(counts):
        vectors = np.asarray(features[sorted_ids[row, : counts[row]]], dtype=np.float64)
        dots[row, : counts[row]] = (q[row : row + 1] @ vectors.T)[0]
    out[valid] = _blas_formula(family, dots, q_sq, x_sq)[valid]


def _blas_candidates(
    queries: np.ndarray, features: np.ndarray, family: str, k: int, exclude: np.ndarray | None, feature_chunk: int
) -> np.ndarray:
    """Every row that can be in a query's exact top k (ties at the cut included), from a float32 BLAS scan.

    The scan's error is bounded (float32 dot products of ``dim`` terms: at most ``dim`` units in the last place
    of the largest possible product), so keeping every row within ``_SCAN_SLACK`` of that bound of the k-th
    approximate distance keeps every row whose exact distance can reach the k-th exact one. Returns int64
    (n_queries, m) row ids, -1 padded.
    """
    dim = features.shape[1]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if family == "cosine":
        q = q / np.where((norms := np.linalg.norm(q, axis=1, keepdims=True)) > 0, norms, 1.0)
    approx = np.empty((len(q), len(features)), dtype=np.float32)
    largest = 0.0
    for lo in range(0, len(features), feature_chunk):
        chunk = _finite_rows(features[lo : lo + feature_chunk], np.float32)
        squares = np.einsum("ij,ij->i", chunk, chunk)
        if family == "cosine":  # divide the products, not the chunk: one pass over the features less
            norms = np.sqrt(squares)
            approx[:, lo : lo + len(chunk)] = 1.0 - np.divide(
                q @ chunk.T, norms, out=np.zeros((len(q), len(chunk)), np.float32), where=norms > 0
            )
        else:  # squared euclidean less the query's own |q|^2, which does not change the order
            approx[:, lo : lo + len(chunk)] = squares - 2.0 * (q @ chunk.T)
            largest = max(largest, float(squares.max(initial=0.0)))
    return _blas_keep(approx, np.ascontiguousarray(queries, dtype=np.float32), family, dim, largest, k, exclude)


def _blas_keep(
    approx: np.ndarray, queries: np.ndarray, family: str, dim: int, largest: float, k: int, exclude: np.ndarray | None
) -> np.ndarray:
    """The candidates of :func:`_blas_candidates` from its float32 scan ``approx`` (cosine distances, or squared
    euclidean ones less each query's own squared norm); ``largest`` is the features' largest squared norm."""
    _mask_excluded(approx, exclude)
    unit = float(np.finfo(np.float32).eps)
    if family == "cosine":
        slack = np.full(len(queries), _SCAN_SLACK * (dim + 2) * unit)
    else:
        scale = (np.sqrt(np.einsum("ij,ij->i", queries, queries)) + np.sqrt(largest)) ** 2
        slack = _SCAN_SLACK * (dim + 2) * unit * scale
    kth = _kth_smallest(approx, k)
    keep = approx <= (kth + slack)[:, None]
    return _padded_ids(keep)


def _kth_smallest(values: np.ndarray, k: int, rows: int = 64) -> np.ndarray:
    """Each row's k-th smallest value (``np.partition``'s), partitioning ``rows`` rows at a time in one reused
    buffer: a copy of the whole block (hundreds of MB at 70,000 columns) cost more in fresh pages than the
    partition itself."""
    kth = np.empty(len(values), dtype=values.dtype)
    buffer = np.empty((min(rows, len(values)), values.shape[1]), dtype=values.dtype)
    for lo in range(0, len(values), rows):
        part = buffer[: min(rows, len(values) - lo)]
        np.copyto(part, values[lo : lo + len(part)])
        part.partition(k - 1, axis=1)
        kth[lo : lo + len(part)] = part[:, k - 1]
    return kth


def _finite_rows(rows: np.ndarray, dtype: type | None = None) -> np.ndarray:
    """``rows`` as a contiguous array (of ``dtype``), else a ValueError naming how many rows hold NaN or inf."""
    rows = np.ascontiguousarray(rows, dtype=dtype)
    if not np.isfinite(rows).all():
        bad = int((~np.isfinite(rows)).any(axis=1).sum())
        raise ValueError(f"{bad} feature rows contain NaN or inf; the model produced invalid features.")
    return rows


def _padded_ids(keep: np.ndarray) -> np.ndarray:
    """The column ids of each row's True cells, ``(n_rows, widest row)`` int64, short rows padded with -1."""
    width = int(keep.sum(axis=1).max())
    candidates = np.full((len(keep), width), -1, dtype=np.int64)
    for row in range(len(keep)):
        ids = np.flatnonzero(keep[row])
        candidates[row, : ids.size] = ids
    return candidates


def _kernel_candidates(
    queries: np.ndarray,
    features: np.ndarray,
    family: str,
    p: float,
    k: int,
    exclude: np.ndarray | None,
    feature_chunk: int,
) -> np.ndarray | None:
    """Every row that can be in a query's exact top k (ties at the cut included), from a compiled scan.

    The scan (:func:`precompute.kernels.scan_distances`) is within a relative error ``e``
    (:func:`precompute.kernels.relative_error`) of each exact distance: its terms are non-negative, so the
    error of a sum or a maximum is relative to the distance itself. A row whose exact distance reaches the k-th
    exact one, or rounds to the same float32 (a tie), then has a scan value at most ``kth (1 + e) / (1 - e)``
    times ``1 + 2 eps32``, ``kth`` the k-th scan value; ``e`` is taken ``_SCAN_SLACK`` times larger, and an
    absolute term covers float32 subnormals (flushed to zero or not). Returns int64 (n_queries, m) row ids,
    -1 padded; None where the values are not float32 or large enough to overflow the scan, which the caller
    then ranks the slow way.
    """
    from precompute import kernels

    dim = features.shape[1]
    q = np.asarray(queries)
    if not _scannable(q, family, p, dim):
        return None
    approx = np.empty((len(q), len(features)), dtype=np.float64 if family == "minkowski" else np.float32)
    for lo in range(0, len(features), feature_chunk):
        chunk = _finite_rows(features[lo : lo + feature_chunk])
        if not _scannable(chunk, family, p, dim):
            return None
        kernels.scan_distances(q, chunk, family, p, out=approx[:, lo : lo + len(chunk)])
    return _kernel_keep(approx, family, p, dim, k, exclude)


def _kernel_keep(approx: np.ndarray, family: str, p: float, dim: int, k: int, exclude: np.ndarray | None) -> np.ndarray:
    """The candidates of :func:`_kernel_candidates` from its scan ``approx``."""
    from precompute import kernels

    _mask_excluded(approx, exclude)
    error = _SCAN_SLACK * kernels.relative_error(family, dim, p)
    tiny = float(np.finfo(np.float32).tiny)
    exponent = {"manhattan": 1.0, "chebyshev": np.inf, "minkowski": p}[family]
    absolute = 2 * tiny * dim ** (1 / exponent)
    if family == "minkowski":
        absolute += (dim * float(np.finfo(np.float64).tiny)) ** (1 / p)
    kth = _kth_smallest(approx, k).astype(np.float64)
    bound = kth * ((1 + error) / (1 - error)) * (1 + 2 * float(np.finfo(np.float32).eps)) + _SCAN_SLACK * absolute
    keep = approx <= bound[:, None]
    return _padded_ids(keep)


def _scannable(values: np.ndarray, family: str, p: float, dim: int) -> bool:
    """Whether a compiled scan bounds its error on these rows: float32 values (exactly), far from overflow."""
    if values.dtype != np.float32 and not np.array_equal(values.astype(np.float32), values):
        return False
    largest = 2.0 * float(np.abs(values).max(initial=0.0))  # bounds every difference with rows as large
    if family == "minkowski":  # float64 powers: (2 max)^p dim must stay far below 1e308
        return largest == 0 or p * np.log10(largest) + np.log10(dim) < 300
    return largest * dim < 1e37  # float32 sums (and maxima) far below 3.4e38


def _mask_excluded(block: np.ndarray, exclude: np.ndarray | None) -> None:
    """Set ``block[i, exclude[i]]`` to inf in place where ``exclude[i] >= 0`` (each query's own row left out)."""
    if exclude is not None:
        exclude = np.asarray(exclude)
        rows = np.flatnonzero(exclude >= 0)
        block[rows, exclude[rows]] = np.inf


def _check_exclude(exclude: np.ndarray | None, n_queries: int) -> np.ndarray | None:
    if exclude is None:
        return None
    exclude = np.atleast_1d(np.asarray(exclude, dtype=np.int64))
    if exclude.shape != (n_queries,):
        raise ValueError(f"exclude must have one entry per query ({n_queries}), got shape {exclude.shape}.")
    return exclude


def _select(
    block: np.ndarray,
    k: int,
    ids: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    query_groups: np.ndarray | None = None,
) -> Ranking:
    """Top k of each row of a float32 distance block, by (distance, id); the ties at the cut counted.

    ``ids`` (b, m) gives each column's row id per query (candidate lists); None means column j is row j.
    ``groups`` (n,) and ``query_groups`` (b,) are class codes for :attr:`Ranking.tied_beyond_same`.
    Excluded or missing columns hold inf.
    """
    n_rows, n_cols = block.shape
    k = min(k, n_cols)
    if ids is None:
        if k < n_cols:
            part = np.argpartition(block, k - 1, axis=1)[:, :k]
            kth = np.take_along_axis(block, part, axis=1).max(axis=1)
            # argpartition may cut inside a tie group: there, the lowest indices of the group must be kept.
            crossing = np.flatnonzero((block <= kth[:, None]).sum(axis=1) > k)
            if crossing.size:
                part[crossing] = np.argsort(block[crossing], axis=1, kind="stable")[:, :k]
        else:
            part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
        columns = part
        top_ids = part
    else:
        columns = np.lexsort((ids, block), axis=1)[:, :k]
        top_ids = np.take_along_axis(ids, columns, axis=1)
    top_dist = np.take_along_axis(block, columns, axis=1)
    order = np.lexsort((top_ids, top_dist), axis=1)
    top_ids = np.take_along_axis(top_ids, order, axis=1)
    top_dist = np.take_along_axis(top_dist, order, axis=1)
    found = np.isfinite(top_dist)
    kth = top_dist[:, -1:]
    at_cut = block == kth
    inside = top_dist == kth
    tied = np.where(found[:, -1], at_cut.sum(axis=1) - inside.sum(axis=1), 0)
    tied_same = None
    if groups is not None:
        groups = np.asarray(groups)
        query_groups = np.asarray(query_groups)[:, None]
        if ids is None:
            same = groups[None, :] == query_groups
        else:
            known = ids < len(groups)  # missing candidates hold a huge id
            same = known & (groups[np.where(known, ids, 0)] == query_groups)
        top_same = groups[np.where(found, top_ids, 0)] == query_groups
        tied_same = np.where(found[:, -1], (at_cut & same).sum(axis=1) - (inside & top_same).sum(axis=1), 0)
        tied_same = tied_same.astype(np.int32)
    return Ranking(
        np.where(found, top_ids, -1).astype(np.int32), top_dist.astype(np.float32), tied.astype(np.int32), tied_same
    )


def concat_rankings(parts: list[Ranking]) -> Ranking:
    """The rankings of consecutive query blocks as one."""
    same = None if parts[0].tied_beyond_same is None else np.concatenate([p.tied_beyond_same for p in parts])
    return Ranking(
        np.concatenate([p.indices for p in parts]),
        np.concatenate([p.distances for p in parts]),
        np.concatenate([p.tied_beyond for p in parts]),
        same,
    )
