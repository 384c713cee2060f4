"""Rankings equal a brute-force reference under every metric."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from precompute.similarity import (
    DEFAULT_MINKOWSKI_P,
    METRICS,
    metric_name,
    pairwise_distances,
    parse_metric,
    rank_neighbors_exact,
    search_exact,
    similarity_from_distance,
    top_k_from_distances,
)

# Every registered metric (minkowski at its default p and a fractional one) by SciPy's name: the brute-force
# reference for the engine's rankings and ties (cosine and euclidean: SciPy's formulas, not the engine's BLAS ones).
SCIPY = {
    **{metric_name(name): (metric.scipy or name, {"p": DEFAULT_MINKOWSKI_P} if name == "minkowski" else {})
       for name, metric in METRICS.items()},
    "minkowski-p1.5": ("minkowski", {"p": 1.5}),
}


def test_every_registry_entry_names_what_exists() -> None:
    """Each metric's SciPy formula, scan and (test_ann) FAISS plan exist: an entry cannot name a missing one."""
    from precompute import kernels

    for name, metric in METRICS.items():
        assert metric.scan in ("blas", "kernel", None), name
        if metric.scipy is None:  # the BLAS formulas of pairwise_distances
            assert name in ("cosine", "euclidean"), name
        else:
            assert cdist(np.ones((1, 3)), np.zeros((1, 3)), metric=metric.scipy).shape == (1, 1)
        assert metric.scan != "blas" or metric.scipy is None, name
        assert metric.scan != "kernel" or name in kernels.KERNEL_FAMILIES, name


def _brute_force(features: np.ndarray, metric: str, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    name, kwargs = SCIPY[metric]
    distances = cdist(features, features, metric=name, **kwargs)
    np.fill_diagonal(distances, np.inf)
    # Python's sort on (distance, index) tuples: the independent definition of a stable ranking.
    order = np.array([[j for _, j in sorted(zip(row, range(len(row)), strict=True))][:top_n] for row in distances])
    return order, np.take_along_axis(distances, order, axis=1)


@pytest.mark.parametrize("metric", sorted(SCIPY))
def test_rankings_match_brute_force(metric: str) -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 9)).astype(np.float32)
    indices, distances = rank_neighbors_exact(features, metric, top_n=12, chunk_rows=16)
    expected_idx, expected_dist = _brute_force(features.astype(np.float64), metric, 12)
    assert indices.shape == (60, 12) and indices.dtype == np.int32
    np.testing.assert_array_equal(indices, expected_idx)
    np.testing.assert_allclose(distances, expected_dist, rtol=1e-5, atol=1e-6)
    assert not (indices == np.arange(60)[:, None]).any()  # a query never ranks itself


def test_ties_and_duplicates_are_ordered_by_index() -> None:
    features = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    indices, distances = rank_neighbors_exact(features, "euclidean", top_n=4)
    assert indices[0].tolist() == [1, 2, 3, 4]  # all at distance 1: index order
    assert indices[1].tolist() == [2, 4, 0, 3]  # exact duplicates first, query itself excluded
    assert distances[1, :2].tolist() == [0.0, 0.0]


def test_top_n_is_capped_at_n_minus_one() -> None:
    indices, _ = rank_neighbors_exact(np.eye(4), "cosine", top_n=50)
    assert indices.shape == (4, 3)


def test_top_k_handles_ties_at_the_cut() -> None:
    distances = np.array([[3.0, 1.0, 1.0, 1.0, 0.5, 1.0]])
    indices, _ = top_k_from_distances(distances, 3)
    assert indices.tolist() == [[4, 1, 2]]


def test_search_new_queries() -> None:
    features = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    indices, distances = search_exact(np.array([1.0, 0.1]), features, "cosine", top_n=2)
    assert indices.tolist() == [[0, 2]]
    assert similarity_from_distance("cosine", distances)[0, 0] == pytest.approx(1 / np.sqrt(1.01), rel=1e-6)
    with pytest.raises(ValueError, match="dim"):
        search_exact(np.ones(3), features, "cosine")


def test_metric_names_and_errors() -> None:
    assert metric_name("minkowski", 3) == "minkowski-p3"
    assert parse_metric("minkowski-p1.5") == ("minkowski", {"p": 1.5})
    with pytest.raises(ValueError, match="p = 2 is euclidean"):
        metric_name("minkowski", 2)
    with pytest.raises(ValueError, match="Valid metrics: cosine, euclidean"):
        parse_metric("sqeuclidean")
    with pytest.raises(ValueError, match="NaN"):
        rank_neighbors_exact(np.array([[0.0], [np.nan], [1.0]]), "euclidean")


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_blas_scan_of_large_sets_gives_the_float64_results_exactly(metric: str, monkeypatch) -> None:
    """Above FLOAT64_SCAN_MAX the engine pre-selects candidates in float32: same ids, distances and ties."""
    import precompute.similarity as sim

    rng = np.random.default_rng(5)
    features = rng.integers(0, 4, size=(300, 16)).astype(np.float32)  # integer values: many exact ties
    features[10] = features[3]  # exact duplicates
    features[:50] += rng.normal(scale=1e-3, size=(50, 16)).astype(np.float32)  # near-ties
    groups = np.arange(300) % 7
    monkeypatch.setattr(sim, "FLOAT64_SCAN_MAX", 10**12)
    full = sim.rank_neighbors_exact(features, metric, top_n=12, groups=groups, chunk_rows=64)
    monkeypatch.setattr(sim, "FLOAT64_SCAN_MAX", 0)
    scanned = sim.rank_neighbors_exact(features, metric, top_n=12, groups=groups, chunk_rows=64)
    np.testing.assert_array_equal(scanned.indices, full.indices)
    np.testing.assert_allclose(scanned.distances, full.distances, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(scanned.tied_beyond, full.tied_beyond)
    np.testing.assert_array_equal(scanned.tied_beyond_same, full.tied_beyond_same)
    assert (full.tied_beyond > 0).any()
    single = sim.search_exact(features[3], features, metric, top_n=12, exclude=np.array([3]))
    np.testing.assert_array_equal(single.indices[0], full.indices[3])


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "manhattan", "chebyshev", "minkowski-p3", "minkowski-p1.5",
                                    "minkowski-p11"])
@pytest.mark.parametrize(("threads", "all_pairs"), [(1, False), (3, False), (2, True)])
def test_scanned_rankings_are_todays_rankings_bit_for_bit(metric: str, threads: int, all_pairs: bool,
                                                          monkeypatch) -> None:
    """Every metric above FLOAT64_SCAN_MAX (float32 scan, exact float64 re-rank of the candidates) against the same
    engine with every distance computed in float64 (today's path): the same ids, order, float32 distances and ties
    at the cut, on features full of ties (small integers, duplicate rows, near-duplicates, zero and subnormal
    values), with a query count that is not a multiple of the kernels' four-query tiles. ``all_pairs``: the scan
    of every pair at once (each pair computed once and mirrored) that rank_neighbors_exact_many uses from
    ALL_PAIRS_MIN_ROWS rows, with blocks of rows that do not divide the set."""
    import precompute.kernels as kernels
    import precompute.similarity as sim

    rng = np.random.default_rng(11)
    features = rng.integers(0, 3, size=(403, 40)).astype(np.float32)  # three levels: huge tie groups
    features[7] = features[2]  # exact duplicates
    features[100:160] += rng.normal(scale=1e-4, size=(60, 40)).astype(np.float32)  # near-ties
    features[200:210] = 0.0
    features[210, :3] = np.float32(1e-41)  # a subnormal
    features[300:] *= np.float32(1e-3)  # another scale
    groups = np.arange(len(features)) % 5
    real = kernels.default_threads
    monkeypatch.setattr(kernels, "default_threads", lambda: threads)
    monkeypatch.setattr(sim, "FLOAT64_SCAN_MAX", 10**12)
    full = sim.rank_neighbors_exact(features, metric, top_n=9, groups=groups, chunk_rows=101)
    monkeypatch.setattr(sim, "FLOAT64_SCAN_MAX", 0)
    if all_pairs:
        monkeypatch.setattr(sim, "ALL_PAIRS_MIN_ROWS", 2)
        seconds: dict[str, float] = {}
        partner = {"manhattan": ["chebyshev"], "chebyshev": ["manhattan"], "cosine": ["euclidean"]}.get(metric, [])
        scanned = sim.rank_neighbors_exact_many(features, [metric, *partner], 9, 101, groups, seconds=seconds)[metric]
        assert set(seconds) == {metric, *partner}  # the shared scans: one product, or one pass for both kernels
    else:
        scanned = sim.rank_neighbors_exact(features, metric, top_n=9, groups=groups, chunk_rows=101)
    np.testing.assert_array_equal(scanned.indices, full.indices)
    np.testing.assert_array_equal(scanned.distances.view(np.int32), full.distances.view(np.int32))
    np.testing.assert_array_equal(scanned.tied_beyond, full.tied_beyond)
    np.testing.assert_array_equal(scanned.tied_beyond_same, full.tied_beyond_same)
    assert (full.tied_beyond > 0).sum() >= 20  # many queries with ties at the cut
    assert real() >= 1


def test_scan_kernels_stay_within_their_error_bound() -> None:
    """The compiled scans against SciPy's float64 cdist, relative to each distance, under the bound the
    candidate rule assumes; chebyshev's maximum is exact up to the one rounding of a float32 difference."""
    from precompute.kernels import relative_error, scan_distances

    rng = np.random.default_rng(2)
    features = (rng.standard_normal((70, 300)) * rng.uniform(0.01, 100, size=(70, 1))).astype(np.float32)
    queries = features[:9]
    for family, scipy_name, p in [("manhattan", "cityblock", None), ("chebyshev", "chebyshev", None),
                                  ("minkowski", "minkowski", 3.0), ("minkowski", "minkowski", 2.5)]:
        kwargs = {} if p is None else {"p": p}
        exact = cdist(queries.astype(np.float64), features.astype(np.float64), scipy_name, **kwargs)
        scanned = scan_distances(queries, features, family, **kwargs, threads=2)
        relative = np.abs(scanned - exact) / np.where(exact > 0, exact, 1.0)
        assert relative.max() <= relative_error(family, 300, p), family
    with pytest.raises(ValueError, match="kernels exist for manhattan, chebyshev, minkowski"):
        scan_distances(queries, features, "cosine")


def test_all_pairs_serve_every_metric_at_once_and_fall_back_where_they_cannot(monkeypatch) -> None:
    """rank_neighbors_exact_many: the rankings of each metric alone, cosine and euclidean from one shared scan,
    progress counted per metric, and the block-by-block path where the n x n scan exceeds its memory."""
    import precompute.similarity as sim

    rng = np.random.default_rng(3)
    features = rng.normal(size=(260, 24)).astype(np.float32)
    features[5] = features[9]
    metrics = ["cosine", "euclidean", "manhattan", "chebyshev", "minkowski-p3"]
    monkeypatch.setattr(sim, "FLOAT64_SCAN_MAX", 0)  # the float32 scans, block by block and all pairs at once
    alone = {metric: sim.rank_neighbors_exact(features, metric, top_n=7) for metric in metrics}
    monkeypatch.setattr(sim, "ALL_PAIRS_MIN_ROWS", 2)
    for budget in (8 * 260 * 260, 4 * 260 * 260, 4 * 260 * 260 - 1):  # two n x n scans fit, one, none
        rows: list[int] = []
        together = sim.rank_neighbors_exact_many(features, metrics, 7, 100, progress=rows.append,
                                                 max_matrix_bytes=budget)
        assert list(together) == metrics and sum(rows) == 260 * len(metrics)
        for metric in metrics:
            np.testing.assert_array_equal(together[metric].indices, alone[metric].indices)
            np.testing.assert_array_equal(together[metric].distances.view(np.int32),
                                          alone[metric].distances.view(np.int32))
    # Inside reused_scans() the scans of later calls write into the first call's matrices (full of its values), at
    # most two kept (manhattan's and chebyshev's), another size lets them go, and the end releases them.
    with sim.reused_scans():
        first: set[int] = set()
        for _ in range(2):
            again = sim.rank_neighbors_exact_many(features, metrics, 7, 100, max_matrix_bytes=8 * 260 * 260)
            kept = {id(m) for m in sim._SCAN_MATRICES}
            assert len(kept) == 2 and kept == (first or kept)
            first = kept
            for metric in metrics:
                np.testing.assert_array_equal(again[metric].indices, alone[metric].indices)
                np.testing.assert_array_equal(again[metric].distances.view(np.int32),
                                              alone[metric].distances.view(np.int32))
        sim.rank_neighbors_exact_many(features[:200], ["cosine"], 7, 100)
        assert [m.shape for m in sim._SCAN_MATRICES] == [(200, 200)]
    assert sim._SCAN_MATRICES is None


def test_blas_candidate_distances_are_pairwise_distances_bit_for_bit() -> None:
    """The block re-rank of cosine and euclidean candidates gives exactly what pairwise_distances gives one query
    against its candidates in row order: zero rows, duplicates, odd and wide dimensions, counts from 0 to all."""
    from precompute.similarity import _blas_candidate_distances

    rng = np.random.default_rng(9)
    for dim in (1, 7, 33, 1280):
        features = (rng.standard_normal((90, dim)) * rng.uniform(1e-3, 1e3, size=(90, 1))).astype(np.float32)
        features[5] = 0.0
        features[6] = features[7]
        queries = features[:11]
        ids = np.sort(np.stack([rng.choice(90, 40, replace=False) for _ in range(11)]), axis=1)
        counts = rng.integers(0, 41, size=11)
        counts[0] = 40
        for family in ("cosine", "euclidean"):
            out = np.full(ids.shape, np.inf, dtype=np.float32)
            _blas_candidate_distances(queries, features, ids, counts, family, out)
            for row in range(11):
                want = pairwise_distances(queries[row : row + 1], features[ids[row, : counts[row]]], family)[0]
                got = out[row, : counts[row]]
                np.testing.assert_array_equal(got.view(np.int32), want.astype(np.float32).view(np.int32))
                assert np.isinf(out[row, counts[row] :]).all()


def test_exact_candidate_distances_are_cdists_bit_for_bit() -> None:
    """The compiled re-rank of manhattan and chebyshev candidates gives SciPy cdist's float64 value of every pair
    (rounded to float32), on odd dimensions, large and tiny values."""
    from precompute.kernels import exact_distances

    rng = np.random.default_rng(8)
    for dim in (1, 7, 33, 1280):
        features = (rng.standard_normal((90, dim)) * rng.uniform(1e-3, 1e3, size=(90, 1))).astype(np.float32)
        queries = features[:11]
        ids = np.stack([rng.choice(90, 40, replace=False) for _ in range(11)])
        counts = rng.integers(0, 41, size=11)
        for family, scipy_name in [("manhattan", "cityblock"), ("chebyshev", "chebyshev")]:
            out = np.full(ids.shape, np.inf, dtype=np.float32)
            exact_distances(queries, features, ids, counts, family, out, threads=2)
            for row in range(11):
                want = cdist(queries[row : row + 1].astype(np.float64), features[ids[row, : counts[row]]].astype(
                    np.float64), scipy_name)[0].astype(np.float32)
                np.testing.assert_array_equal(out[row, : counts[row]].view(np.int32), want.view(np.int32))
                assert np.isinf(out[row, counts[row] :]).all()
