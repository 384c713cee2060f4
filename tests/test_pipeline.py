"""The whole precompute run on small generated folders: artifacts, index, resume, interruption, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from precompute import artifacts as art
from precompute.cli import main as cli_main
from precompute.pipeline import ModelRequest, Run
from precompute.stages import model as model_stage
from tests.helpers import config, make_dataset


@pytest.mark.slow
def test_run_writes_every_artifact_and_indexes_it(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "colours")
    (dataset / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "artifacts"
    summary = Run(config(dataset, out)).execute()

    index = art.read_index(out).to_dict()
    entry = index["datasets"]["colours"]
    assert entry["n_images"] == 18 and entry["labeled"] and entry["classes"] == ["blue", "green", "red"]
    assert [s["path"] for s in entry["skipped_files"]] == ["red/broken.jpg"]
    assert set(entry["models"]) == {"pixels", "efficientnet-lite0-random"}
    assert "UNTRAINED" in entry["models"]["efficientnet-lite0-random"]["weights"]["description"]
    for key, model in entry["models"].items():
        assert model["cost"]["images_per_second"] > 0
        for layer_entry in model["layers"].values():
            features = art.read_array(out / layer_entry["features"])
            assert features.shape == (18, layer_entry["dim"]) and features.dtype == np.float32
            assert art.read_array(out / layer_entry["umap"]).shape == (18, 2)
            for metric in ("cosine", "euclidean"):
                result = layer_entry["metrics"][metric]
                indices, distances = art.read_neighbors(out / result["neighbors"])
                assert indices.shape == distances.shape == (18, 10)
                assert not (indices == np.arange(18)[:, None]).any(), "a query is not its own neighbour"
                assert np.all(np.diff(distances, axis=1) >= 0)
                scores = art.read_table(out / result["scores"])
                assert len(scores) == 18 and 0 <= result["summary"]["rwp@15"] <= 1
        assert len(summary[summary.model == key]) == len(model["layers"])
    # Colour classes: raw pixels must beat the random ranking by far.
    baseline = entry["baseline"]["summary"]["rwp@15"]
    pixels = [m["summary"] for layer in entry["models"]["pixels"]["layers"].values() for m in layer["metrics"].values()]
    assert baseline == pytest.approx(5 / 17, abs=0.01)  # 5 same-class among 17 other images
    assert max(s["precision@5"] for s in pixels) > 0.9
    # 5 relevant images fill at most 65 of the 105 weight units of 10 stored results (rwp@15's weights 15..6).
    assert max(s["rwp@15"] for s in pixels) > 0.9 * 65 / 105
    report = json.loads(art.report_path(out, "colours").read_text())
    assert report["skipped_files"][0]["reason"] and report["models"]["pixels"]["status"] == "done"
    assert len(list(art.thumbs_dir(out, "colours").glob("*.jpg"))) == 18
    assert not list(out.rglob("*.tmp*")), "no temporary file may survive a finished run"


@pytest.mark.slow
def test_rerun_resumes_and_force_recomputes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_dataset(tmp_path / "colours")
    out = tmp_path / "artifacts"
    Run(config(dataset, out, models=[ModelRequest("pixels")])).execute()
    features = next(out.rglob("features.npy"))
    before = features.stat().st_mtime_ns

    def no_extraction(*args, **kwargs):
        raise AssertionError("a finished model was extracted again")

    monkeypatch.setattr(model_stage, "extract_to_files", no_extraction)
    Run(config(dataset, out, models=[ModelRequest("pixels")])).execute()
    assert features.stat().st_mtime_ns == before
    # A new metric on the same features computes only that metric.
    Run(config(dataset, out, models=[ModelRequest("pixels")], metrics=("cosine", "manhattan"))).execute()
    layer = next(iter(art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["layers"].values()))
    assert set(layer["metrics"]) == {"cosine", "euclidean", "manhattan"}
    with pytest.raises(AssertionError, match="extracted again"):
        Run(config(dataset, out, models=[ModelRequest("pixels")], force=True)).execute()


@pytest.mark.slow
def test_interrupted_run_keeps_finished_work_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_dataset(tmp_path / "colours")
    out = tmp_path / "artifacts"
    import precompute.embed as embed

    real_umap, calls = embed.compute_umap, []

    def interrupted_umap(features, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second layer is being embedded
        return real_umap(features, **kwargs)

    monkeypatch.setattr(embed, "compute_umap", interrupted_umap)
    with pytest.raises(KeyboardInterrupt):
        Run(config(dataset, out, models=[ModelRequest("pixels")])).execute()
    index = art.read_index(out).to_dict()  # still valid JSON with the work finished before the interruption
    layers = index["datasets"]["colours"]["models"]["pixels"]["layers"]
    done = [name for name, entry in layers.items() if "metrics" in entry and entry["metrics"]]
    assert len(done) == 1
    assert not list(out.rglob("*.tmp*"))

    monkeypatch.setattr(embed, "compute_umap", real_umap)
    extracted = []
    real_extract = model_stage.extract_to_files
    monkeypatch.setattr(model_stage, "extract_to_files", lambda *a, **k: extracted.append(1) or real_extract(*a, **k))
    Run(config(dataset, out, models=[ModelRequest("pixels")])).execute()
    assert not extracted, "the features were finished before the interruption; the rerun must reuse them"
    layers = art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["layers"]
    assert all(set(entry["metrics"]) == {"cosine", "euclidean"} for entry in layers.values())


@pytest.mark.slow
def test_unlabeled_folder_searches_without_scores(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "flat", per_class=3, labeled=False)
    out = tmp_path / "artifacts"
    Run(config(dataset, out, models=[ModelRequest("pixels")])).execute()
    entry = art.read_index(out).to_dict()["datasets"]["flat"]
    assert not entry["labeled"] and "baseline" not in entry
    layer = next(iter(entry["models"]["pixels"]["layers"].values()))
    assert "scores" not in layer["metrics"]["cosine"]
    assert art.read_neighbors(out / layer["metrics"]["cosine"]["neighbors"])[0].shape == (9, 8)


@pytest.mark.slow
def test_cli_runs_and_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dataset = make_dataset(tmp_path / "colours", per_class=4)
    out = tmp_path / "artifacts"
    code = cli_main([str(dataset), "--out", str(out), "--backbones", "pixels", "--metrics", "cosine,minkowski",
                     "--minkowski-p", "3", "--top-n", "5", "--no-progress", "--umap-neighbors", "4"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "pixels_8x8" in printed and "best rwp@15" in printed and "images/s" in printed
    layer = art.read_index(out).to_dict()["datasets"]["colours"]["models"]["pixels"]["layers"]["pixels_8x8"]
    assert set(layer["metrics"]) == {"cosine", "minkowski-p3"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backbones", "vgg17"], "Unknown backbone 'vgg17'. Valid backbones: vgg16"),
        (["--metrics", "cosine,hamming"], "Unknown metric 'hamming'"),
        (["--backbones", "pixels", "--layers", "pixels_3x3"], "Valid layer names"),
        (["--backbones", "pixels", "--metrics", "minkowski", "--minkowski-p", "2"], "p = 2 is euclidean"),
    ],
)
@pytest.mark.slow
def test_cli_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str],
                                          message: str) -> None:
    dataset = make_dataset(tmp_path / "colours", per_class=2)
    code = cli_main([str(dataset), "--out", str(tmp_path / "a"), "--no-progress", *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_empty_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    code = cli_main([str(tmp_path / "empty"), "--out", str(tmp_path / "a"), "--backbones", "pixels", "--no-progress"])
    assert code == 2
    assert "No image files in" in capsys.readouterr().err


@pytest.mark.slow
def test_changed_folder_is_rescanned_and_recomputed(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "colours", per_class=4)
    out = tmp_path / "artifacts"
    Run(config(dataset, out, models=[ModelRequest("pixels")])).execute()
    Image.new("RGB", (40, 48), (200, 40, 40)).save(dataset / "red" / "extra.png")
    Run(config(dataset, out, models=[ModelRequest("pixels")])).execute()
    entry = art.read_index(out).to_dict()["datasets"]["colours"]
    assert entry["n_images"] == 13 and len(art.read_manifest(out, "colours")) == 13
    layer = entry["models"]["pixels"]["layers"]["pixels_8x8"]
    assert art.read_array(out / layer["features"]).shape[0] == 13
    assert entry["baseline"]["summary"]["n_queries"] == 13
    assert len(list(art.thumbs_dir(out, "colours").glob("*.jpg"))) == 13
