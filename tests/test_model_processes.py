"""The first run's memory mechanism: with ``RunConfig.model_processes`` each model is extracted in a short-lived
child process of its own (forked from a server that imported TensorFlow once), which exits when the model is done,
so its memory goes back to the OS; the artifacts equal those of a run in one process (docs/benchmarks.md
section 10). The main command's first run turns it on."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import precompute.pipeline as pipeline
from precompute.stages import model as model_stage
from tests.playground_fixtures import make_shapes_dataset

pytestmark = pytest.mark.slow  # forks a process per model and runs whole pipelines

MODELS = ["pixels", "efficientnet-lite0:random"]
LAYERS = {"efficientnet-lite0-random": ["stem_conv"]}


def _recording_extract(*args: object) -> None:
    """``stages.model._extract_model`` that first notes the process it runs in (the child imports this module)."""
    config, key = args[1], args[4].name
    with open(Path(config.out).parent / "pids.txt", "a") as log:  # beside the run's artifacts
        log.write(f"{os.getpid()} {key}\n")
    model_stage._extract_model(*args)


def _run(dataset: Path, out: Path, model_processes: bool) -> dict:
    specs = [pipeline.parse_model_request(m) for m in MODELS]
    specs[1] = pipeline.ModelRequest(specs[1].backbone, specs[1].weights, tuple(LAYERS["efficientnet-lite0-random"]))
    config = pipeline.RunConfig(dataset, out, specs, input_size=64, progress=False, top_n=10, runtime="keras",
                                model_processes=model_processes)
    pipeline.Run(config).execute()
    return json.loads((out / "index.json").read_text())


def _without_timings(value: object) -> object:
    """An index entry less what varies from run to run: timings and their dates."""
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items()
                if not k.endswith("seconds") and k not in ("images_per_second", "ms_per_image", "measured")}
    return value


def test_each_model_is_extracted_in_a_process_of_its_own_with_the_same_artifacts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_shapes_dataset(tmp_path / "shapes", n_per_class=3)
    pid_log = tmp_path / "pids.txt"
    monkeypatch.setattr(model_stage, "_extract_model", _recording_extract)
    # UMAP, rankings and scores run in the run's own process either way: left out here to keep this test short.
    monkeypatch.setattr(model_stage, "compute_layers", lambda *args, **kwargs: None)

    def not_here(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was extracted in the run's own process")

    with monkeypatch.context() as patch:
        patch.setattr(model_stage, "extract", not_here)
        isolated = _run(dataset, tmp_path / "isolated", model_processes=True)
    together = _run(dataset, tmp_path / "together", model_processes=False)

    runs = [line.split() for line in pid_log.read_text().splitlines()]
    assert [key for _, key in runs] == ["pixels", "efficientnet-lite0-random"]
    pids = [int(pid) for pid, _ in runs]
    assert len(set(pids)) == 2 and os.getpid() not in pids, pids
    for pid in pids:  # each child has exited: its memory is back with the OS
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()

    models = isolated["datasets"]["shapes"]["models"]
    assert list(models) == list(together["datasets"]["shapes"]["models"])
    for key, entry in models.items():
        other = together["datasets"]["shapes"]["models"][key]
        assert _without_timings(entry) == _without_timings(other), key
        for layer, layer_entry in entry["layers"].items():
            a = np.load(tmp_path / "isolated" / layer_entry["features"])
            b = np.load(tmp_path / "together" / other["layers"][layer]["features"])
            np.testing.assert_array_equal(a, b, err_msg=f"{key} {layer}")


def test_a_child_error_is_raised_in_the_run(tmp_path: Path) -> None:
    dataset = make_shapes_dataset(tmp_path / "shapes", n_per_class=2)
    spec = pipeline.ModelRequest("efficientnet-lite0", "random", ("no_such_layer",))
    config = pipeline.RunConfig(dataset, tmp_path / "out", [spec], input_size=64, progress=False, runtime="keras",
                                model_processes=True)
    with pytest.raises(ValueError, match="no_such_layer"):
        pipeline.Run(config).execute()


def test_the_main_commands_first_run_extracts_each_model_in_its_own_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playground import __main__ as main

    calls = []
    monkeypatch.setattr(pipeline, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    dataset = make_shapes_dataset(tmp_path / "shapes", n_per_class=1)
    main.ensure_dataset(tmp_path / "artifacts", dataset)
    assert calls and calls[0][1].get("model_processes") is True


def test_the_precompute_command_extracts_the_default_models_each_in_its_own_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from precompute.cli import main as cli_main

    configs = []

    class Stop:
        def __init__(self, config: pipeline.RunConfig) -> None:
            configs.append(config)

        def execute(self) -> None:
            raise ValueError("stopped by the test")

    monkeypatch.setattr(pipeline, "Run", Stop)
    dataset = make_shapes_dataset(tmp_path / "shapes", n_per_class=1)
    out = str(tmp_path / "out")
    assert cli_main([str(dataset), "--out", out, "--no-progress"]) == 2
    assert cli_main([str(dataset), "--out", out, "--backbones", "pixels", "--no-progress"]) == 2
    assert [config.model_processes for config in configs] == [True, False]


def test_a_large_scan_starts_the_fork_server_and_the_command_keeps_freed_memory(monkeypatch) -> None:
    """From ``WORKER_MIN_IMAGES`` listed images on, the run starts the workers' fork server while the scan decodes;
    the precompute command's processes keep the memory they free (glibc's thresholds, given to its children too)."""
    import subprocess
    import sys

    from precompute.stages.layer import WORKER_MIN_IMAGES

    started: list[int] = []
    monkeypatch.setattr(pipeline, "start_fork_server", lambda: started.append(1))
    run = pipeline.Run.__new__(pipeline.Run)
    run.expect_images(WORKER_MIN_IMAGES - 1)
    assert not started
    run.expect_images(WORKER_MIN_IMAGES)
    assert started == [1]

    code = ("import os; from precompute.forkserver import keep_freed_memory as k; ok = k(); "
            "print(ok, os.environ['MALLOC_MMAP_THRESHOLD_'], os.environ['MALLOC_TRIM_THRESHOLD_'])")
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=clean)
    assert out.stdout.split() == ["True", str(256 * 2**20), str(512 * 2**20)]
    # A threshold the user's environment sets stays theirs (CI machines set MALLOC_TRIM_THRESHOLD_ themselves).
    mine = {**clean, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=mine)
    assert out.stdout.split() == ["True", str(256 * 2**20), "65536"]

