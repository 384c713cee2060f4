"""FAISS search (precompute.ann) against exact search, index files, and the pipeline above --exact-max."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from precompute import ann
from precompute import artifacts as art
from precompute.cli import main as cli_main
from precompute.pipeline import ModelRequest, Run, RunConfig
from precompute.similarity import METRICS as SIMILARITY_METRICS
from precompute.similarity import metric_name, rank_neighbors_exact, search_exact
from tests.helpers import make_dataset

METRICS = tuple(metric_name(name) for name in SIMILARITY_METRICS)  # every registered metric (minkowski-p3)


@pytest.fixture(scope="module")
def clustered() -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(30, 48)) * 3
    return (centres[rng.integers(0, 30, 2000)] + rng.normal(size=(2000, 48))).astype(np.float32)


class _ExactRankings(dict):
    """Exact top-10 (indices, distances) of each metric, ranked on first use: the fast tier asks for four metrics,
    and minkowski-p3's exact ranking (the slowest, about 5 s) is left to the slow HNSW test that needs it."""

    def __init__(self, features: np.ndarray) -> None:
        super().__init__()
        self.features = features

    def __missing__(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        self[metric] = ranked = tuple(rank_neighbors_exact(self.features, metric, 10))
        return ranked


@pytest.fixture(scope="module")
def exact(clustered: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return _ExactRankings(clustered)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.slow
def test_hnsw_recall_on_clustered_data(clustered: np.ndarray, exact: dict, metric: str) -> None:
    index = ann.build_index(clustered, metric, "hnsw")
    indices, distances = ann.rank_neighbors(clustered, metric, 10, index)
    assert ann.recall_at_k(indices, exact[metric][0], 10) >= 0.95
    assert not (indices == np.arange(len(clustered))[:, None]).any(), "a query is not its own neighbour"
    assert np.all(np.diff(distances, axis=1) >= 0)
    # Whatever FAISS proposed, the distances written are the true ones.
    found = indices[:, 0] == exact[metric][0][:, 0]
    np.testing.assert_allclose(distances[found, 0], exact[metric][1][found, 0], rtol=1e-5, atol=1e-6)


def test_every_registered_metric_has_a_faiss_plan() -> None:
    import faiss

    assert set(ann.METRIC_PLANS) == set(SIMILARITY_METRICS)
    for family, (faiss_metric, pool) in ann.METRIC_PLANS.items():
        assert isinstance(getattr(faiss, faiss_metric), int) and pool >= 1, family


@pytest.mark.parametrize("metric", ("cosine", "euclidean", "manhattan", "chebyshev"))
def test_flat_index_matches_exact_rankings(clustered: np.ndarray, exact: dict, metric: str) -> None:
    index = ann.build_index(clustered, metric, "flat")
    indices, distances = ann.rank_neighbors(clustered, metric, 10, index)
    np.testing.assert_array_equal(indices[:, 0], exact[metric][0][:, 0])
    assert (indices == exact[metric][0]).mean() > 0.999
    np.testing.assert_allclose(distances, exact[metric][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("metric", ("cosine", "manhattan"))
def test_search_without_index_is_exact(clustered: np.ndarray, exact: dict, metric: str) -> None:
    indices, distances = ann.rank_neighbors(clustered, metric, 10)
    np.testing.assert_array_equal(indices, exact[metric][0])
    queries = clustered[:7] + 0.05
    got, got_dist = ann.search(queries, clustered, metric, 5)
    want, want_dist = search_exact(queries, clustered, metric, 5)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_dist, want_dist, rtol=1e-5, atol=1e-6)


def test_ivf_search_of_new_queries(clustered: np.ndarray) -> None:
    index = ann.build_index(clustered, "euclidean", "ivf-flat", {"nprobe": 8})
    assert index.params["nlist"] > 1 and index.search_name == "faiss-ivf-flat"
    queries = clustered[::50] + 0.01
    got, _ = ann.search(queries, clustered, "euclidean", 10, index=index)
    want, _ = search_exact(queries, clustered, "euclidean", 10)
    assert ann.recall_at_k(got, want, 10) >= 0.95
    np.testing.assert_array_equal(got[:, 0], want[:, 0])


@pytest.mark.parametrize("kind", ("hnsw", "ivf-flat", "flat"))
def test_write_read_round_trip(tmp_path: Path, clustered: np.ndarray, kind: str) -> None:
    params = {"hnsw": {"M": 16, "ef_search": 40}, "ivf-flat": {"nlist": 20, "nprobe": 3}, "flat": {}}[kind]
    index = ann.build_index(clustered, "cosine", kind, params)
    path = tmp_path / "index-cosine.faiss"
    ann.write_index(path, index)
    assert not list(tmp_path.glob(".*tmp*"))
    loaded = ann.read_index(path, "cosine", {"nprobe": 3} if kind == "ivf-flat" else None)
    assert (loaded.kind, loaded.n, loaded.dim) == (kind, len(clustered), clustered.shape[1])
    for key, value in params.items():
        assert loaded.params[key] == value
    before = ann.search(clustered[:20], clustered, "cosine", 10, index=index)
    after = ann.search(clustered[:20], clustered, "cosine", 10, index=loaded)
    np.testing.assert_array_equal(before.indices, after.indices)


def test_bad_arguments_are_clear_errors(clustered: np.ndarray) -> None:
    with pytest.raises(ValueError, match="Unknown ANN index kind 'annoy'; valid kinds: hnsw"):
        ann.build_index(clustered, "cosine", "annoy")
    with pytest.raises(ValueError, match="Unknown parameter 'nprobe' for a hnsw index; valid parameters: M"):
        ann.check_params("hnsw", {"nprobe": 3})
    with pytest.raises(ValueError, match="Unknown metric 'hamming'"):
        ann.build_index(clustered, "hamming")
    with pytest.raises(ValueError, match="KEY=INTEGER"):
        ann.parse_params("M=big")
    index = ann.build_index(clustered[:100], "cosine", "flat")
    with pytest.raises(ValueError, match="was not built on these euclidean features"):
        ann.search(clustered[:1], clustered[:100], "euclidean", 5, index=index)
    with pytest.raises(ValueError, match="does not match the features' dim 48"):
        ann.search(np.zeros((1, 3)), clustered, "cosine", 5)
    with pytest.raises(FileNotFoundError, match="No FAISS index at"):
        ann.read_index("/nonexistent/index-cosine.faiss", "cosine")


def _run(dataset: Path, out: Path, exact_max: int, metrics: tuple[str, ...] = ("cosine", "euclidean")):
    config = RunConfig(dataset, out, [ModelRequest("pixels", "auto", ("pixels_8x8",))], metrics=metrics,
                       top_n=10, progress=False, umap_neighbors=5, exact_search_max=exact_max)
    Run(config).execute()
    return art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["layers"]["pixels_8x8"]


@pytest.mark.slow
def test_pipeline_uses_an_index_above_exact_max(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "colours", per_class=8)
    exact_layer = _run(dataset, tmp_path / "exact", exact_max=1000)
    ann_layer = _run(dataset, tmp_path / "ann", exact_max=5)
    for metric in ("cosine", "euclidean"):
        exact_result, ann_result = exact_layer["metrics"][metric], ann_layer["metrics"][metric]
        assert exact_result["search"] == "exact" and "index" not in exact_result
        assert ann_result["search"] == "faiss-hnsw" and ann_result["ann_params"] == ann.ANN_KINDS["hnsw"]
        assert (tmp_path / "ann" / ann_result["index"]).is_file()
        assert ann_result["index"].endswith(f"index-{metric}.faiss")
        for score, value in exact_result["summary"].items():
            assert ann_result["summary"][score] == pytest.approx(value, abs=0.02), score
        assert ann.load_layer_index(tmp_path / "exact", "colours", "pixels", "pixels_8x8", metric) is None
        index = ann.load_layer_index(tmp_path / "ann", "colours", "pixels", "pixels_8x8", metric)
        features = art.read_array(tmp_path / "ann" / ann_layer["features"], mmap=True)
        ids, _ = ann.search(features[:3], features, metric, 5, index=index)
        assert (ids[:, 0] == np.arange(3)).all(), "an image is its own best match"
    # Resuming with the same settings recomputes nothing; a smaller threshold change is picked up.
    before = (tmp_path / "ann" / ann_layer["metrics"]["cosine"]["neighbors"]).stat().st_mtime_ns
    _run(dataset, tmp_path / "ann", exact_max=5)
    assert (tmp_path / "ann" / ann_layer["metrics"]["cosine"]["neighbors"]).stat().st_mtime_ns == before
    again = _run(dataset, tmp_path / "ann", exact_max=1000)
    assert again["metrics"]["cosine"]["search"] == "exact"
    assert not list((tmp_path / "ann").rglob("*.faiss")), "a stale index is removed when search becomes exact"
    # chebyshev stays exact above --exact-max (up to 5x it, 96 dimensions or more: faster than FAISS' L-inf HNSW),
    # its ranking the exact run's, with no index; the others go through theirs.
    n = len(art.read_array(tmp_path / "ann" / ann_layer["features"], mmap=True))
    mixed = _run(dataset, tmp_path / "mixed", exact_max=n - 1, metrics=("cosine", "chebyshev"))["metrics"]
    assert mixed["cosine"]["search"] == "faiss-hnsw" and mixed["chebyshev"]["search"] == "exact"
    assert "index" not in mixed["chebyshev"] and "ann_params" not in mixed["chebyshev"]
    assert [path.name for path in (tmp_path / "mixed").rglob("*.faiss")] == ["index-cosine.faiss"]
    exact_cheb = _run(dataset, tmp_path / "exact", exact_max=1000, metrics=("chebyshev",))["metrics"]["chebyshev"]
    for name in ("indices", "distances"):
        assert np.array_equal(np.load(tmp_path / "mixed" / mixed["chebyshev"]["neighbors"])[name],
                              np.load(tmp_path / "exact" / exact_cheb["neighbors"])[name])
    assert _run(dataset, tmp_path / "mixed", exact_max=1, metrics=("chebyshev",))["metrics"]["chebyshev"][
        "search"] == "faiss-hnsw"  # over 5x --exact-max: an index again


def test_chebyshev_stays_exact_above_exact_max_where_its_scan_beats_faiss() -> None:
    assert ann.uses_index("cosine", 70_000, 1280, 20_000) and not ann.uses_index("cosine", 20_000, 1280, 20_000)
    assert not ann.uses_index("chebyshev", 70_000, 1280, 20_000)  # 96+ dims, up to 5x --exact-max
    assert ann.uses_index("chebyshev", 70_000, 32, 20_000)  # few dims: HNSW is faster
    assert ann.uses_index("chebyshev", 100_001, 1280, 20_000)
    assert ann.uses_index("manhattan", 70_000, 1280, 20_000) and ann.uses_index("minkowski-p3", 70_000, 1280, 20_000)


@pytest.mark.slow
def test_cli_ann_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = make_dataset(tmp_path / "colours", per_class=3)
    out = tmp_path / "a"
    code = cli_main([str(dataset), "--out", str(out), "--backbones", "pixels", "--layers", "pixels_8x8",
                     "--metrics", "manhattan", "--top-n", "4", "--no-progress", "--umap-neighbors", "3",
                     "--exact-max", "2", "--ann", "ivf-flat", "--ann-params", "nlist=2,nprobe=2"])
    assert code == 0, capsys.readouterr().err
    result = art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["layers"]["pixels_8x8"]["metrics"]
    assert result["manhattan"]["search"] == "faiss-ivf-flat"
    assert result["manhattan"]["ann_params"] == {"nlist": 2, "nprobe": 2}
    code = cli_main([str(dataset), "--out", str(out), "--backbones", "pixels", "--no-progress",
                     "--ann", "hnsw", "--ann-params", "nprobe=3"])
    assert code == 2
    assert "Unknown parameter 'nprobe' for a hnsw index" in capsys.readouterr().err
