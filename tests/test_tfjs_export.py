"""Feature models exported as TF.js layers models (``precompute.tfjs_export``).

- the converter's quantisation, checked against tfjs-converter's ``quantization.py`` formulas written out by hand;
- the input transform, derived from every ``keras.applications`` preprocessing mode, and refused when not affine;
- round trips through the project's own reader (``precompute.readers.tfjs``): same weights within each step;
- the proof that matters: TensorFlow.js 4.22 itself (``tf.min.js`` in node, ``tests/tfjs_predict.js``) loads the
  files and computes Keras' features within 1e-4 relative (float32): a small model with every layer class, every
  backbone of the registry (random weights) and the default run's trained models (slow); skipped, with the reason,
  without node or a cached ``tf.min.js``;
- the pipeline (slow): every model exported by default, bytes in the index, a stale or damaged export redone
  without re-extracting, a second dataset linking the same model's files, a model TF.js cannot load recorded
  with its reason, ``--tfjs none``.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from precompute import tfjs_export
from precompute.extract import build_feature_model, run_feature_model
from precompute.preprocessing import PixelAffine
from precompute.readers import tfjs as tfjs_files
from precompute.schema_export import EXPORTER_VERSION
from precompute.tfjs_export import (
    VARIANTS,
    NotExportableError,
    derive_input_transform,
    export_feature_model,
    parse_variants,
    quantize_weight,
)
from tests.tfjs_node import predict_in_node, tfjs_unavailable

NODE_MISSING = tfjs_unavailable()
needs_node = pytest.mark.skipif(NODE_MISSING is not None, reason=f"TF.js cannot run here: {NODE_MISSING}")
REL_TOL = 1e-4


def _relative_error(expected: np.ndarray, got: np.ndarray) -> float:
    return float(np.abs(expected - got).max() / max(np.abs(expected).max(), 1e-12))


# ------------------------------------------------------------------------------------------- quantisation


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_quantize_weight_is_the_converters_affine_map(dtype):
    rng = np.random.default_rng(0)
    data = rng.normal(0.1, 1.0, (5, 7)).astype(np.float32)
    codes, meta = quantize_weight(data, dtype)
    quant_max = np.iinfo(dtype).max
    # quantization.py: scale over [min, max]; 0 inside the range lands on a code (nudged min).
    lo, hi = float(data.min()), float(data.max())
    scale = (hi - lo) / quant_max
    nudged_min = -np.round(-lo / scale) * scale
    assert meta == {"dtype": dtype, "min": nudged_min, "scale": scale, "original_dtype": "float32"}
    assert codes.dtype == np.dtype(dtype)
    values = codes * meta["scale"] + meta["min"]
    assert np.abs(values - data).max() <= scale / 2 + 1e-7
    assert np.any(np.isclose(np.arange(quant_max + 1) * scale + nudged_min, 0.0, atol=1e-12))


def test_quantize_weight_special_cases():
    codes, meta = quantize_weight(np.full(4, 0.25, np.float32), "uint8")  # constant: zeros, scale 1, min = value
    assert codes.tolist() == [0] * 4 and meta["min"] == 0.25 and meta["scale"] == 1.0
    codes, meta = quantize_weight(np.array([1.0, 2.0, 3.0], np.float32), "uint8")  # 0 outside: no nudge
    assert meta["min"] == 1.0 and codes.tolist() == [0, 128, 255]
    codes, meta = quantize_weight(np.array([1.5, -2.0], np.float32), "float16")
    assert codes.dtype == np.float16 and meta == {"dtype": "float16", "original_dtype": "float32"}
    with pytest.raises(ValueError, match="valid: float32"):
        quantize_weight(np.zeros(2, np.float32), "int4")


def test_parse_variants():
    assert parse_variants("uint8,float32") == ("float32", "uint8")
    assert parse_variants("none") == () and parse_variants("") == ()
    with pytest.raises(ValueError, match="valid: float32, float16, uint16, uint8"):
        parse_variants("float32,int8")


# ------------------------------------------------------------------------------------------- input transform


@pytest.mark.parametrize("mode, order", [("caffe", "bgr"), ("tf", "rgb"), ("torch", "rgb")])
def test_input_transform_of_every_keras_preprocessing_mode(mode, order):
    from keras.applications import imagenet_utils

    def preprocess(x):
        return imagenet_utils.preprocess_input(np.array(x, dtype=np.float32, copy=True), mode=mode)

    transform = derive_input_transform(preprocess, 16)
    assert transform.channel_order == order
    x = np.random.default_rng(3).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(transform.apply(x), preprocess(x), rtol=1e-6, atol=1e-5)
    if mode == "caffe":  # BGR, minus the ImageNet means in BGR order
        assert transform.scale == (1.0, 1.0, 1.0)
        np.testing.assert_allclose(transform.offset, (-103.939, -116.779, -123.68), atol=1e-4)


def test_input_transform_refuses_what_is_not_per_channel_affine():
    with pytest.raises(NotExportableError, match="mixes colour channels"):
        derive_input_transform(lambda x: x @ np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], np.float32), 8)
    with pytest.raises(NotExportableError, match="not a per-channel affine map"):
        derive_input_transform(lambda x: np.sqrt(x), 8)


# ------------------------------------------------------------------------------------------- small models


def _small_model(extra: str = "") -> tuple[keras.Model, list[str]]:
    """A small base with the layer classes of the registry's backbones, and its feature model over 3 layers."""
    inputs = keras.Input((24, 24, 3), name="input_layer")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu6", name="act")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.ReLU(6.0, name="relu")(y)
    y = keras.layers.SeparableConv2D(8, 3, padding="same", name="sep")(y)
    z = keras.layers.Add(name="add")([x, y])
    z = keras.layers.Concatenate(name="cat")([z, keras.layers.MaxPooling2D(1, name="mp")(x)])
    z = keras.layers.Activation("swish", name="swish")(z)
    se = keras.layers.GlobalAveragePooling2D(name="se_gap")(z)
    se = keras.layers.Reshape((1, 1, 16), name="se_reshape")(se)
    z = keras.layers.Multiply(name="se_mul")([z, se])
    z = keras.layers.BatchNormalization(scale=False, name="bn2")(z)
    z = keras.layers.AveragePooling2D(2, name="avg")(z)
    if extra == "lambda":
        z = keras.layers.Lambda(lambda t: t * 2, name="double")(z)
    base = keras.Model(inputs, z, name="small")
    rng = np.random.default_rng(0)
    for layer in base.layers:  # non-trivial BatchNorm statistics
        for variable in layer.weights:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32)
                            if "variance" in variable.name else rng.normal(0, 0.5, variable.shape).astype(np.float32))
    return base, ["act", "add", "avg"]


def _preprocess(x):
    return np.asarray(x, np.float32)


def test_not_exportable_layer_names_the_layer(tmp_path):
    base, layers = _small_model("lambda")
    model = build_feature_model(base, [*layers[:2], "double"])
    with pytest.raises(NotExportableError, match="'double' is a Lambda"):
        export_feature_model(model, [*layers[:2], "double"], _preprocess, 24, tmp_path / "tfjs")
    assert not (tmp_path / "tfjs").exists()


def test_export_layout_and_reader_round_trip(tmp_path):
    base, layers = _small_model()
    model = build_feature_model(base, layers)
    spec = export_feature_model(model, layers, _preprocess, 24, tmp_path / "tfjs")
    # The leading Rescaling is folded into the input transform.
    assert spec.transform == PixelAffine("rgb", (float(np.float32(1 / 127.5)),) * 3, (-1.0,) * 3)
    exported = json.loads((tmp_path / "tfjs" / "export.json").read_text())
    assert exported["layers"] == layers and exported["output_dims"] == [8, 8, 16]
    assert exported["channel_order"] == "rgb" and exported["tfjs_version"] == "4.22.0"
    assert list(exported["variants"]) == list(VARIANTS)
    weights = {f"{layer.name}/{w.name}": keras.ops.convert_to_numpy(w) for layer in base.layers for w in layer.weights}
    weights = {key.replace("dw/kernel", "dw/depthwise_kernel"): value for key, value in weights.items()}
    for variant, files in exported["variants"].items():
        folder = tmp_path / "tfjs" / variant
        assert sorted(p.name for p in folder.iterdir()) == sorted(files["files"])
        assert files["bytes"] == sum((folder / f).stat().st_size for f in files["files"])
        model_json = json.loads((folder / "model.json").read_text())
        topology = model_json["modelTopology"]["model_config"]["config"]
        assert topology["layers"][0]["config"]["batch_input_shape"] == [None, 24, 24, 3]
        assert "rescale" not in [layer["name"] for layer in topology["layers"]]
        read = tfjs_files.read_layers_model(folder / "model.json")
        assert set(read.weights) == set(weights)
        for name, value in weights.items():
            got = read.weights[name]
            if variant == "float32":
                np.testing.assert_array_equal(got, value)
            elif variant == "float16":
                np.testing.assert_array_equal(got, value.astype(np.float16).astype(np.float32))
            else:
                meta = next(w["quantization"] for w in model_json["weightsManifest"][0]["weights"] if w["name"] == name)
                assert read.quantization[name] == variant == meta["dtype"]
                assert np.abs(got - value).max() <= meta["scale"] / 2 * (1 + 1e-5) + 1e-7


def test_shards_split_at_4_mb(tmp_path):
    inputs = keras.Input((8, 8, 3), name="input_layer")
    base = keras.Model(inputs, keras.layers.Conv2D(1100, 1, name="wide")(
        keras.layers.Conv2D(1000, 1, name="conv")(inputs)))
    model = build_feature_model(base, ["wide"])
    spec = export_feature_model(model, ["wide"], _preprocess, 8, tmp_path / "tfjs", ["float32", "uint8"])
    assert spec.variants["float32"].files == ("model.json", "group1-shard1of2.bin", "group1-shard2of2.bin")
    assert (tmp_path / "tfjs" / "float32" / "group1-shard1of2.bin").stat().st_size == 4 * 1024 * 1024
    assert spec.variants["uint8"].files == ("model.json", "group1-shard1of1.bin")
    read = tfjs_files.read_layers_model(tmp_path / "tfjs" / "float32" / "model.json")
    np.testing.assert_array_equal(read.weights["wide/kernel"],
                                  keras.ops.convert_to_numpy(base.get_layer("wide").kernel))


# ------------------------------------------------------------------------------------------- TF.js itself


def _compare_in_tfjs(model, layers, preprocess, size, folder, variants=("float32",), n=2):
    spec = export_feature_model(model, layers, preprocess, size, folder, variants)
    pixels = np.random.default_rng(1).uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    expected = run_feature_model(model, preprocess(pixels))
    results = {}
    for variant in variants:
        got, _ = predict_in_node(folder / variant, spec.transform.apply(pixels))
        results[variant] = [(_relative_error(e, g), float(np.min(np.sum(e * g, 1) / np.linalg.norm(e, axis=1)
                                                                 / np.linalg.norm(g, axis=1))))
                            for e, g in zip(expected, got, strict=True)]
    return spec, results


@needs_node
def test_tfjs_computes_the_small_models_features(tmp_path):
    base, layers = _small_model()
    spec, results = _compare_in_tfjs(build_feature_model(base, layers), layers, _preprocess, 24, tmp_path / "tfjs",
                                     VARIANTS)
    assert all(err <= REL_TOL for err, _ in results["float32"]), results
    assert all(cos >= 0.9999 for _, cos in results["float16"] + results["uint16"]), results
    assert all(cos >= 0.99 for _, cos in results["uint8"]), results


# Every backbone of the registry with random weights (the Keras applications' ImageNet files need a download);
# the Keras applications at 96 px, which keeps TF.js' CPU backend quick and changes no layer type.
REGISTRY_CASES = [("efficientnet-lite0", "random", None), ("pixels", "none", None)] + [
    (name, "random", 96) for name in ("vgg16", "efficientnetb0", "nasnetmobile", "mobilenetv2", "resnet50",
                                      "densenet121", "xception", "inceptionv3", "efficientnet-lite2")]


@needs_node
@pytest.mark.slow
@pytest.mark.parametrize("backbone, source, size", REGISTRY_CASES)
def test_tfjs_computes_the_backbones_features(tmp_path, backbone, source, size):
    from precompute.backbones import get_backbone
    from precompute.models import load_feature_model
    from precompute.schema import ModelConfig

    entry = get_backbone(backbone)
    size = size or entry.input_size
    config = ModelConfig(backbone=backbone, weights_source=source, input_size=size,
                         pooling="flatten" if entry.flatten else "avg", seed=0 if source == "random" else None)
    keras.backend.clear_session()
    model = load_feature_model(config, entry.default_layers, "keras")
    _, results = _compare_in_tfjs(model.runner, list(entry.default_layers), model.preprocess, size,
                                  tmp_path / "tfjs", n=1)
    assert all(err <= REL_TOL for err, _ in results["float32"]), results


def test_module_lists_its_converters():
    assert {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "GlobalAveragePooling2D"} <= set(
        tfjs_export.LAYER_CONVERTERS)


# ------------------------------------------------------------------------------------------- the pipeline


def _pipeline_run(dataset, out, **options):
    import precompute.pipeline as pipeline

    specs = [pipeline.ModelRequest("pixels"), pipeline.ModelRequest("efficientnet-lite0", "random", ("stem_conv",))]
    config = pipeline.RunConfig(dataset, out, specs, input_size=64, progress=False, top_n=5, runtime="keras",
                                metrics=("cosine",), **options)
    pipeline.Run(config).execute()
    from precompute import artifacts

    return artifacts.read_index(out).datasets["shapes"].models


@pytest.mark.slow
def test_precompute_exports_every_model_and_redoes_only_what_is_stale(tmp_path, monkeypatch):
    from precompute import artifacts
    from precompute.stages import model as model_stage
    from tests.playground_fixtures import make_shapes_dataset

    dataset = make_shapes_dataset(tmp_path / "shapes", n_per_class=2)
    out = tmp_path / "out"
    models = _pipeline_run(dataset, out)
    for key, entry in models.items():
        record = entry.tfjs
        assert list(record.variant_bytes) == list(VARIANTS) and record.version == EXPORTER_VERSION
        spec = tfjs_files.read_export_spec(artifacts.tfjs_dir(out, "shapes", key))
        assert list(spec.layers) == entry.layer_names()
        for variant, size in record.variant_bytes.items():
            folder = artifacts.tfjs_variant_dir(out, "shapes", key, variant)
            assert size == sum((folder / name).stat().st_size for name in spec.variants[variant].files)
        assert record.export == f"shapes/{key}/tfjs/export.json"

    exported, extracted = [], []
    real_export, real_extract = tfjs_export.export_feature_model, model_stage.extract_to_files
    monkeypatch.setattr(tfjs_export, "export_feature_model", lambda *a, **k: exported.append(1) or real_export(*a, **k))
    monkeypatch.setattr(model_stage, "extract_to_files", lambda *a, **k: extracted.append(1) or real_extract(*a, **k))
    _pipeline_run(dataset, out)
    assert exported == [] and extracted == []  # all current
    shard = artifacts.tfjs_variant_dir(out, "shapes", "efficientnet-lite0-random", "uint8") / "group1-shard1of1.bin"
    shard.unlink()
    models = _pipeline_run(dataset, out)
    assert exported == [1] and extracted == [] and shard.is_file()  # the export alone is redone
    models = _pipeline_run(dataset, out, tfjs=("float32",))
    assert len(exported) == 3 and extracted == []
    assert list(models["pixels"].tfjs.variant_bytes) == ["float32"]
    assert not artifacts.tfjs_variant_dir(out, "shapes", "pixels", "uint8").exists()


@pytest.mark.slow
def test_a_model_tfjs_cannot_load_records_why(tmp_path, monkeypatch):
    from precompute import artifacts
    from tests.playground_fixtures import make_shapes_dataset

    monkeypatch.delitem(tfjs_export.LAYER_CONVERTERS, "Conv2D")
    dataset = make_shapes_dataset(tmp_path / "shapes", n_per_class=2)
    models = _pipeline_run(dataset, tmp_path / "out")
    record = models["efficientnet-lite0-random"].tfjs
    assert record.variant_bytes == {} and "'stem_conv' is a Conv2D" in record.reason
    assert not artifacts.tfjs_dir(tmp_path / "out", "shapes", "efficientnet-lite0-random").exists()
    assert list(models["pixels"].tfjs.variant_bytes) == list(VARIANTS)


@pytest.mark.slow
def test_tfjs_none_writes_no_export(tmp_path):
    from tests.playground_fixtures import make_shapes_dataset

    dataset = make_shapes_dataset(tmp_path / "shapes", n_per_class=2)
    models = _pipeline_run(dataset, tmp_path / "out", tfjs=())
    assert all(entry.tfjs is None for entry in models.values())
    assert not list((tmp_path / "out").rglob("tfjs"))


@pytest.mark.slow
def test_a_second_dataset_links_the_same_models_export(tmp_path):
    import os

    import precompute.pipeline as pipeline
    from precompute import artifacts
    from tests.playground_fixtures import make_shapes_dataset

    out = tmp_path / "out"
    first = _pipeline_run(make_shapes_dataset(tmp_path / "shapes", n_per_class=2), out)
    other = make_shapes_dataset(tmp_path / "other" / "shapes2", n_per_class=2)
    specs = [pipeline.ModelRequest("pixels"), pipeline.ModelRequest("efficientnet-lite0", "random", ("stem_conv",))]
    pipeline.Run(pipeline.RunConfig(other, out, specs, input_size=64, progress=False, top_n=5, runtime="keras",
                                    metrics=("cosine",))).execute()
    second = artifacts.read_index(out).datasets["shapes2"].models
    for key in first:
        assert second[key].tfjs.variant_bytes == first[key].tfjs.variant_bytes
        a = artifacts.tfjs_variant_dir(out, "shapes", key, "float32") / "model.json"
        b = artifacts.tfjs_variant_dir(out, "shapes2", key, "float32") / "model.json"
        assert os.path.samefile(a, b)
    # Replacing one dataset's export leaves the other's files whole.
    artifacts.tfjs_variant_dir(out, "shapes", "pixels", "uint8").joinpath("model.json").unlink()
    _pipeline_run(tmp_path / "shapes", out)
    assert (artifacts.tfjs_variant_dir(out, "shapes2", "pixels", "uint8") / "model.json").is_file()


def test_a_killed_exports_temporary_folder_is_removed_by_the_next_run(tmp_path):
    from precompute import artifacts

    stale = tmp_path / "ds" / "model" / ".tfjs.k3j2.tmp"
    (stale / "float32").mkdir(parents=True)
    (stale / "float32" / "model.json").write_text("{}")
    kept = tmp_path / "ds" / "model" / "tfjs"
    kept.mkdir()
    assert artifacts.remove_stale_temporaries(tmp_path / "ds") == [stale]
    assert not stale.exists() and kept.is_dir()


@needs_node
@pytest.mark.slow
@pytest.mark.parametrize("backbone, source, size", [("efficientnet-lite0", "imagenet", 224),
                                                    ("mobilenetv2", "nsfwjs", 224), ("inceptionv3", "nsfwjs", 96)])
def test_tfjs_computes_the_offline_models_features(tmp_path, backbone, source, size):
    """The default run's trained models (nsfwjs' bases start with a Rescaling: folded into the transform)."""
    from precompute.backbones import WeightsUnavailableError, get_backbone, resolve_weights
    from precompute.models import load_feature_model
    from precompute.schema import ModelConfig

    entry = get_backbone(backbone)
    try:
        weights = resolve_weights(entry, source)
    except WeightsUnavailableError as exc:
        pytest.skip(f"{backbone} {source} weights are not available here: {exc}")
    layers = list(weights.default_layers or entry.default_layers)
    config = ModelConfig(backbone=backbone, weights_source=source, input_size=size,
                         weights_file=weights.keras_arg if source == "nsfwjs" else None)
    keras.backend.clear_session()
    model = load_feature_model(config, layers, "keras")
    spec, results = _compare_in_tfjs(model.runner, layers, model.preprocess, size, tmp_path / "tfjs", VARIANTS, n=1)
    assert all(err <= REL_TOL for err, _ in results["float32"]), results
    assert all(cos >= 0.999 for _, cos in results["float16"] + results["uint16"]), results
    if source == "nsfwjs":  # Rescaling(0.5, 0.5) after x / 127.5 - 1: x / 255
        assert spec.transform == PixelAffine("rgb", (float(np.float32(1 / 255)),) * 3, (0.0,) * 3)


def test_a_litert_quantised_model_gets_no_export_and_says_why(tmp_path):
    import precompute.pipeline as pipeline
    from precompute.backbones import get_backbone
    from precompute.schema import ModelConfig
    from precompute.stages.export import export_tfjs

    (tmp_path / "ds").mkdir()
    run = pipeline.Run(pipeline.RunConfig(tmp_path / "ds", tmp_path / "out", []))
    stale = tmp_path / "out" / "ds" / "efficientnet-lite0-int8" / "tfjs"
    stale.mkdir(parents=True)
    config = ModelConfig(backbone="efficientnet-lite0", weights_source="imagenet", input_size=224, quantize="int8")
    record = export_tfjs(run, config.name, config, get_backbone("efficientnet-lite0"), None, ["stem_conv"])
    assert record.variant_bytes == {} and "LiteRT int8" in record.reason and not stale.exists()


@needs_node
@pytest.mark.slow
def test_a_private_query_in_tfjs_ranks_as_the_server_does(tmp_path):
    """The two halves of #16's contract together: ``assets/private_search.js`` (PIL's resize, export.json's map)
    and the export, in node, against the server's features of scikit-image's photos (lite0 ImageNet, float32)."""
    import subprocess
    from pathlib import Path

    import skimage.data

    from precompute.backbones import WeightsUnavailableError, get_backbone, resolve_weights
    from precompute.datasets import decode_image, load_for_model
    from precompute.models import load_feature_model
    from precompute.schema import ModelConfig
    from tests.tfjs_node import REPO_ASSETS, tfjs_path

    search_js = REPO_ASSETS / "private_search.js"
    if not search_js.is_file():
        pytest.skip("assets/private_search.js (issue #16 part 2) is not in this tree")
    try:
        resolve_weights(get_backbone("efficientnet-lite0"), "imagenet")
    except WeightsUnavailableError as exc:
        pytest.skip(f"efficientnet-lite0 ImageNet weights are not available here: {exc}")
    layers = list(get_backbone("efficientnet-lite0").default_layers)
    config = ModelConfig(backbone="efficientnet-lite0", weights_source="imagenet", input_size=224)
    model = load_feature_model(config, layers, "keras")
    export_feature_model(model.runner, layers, model.preprocess, 224, tmp_path / "tfjs", ["float32"])
    photos = [Path(skimage.data.__file__).parent / name for name in ("astronaut.png", "coffee.png", "rocket.jpg")]
    for photo in photos:
        expected = run_feature_model(model.runner, model.preprocess(load_for_model(photo, 224)[None]))
        image = np.asarray(decode_image(photo), dtype=np.uint8)
        (tmp_path / "rgb.u8").write_bytes(image.tobytes())
        done = subprocess.run(["node", str(Path(__file__).with_name("tfjs_private_query.js")), str(tfjs_path()),
                               str(search_js), str(tmp_path / "tfjs"), "float32", str(tmp_path / "rgb.u8"),
                               str(image.shape[1]), str(image.shape[0]), str(tmp_path / "out.f32")],
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        flat = np.frombuffer((tmp_path / "out.f32").read_bytes(), dtype="<f4")
        bounds = np.cumsum([0, *[e.shape[1] for e in expected]])
        for i, want in enumerate(expected):
            got = flat[bounds[i]:bounds[i + 1]]
            cosine = float(got @ want[0] / (np.linalg.norm(got) * np.linalg.norm(want[0])))
            assert cosine >= 0.999, (photo.name, layers[i], cosine)
            # PIL's resize is reproduced exactly: the features are Keras' to float32 rounding (1.3e-6 measured).
            assert _relative_error(want[0], got) <= REL_TOL, (photo.name, layers[i])
