"""The benchmarks' entry point, and `python -m bench speed`: a --quick run writes the JSON the docs are built from
(no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import speed as bench
from bench.__main__ import list_benchmarks
from bench.__main__ import main as bench_main


@pytest.mark.slow
def test_quick_bench_writes_valid_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results) >= {"meta", "extraction", "search", "umap", "app"}
    meta = results["meta"]
    assert {"cpu_model", "n_cpus", "load_before", "load_after", "command", "versions", "notes"} <= set(meta)
    assert "--quick" in meta["command"]
    (row,) = results["extraction"]
    assert row["backbone"] == "efficientnet-lite0" and len(row["layers"]) == 2
    for key in ("one_pass_images_per_second", "naive_images_per_second", "speedup", "one_pass_gflops_per_second",
                "gflops_per_image", "naive_gflops_per_image"):
        assert row[key] > 0, key
    # Both ways compute the same features: only the number of passes differs.
    assert row["max_relative_difference"] < 1e-3
    # LiteRT beside Keras on the same feature model: same features, its speed, conversion and the device.
    for key in ("litert_images_per_second", "litert_speedup", "litert_conversion_seconds", "litert_model_mb",
                "keras_single_image_ms", "litert_single_image_ms", "one_pass_peak_share"):
        assert row[key] > 0, key
    assert row["litert_max_relative_difference"] < 1e-4
    assert row["faster_runtime"] in ("keras", "litert") and row["device"].startswith(("CPU", "GPU"))
    methods = {(r["n"], r["method"]) for r in results["search"]}
    assert methods == {(n, m) for n in (500, 2000)
                       for m in ("exact (numpy BLAS, chunked)", "faiss-hnsw", "faiss-ivf-flat")}
    for r in results["search"]:
        assert 0.0 <= r["recall@10"] <= 1.0 and r["query_ms"] > 0
        assert r["dim"] == (32 if r["n"] >= 2000 else 64)
    assert results["umap"][0]["n"] == 300 and results["umap"][0]["seconds"] > 0
    printed = capsys.readouterr().out
    assert "naive" in printed and "recall@10" in printed and "UMAP" in printed and "litert" in printed


def test_bad_options_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert bench.main(["--quick", "--backbones", "vgg17", "--out", str(tmp_path / "x.json")]) == 2
    assert "Unknown backbone 'vgg17'" in capsys.readouterr().err
    assert bench.main(["--quick", "--sections", "search,speed", "--out", str(tmp_path / "x.json")]) == 2
    assert "Unknown section(s) ['speed']" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_pick_layers_spreads_from_shallow_to_deep() -> None:
    layers = ("a", "b", "c", "d", "e", "f", "g", "h")
    assert bench.pick_layers(layers, 4) == ["a", "c", "f", "h"]
    assert bench.pick_layers(layers, 1) == ["h"]
    assert bench.pick_layers(layers, 20) == list(layers)


def test_one_entry_point_lists_and_runs_every_benchmark(capsys: pytest.CaptureFixture) -> None:
    names = list_benchmarks()
    assert {"speed", "bench_app", "bench_uploads", "first_run", "load_app", "runtime_artifacts"} <= set(names)
    assert all(names.values()), names  # each says what it measures
    assert bench_main([]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in names)
    assert bench_main(["runtime-artifacts", "--help"]) == 0  # argparse's --help, through the entry point
    assert "usage: python -m bench runtime_artifacts" in capsys.readouterr().out
    assert bench_main(["nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err


def test_the_runtime_packages_import_no_tool_benchmark_or_test() -> None:
    """precompute and playground stand alone: tools/, bench/ and tests/ use them, never the other way round."""
    import ast

    repo = Path(__file__).resolve().parent.parent
    offenders = []
    for path in sorted([*repo.glob("precompute/**/*.py"), *repo.glob("playground/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.relative_to(repo)}: {name}" for name in names
                          if name.split(".")[0] in ("tools", "bench", "tests")]
    assert offenders == []
