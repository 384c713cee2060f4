"""tools.compare_artifacts: timings may differ between two runs, results may not."""

import json

from tools.compare_artifacts import compare, main


def _root(path, seconds: float, features: bytes, created: str = "2026-12-06T00:00:00+00:00"):
    (path / "d" / "m").mkdir(parents=True)
    index = {
        "datasets": {
            "d": {
                "created": created,
                "source": str(path),
                "n_images": 2,
                "models": {"m": {"cost": {"ms_per_image": seconds, "n_params": 5}, "stage_seconds": {"umap": seconds}}},
            }
        }
    }
    (path / "index.json").write_text(json.dumps(index))
    (path / "d" / "m" / "features.npy").write_bytes(features)
    return path


def test_timings_and_paths_differ_results_do_not(tmp_path, capsys):
    a = _root(tmp_path / "a", 1.5, b"\x00\x01")
    b = _root(tmp_path / "b", 9.0, b"\x00\x01", created="2026-12-07T00:00:00+00:00")
    assert compare(a, b) == []
    assert main([str(a), str(b)]) == 0
    assert "2 files compared, 0 differences: identical" in capsys.readouterr().out


def test_a_changed_byte_a_changed_result_and_a_missing_file_are_named(tmp_path):
    a = _root(tmp_path / "a", 1.5, b"\x00\x01")
    b = _root(tmp_path / "b", 1.5, b"\x00\x02")
    index = json.loads((b / "index.json").read_text())
    index["datasets"]["d"]["models"]["m"]["cost"]["n_params"] = 6
    (b / "index.json").write_text(json.dumps(index))
    (b / "extra.parquet").write_bytes(b"x")
    problems = compare(a, b)
    assert f"only in {b}: extra.parquet" in problems
    assert "d/m/features.npy: bytes differ" in problems
    assert any(p.startswith("index.json: /datasets/d/models/m/cost/n_params") for p in problems), problems
    assert main([str(a), str(b)]) == 1
