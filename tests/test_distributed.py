"""Feature extraction on Dask (``--engine dask``) in its single-machine mode: same artifacts as local extraction.

One LocalCluster of 2 worker *processes* (1 thread each) serves the module, so every model really is rebuilt
in other processes from its stored model config (``precompute.schema.ModelConfig``: backbone, weight source with its
seed, input size, pooling) and layers.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from precompute import artifacts as art  # noqa: E402
from precompute import distributed as dist  # noqa: E402
from precompute.cli import main as cli_main  # noqa: E402
from precompute.pipeline import ModelRequest, Run  # noqa: E402
from tests.helpers import config, make_dataset  # noqa: E402

pytestmark = pytest.mark.slow  # a 2-process Dask cluster and a model rebuilt in each worker

MODELS = [ModelRequest("pixels"), ModelRequest("efficientnet-lite0", "random")]


@pytest.fixture(scope="module")
def dask_address():
    with dist.dask_client(None, n_workers=2, processes=True) as client:
        yield client.scheduler.address


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "colours")


def _without_timings(entry: dict) -> dict:
    """An index entry less what is measured (``cost``, ``rank_seconds``, ``export_seconds``): what must not depend on
    the engine."""
    if isinstance(entry, dict):
        return {key: _without_timings(value) for key, value in entry.items()
                if key not in ("cost", "rank_seconds", "export_seconds")}
    return entry


def test_dask_engine_writes_the_local_artifacts(colours: Path, dask_address: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist, "CHUNK_SIZE", 5)  # 18 images -> 4 tasks, the last one short
    local, remote = tmp_path / "local", tmp_path / "dask"
    Run(config(colours, local, models=MODELS)).execute()
    Run(config(colours, remote, models=MODELS, engine="dask", dask_address=dask_address, batch_size=2)).execute()

    local_models = art.read_index(local).to_dict()["datasets"]["colours"]["models"]
    remote_models = art.read_index(remote).to_dict()["datasets"]["colours"]["models"]
    assert set(remote_models) == {"pixels", "efficientnet-lite0-random"}
    for key, model in local_models.items():
        assert _without_timings(remote_models[key]) == _without_timings(model)  # same layers, dims, scores, config
        cost = remote_models[key]["cost"]
        assert cost["engine"] == "dask" and cost["images_per_second"] > 0 and cost["wall_seconds"] > 0
        for layer, entry in model["layers"].items():
            expected = art.read_array(local / entry["features"])
            features = art.read_array(remote / entry["features"])
            assert features.dtype == np.float32 and features.shape == expected.shape == (18, entry["dim"])
            np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6, err_msg=f"{key}/{layer}")
            for metric, result in entry["metrics"].items():
                indices, _ = art.read_neighbors(remote / result["neighbors"])
                np.testing.assert_array_equal(indices, art.read_neighbors(local / result["neighbors"])[0])
                assert remote_models[key]["layers"][layer]["metrics"][metric]["summary"] == result["summary"]
    assert not list(remote.rglob("*.tmp*"))


def test_one_chunk_in_flight_writes_rows_at_offsets_and_a_failed_task_leaves_no_file(
        colours: Path, dask_address: str, tmp_path: Path) -> None:
    from distributed import Client

    from precompute.schema import ModelConfig

    config = ModelConfig(backbone="pixels", weights_source="none", input_size=32, pooling="flatten")
    layers = ("pixels_8x8",)
    rel_paths = sorted(p.relative_to(colours).as_posix() for p in colours.rglob("*.png"))
    out = tmp_path / "features.npy"
    with Client(dask_address) as client:
        timing = dist.extract_on_dask(client, config, layers, colours, rel_paths, [out], batch_size=4, chunk_size=4,
                                      max_in_flight=1, progress=False)
        features = art.read_array(out)
        assert features.shape == (18, 192) and timing.n_images == 18 and timing.seconds > 0
        first = dist._extract_chunk((config, layers, "keras", None), str(colours), rel_paths[4:8], 4, 4)[1][0]
        np.testing.assert_array_equal(features[4:8], first)  # chunk rows land at their offsets

        missing = tmp_path / "again.npy"
        with pytest.raises(ValueError, match="gone.png"):  # ImageDecodeError, raised on a worker
            dist.extract_on_dask(client, config, layers, colours, [*rel_paths, "red/gone.png"], [missing], chunk_size=4,
                                 max_in_flight=2, progress=False)
    assert not missing.exists() and not list(tmp_path.glob(".*tmp*"))


def test_cli_engine_dask_starts_and_closes_a_local_cluster(colours: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    clients = []
    real_client = dist.dask_client

    @contextlib.contextmanager
    def recording_client(address=None, **kwargs):
        with real_client(address, n_workers=2, **kwargs) as client:
            clients.append((address, client))
            yield client

    monkeypatch.setattr(dist, "dask_client", recording_client)
    out = tmp_path / "artifacts"
    code = cli_main([str(colours), "--out", str(out), "--backbones", "pixels", "--metrics", "cosine",
                     "--top-n", "5", "--umap-neighbors", "4", "--no-progress", "--engine", "dask"])
    assert code == 0, capsys.readouterr().err
    assert "pixels_8x8" in capsys.readouterr().out
    [(address, client)] = clients
    assert address is None and client.status == "closed", "the run's own LocalCluster is closed after it"
    layer = art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["layers"]["pixels_8x8"]
    assert art.read_array(out / layer["features"]).shape == (18, 192)


def test_cli_dask_scheduler_address(colours: Path, dask_address: str, tmp_path: Path) -> None:
    out = tmp_path / "artifacts"
    code = cli_main([str(colours), "--out", str(out), "--backbones", "pixels", "--metrics", "cosine",
                     "--top-n", "5", "--umap-neighbors", "4", "--no-progress", "--engine", "dask",
                     "--dask-scheduler", dask_address])
    assert code == 0
    assert art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["cost"]["engine"] == "dask"


def test_unknown_engine_and_misplaced_address_are_clear_errors(colours: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="Unknown engine 'spark'; valid engines: local, dask"):
        Run(config(colours, tmp_path, engine="spark"))
    with pytest.raises(ValueError, match="needs engine 'dask', got 'local'"):
        Run(config(colours, tmp_path, dask_address="tcp://127.0.0.1:8786"))
    with pytest.raises(SystemExit):
        cli_main([str(colours), "--engine", "spark"])
    assert "invalid choice: 'spark'" in capsys.readouterr().err
    code = cli_main([str(colours), "--out", str(tmp_path), "--backbones", "pixels", "--no-progress",
                     "--dask-scheduler", "tcp://127.0.0.1:8786"])
    assert code == 2 and "needs engine 'dask'" in capsys.readouterr().err
