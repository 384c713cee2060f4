"""Keras and LiteRT runtimes give the same features; conversions are cached; quantised variants are models.

Conversions go to a temporary $SISP_CACHE_DIR (a few seconds each); random weights at small input sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from precompute import artifacts as art
from precompute import readouts, runtimes, weights_cache
from precompute.backbones import get_backbone
from precompute.pipeline import ModelRequest, Run
from tests.helpers import config, make_dataset

TOLERANCE = 1e-4  # relative to each layer's largest feature value


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(folder))
    return folder


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))


def keras_and_litert(name: str, size: int, n_layers: int = 4, quantize: str | None = None):
    import keras

    from bench.speed import pick_layers
    from precompute.backbones import ResolvedWeights, build_base, get_backbone
    from precompute.extract import build_feature_model, extract_array

    backbone = get_backbone(name)
    keras.backend.clear_session()
    base = build_base(backbone, ResolvedWeights("random", None, "random", seed=0), size)
    layers = pick_layers(backbone.default_layers, n_layers)
    model = build_feature_model(base, layers, "avg", flatten=backbone.flatten)
    images = np.random.default_rng(0).uniform(0, 255, (5, size, size, 3)).astype(np.float32)
    config = {"backbone": name, "weights_source": "random", "seed": 0, "input_size": size, "layers": layers}
    path = runtimes.tflite_path(config, layers, quantize)
    # int8full calibrates on the images it is then tested on (the pipeline: a seeded sample of the dataset).
    lite, seconds = runtimes.load_litert_model(lambda: model, path, quantize,
                                               calibration=lambda: backbone.preprocess(images))
    # Batches of 2 then 1: the interpreter resizes its input between calls.
    expected = extract_array(model, images, backbone.preprocess, batch_size=2)
    got = extract_array(lite, images, backbone.preprocess, batch_size=2)
    return expected, got, lite, seconds


@pytest.mark.parametrize("name, size", [
    pytest.param("efficientnet-lite0", 64, marks=pytest.mark.slow),
    pytest.param("efficientnet-lite1", 64, marks=pytest.mark.slow),
    pytest.param("efficientnet-lite2", 64, marks=pytest.mark.slow),
    ("mobilenetv2", 64),
    ("pixels", 32),
    pytest.param("efficientnetb0", 64, marks=pytest.mark.slow),
    pytest.param("vgg16", 64, marks=pytest.mark.slow),
    pytest.param("nasnetmobile", 224, marks=pytest.mark.slow),
    # Stems after a ZeroPadding2D with a bias (resnet50), 1x1 convolutions with a bias, an unpadded 3x3 stem:
    # the NumPy readouts of readouts.plan_readouts on every kind of convolution the registry stores.
    pytest.param("resnet50", 64, marks=pytest.mark.slow),
    pytest.param("densenet121", 64, marks=pytest.mark.slow),
    pytest.param("xception", 96, marks=pytest.mark.slow),
])
@pytest.mark.slow
def test_litert_features_equal_keras_within_1e_4(cache: Path, name: str, size: int) -> None:
    expected, got, lite, seconds = keras_and_litert(name, size)
    assert seconds > 0 and lite.path.is_file() and lite.path.parent == cache / "litert"
    assert [e.shape for e in expected] == [g.shape for g in got]
    for e, g in zip(expected, got, strict=True):
        assert relative_difference(e, g) < TOLERANCE


def _small_model(case: str):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((33, 30, 3))
    x = inputs
    if case == "rescale, pad, 3x3 stride 2 with bias":
        x = keras.layers.Rescaling(0.5, offset=0.25)(keras.layers.Rescaling([1.0, 2.0, 3.0], offset=-1.0)(x))
        x = keras.layers.ZeroPadding2D(((0, 1), (2, 1)))(x)
        x = keras.layers.Conv2D(8, 3, strides=2, padding="valid", name="stored")(x)
    elif case == "5x5 stride 2 same":
        x = keras.layers.Conv2D(8, 5, strides=2, padding="same", use_bias=False, name="stored")(x)
    elif case == "3x3 dilation 2 same":
        x = keras.layers.Conv2D(8, 3, dilation_rate=2, padding="same", name="stored")(x)
    elif case == "1x1 inside, bias":
        x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(x)
        x = keras.layers.Conv2D(8, 1, name="stored")(x)
    elif case == "pad then rescale (kept)":
        x = keras.layers.Rescaling(2.0, offset=1.0)(keras.layers.ZeroPadding2D(1)(x))
        x = keras.layers.Conv2D(8, 3, name="stored")(x)
    elif case == "relu (kept)":
        x = keras.layers.Conv2D(8, 3, activation="relu", name="stored")(x)
    elif case == "1x1 stride 2 inside (kept)":
        x = keras.layers.Conv2D(6, 3, activation="relu")(x)
        x = keras.layers.Conv2D(8, 1, strides=2, name="stored")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(4, 1, name="deeper")(keras.layers.Activation("relu6")(x))
    base = keras.Model(inputs, x)
    for layer in base.layers:  # BatchNorm statistics that are not the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([np.linspace(0.5, 2.0, w.shape[0]) for w in layer.get_weights()])
    return base


@pytest.mark.parametrize("case, kind", [
    ("rescale, pad, 3x3 stride 2 with bias", "input"), ("5x5 stride 2 same", "input"),
    ("3x3 dilation 2 same", "input"), ("1x1 inside, bias", "pooled"), ("pad then rescale (kept)", "output"),
    ("relu (kept)", "output"), ("1x1 stride 2 inside (kept)", "output"),
])
def test_linear_convolutions_are_read_out_in_numpy_with_the_same_features(cache: Path, case: str, kind: str) -> None:
    """readouts.plan_readouts: a stored linear convolution of the input (through ZeroPadding2D / Rescaling) or a
    1x1 one leaves the graph and is read out in NumPy; anything else stays a graph output; features as Keras'."""
    from precompute.extract import build_feature_model, extract_array

    base = _small_model(case)
    model = build_feature_model(base, ["stored", "deeper"], "avg")
    lite, _ = runtimes.load_litert_model(lambda: model, cache / "litert" / f"{case}.tflite")
    assert [r.kind for r in lite.readouts] == [kind, "pooled"]
    assert readouts.readout_path(lite.path).is_file()
    images = np.random.default_rng(1).uniform(-1, 1, (5, 33, 30, 3)).astype(np.float32)
    expected = extract_array(model, images, lambda x: x, batch_size=2)
    got = extract_array(lite, images, lambda x: x, batch_size=2)
    assert lite.dims == [8, 4]
    for e, g in zip(expected, got, strict=True):
        assert g.dtype == np.float32 and relative_difference(e, g) < 1e-5
    # Max pooling is not linear: the same layers stay graph outputs, and no readouts file is written.
    runtimes.convert_to_tflite(build_feature_model(base, ["stored"], "max"), cache / "max.tflite")
    maxed = runtimes.LiteRTModel(cache / "max.tflite")
    assert maxed.readouts is None and not readouts.readout_path(maxed.path).exists()


# max pooling converts as avg does (the fast tier keeps avg; 5-9 s each).
@pytest.mark.parametrize("pooling", ["avg", pytest.param("max", marks=pytest.mark.slow)])
def test_twelve_outputs_come_back_in_the_feature_models_order(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                               pooling: str) -> None:
    """The frozen-graph conversion writes no signature: LiteRTModel takes the outputs in the model's order, which
    must be the feature model's, also past ten outputs (where sorting names would put ``f010`` before ``f002``, or
    ``Identity_10`` before ``Identity_2``). Each output has its own width, so any swap changes ``dims``. A file
    converted through a SavedModel, as before (with a signature naming ``f000, f001, ...``), loads the same."""
    import keras
    import tensorflow as tf

    from precompute.extract import build_feature_model, extract_array

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x, names = inputs, []
    for i in range(12):
        x = keras.layers.Conv2D(3 + i, 1, activation="relu", name=f"c{i}")(x)
        names.append(f"c{i}")
    model = build_feature_model(keras.Model(inputs, x), names[::-1], pooling)  # deepest first: not the graph order
    images = np.random.default_rng(2).uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
    expected = extract_array(model, images, lambda b: b, batch_size=2)
    runtimes.convert_to_tflite(model, cache / "frozen.tflite")
    frozen = runtimes.LiteRTModel(cache / "frozen.tflite")
    assert frozen._interpreter.get_signature_list() == {}
    # The conversion of before: the flag reads True whatever convert_to_tflite sets.
    monkeypatch.setattr(tf.lite.TFLiteConverter, "experimental_lower_to_saved_model",
                        property(lambda self: True, lambda self, value: None), raising=False)
    runtimes.convert_to_tflite(model, cache / "saved.tflite")
    monkeypatch.undo()
    signed = runtimes.LiteRTModel(cache / "saved.tflite")
    assert signed._interpreter.get_signature_list() != {}
    for lite in (frozen, signed):
        assert lite.dims == [14 - i for i in range(12)]
        for e, g in zip(expected, extract_array(lite, images, lambda b: b, batch_size=2), strict=True):
            assert e.shape == g.shape and relative_difference(e, g) < 1e-5


@pytest.mark.slow
def test_efficientnet_lite0_folds_every_batchnorm_on_litert(cache: Path) -> None:
    """Its 8 stored layers are all linear convolutions: the graph keeps no MUL of an unfolded BatchNorm, and
    top_conv leaves it (docs/benchmarks.md section 9)."""
    import collections

    expected, got, lite, _ = keras_and_litert("efficientnet-lite0", 64, n_layers=8)
    assert [r.kind for r in lite.readouts] == ["input"] + ["pooled"] * 7
    ops = collections.Counter(op["op_name"] for op in lite._interpreter._get_ops_details())
    assert "MUL" not in ops and ops["MEAN"] == 7
    for e, g in zip(expected, got, strict=True):
        assert relative_difference(e, g) < TOLERANCE


@pytest.mark.slow  # a MobileNetV2 conversion: 20-45 s
def test_chunked_invocations_give_the_batch_features(cache: Path, monkeypatch) -> None:
    """LiteRTModel runs a batch in chunks of invoke_batch images (default: 224 x 224 pixels' worth, so 49 images
    at 32 px, 1 at 224 px): the same features for any chunking."""
    expected, got, lite, _ = keras_and_litert("mobilenetv2", 32, n_layers=2)
    assert lite.invoke_batch == 49
    images = np.random.default_rng(1).uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
    by_one = runtimes.LiteRTModel(lite.path, invoke_batch=1)(images)
    for step in (2, 5, 8, None):
        chunked = runtimes.LiteRTModel(lite.path, invoke_batch=step)(images)
        for a, b in zip(by_one, chunked, strict=True):
            assert a.shape == b.shape and relative_difference(a, b) < 1e-5
    # Chunks taken in turn by one-thread interpreters (lanes): each image's features bit for bit those of one
    # interpreter running them in turn, whatever the number of lanes and chunks.
    alone = runtimes.LiteRTModel(lite.path, num_threads=1, invoke_batch=1)(images)
    for lanes in (2, 3, 8):
        shared = runtimes.LiteRTModel(lite.path, num_threads=lanes, invoke_batch=1)
        for _ in range(2):  # the lanes are made on the first call and reused
            for a, b in zip(alone, shared(images), strict=True):
                np.testing.assert_array_equal(a, b)
        assert len(shared._lanes) == lanes
    monkeypatch.setattr(runtimes, "LANES_MAX_BYTES", 0)  # a model too big to hold once per lane: one interpreter
    big = runtimes.LiteRTModel(lite.path, num_threads=2, invoke_batch=1)
    for a, b in zip(alone, big(images), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not big._lanes


@pytest.mark.slow
def test_conversions_are_cached_by_config_layers_and_quantisation(cache: Path) -> None:
    _, _, lite, seconds = keras_and_litert("mobilenetv2", 32, n_layers=2)
    assert seconds > 0
    again, seconds_again = runtimes.load_litert_model(lambda: pytest.fail("converted again"), lite.path)
    assert seconds_again == 0.0 and again.dims == lite.dims
    base = {"backbone": "mobilenetv2", "input_size": 32}
    paths = {runtimes.tflite_path(base, ["a"]), runtimes.tflite_path(base, ["a", "b"]),
             runtimes.tflite_path(base, ["a"], "int8"), runtimes.tflite_path({**base, "input_size": 64}, ["a"])}
    assert len(paths) == 4
    lite.path.write_bytes(b"not a flatbuffer")  # a damaged cache file is converted again, not a crash
    import keras

    from precompute.backbones import ResolvedWeights, build_base, get_backbone
    from precompute.extract import build_feature_model

    base_model = build_base(get_backbone("mobilenetv2"), ResolvedWeights("random", None, "random", seed=0), 32)
    rebuilt, seconds = runtimes.load_litert_model(
        lambda: build_feature_model(base_model, ["Conv1"], "avg"), lite.path)
    assert seconds > 0 and rebuilt.dims == [32]
    keras.backend.clear_session()


@pytest.mark.slow
def test_quantised_models_are_smaller_and_close(cache: Path) -> None:
    expected, float32, lite, _ = keras_and_litert("mobilenetv2", 64, n_layers=2)
    sizes = {None: lite.size_mb}
    for quantize in runtimes.QUANTIZATIONS:
        _, got, small, _ = keras_and_litert("mobilenetv2", 64, n_layers=2, quantize=quantize)
        sizes[quantize] = small.size_mb
        # int8full: with random weights the deep layer's features are ~1e-12, below one int8 step of the ranges
        # calibrated upstream, so only the first layer is compared (real weights: docs/benchmarks.md section 9).
        pairs = list(zip(expected, got, strict=True))
        for e, g in pairs[:1] if quantize == "int8full" else pairs:
            assert 0 < relative_difference(e, g) < 0.2  # changed, but the same features roughly
    assert sizes["float16"] < 0.6 * sizes[None] and sizes["int8"] < 0.35 * sizes[None]
    assert sizes["int8full"] < 0.35 * sizes[None]


def test_int8full_needs_calibration_images(cache: Path) -> None:
    with pytest.raises(ValueError, match="calibration images"):
        runtimes.convert_to_tflite(object(), cache / "x.tflite", "int8full")


@pytest.mark.slow  # a calibrated full-integer MobileNetV2 conversion: 25-50 s
def test_int8full_is_full_integer_with_float_input_and_output(cache: Path) -> None:
    """Every weight and activation tensor int8 (int32 biases), the input and the outputs float32."""
    _, got, lite, _ = keras_and_litert("mobilenetv2", 32, n_layers=2, quantize="int8full")
    details = lite._interpreter.get_tensor_details()
    io_details = lite._interpreter.get_input_details() + lite._interpreter.get_output_details()
    interpreter_io = {d["index"] for d in io_details}
    assert {str(np.dtype(d["dtype"])) for d in lite._interpreter.get_input_details()} == {"float32"}
    assert all(g.dtype == np.float32 for g in got)
    kinds = [np.dtype(d["dtype"]) for d in details if d["index"] not in interpreter_io]
    assert sum(k == np.int8 for k in kinds) > 0.5 * len(kinds)
    assert not [k for k in kinds if k == np.float32], "a float32 tensor inside the graph: not full-integer"


def test_runtime_choice(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    lite0, vgg16 = get_backbone("efficientnet-lite0"), get_backbone("vgg16")
    assert runtimes.resolve_runtime("keras", lite0) == "keras"
    assert runtimes.resolve_runtime("litert", vgg16) == "litert"
    assert runtimes.resolve_runtime("keras", vgg16, quantize="int8") == "litert"
    assert runtimes.resolve_runtime("auto", lite0) == "litert"  # no GPU here: the registry's auto_runtime_cpu
    assert runtimes.resolve_runtime("auto", vgg16) == "keras"
    runtimes.write_runtime_table({"vgg16": "litert"}, {})  # what the bench measured on this machine wins
    assert runtimes.resolve_runtime("auto", vgg16) == "litert"
    monkeypatch.setattr(runtimes, "gpu_present", lambda: True)
    assert runtimes.resolve_runtime("auto", lite0) == "keras"
    with pytest.raises(ValueError, match="'tpu'.*auto, keras, litert"):
        runtimes.check_runtime("tpu")
    with pytest.raises(ValueError, match="'int4'.*float16, int8"):
        runtimes.parse_quantizations("float16,int4")
    assert runtimes.parse_quantizations("int8, float16,int8") == ("int8", "float16")


def test_gpu_check_does_not_import_tensorflow() -> None:
    code = "import sys; from precompute import runtimes; runtimes.gpu_present(); print('tensorflow' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    on_nvidia_machine = Path("/proc/driver/nvidia/version").exists()
    assert out.stdout.strip() == str(on_nvidia_machine)


def _features(out: Path, key: str) -> dict[str, np.ndarray]:
    entry = art.read_index(out).to_dict()["datasets"]["colours"]["models"][key]
    return {name: art.read_array(out / layer["features"]) for name, layer in entry["layers"].items()}


@pytest.mark.slow
def test_artifacts_are_the_same_whichever_runtime(tmp_path: Path, cache: Path) -> None:
    """Same files and index keys; features within 1e-4; rankings equal but for near-ties; the runtime recorded."""
    dataset = make_dataset(tmp_path / "colours")
    models = [ModelRequest("efficientnet-lite0", "random")]
    outs = {}
    for runtime in ("keras", "litert"):
        outs[runtime] = tmp_path / runtime
        Run(config(dataset, outs[runtime], models=models, runtime=runtime)).execute()
    files = {runtime: sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.suffix != ".json")
             for runtime, out in outs.items()}
    assert files["keras"] == files["litert"]
    key = "efficientnet-lite0-random"
    entries = {r: art.read_index(out).to_dict()["datasets"]["colours"]["models"][key] for r, out in outs.items()}
    assert entries["keras"]["config"] == entries["litert"]["config"]  # a runtime change recomputes nothing
    assert {r: e["cost"]["runtime"] for r, e in entries.items()} == {"keras": "keras", "litert": "litert"}
    assert entries["litert"]["cost"]["conversion_seconds"] > 0 and entries["litert"]["cost"]["model_mb"] > 0
    keras_features, lite_features = _features(outs["keras"], key), _features(outs["litert"], key)
    for name, features in keras_features.items():
        assert relative_difference(features, lite_features[name]) < TOLERANCE
        for metric in ("cosine", "euclidean"):
            a, da = art.read_neighbors(outs["keras"] / entries["keras"]["layers"][name]["metrics"][metric]["neighbors"])
            b, _ = art.read_neighbors(outs["litert"] / entries["litert"]["layers"][name]["metrics"][metric]
                                      ["neighbors"])
            differ = a != b
            # A swapped pair must be a near-tie: its two distances differ by less than the features' tolerance.
            gaps = np.abs(np.diff(da, axis=1))
            near_tie = np.zeros_like(differ)
            near_tie[:, 1:] |= gaps <= 1e-3 * np.maximum(da[:, 1:], 1e-6)
            near_tie[:, :-1] |= gaps <= 1e-3 * np.maximum(da[:, 1:], 1e-6)
            assert not (differ & ~near_tie).any()
    report = json.loads(art.report_path(outs["litert"], "colours").read_text())
    assert report["models"][key]["status"] == "done"


@pytest.mark.slow
def test_quantize_adds_models_with_size_speed_and_scores(tmp_path: Path, cache: Path) -> None:
    from precompute.models import load_extractor

    dataset = make_dataset(tmp_path / "colours")
    out = tmp_path / "out"
    models = [ModelRequest("pixels", "auto"), ModelRequest("efficientnet-lite0", "random")]
    Run(config(dataset, out, models=models, quantize=("float16", "int8"))).execute()
    entry = art.read_index(out).to_dict()["datasets"]["colours"]["models"]
    base = "efficientnet-lite0-random"
    assert set(entry) == {"pixels", base, f"{base}-float16", f"{base}-int8"}  # pixels has no weights to shrink
    for quantize in ("float16", "int8"):
        model = entry[f"{base}-{quantize}"]
        assert model["config"]["quantize"] == quantize and model["cost"]["runtime"] == "litert"
        assert model["cost"]["images_per_second"] > 0
        assert model["layers"].keys() == entry[base]["layers"].keys()
        for layer in model["layers"].values():
            assert 0 <= layer["metrics"]["cosine"]["summary"]["rwp@15"] <= 1
    assert entry[f"{base}-int8"]["cost"]["model_mb"] < 0.35 * entry[base]["cost"]["model_mb"]
    assert entry[f"{base}-float16"]["cost"]["model_mb"] < 0.6 * entry[base]["cost"]["model_mb"]
    # Uploads rebuild the variant from its config, from the cached file, with the run's features.
    model = entry[f"{base}-int8"]
    layers = sorted(model["layers"], key=lambda name: model["layers"][name]["order"])
    extract = load_extractor(model["config"], layers)
    from precompute.datasets import load_batches

    manifest = art.read_table(art.manifest_path(out, "colours"))
    images = next(iter(load_batches(dataset, manifest["path"].tolist()[:3], 32, 3)))
    stored = art.read_array(out / model["layers"][layers[-1]]["features"])[:3]
    assert relative_difference(stored, extract(images)[-1]) < TOLERANCE
    # A rerun converts nothing and recomputes nothing.
    n_files = len(list((cache / "litert").iterdir()))
    Run(config(dataset, out, models=models, quantize=("float16", "int8"))).execute()
    assert len(list((cache / "litert").iterdir())) == n_files


@pytest.mark.slow
def test_int8full_is_calibrated_on_the_dataset_and_stored_as_a_model(tmp_path: Path, cache: Path) -> None:
    from precompute.models import load_extractor

    dataset = make_dataset(tmp_path / "colours")
    out = tmp_path / "out"
    models = [ModelRequest("efficientnet-lite0", "random")]
    Run(config(dataset, out, models=models, quantize=("int8full",))).execute()
    entry = art.read_index(out).to_dict()["datasets"]["colours"]["models"]
    base = "efficientnet-lite0-random"
    assert set(entry) == {base, f"{base}-int8full"}
    model = entry[f"{base}-int8full"]
    n_images = art.read_index(out).to_dict()["datasets"]["colours"]["n_images"]
    assert model["config"]["quantize"] == "int8full"
    assert model["config"]["calibration"] == f"colours: {min(runtimes.CALIBRATION_IMAGES, n_images)} images, seed 0"
    assert model["cost"]["runtime"] == "litert" and model["cost"]["images_per_second"] > 0
    assert model["cost"]["model_mb"] < 0.35 * entry[base]["cost"]["model_mb"]
    for layer in model["layers"].values():
        assert 0 <= layer["metrics"]["cosine"]["summary"]["rwp@15"] <= 1
    # An upload finds the converted file from the stored config (no calibration images there).
    layers = sorted(model["layers"], key=lambda name: model["layers"][name]["order"])
    from precompute.datasets import load_batches

    manifest = art.read_table(art.manifest_path(out, "colours"))
    images = next(iter(load_batches(dataset, manifest["path"].tolist()[:3], 32, 3)))
    stored = art.read_array(out / model["layers"][layers[-1]]["features"])[:3]
    assert relative_difference(stored, load_extractor(model["config"], layers)(images)[-1]) < TOLERANCE


@pytest.mark.slow
def test_an_upload_extractor_from_the_cache_builds_no_keras_model(cache: Path) -> None:
    """The app's upload path: once precompute converted the model, the extractor loads from the cached file and
    extracts without importing TensorFlow (no Keras model is built; the preprocessing is NumPy)."""
    from precompute.models import load_extractor

    config = {"backbone": "mobilenetv2", "weights_source": "random", "weights_file": None, "seed": 0,
              "input_size": 32, "pooling": "avg"}
    layers = ["Conv1", "block_2_expand"]
    keras_features = load_extractor(config, layers, runtime="keras")(np.full((1, 32, 32, 3), 99, np.uint8))
    load_extractor(config, layers, runtime="litert")  # converts into the cache, as a precompute run would
    code = ("import sys, json, numpy as np; from precompute.models import load_extractor; "
            f"extract = load_extractor({config!r}, {layers!r}, runtime='litert'); "
            "loaded = ['tensorflow' in sys.modules, 'keras' in sys.modules]; "
            "out = extract(np.full((1, 32, 32, 3), 99, np.uint8)); "
            "loaded += ['tensorflow' in sys.modules, 'keras' in sys.modules]; "
            "print(json.dumps([*loaded, [o.tolist() for o in out]]))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=True)
    tensorflow, keras, tensorflow_after, keras_after, features = json.loads(result.stdout.strip().splitlines()[-1])
    assert not tensorflow and not keras
    assert not tensorflow_after and not keras_after
    for expected, got in zip(keras_features, features, strict=True):
        assert relative_difference(expected, np.asarray(got, dtype=np.float32)) < TOLERANCE


@pytest.mark.slow
def test_an_upload_on_litert_imports_no_tensorflow(tmp_path: Path, cache: Path) -> None:
    """The app's whole upload path (``playground.uploads.upload_features``: decode, extractor, features) on a model
    that precompute ran on LiteRT, in a fresh interpreter: TensorFlow and Keras are never imported, and the
    upload of a dataset image gets the features stored for it."""
    dataset = make_dataset(tmp_path / "colours")
    out = tmp_path / "out"
    Run(config(dataset, out, models=[ModelRequest("efficientnet-lite0", "random")], runtime="litert")).execute()
    key = "efficientnet-lite0-random"
    entry = art.read_index(out).to_dict()["datasets"]["colours"]["models"][key]
    assert entry["cost"]["runtime"] == "litert"
    layers = sorted(entry["layers"], key=lambda name: entry["layers"][name]["order"])
    manifest = art.read_table(art.manifest_path(out, "colours"))
    image = dataset / manifest["path"].tolist()[0]
    code = ("import sys, json; from pathlib import Path; from playground.store import Store; "
            "from playground.uploads import upload_features; "
            f"store = Store({str(out)!r}); data = Path({str(image)!r}).read_bytes(); "
            f"features = [upload_features(store, 'colours', {key!r}, layer, data)[0].tolist() "
            f"for layer in {layers!r}]; "
            "print(json.dumps([sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')), "
            "features]))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    imported, features = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == []
    for layer, got in zip(layers, features, strict=True):
        stored = art.read_array(out / entry["layers"][layer]["features"])[0]
        assert relative_difference(stored, np.asarray(got, dtype=np.float32)) < TOLERANCE
