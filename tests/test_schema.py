"""The typed artifact index (precompute.schema): round trips, old files, errors that name the field, and the rule
that no other module reads index.json's dicts."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from precompute import artifacts as art
from precompute import schema
from precompute.schema import ArtifactIndex, LayerEntry, MetricEntry, ModelConfig, SchemaError

REPO = Path(__file__).resolve().parents[1]
# An index.json as main's pipeline wrote it (schema version 1), cut to one model, layer and metric: it must keep
# loading, and writing it back must not change it.
SAMPLE = Path(__file__).parent / "data" / "index-v1.json"


def _sample() -> dict:
    return json.loads(SAMPLE.read_text())


@pytest.fixture(scope="module")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifacts of three small runs: labeled (exact search), labeled with FAISS, unlabeled."""
    from precompute.pipeline import ModelRequest, Run, RunConfig
    from tests.helpers import make_dataset

    tmp = tmp_path_factory.mktemp("schema")
    out = tmp / "artifacts"
    options = {"models": [ModelRequest("pixels")], "metrics": ("cosine", "euclidean"), "top_n": 8, "progress": False,
               "umap_neighbors": 5}
    labeled = make_dataset(tmp / "colours", per_class=4)
    Run(RunConfig(labeled, out, **options)).execute()
    Run(RunConfig(labeled, out, name="colours-ann", exact_search_max=0, **options)).execute()
    Run(RunConfig(make_dataset(tmp / "flat", per_class=3, labeled=False), out, **options)).execute()
    return out


def test_a_stored_index_of_this_version_loads_and_round_trips(tmp_path: Path) -> None:
    raw = _sample()
    index = ArtifactIndex.from_dict(raw)
    assert index.to_dict() == raw and ArtifactIndex.from_dict(index.to_dict()) == index
    entry = index.datasets["colours"]
    assert entry.n_images == 18 and entry.labeled and entry.classes == ["blue", "green", "red"]
    assert entry.baseline.params.ks == [1, 5, 10] and entry.duplicates.phash_max_distance == 4
    model = entry.models["pixels"]
    assert model.config.pooling == "flatten" and model.config.weights_file is None and model.cost.runtime == "keras"
    metric = model.layers["pixels_8x8"].metrics["cosine"]
    assert metric.score("rwp@15") == 0.61905 and metric.interval("ap") == [1.0, 1.0] and not metric.approximate
    assert metric.bootstrap.n_resamples == 2000 and model.layers["pixels_8x8"].umap_params.n_neighbors == 5
    art.index_path(tmp_path).write_text(SAMPLE.read_text())
    art.write_index(tmp_path, art.read_index(tmp_path))
    assert art.index_path(tmp_path).read_text() == SAMPLE.read_text()  # byte for byte


@pytest.mark.slow
def test_a_real_index_round_trips_exactly(real_index: Path) -> None:
    raw = json.loads(art.index_path(real_index).read_text())
    index = art.read_index(real_index)
    assert index.to_dict() == raw and ArtifactIndex.from_dict(raw) == index
    assert set(index.datasets) == {"colours", "colours-ann", "flat"}
    layer = index.datasets["colours"].models["pixels"].layers["pixels_8x8"]
    assert isinstance(layer, LayerEntry) and isinstance(layer.metrics["cosine"], MetricEntry)
    assert layer.metrics["cosine"].score("rwp@15") == raw["datasets"]["colours"]["models"]["pixels"]["layers"][
        "pixels_8x8"]["metrics"]["cosine"]["summary"]["rwp@15"]
    approximate = index.datasets["colours-ann"].models["pixels"].layers["pixels_8x8"].metrics["cosine"]
    assert approximate.approximate and approximate.index and approximate.ann_params
    assert index.datasets["flat"].models["pixels"].layers["pixels_8x8"].metrics["cosine"].summary is None
    before = art.index_path(real_index).read_text()
    art.write_index(real_index, index)  # writing back what was read changes nothing
    assert json.loads(art.index_path(real_index).read_text()) == json.loads(before)


def _old_release_index() -> dict:
    """The sample as an older release wrote it: no LiteRT costs, intervals, tie scores or duplicates; plus a key
    from some newer release."""
    raw = _sample()
    entry = raw["datasets"]["colours"]
    for key in ("duplicates", "baseline"):
        entry.pop(key)
    model = entry["models"]["pixels"]
    for key in ("model_mb", "runtime", "quantize", "conversion_seconds"):
        model["cost"].pop(key)
    for layer in model["layers"].values():
        layer.pop("duplicates")
        for result in layer["metrics"].values():
            for key in ("summary_ci", "bootstrap", "ties", "n_tied_at_cut", "search"):
                result.pop(key)
    raw.pop("versions")
    entry["from_the_future"] = {"kept": [1, 2]}
    return raw


def test_an_older_index_loads_and_is_written_back_as_it_was(tmp_path: Path) -> None:
    raw = _old_release_index()
    art.index_path(tmp_path).write_text(json.dumps(raw))
    index = art.read_index(tmp_path)
    entry = index.datasets["colours"]
    assert entry.duplicates is None and entry.baseline is None and entry.extra == {"from_the_future": {"kept": [1, 2]}}
    metric = entry.models["pixels"].layers["pixels_8x8"].metrics["cosine"]
    assert metric.ties is None and metric.interval("rwp@15") is None and metric.search == "exact"
    assert entry.models["pixels"].cost.runtime is None
    art.write_index(tmp_path, index)
    assert json.loads(art.index_path(tmp_path).read_text()) == raw  # nothing added, nothing lost


def _set(data: dict, path: str, value: object) -> None:
    """Set (or delete, for ``KeyError``) the value at ``path``: keys, and list positions as numbers."""
    *parents, last = path.split("/")
    for key in parents:
        data = data[int(key)] if isinstance(data, list) else data[key]
    key = int(last) if isinstance(data, list) else last
    if value is KeyError:
        del data[key]
    else:
        data[key] = value


LAYER = "datasets/colours/models/pixels/layers/pixels_8x8"


@pytest.mark.parametrize(
    "path, value, message",
    [
        (f"{LAYER}/dim", "192", f"{LAYER}/dim: expected an integer, got str '192'"),
        (f"{LAYER}/dim", KeyError, f"{LAYER}: has no feature dimension ('dim' is missing)"),
        (f"{LAYER}/metrics/cosine/summary_ci/ap", [0.1], f"{LAYER}/metrics/cosine/summary_ci/ap: expected an interval"),
        (f"{LAYER}/metrics/cosine/summary/ap", "high", f"{LAYER}/metrics/cosine/summary/ap: expected a number"),
        (f"{LAYER}/metrics/cosine/top_n", None, f"{LAYER}/metrics/cosine/top_n: is null"),
        (f"{LAYER}/umap_params/seed", 1.5, f"{LAYER}/umap_params/seed: expected an integer"),
        ("datasets/colours/models/pixels/config", "pixels",
         "datasets/colours/models/pixels/config: expected an object"),
        ("datasets/colours/models/pixels/cost/images_per_second", True,
         "datasets/colours/models/pixels/cost/images_per_second: expected a number, got bool"),
        ("datasets/colours/n_images", -1, "datasets/colours/n_images: expected an image count >= 0"),
        ("datasets/colours/classes", "blue", "datasets/colours/classes: expected a list"),
        ("datasets/colours/baseline/params/ks/1", "5", "datasets/colours/baseline/params/ks/1: expected an integer"),
        ("datasets/colours/models/pixels/layers/pixels_8x8/duplicates/path", KeyError,
         "datasets/colours/models/pixels/layers/pixels_8x8/duplicates: has no pairs file ('path' is missing)"),
        ("datasets/colours/models", [], "datasets/colours/models: holds no 'models' mapping"),
        ("datasets", [], "datasets: holds no 'datasets' mapping"),
    ],
)
def test_an_invalid_index_names_the_file_and_the_field(tmp_path: Path, path: str, value: object, message: str
                                                       ) -> None:
    raw = _sample()
    _set(raw, path, value)
    with pytest.raises(SchemaError) as raised:
        ArtifactIndex.from_dict(raw)
    assert str(raised.value).startswith(message) and raised.value.path.startswith(path.rsplit("/", 1)[0])
    art.index_path(tmp_path).write_text(json.dumps(raw))
    with pytest.raises(art.ArtifactError, match="precompute --force") as raised:
        art.read_index(tmp_path)
    assert str(art.index_path(tmp_path)) in str(raised.value) and message in str(raised.value)


def test_another_schema_version_is_refused_as_before(tmp_path: Path) -> None:
    art.index_path(tmp_path).write_text(json.dumps({"schema_version": art.SCHEMA_VERSION + 1, "datasets": {}}))
    with pytest.raises(art.ArtifactError, match=f"schema version {art.SCHEMA_VERSION + 1}.*precompute --force"):
        art.read_index(tmp_path)
    assert art.holds_index(tmp_path)  # still an artifacts folder to a dataset scan
    art.index_path(tmp_path).write_text("[1, 2]")
    with pytest.raises(art.ArtifactError, match="is not an artifact index"):
        art.read_index(tmp_path)


def test_an_absent_index_is_empty_and_a_bad_record_is_never_written(tmp_path: Path) -> None:
    index = art.read_index(tmp_path)
    assert index == art.empty_index() and index.to_dict() == {"schema_version": art.SCHEMA_VERSION, "datasets": {}}
    index.datasets["x"] = schema.DatasetEntry(n_images=2)
    index.datasets["x"].models["m"] = schema.ModelEntry(backbone="pixels", config=ModelConfig(backbone="pixels"),
                                                        layers={"l": LayerEntry(dim="wide")})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="datasets/x/models/m/layers/l/dim: expected an integer"):
        art.write_index(tmp_path, index)
    assert not art.index_path(tmp_path).exists()


def test_model_configs_compare_as_the_stored_dicts_did() -> None:
    stored = {"backbone": "vgg16", "weights_source": "random", "weights_file": None, "seed": 0, "input_size": 32,
              "pooling": "avg"}
    config = ModelConfig(backbone="vgg16", weights_source="random", seed=0, input_size=32, pooling="avg")
    assert ModelConfig.from_dict(stored) == config and config.to_dict() == stored  # float32: no quantize key
    assert dataclasses.replace(config, quantize="int8").to_dict() == {**stored, "quantize": "int8"}
    assert ModelConfig.from_dict({**stored, "seed": 1}) != config


# ------------------------------------------------------------------------ only the schema reads the index's dicts
# Keys of index.json that name nothing else in this code base: a subscript or .get() with one of them outside
# precompute/schema.py and precompute/artifacts.py reads the index as a raw dict. Field names shared with other
# structures (path, metric, layers, config, cost...) are left out, so the rule has no false alarms; new schema
# fields are covered automatically.
GENERIC_KEYS = {
    "backbone", "classes", "config", "cost", "created", "depth", "description", "device", "dim", "duplicates",
    "engine", "features", "index", "ks", "labeled", "layers", "level", "manifest", "measured", "method", "metric",
    "neighbors", "order", "params", "path", "quantize", "ratio", "reason", "report", "runtime", "scores", "search",
    "seed", "skipped_files", "source", "summary", "threshold", "umap", "weights", "n_pairs", "n_exact", "n_near",
    "phash_max_distance", "n_cross_class", "n_images",
}
# Dicts that are not the index but share some of its keys, by module and receiver: the run report (report.json,
# which repeats the dataset's duplicate counts) and the app's request selection.
OTHER_DICTS = {
    "precompute/pipeline.py": {"self.report"},
    "precompute/cli.py": {"report", "duplicates", "model", "item"},
    "bench/load_app.py": {"selection"},
    "precompute/schema_export.py": {"data"},  # export.json, not the index
    "precompute/feedback.py": {"meta"},  # the comment line of a marks CSV (--pairs), not the index
}
OWNERS = {"precompute/schema.py", "precompute/artifacts.py"}


def _index_keys() -> set[str]:
    keys = set()
    for name in schema.__all__:
        record = getattr(schema, name)
        if isinstance(record, type) and dataclasses.is_dataclass(record):
            keys |= {f.name for f in dataclasses.fields(record)} - {"extra"}
    return keys - GENERIC_KEYS


def _raw_index_reads(source: str, name: str, keys: set[str]) -> list[str]:
    """``file:line: expression`` of each subscript or .get/.pop/.setdefault of an index key in ``source``."""
    found = []
    allowed = OTHER_DICTS.get(name, set())
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Subscript):
            receiver, key = node.value, node.slice
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args):
            receiver, key = node.func.value, node.args[0]
        else:
            continue
        if isinstance(key, ast.Constant) and key.value in keys and ast.unparse(receiver) not in allowed:
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_but_the_schema_reads_index_json_as_dicts() -> None:
    keys = _index_keys()
    assert {"datasets", "models", "metrics", "summary_ci", "top_n", "images_per_second"} <= keys
    files = [path for folder in ("precompute", "playground", "bench", "tools", "docs")
             for path in sorted((REPO / folder).rglob("*.py")) if path.relative_to(REPO).as_posix() not in OWNERS]
    found = [hit for path in files
             for hit in _raw_index_reads(path.read_text(), path.relative_to(REPO).as_posix(), keys)]
    assert not found, "read these through precompute.schema records:\n" + "\n".join(found)
    opened = [str(path.relative_to(REPO)) for path in files if '"index.json"' in path.read_text()]
    assert not opened, f"only precompute.artifacts names index.json: {opened}"


def test_the_rule_catches_a_raw_read() -> None:
    source = 'def f(index, report):\n    return index["datasets"]["x"].get("models"), index.get("summary_ci")\n'
    assert len(_raw_index_reads(source, "playground/x.py", _index_keys())) == 3
    assert _raw_index_reads('self.report["models"]', "precompute/pipeline.py", _index_keys()) == []
    assert len(_raw_index_reads('self.report["models"]', "playground/x.py", _index_keys())) == 1
