"""The numba-compiled loops of :mod:`precompute.kernels` (imported on first use: numba takes a second to import).

Module-level functions, so that numba's on-disk cache (``cache=True``) finds them again in the next process
instead of compiling them anew (several seconds) in every run.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# Feature rows per block: 64 x 1,280 float32 = 320 KB, in the L2 cache of a core while 4 queries at a time read it.
_FEATURE_BLOCK = 64
_FASTMATH = {"reassoc", "nsz", "nnan", "ninf", "contract"}  # inputs are checked finite before a scan


@intrinsic
def float_bits(typingctx, value):
    """A float32's bits as an int32 (LLVM ``bitcast``): integer maxima vectorise where float ones do not."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)
def manhattan(q, x, out):
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


@numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)
def chebyshev(q, x, out):
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


@numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)
def manhattan_chebyshev(q, x, out_sum, out_max):
    """``manhattan`` and ``chebyshev`` in one pass: each difference is read and taken once for both."""
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
                m0 = m1 = m2 = m3 = np.int32(0)
                for k in range(dim):
                    w = v[k]
                    d0, d1, d2, d3 = abs(r0[k] - w), abs(r1[k] - w), abs(r2[k] - w), abs(r3[k] - w)
                    a0 += d0
                    a1 += d1
                    a2 += d2
                    a3 += d3
                    m0 = max(m0, float_bits(d0))
                    m1 = max(m1, float_bits(d1))
                    m2 = max(m2, float_bits(d2))
                    m3 = max(m3, float_bits(d3))
                out_sum[i, j], out_max[i, j] = float_bits(a0), m0
                out_sum[i + 1, j], out_max[i + 1, j] = float_bits(a1), m1
                out_sum[i + 2, j], out_max[i + 2, j] = float_bits(a2), m2
                out_sum[i + 3, j], out_max[i + 3, j] = float_bits(a3), m3
        for i in range(stop4, b):
            r0 = q[i]
            for j in range(lo, hi):
                v = x[j]
                a0 = np.float32(0.0)
                m0 = np.int32(0)
                for k in range(dim):
                    d0 = abs(r0[k] - v[k])
                    a0 += d0
                    m0 = max(m0, float_bits(d0))
                out_sum[i, j], out_max[i, j] = float_bits(a0), m0


@numba.njit(fastmath=_FASTMATH, cache=True, nogil=True)
def minkowski(q, x, p, integer_power, out):
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


@numba.njit(cache=True, nogil=True)
def exact_rows(q, x, ids, counts, chebyshev, out):
    """Exact float64 manhattan (or chebyshev) distances of each query row to its own candidate rows, rounded to
    float32: ``out[r, t]`` for ``x[ids[r, t]]``, ``t < counts[r]``.

    No ``fastmath``: the sum runs left to right in float64, term by term, as SciPy's ``cdist`` computes each pair
    (``transform_reduce_2d_`` in scipy/spatial/src/distance_metrics.h), so each value is the one ``cdist`` gives,
    bit for bit (tests/test_similarity.py checks it); a maximum is exact in any order.
    """
    dim = q.shape[1]
    for r in range(q.shape[0]):
        row = q[r]
        for t in range(counts[r]):
            v = x[ids[r, t]]
            acc = 0.0
            if chebyshev:
                for k in range(dim):
                    d = abs(np.float64(row[k]) - np.float64(v[k]))
                    if d > acc:
                        acc = d
            else:
                for k in range(dim):
                    acc += abs(np.float64(row[k]) - np.float64(v[k]))
            out[r, t] = np.float32(acc)
