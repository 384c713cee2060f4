"""TF.js layers models -> Keras: quantised round trips written here, graph-order mapping, nsfwjs when present.

The round trips write Keras weights as a TF.js layers model (model.json + shards, the way tensorflowjs'
converter does, float32 / uint8 / uint16 / float16, optionally as nsfwjs' browserify bundles), read them back with
``precompute.ports.tfjs`` and compare. The last tests use the real npm package nsfwjs@4.4.0 and run only where it is
unpacked (``$SISP_NSFWJS_DIR``) or already cached by ``precompute.ports.nsfwjs``.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from precompute import import_tfjs, weights_cache
from precompute.ports import tfjs
from precompute.readers import tfjs as tfjs_files

QUANT_MAX = {"uint8": 255, "uint16": 65535}
_BARE_KEY = re.compile(r"[A-Za-z_$][\w$]*")


# ------------------------------------------------------------------------------------------- a TF.js writer


def _quantize(x: np.ndarray, dtype: str | None) -> tuple[bytes, dict | None, np.ndarray]:
    """Stored bytes, the manifest's ``quantization`` entry and the values a reader must give back."""
    x = np.asarray(x, dtype=np.float32)
    if dtype is None:
        return x.astype("<f4").tobytes(), None, x
    if dtype == "float16":
        stored = x.astype("<f2")
        return stored.tobytes(), {"dtype": "float16"}, stored.astype(np.float32)
    # tensorflowjs' affine quantisation: a scale over the value range, min nudged so that 0 is exact.
    lo, hi = float(x.min()), float(x.max())
    scale = (hi - lo) / QUANT_MAX[dtype] if hi > lo else 1.0
    nudged_min = round(lo / scale) * scale
    codes = np.round((np.clip(x, nudged_min, nudged_min + scale * QUANT_MAX[dtype]) - nudged_min) / scale)
    codes = codes.astype("u1" if dtype == "uint8" else "<u2")
    expected = (codes.astype(np.float64) * scale + nudged_min).astype(np.float32)
    return codes.tobytes(), {"dtype": dtype, "scale": scale, "min": nudged_min}, expected


def _topology(model: keras.Model, rename: dict[str, str], shuffle: int | None) -> dict:
    layers = []
    for layer in model.layers:
        node = layer._inbound_nodes[0]
        inbound = [[rename.get(t._keras_history.operation.name, t._keras_history.operation.name), 0, 0, {}]
                   for t in node.input_tensors]
        name = rename.get(layer.name, layer.name)
        layers.append({"name": name, "class_name": type(layer).__name__, "config": {"name": name, "trainable": True},
                       "inbound_nodes": [inbound] if inbound else []})
    if shuffle is not None:  # the listing order must not matter, only the graph
        np.random.default_rng(shuffle).shuffle(layers)
    out = rename.get(model.outputs[0]._keras_history.operation.name, model.outputs[0]._keras_history.operation.name)
    return {"keras_version": "2.2.4", "backend": "tensorflow", "model_config": {
        "class_name": "Model", "config": {"name": model.name, "layers": layers, "output_layers": [[out, 0, 0]]}}}


def write_tfjs(model: keras.Model, folder: Path, quant: str | None = "uint8", *, shard_bytes: int = 50_000,
               bundle: bool = False, rename: dict[str, str] | None = None, shuffle: int | None = None,
               keras2_names: bool = True) -> tuple[Path, dict[str, np.ndarray], dict[str, float]]:
    """Write ``model`` as a TF.js layers model; return the model file, expected arrays and quantisation steps.

    ``keras2_names=False`` writes what a Keras 3 export would: ``get_config()`` as topology, Keras 3 variable names.

    Keys of the returned dicts are ``"<keras layer name>/<variable>"``. Weights are sorted by name in the manifest
    (as tensorflowjs writes them) and split into shards of ``shard_bytes``, so tensors straddle shard borders.
    """
    rename = rename or {}
    folder.mkdir(parents=True, exist_ok=True)
    entries, chunks, expected, steps = [], [], {}, {}
    for layer in model.layers:
        for var in layer.weights:
            var_name = var.name.split("/")[-1]
            if keras2_names and isinstance(layer, keras.layers.DepthwiseConv2D) and var_name == "kernel":
                var_name = "depthwise_kernel"  # Keras 2's name, as in TF.js files
            raw, q, back = _quantize(np.asarray(var), quant)
            key = f"{rename.get(layer.name, layer.name)}/{var_name}"
            entry = {"name": key, "shape": list(var.shape), "dtype": "float32"}
            if q:
                entry["quantization"] = q
            entries.append((key, entry, raw))
            expected[f"{layer.name}/{var.name.split('/')[-1]}"] = back
            steps[f"{layer.name}/{var.name.split('/')[-1]}"] = q.get("scale", 0.0) if q else 0.0
    entries.sort(key=lambda e: e[0])
    blob = b"".join(raw for *_, raw in entries)
    chunks = [blob[i : i + shard_bytes] for i in range(0, len(blob), shard_bytes)] or [b""]
    paths = [f"group1-shard{i + 1}of{len(chunks)}" + ("" if bundle else ".bin") for i in range(len(chunks))]
    topology = (_topology(model, rename, shuffle) if keras2_names else
                {"keras_version": keras.__version__, "model_config": {"class_name": "Functional",
                                                                      "config": model.get_config()}})
    content = {"format": "layers-model", "modelTopology": json.loads(json.dumps(topology)),
               "weightsManifest": [{"paths": paths, "weights": [e for _, e, _ in entries]}]}
    if not bundle:
        for path, chunk in zip(paths, chunks, strict=True):
            (folder / path).write_bytes(chunk)
        model_file = folder / "model.json"
        model_file.write_text(json.dumps(content))
        return model_file, expected, steps
    # nsfwjs' form: browserify bundles, the JSON as a minified object literal, each shard as base64.
    wrap = '!function(e){module.exports=e()}(function(){return{1:[function(e,a,n){a.exports=%s},{}]}});'
    for path, chunk in zip(paths, chunks, strict=True):
        (folder / f"{path}.min.js").write_text(wrap % json.dumps(base64.b64encode(chunk).decode()))
    model_file = folder / "model.min.js"
    model_file.write_text(wrap % _minify(content))
    return model_file, expected, steps


def _minify(value: object) -> str:
    """A JavaScript literal the way minifiers write it: bare keys, !0/!1, .5, no spaces."""
    if isinstance(value, dict):
        keys = [k if _BARE_KEY.fullmatch(k) else json.dumps(k) for k in value]
        return "{" + ",".join(f"{k}:{_minify(v)}" for k, v in zip(keys, value.values(), strict=True)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_minify(v) for v in value) + "]"
    if isinstance(value, bool):
        return "!0" if value else "!1"
    if isinstance(value, float):
        text = repr(value)
        return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text
    return json.dumps(value)


def _randomized(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give every weight distinct random values (BatchNorm variances positive), so a mix-up shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 2.0, v.shape) if "variance" in v.name else rng.normal(0, 0.5, v.shape)
                               for v in layer.weights])
    return model


def _small_mobilenet() -> keras.Model:
    return keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), include_top=False)


@pytest.fixture(scope="module")
def small_source() -> keras.Model:
    return _randomized(_small_mobilenet())


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("quant", ["uint8", "uint16", "float16", None])
@pytest.mark.slow
def test_round_trip_recovers_weights_within_quantisation(small_source: keras.Model, tmp_path: Path,
                                                         quant: str | None) -> None:
    model_file, expected, steps = write_tfjs(small_source, tmp_path, quant)
    source = tfjs_files.read_layers_model(model_file)
    assert len(source.weights) == len(expected) == len(small_source.weights) == 260
    assert set(source.quantization.values()) == ({quant} if quant else set())
    target = _small_mobilenet()
    mapping = tfjs.assign_weights(target, source, allow_unused=False)
    assert {how for *_, how in mapping.pairs} == {"name"} and not mapping.unused
    for layer in target.layers:
        for i, var in enumerate(layer.weights):
            key = f"{layer.name}/{var.name.split('/')[-1]}"
            original = np.asarray(small_source.get_layer(layer.name).weights[i])
            got = np.asarray(var)
            np.testing.assert_allclose(got, expected[key], rtol=1e-6, atol=1e-7, err_msg=key)  # the stored values
            if quant in QUANT_MAX:  # ... which are within half a quantisation step of the originals
                assert np.abs(got - original).max() <= 0.5 * steps[key] * (1 + 1e-5) + 1e-6, key
            elif quant == "float16":
                np.testing.assert_allclose(got, original, rtol=1e-3, atol=1e-4, err_msg=key)
            else:
                np.testing.assert_array_equal(got, original, err_msg=key)
    if quant is None:  # float32: the same network
        x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
        np.testing.assert_array_equal(np.asarray(target(x)), np.asarray(small_source(x)))


def test_uint8_error_is_what_quantisation_allows(small_source: keras.Model, tmp_path: Path) -> None:
    # Guards the test above against a reader that ignores the scale: uint8 codes are coarse, not exact.
    model_file, _, steps = write_tfjs(small_source, tmp_path, "uint8")
    source = tfjs_files.read_layers_model(model_file)
    key = "Conv1/kernel"
    error = np.abs(source.weights[key] - np.asarray(small_source.get_layer("Conv1").weights[0])).max()
    assert 0.05 * steps[key] < error <= 0.5 * steps[key] * (1 + 1e-5)


def test_nsfwjs_style_bundles_read_like_json(small_source: keras.Model, tmp_path: Path) -> None:
    json_file, _, _ = write_tfjs(small_source, tmp_path / "json", "uint8")
    js_file, _, _ = write_tfjs(small_source, tmp_path / "js", "uint8", bundle=True)
    assert js_file.name == "model.min.js" and not js_file.read_text().lstrip().startswith("{")
    from_json, from_js = tfjs_files.read_layers_model(json_file), tfjs_files.read_layers_model(js_file)
    assert from_js.topology == from_json.topology
    assert list(from_js.weights) == list(from_json.weights)
    for key, array in from_json.weights.items():
        np.testing.assert_array_equal(from_js.weights[key], array, err_msg=key)


def _branchy_model() -> keras.Model:
    """Counter-named layers only, parallel branches of equal shapes: a wrong pairing would go unnoticed by shape."""
    inputs = keras.Input((8, 8, 4))
    stem = keras.layers.Conv2D(6, 1)(inputs)
    a = keras.layers.Conv2D(6, 1)(stem)
    b = keras.layers.Conv2D(6, 1)(keras.layers.Conv2D(6, 1)(stem))
    c = keras.layers.Conv2D(6, 1)(keras.layers.BatchNormalization()(stem))
    merged = keras.layers.Concatenate()([b, a, c])
    return keras.Model(inputs, keras.layers.Conv2D(3, 1)(keras.layers.BatchNormalization()(merged)))


def test_counter_names_map_by_graph_order_not_by_name_or_listing(tmp_path: Path) -> None:
    original = _randomized(_branchy_model(), seed=3)
    # Shift every counter so source names collide with *other* layers of the target, and shuffle the listing.
    shifted = {}
    for layer in original.layers:
        match = re.fullmatch(r"([a-z_0-9]+?)(?:_(\d+))?", layer.name)
        shifted[layer.name] = f"{match.group(1)}_{int(match.group(2) or 0) + 7}"
    model_file, _, _ = write_tfjs(original, tmp_path, None, rename=shifted, shuffle=5)
    target = _branchy_model()  # built later: different counters again
    assert {lay.name for lay in target.layers}.isdisjoint({lay.name for lay in original.layers})
    mapping = tfjs.assign_weights(target, tfjs_files.read_layers_model(model_file), allow_unused=False)
    assert {how for *_, how in mapping.pairs} == {"order"} and len(mapping.pairs) == 8
    x = np.random.default_rng(2).normal(size=(2, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(target(x)), np.asarray(original(x)))


def test_keras3_topology_maps_by_graph_order_too(tmp_path: Path) -> None:
    original = _randomized(_branchy_model(), seed=8)
    model_file, _, _ = write_tfjs(original, tmp_path, None, keras2_names=False)
    target = _branchy_model()
    mapping = tfjs.assign_weights(target, tfjs_files.read_layers_model(model_file), allow_unused=False)
    assert {how for *_, how in mapping.pairs} == {"order"}
    x = np.random.default_rng(9).normal(size=(2, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(target(x)), np.asarray(original(x)))


def test_shape_disagreement_lists_the_layers_and_assigns_nothing(small_source: keras.Model, tmp_path: Path) -> None:
    model_file, _, _ = write_tfjs(small_source, tmp_path, "uint8")
    wider = keras.applications.MobileNetV2(weights=None, alpha=0.5, input_shape=(32, 32, 3), include_top=False)
    before = [np.asarray(w).copy() for w in wider.weights]
    with pytest.raises(ValueError, match=r"does not map onto .*\n.* has shape \(.*\), '.*' needs \("):
        tfjs.assign_weights(wider, tfjs_files.read_layers_model(model_file))
    assert all(np.array_equal(b, np.asarray(w)) for b, w in zip(before, wider.weights, strict=True))


def test_damaged_files_give_format_errors(small_source: keras.Model, tmp_path: Path) -> None:
    model_file, _, _ = write_tfjs(small_source, tmp_path, "uint8")
    shards = sorted(tmp_path.glob("*.bin"))
    shards[-1].write_bytes(shards[-1].read_bytes()[:-10])
    with pytest.raises(tfjs_files.TfjsFormatError, match="shards end before weight"):
        tfjs_files.read_layers_model(model_file)
    shards[-1].write_bytes(shards[-1].read_bytes() + b"0123456789extra")
    with pytest.raises(tfjs_files.TfjsFormatError, match="describes"):
        tfjs_files.read_layers_model(model_file)
    shards[0].unlink()
    with pytest.raises(tfjs_files.TfjsFormatError, match="Weight shard 'group1-shard1of.*' not found"):
        tfjs_files.read_layers_model(model_file)
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps({"format": "graph-model", "modelTopology": {}, "weightsManifest": []}))
    with pytest.raises(tfjs_files.TfjsFormatError, match="only layers models"):
        tfjs_files.read_layers_model(graph)
    (tmp_path / "model.js").write_text("console.log('hello')")
    with pytest.raises(tfjs_files.TfjsFormatError, match="neither a model.json nor a JavaScript bundle"):
        tfjs_files.read_layers_model(tmp_path / "model.js")


def test_unknown_architecture_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"Unknown architecture 'resnet50'; valid: mobilenetv2, inceptionv3"):
        tfjs.build_architecture("resnet50")
    with pytest.raises(ValueError, match="Unknown architecture 'vgg16'"):
        tfjs.convert_layers_model(tmp_path / "model.json", "vgg16", tmp_path / "out.weights.h5")
    with pytest.raises(SystemExit) as exit_info:
        import_tfjs.main([str(tmp_path / "model.json"), "--arch", "vgg16", "--out", str(tmp_path / "o.weights.h5")])
    assert exit_info.value.code == 2 and "invalid choice: 'vgg16'" in capsys.readouterr().err


@pytest.mark.slow
def test_command_converts_into_a_file_keras_applications_loads(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    original = _randomized(keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
                                                          include_top=False), seed=4)
    model_file, expected, _ = write_tfjs(original, tmp_path / "src", "uint8", shard_bytes=4 << 20)
    out = tmp_path / "mnv2.weights.h5"
    assert import_tfjs.main([str(model_file), "--arch", "mobilenetv2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "block_16_project_BN" in printed and "104 layers mapped (104 by name, 0 by graph order)" in printed
    # The converted file is what keras.applications takes as `weights=`, at another input size too.
    loaded = keras.applications.MobileNetV2(include_top=False, weights=str(out), input_shape=(96, 96, 3))
    for layer in loaded.layers:
        for var in layer.weights:
            np.testing.assert_array_equal(np.asarray(var), expected[f"{layer.name}/{var.name.split('/')[-1]}"])
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [out.name]  # no temporary file left
    with pytest.raises(SystemExit):
        import_tfjs.main([str(model_file), "--arch", "mobilenetv2", "--out", str(tmp_path / "x.h5")])
    assert "--out must end with .weights.h5" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- the real nsfwjs


NSFWJS_MISSING = (
    "nsfwjs@4.4.0 is not unpacked here: run `npm pack nsfwjs@4.4.0 && tar xzf nsfwjs-4.4.0.tgz` and set "
    "SISP_NSFWJS_DIR to the `package` folder (precompute fetches it itself with npm, but tests do not)"
)


@pytest.fixture(scope="module")
def nsfwjs_env(tmp_path_factory: pytest.TempPathFactory):
    from precompute.backbones import WeightsUnavailableError
    from precompute.ports import nsfwjs

    try:
        models_dir = nsfwjs.find_models_dir(fetch=False)
    except WeightsUnavailableError:
        pytest.skip(NSFWJS_MISSING)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(nsfwjs.DIR_ENV, str(models_dir))
        mp.setenv(weights_cache.CACHE_ENV, str(tmp_path_factory.mktemp("nsfwjs_cache")))
        yield models_dir


def _photos(names: tuple[str, ...], size: int) -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="scikit-image (the `test` extra) provides the sample photos")
    return np.stack([np.asarray(Image.fromarray(getattr(data, n)()).convert("RGB").resize((size, size),
                                                                                          Image.BILINEAR))
                     for n in names]).astype(np.float32)


@pytest.mark.parametrize(("arch", "folder", "size", "by_name"),
                         [("mobilenetv2", "mobilenet_v2", 224, 104), ("inceptionv3", "inception_v3", 299, 0)])
@pytest.mark.slow
def test_nsfwjs_model_with_its_head_calls_photos_neutral(nsfwjs_env: Path, arch: str, folder: str, size: int,
                                                         by_name: int) -> None:
    from precompute.ports import nsfwjs

    source = tfjs_files.read_layers_model(nsfwjs_env / folder / "model.min.js")
    assert set(source.quantization.values()) == {"uint8"}
    base = tfjs.build_architecture(arch)
    x = keras.layers.AveragePooling2D(base.output.shape[1])(base.output)  # nsfwjs' head, Keras-named
    x = keras.layers.Flatten()(x)
    for units, rate in ((256, 0.5), (128, 0.25)):
        x = keras.layers.Dropout(rate)(keras.layers.Dense(units, activation="relu")(x))
    full = keras.Model(base.input, keras.layers.Dense(5, activation="softmax")(x))
    mapping = tfjs.assign_weights(full, source, allow_unused=False)
    n_layers = sum(1 for layer in full.layers if layer.weights)
    assert sum(how == "name" for *_, how in mapping.pairs) == by_name and len(mapping.pairs) == n_layers
    probs = np.asarray(full(_photos(("chelsea", "coffee", "astronaut"), size) / 255.0))
    # Measured: Neutral 0.96, 1.00, 1.00 (MobileNetV2) and 1.00, 1.00, 0.98 (InceptionV3).
    assert [nsfwjs.CLASSES[i] for i in probs.argmax(axis=1)] == ["Neutral"] * 3
    assert probs[:, nsfwjs.CLASSES.index("Neutral")].min() > 0.8


def test_nsfwjs_batchnorm_statistics_fit_x_over_255(nsfwjs_env: Path) -> None:
    # Why nsfwjs.build_base rescales to x/255: the first BatchNorm's moving mean matches conv activations of
    # photos scaled x/255 (correlation 0.99), not x/127.5 - 1 (-0.78).
    source = tfjs_files.read_layers_model(nsfwjs_env / "mobilenet_v2" / "model.min.js")
    kernel, moving_mean = source.weights["Conv1/kernel"], source.weights["bn_Conv1/moving_mean"]
    x = _photos(("chelsea", "coffee", "rocket", "astronaut", "camera"), 224)
    conv = keras.layers.Conv2D(32, 3, strides=2, use_bias=False)
    conv.build((None, 224, 224, 3))
    conv.set_weights([kernel])
    corr = {name: np.corrcoef(np.asarray(conv(pre)).mean(axis=(0, 1, 2)), moving_mean)[0, 1]
            for name, pre in (("x/255", x / 255.0), ("x/127.5-1", x / 127.5 - 1.0))}
    assert corr["x/255"] > 0.95 and corr["x/127.5-1"] < 0.5, corr


@pytest.mark.slow
def test_nsfwjs_registry_backbone_is_cached_and_rescales_its_input(nsfwjs_env: Path) -> None:
    from precompute.backbones import build_base, get_backbone, resolve_weights
    from precompute.extract import build_feature_model, check_layers, extract_array
    from precompute.ports import nsfwjs

    backbone = get_backbone("mobilenetv2")
    weights = resolve_weights(backbone, "nsfwjs")
    path = Path(weights.keras_arg)
    assert weights.source == "nsfwjs" and path.name.startswith("mobilenetv2-nsfwjs-4.4.0-")
    assert "nsfwjs@4.4.0 (MIT)" in weights.description and weights.default_layers == tuple(
        nsfwjs.DEFAULT_LAYERS["mobilenetv2"])
    mtime = path.stat().st_mtime_ns
    assert nsfwjs.nsfwjs_weights_path("mobilenetv2") == path and path.stat().st_mtime_ns == mtime  # reused
    base = build_base(backbone, weights, 160)
    layers = check_layers(base, weights.default_layers, backbone.name)
    photos = _photos(("chelsea", "coffee", "rocket", "astronaut", "camera"), 160)
    features = extract_array(build_feature_model(base, layers), photos, backbone.preprocess)
    # The same as the plain Keras model loaded from the file and fed x/255 directly.
    plain = keras.applications.MobileNetV2(include_top=False, weights=str(path), input_shape=(160, 160, 3))
    reference = extract_array(build_feature_model(plain, layers), photos, lambda a: a / 255.0)
    for got, want in zip(features, reference, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Trained features tell the photos apart; an untrained network's barely do (measured max pairwise cosine at
    # block_10_expand: 0.61 with nsfwjs weights, 0.997 with random ones).
    untrained = build_base(backbone, resolve_weights(backbone, "random", seed=0), 160)
    random_features = extract_array(build_feature_model(untrained, layers), photos, backbone.preprocess)
    deep = layers.index("block_10_expand")
    assert _max_cosine(features[deep]) < 0.8 < 0.95 < _max_cosine(random_features[deep])


def _max_cosine(features: np.ndarray) -> float:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    return float((unit @ unit.T)[np.triu_indices(len(unit), 1)].max())


# ------------------------------------------------------------------------------------------- finding nsfwjs offline


def _fake_nsfwjs_tarball(folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """An npm tarball laid out like nsfwjs@4.4.0, with a random full-size MobileNetV2 in its bundle format."""
    import tarfile

    original = _randomized(keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
                                                          include_top=False), seed=6)
    package = folder / "build" / "package"
    _, expected, _ = write_tfjs(original, package / "dist" / "models" / "mobilenet_v2", "uint8",
                                shard_bytes=4 << 20, bundle=True)
    (package / "dist" / "models" / "inception_v3").mkdir()
    (package / "dist" / "models" / "inception_v3" / "model.json").write_text("{}")  # present, never read here
    (package / "package.json").write_text('{"name": "nsfwjs", "version": "4.4.0"}')
    tgz = folder / "nsfwjs-4.4.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(package, arcname="package")
    return tgz, expected


@pytest.mark.slow
def test_nsfwjs_tarball_in_the_env_folder_is_unpacked_and_converted_once(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from precompute.ports import nsfwjs

    tgz, expected = _fake_nsfwjs_tarball(tmp_path / "npm")
    monkeypatch.setenv(nsfwjs.DIR_ENV, str(tgz.parent))
    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(nsfwjs.shutil, "which", lambda name: None)  # no npm: it must not be needed
    path = nsfwjs.nsfwjs_weights_path("mobilenetv2")
    assert path.parent == tmp_path / "cache" and path.name.endswith("-v1.weights.h5")
    assert (tmp_path / "cache" / "nsfwjs-4.4.0" / "package" / "dist" / "models" / "mobilenet_v2").is_dir()
    loaded = keras.applications.MobileNetV2(include_top=False, weights=str(path), input_shape=(64, 64, 3))
    for layer in loaded.layers:
        for var in layer.weights:
            np.testing.assert_array_equal(np.asarray(var), expected[f"{layer.name}/{var.name.split('/')[-1]}"])
    mtime = path.stat().st_mtime_ns
    monkeypatch.setattr(nsfwjs.tfjs, "convert_layers_model", lambda *a: pytest.fail("converted twice"))
    assert nsfwjs.nsfwjs_weights_path("mobilenetv2") == path and path.stat().st_mtime_ns == mtime
    monkeypatch.delenv(nsfwjs.DIR_ENV)  # the unpacked copy in the cache is found on its own
    assert nsfwjs.nsfwjs_weights_path("mobilenetv2", fetch=False) == path
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([path.name, "nsfwjs-4.4.0"])


def test_missing_nsfwjs_names_the_package_and_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from precompute.backbones import WeightsUnavailableError
    from precompute.ports import nsfwjs

    monkeypatch.setenv(weights_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(nsfwjs.DIR_ENV, str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match=r"SISP_NSFWJS_DIR=.* holds neither .*nsfwjs@4\.4\.0"):
        nsfwjs.nsfwjs_weights_path("mobilenetv2")
    monkeypatch.delenv(nsfwjs.DIR_ENV)
    monkeypatch.setattr(nsfwjs.shutil, "which", lambda name: None)
    with pytest.raises(WeightsUnavailableError, match=r"npm package nsfwjs@4\.4\.0 .*npm is not installed.*"
                                                      r"npm pack nsfwjs@4\.4\.0.*SISP_NSFWJS_DIR"):
        nsfwjs.nsfwjs_weights_path("inceptionv3")
    with pytest.raises(WeightsUnavailableError, match="SISP_NSFWJS_DIR is not set"):
        nsfwjs.nsfwjs_weights_path("inceptionv3", fetch=False)
    with pytest.raises(ValueError, match=r"nsfwjs weights exist for mobilenetv2, inceptionv3; got 'vgg16'"):
        nsfwjs.nsfwjs_weights_path("vgg16")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# ------------------------------------------------------------------------------------------- default layers


def _ancestors(graph: dict[str, tuple[str, list[str]]], name: str) -> set[str]:
    """Every layer ``name`` depends on, itself included."""
    seen, todo = set(), [name]
    while todo:
        layer = todo.pop()
        if layer not in seen:
            seen.add(layer)
            todo += graph[layer][1]
    return seen


@pytest.mark.parametrize(("arch", "folder"), [("mobilenetv2", "mobilenet_v2"), ("inceptionv3", "inception_v3")])
def test_nsfwjs_default_layers_lie_in_the_imagenet_frozen_part(nsfwjs_env: Path, arch: str, folder: str) -> None:
    # Every layer that a default layer depends on was frozen (trainable: false) during nsfwjs' fine-tuning, so it
    # kept its ImageNet weights; the next block already depends on a fine-tuned layer. InceptionV3's last frozen
    # layer is batch_normalization_55 (nsfwjs counts from 1), inside mixed6: mixed5 is its last whole frozen block.
    from precompute.ports import nsfwjs

    topology = tfjs_files.read_model_json(nsfwjs_env / folder / "model.min.js")["modelTopology"]
    graph = tfjs_files.topology_layers(topology)
    trainable = {layer["name"]: layer["config"].get("trainable", True)
                 for layer in tfjs_files.topology_config(topology)["layers"]}
    defaults = nsfwjs.DEFAULT_LAYERS[arch]
    assert 6 <= len(defaults) <= 8
    for name in defaults:
        tuned = sorted(n for n in _ancestors(graph, name) if trainable[n] and graph[n][0] != "InputLayer")
        assert not tuned, (name, tuned[:5])
    next_block = {"mobilenetv2": "block_11_expand", "inceptionv3": "mixed6"}[arch]
    assert any(trainable[n] for n in _ancestors(graph, next_block))
    if arch == "inceptionv3":
        assert trainable["batch_normalization_55"] is False and trainable["conv2d_56"] is True


@pytest.mark.slow
def test_offline_default_run_includes_the_nsfwjs_inceptionv3() -> None:
    from precompute.backbones import get_backbone
    from precompute.pipeline import AUTO_MODELS
    from precompute.ports import nsfwjs

    assert {"inceptionv3", "mobilenetv2", "efficientnet-lite1", "efficientnet-lite2"} <= set(AUTO_MODELS)
    assert get_backbone("inceptionv3").offline_source == "nsfwjs"
    # The stable block names exist in Keras' InceptionV3 (its conv names are counters that change by session).
    names = {layer.name for layer in keras.applications.InceptionV3(include_top=False, weights=None,
                                                                    input_shape=(75, 75, 3)).layers}
    assert set(nsfwjs.DEFAULT_LAYERS["inceptionv3"]) <= names
