"""The layer stage's clock, its choice of a UMAP worker, and a run whose layouts come from the worker."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from precompute import artifacts as art
from precompute import run_summary
from precompute.pipeline import ModelRequest, Run
from precompute.run_summary import StageClock, format_stage_seconds
from precompute.stages import layer as layer_stage
from precompute.stages.layer import use_worker
from tests.helpers import config, make_dataset


def test_clock_adds_stages_and_rankings_per_metric() -> None:
    clock = StageClock()
    clock.add("scan", 1.26)
    clock.add("rankings", 2.0, "cosine")
    clock.add("rankings", 3.04, "cosine")
    clock.add("rankings", 7.0, "manhattan")
    with clock.time("umap"):
        pass
    seconds = clock.to_dict()
    assert seconds["scan"] == 1.3 and seconds["rankings"] == {"cosine": 5.0, "manhattan": 7.0}
    assert set(seconds) == set(run_summary.STAGES)
    line = format_stage_seconds(seconds)
    assert line.startswith("scan 1 s, extraction 0 s, rankings 12 s (cosine 5, manhattan 7), scores 0 s")
    with pytest.raises(ValueError, match="Unknown stage 'ranking'; stages: scan, extraction, rankings"):
        clock.add("ranking", 1.0)


def test_the_worker_is_used_for_several_layouts_of_a_large_enough_set_within_the_budget() -> None:
    assert use_worker(10_000, [1280, 3072], 3072) == 2  # two layouts at once fit beside the rankings
    assert use_worker(20_000, [1280, 3072], 3072) == 1  # one: the 20,000 x 20,000 all-pairs scan takes 1.5 GB
    assert not use_worker(10_000, [1280], 3072)  # one layout: nothing to overlap with the next layers
    assert not use_worker(500, [1280, 3072], 3072)  # small: starting the worker costs more than it saves
    assert not use_worker(10_000, [1280, 3072], 500)  # over --memory-mb
    assert not use_worker(200_000, [1280, 3072], 3072)


@pytest.mark.slow
def test_layouts_from_the_worker_equal_those_computed_in_process(tmp_path: Path, monkeypatch) -> None:
    """The same run with the worker (forced on a small set) and without: identical layouts and rankings, and the
    stage seconds in the report."""
    dataset = make_dataset(tmp_path / "colours")
    Run(config(dataset, tmp_path / "here", models=[ModelRequest("pixels")])).execute()
    monkeypatch.setattr(layer_stage, "WORKER_MIN_IMAGES", 0)
    from threadpoolctl import threadpool_info

    blas_threads: set[int] = set()
    rank = layer_stage.rank_neighbors_exact_many

    def recording(*args, **kwargs):
        blas_threads.update(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")
        return rank(*args, **kwargs)

    monkeypatch.setattr(layer_stage, "rank_neighbors_exact_many", recording)
    monkeypatch.setattr(layer_stage.UmapWorker, "busy", lambda self: True)  # its layouts outlast each ranking
    run = Run(config(dataset, tmp_path / "worker", models=[ModelRequest("pixels")]))
    run.execute()
    assert run._umap_worker is not None  # the layouts did come from the worker
    assert blas_threads == {1}  # beside busy workers, the rankings' BLAS on one thread
    idle = layer_stage.LayerStage("m", 10, 1, ["cosine"], StageClock(), False, None)
    assert isinstance(idle.blas_beside_workers(), contextlib.nullcontext)  # no worker: BLAS as configured
    here = sorted((tmp_path / "here").rglob("*.np[yz]"))
    assert len(here) == 3 * 4  # features, layout and two rankings of three layers
    for path in here:
        other = tmp_path / "worker" / path.relative_to(tmp_path / "here")
        if path.suffix == ".npy":
            assert np.array_equal(np.load(path), np.load(other)), path
        else:
            a, b = np.load(path), np.load(other)
            assert all(np.array_equal(a[key], b[key]) for key in a.files), path
    seconds = art.read_json(art.report_path(tmp_path / "worker", "colours"))["stage_seconds"]
    assert set(seconds["rankings"]) == {"cosine", "euclidean"} and seconds["umap"] > 0


def test_a_wait_for_the_workers_layout_redraws_the_umap_bar(monkeypatch) -> None:
    """Issue #27: no stage silent for 10 s. While the worker's layout is not ready, the UMAP bar is redrawn every
    WAIT_REFRESH_SECONDS with the layer it waits for and the seconds so far; then it counts the layout."""
    import multiprocessing

    class SlowJob:  # an AsyncResult that is ready on the third look
        looks = 0

        def get(self, timeout: float):
            assert timeout == layer_stage.WAIT_REFRESH_SECONDS
            self.looks += 1
            if self.looks < 3:
                raise multiprocessing.TimeoutError
            return np.zeros((4, 2), np.float32), 12.0, None

    class Worker:
        def submit(self, *args):
            return SlowJob()

    stage = layer_stage.LayerStage("m", 4, 1, ["cosine"], StageClock(), progress=False, worker=Worker())
    drawn: list[str] = []
    monkeypatch.setattr(stage.bars["umap"], "set_postfix_str", lambda text, refresh=True: drawn.append(text))
    stage.submit_umaps([("top", Path("features.npy"))], 15, 0.1, 0)
    coords = stage.umap_for("top", None, 15, 0.1, 0)
    assert coords.shape == (4, 2)
    assert [text.split(":")[0] for text in drawn] == ["waiting for top", "waiting for top", ""]
    assert stage.clock.to_dict()["umap"] == 12.0


def test_the_label_checks_report_each_cross_validation_fit() -> None:
    """Issue #27: the label checks (about 35 s on 10,000 images) move a bar after each fold's fit."""
    from precompute.label_issues import N_FOLDS, N_REPEATS, out_of_sample_probabilities

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 12)
    features = rng.normal(size=(36, 8)) + labels[:, None]
    fits: list[int] = []
    probabilities = out_of_sample_probabilities(features, labels, 3, on_fit=lambda: fits.append(1))
    assert len(fits) == N_REPEATS * min(N_FOLDS, 12) and np.allclose(probabilities.sum(axis=1), 1)
