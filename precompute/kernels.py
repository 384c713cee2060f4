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

import numpy as np

# Feature rows per block: 64 x 1,280 float32 = 320 KB, in the L2 cache of a core while 4 queries at a time read it.
_FEATURE_BLOCK = 64
_FASTMATH = {"reassoc", "nsz", "nnan", "ninf", "contract"}  # inputs are checked finite before a scan
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


def scan_distances(queries: np.ndarray, features: np.ndarray, family: str, p: float = 1.0,
                   threads: int | None = None) -> np.ndarray:
    """Approximate distances (n_queries, n) of float32 ``queries`` (b, dim) to float32 ``features`` (n, dim).

    Returns float32 for manhattan and chebyshev, float64 for minkowski, each value within
    :func:`relative_error` of the exact distance, relative to it. ``threads`` (default: the CPUs this process
    may use) split the queries; the kernels release the GIL.
    """
    from concurrent.futures import ThreadPoolExecutor

    if family not in KERNEL_FAMILIES:
        relative_error(family, 1)  # raises, naming the families
    q = np.ascontiguousarray(queries, dtype=np.float32)
    x = np.ascontiguousarray(features, dtype=np.float32)
    out = np.empty((len(q), len(x)), dtype=np.float64 if family == "minkowski" else np.int32)
    kernel = _kernels()[family]
    power = float(p)
    integer_power = int(power) if power == int(power) and power <= _MAX_INTEGER_POWER else 0
    threads = max(1, min(threads or default_threads(), (len(q) + 3) // 4))
    bounds = np.linspace(0, len(q), threads + 1).astype(int) // 4 * 4
    bounds[-1] = len(q)
    parts = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]

    def work(part: tuple[int, int]) -> None:
        lo, hi = part
        if family == "minkowski":
            kernel(q[lo:hi], x, power, integer_power, out[lo:hi])
        else:
            kernel(q[lo:hi], x, out[lo:hi])

    if len(parts) == 1:
        work(parts[0])
    else:
        with ThreadPoolExecutor(len(parts)) as pool:
            list(pool.map(work, parts))
    # Non-negative float32 values order like their bit patterns read as integers: the chebyshev and manhattan
    # kernels keep their float32 results in int32 storage (the chebyshev maximum is taken on the bits).
    return out if family == "minkowski" else out.view(np.float32)


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_COMPILED: dict = {}


def _kernels() -> dict:
    """The three kernels, compiled on first use (numba; cached on disk next to this module where writable)."""
    if _COMPILED:
        return _COMPILED
    import numba
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def float_bits(typingctx, value):  # pragma: no cover - compiled
        """A float32's bits as an int32 (LLVM ``bitcast``): integer maxima vectorise where float ones do not."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.int32(types.float32), codegen

    jit = numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)

    @jit
    def manhattan(q, x, out):  # pragma: no cover - compiled
        b, dim = q.shape
        n = x.shape[0]
        stop4 = b - b % 4
        for lo in range(0, n, _FEATURE_BLOCK):
            hi = min(lo + _FEATURE_BLOCK, n)
            for i in range(0, stop4, 4):
                r0, r1, r2, r3 = q[i], q[i + 1], q[i + 2], q[i + 3]
                for j in range(lo, hi):
                    v = x[j]
                    a0 = a1 = a2 = a3 = np.float32(0.0)
                    for k in range(dim):
                        w = v[k]
                        a0 += abs(r0[k] - w)
                        a1 += abs(r1[k] - w)
                        a2 += abs(r2[k] - w)
                        a3 += abs(r3[k] - w)
                    out[i, j] = float_bits(a0)
                    out[i + 1, j] = float_bits(a1)
                    out[i + 2, j] = float_bits(a2)
                    out[i + 3, j] = float_bits(a3)
            for i in range(stop4, b):
                r0 = q[i]
                for j in range(lo, hi):
                    v = x[j]
                    a0 = np.float32(0.0)
                    for k in range(dim):
                        a0 += abs(r0[k] - v[k])
                    out[i, j] = float_bits(a0)

    @jit
    def chebyshev(q, x, out):  # pragma: no cover - compiled
        b, dim = q.shape
        n = x.shape[0]
        stop4 = b - b % 4
        for lo in range(0, n, _FEATURE_BLOCK):
            hi = min(lo + _FEATURE_BLOCK, n)
            for i in range(0, stop4, 4):
                r0, r1, r2, r3 = q[i], q[i + 1], q[i + 2], q[i + 3]
                for j in range(lo, hi):
                    v = x[j]
                    m0 = m1 = m2 = m3 = np.int32(0)
                    for k in range(dim):
                        w = v[k]
                        m0 = max(m0, float_bits(abs(r0[k] - w)))
                        m1 = max(m1, float_bits(abs(r1[k] - w)))
                        m2 = max(m2, float_bits(abs(r2[k] - w)))
                        m3 = max(m3, float_bits(abs(r3[k] - w)))
                    out[i, j] = m0
                    out[i + 1, j] = m1
                    out[i + 2, j] = m2
                    out[i + 3, j] = m3
            for i in range(stop4, b):
                r0 = q[i]
                for j in range(lo, hi):
                    v = x[j]
                    m0 = np.int32(0)
                    for k in range(dim):
                        m0 = max(m0, float_bits(abs(r0[k] - v[k])))
                    out[i, j] = m0

    @jit
    def minkowski(q, x, p, integer_power, out):  # pragma: no cover - compiled
        b, dim = q.shape
        n = x.shape[0]
        root = 1.0 / p
        for lo in range(0, n, _FEATURE_BLOCK):
            hi = min(lo + _FEATURE_BLOCK, n)
            for i in range(b):
                r = q[i]
                for j in range(lo, hi):
                    v = x[j]
                    acc = 0.0
                    if integer_power == 3:  # the default p: a loop the compiler vectorises
                        for k in range(dim):
                            d = abs(np.float64(r[k]) - np.float64(v[k]))
                            acc += d * d * d
                    elif integer_power:
                        for k in range(dim):
                            d = abs(np.float64(r[k]) - np.float64(v[k]))
                            t = d
                            for _ in range(integer_power - 1):
                                t *= d
                            acc += t
                    else:
                        for k in range(dim):
                            acc += abs(np.float64(r[k]) - np.float64(v[k])) ** p
                    out[i, j] = acc**root

    _COMPILED.update(manhattan=manhattan, chebyshev=chebyshev, minkowski=minkowski)
    return _COMPILED
