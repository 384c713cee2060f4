"""Compiled distance kernels for the metrics that are not matrix products: manhattan, chebyshev, minkowski-pP.

They only *scan*: :func:`precompute.similarity.rank` uses the block of approximate distances they write to find
every row that can reach a query's exact top k (ties at the cut included), and the exact float64 formulas of
:func:`precompute.similarity.pairwise_distances` then rank those candidates. So their rounding never reaches a
stored ranking; it is bounded (:func:`relative_error`) and the candidate rule allows for it.

- manhattan and chebyshev are computed in float32: ``|a - b|`` has one rounding (relative error at most u, the
  float32 unit roundoff), a maximum is exact, and a sum of ``dim`` non-negative terms in any order is within
  ``(dim - 1) u`` of its exact value *relative to the sum itself*. The compiled loop may therefore reorder the
  sum for SIMD (``fastmath`` reassociation) without changing the bound.
- minkowski-pP is computed in float64 (``|a - b| ** p`` would underflow float32 for close vectors), the same
  argument with float64's unit roundoff and a few more roundings for the powers and the root.

Queries and features are float32 rows (the features the pipeline stores), checked finite by the caller.
Queries are processed four at a time against blocks of feature rows small enough to stay in cache, the queries
split between threads (one per CPU; the compiled loops release the GIL).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

KERNEL_FAMILIES = ("manhattan", "chebyshev", "minkowski")
_MAX_INTEGER_POWER = 8  # minkowski p up to this integer: |d| ** p by multiplications (vectorised) instead of pow


def relative_error(family: str, dim: int, p: float | None = None) -> float:
    """A bound on ``|scan - exact| / exact`` for one distance of :func:`scan_distances` (before any safety factor).

    manhattan: ``dim`` float32 roundings of non-negative terms and their sum; chebyshev: one rounding of the
    difference (the maximum is exact); minkowski: in float64, the difference, the power (``2 p`` units: the
    difference's error raised to ``p``, and ``p - 1`` products or ``pow``), the sum, then the root (which divides
    the relative error by ``p``) and its own rounding.
    """
    u32 = float(np.finfo(np.float32).eps) / 2
    if family == "manhattan":
        return (dim + 2) * u32
    if family == "chebyshev":
        return 2 * u32
    if family == "minkowski":
        u64 = float(np.finfo(np.float64).eps) / 2
        return ((dim + 2 * p + 4) / p + 2) * u64
    raise ValueError(f"No scan kernel for the {family!r} family; kernels exist for {', '.join(KERNEL_FAMILIES)}.")


def scan_distances(
    queries: np.ndarray,
    features: np.ndarray,
    family: str,
    p: float = 1.0,
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Approximate distances (n_queries, n) of float32 ``queries`` (b, dim) to float32 ``features`` (n, dim).

    Returns float32 for manhattan and chebyshev, float64 for minkowski, each value within
    :func:`relative_error` of the exact distance, relative to it. ``threads`` (default: the CPUs this process
    may use) split the queries; the kernels release the GIL. ``out`` (that dtype and shape; a block of columns of
    a wider array, say) receives them instead of a new array.
    """
    if family not in KERNEL_FAMILIES:
        relative_error(family, 1)  # raises, naming the families
    q = np.ascontiguousarray(queries, dtype=np.float32)
    x = np.ascontiguousarray(features, dtype=np.float32)
    dtype = np.float64 if family == "minkowski" else np.float32
    if out is None:
        out = np.empty((len(q), len(x)), dtype=dtype)
    elif out.shape != (len(q), len(x)) or out.dtype != dtype:
        raise ValueError(f"out must be {np.dtype(dtype).name} of shape {(len(q), len(x))}, got {out.dtype} {out.shape}")
    result, out = out, (out if family == "minkowski" else out.view(np.int32))
    kernel = _kernels()[family]
    power = float(p)
    integer_power = int(power) if power == int(power) and power <= _MAX_INTEGER_POWER else 0

    def work(lo: int, hi: int) -> None:
        if family == "minkowski":
            kernel(q[lo:hi], x, power, integer_power, out[lo:hi])
        else:
            kernel(q[lo:hi], x, out[lo:hi])

    _in_threads(work, len(q), threads, tile=4)
    # Non-negative float32 values order like their bit patterns read as integers: the chebyshev and manhattan
    # kernels keep their float32 results in int32 storage (the chebyshev maximum is taken on the bits).
    return result


def scan_manhattan_chebyshev(
    queries: np.ndarray, features: np.ndarray, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`scan_distances` for manhattan and chebyshev at once (float32 each, the same values and bounds): one
    pass over the features, each difference taken once for both."""
    from precompute import _kernels_numba as compiled

    q = np.ascontiguousarray(queries, dtype=np.float32)
    x = np.ascontiguousarray(features, dtype=np.float32)
    out_sum = np.empty((len(q), len(x)), dtype=np.int32)
    out_max = np.empty((len(q), len(x)), dtype=np.int32)
    _in_threads(
        lambda lo, hi: compiled.manhattan_chebyshev(q[lo:hi], x, out_sum[lo:hi], out_max[lo:hi]),
        len(q),
        threads,
        tile=4,
    )
    return out_sum.view(np.float32), out_max.view(np.float32)


def exact_distances(
    queries: np.ndarray,
    features: np.ndarray,
    ids: np.ndarray,
    counts: np.ndarray,
    family: str,
    out: np.ndarray,
    threads: int | None = None,
) -> None:
    """Exact manhattan or chebyshev distances of each query to its own candidates, into float32 ``out``.

    ``out[r, t]`` gets the distance of ``queries[r]`` to ``features[ids[r, t]]`` for ``t < counts[r]``, computed
    in float64 exactly as SciPy's ``cdist`` computes it and rounded to float32: what
    :func:`precompute.similarity.pairwise_distances` gives, without a NumPy call per query. Rows are split
    between ``threads`` (default: every CPU this process may use); the loop releases the GIL.
    """
    if family not in ("manhattan", "chebyshev"):
        raise ValueError(f"No exact kernel for {family!r}: manhattan and chebyshev only.")
    from precompute import _kernels_numba as compiled

    q, x = np.ascontiguousarray(queries), np.asarray(features)
    ids, counts = np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(counts, dtype=np.int64)
    chebyshev = family == "chebyshev"
    _in_threads(
        lambda lo, hi: compiled.exact_rows(q[lo:hi], x, ids[lo:hi], counts[lo:hi], chebyshev, out[lo:hi]),
        len(q),
        threads,
    )


def _in_threads(work: Callable[[int, int], None], rows: int, threads: int | None, tile: int = 1) -> None:
    """Call ``work(lo, hi)`` on consecutive row ranges covering ``rows``, one per thread (default: every CPU this
    process may use), each range a multiple of ``tile`` rows but the last; the compiled loops release the GIL."""
    from concurrent.futures import ThreadPoolExecutor

    threads = max(1, min(threads or default_threads(), (rows + tile - 1) // tile))
    bounds = np.linspace(0, rows, threads + 1).astype(int) // tile * tile
    bounds[-1] = rows
    parts = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
    if len(parts) == 1:
        work(*parts[0])
    else:
        with ThreadPoolExecutor(len(parts)) as pool:
            list(pool.map(lambda part: work(*part), parts))


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _kernels() -> dict:
    """The three compiled kernels (``precompute._kernels_numba``, imported on first use)."""
    from precompute import _kernels_numba as compiled

    return {"manhattan": compiled.manhattan, "chebyshev": compiled.chebyshev, "minkowski": compiled.minkowski}
