"""Keras weights from a local file, the air-gapped path: ``--weights FILE`` and ``--weights FOLDER``.

Without internet nothing can fetch Keras' ImageNet files, so these tests write one: a ``keras.applications``
base with seeded values, saved in the format Keras downloads (the Keras 2 HDF5 layout: ``layer_names`` and per
layer ``weight_names``, read back by order) under the exact file name Keras asks for. Then the project's own paths
(``resolve_weights`` / ``build_base``, and the ``precompute`` command) must load every weight bit for bit. Keras'
online path (``weights="imagenet"``) is exercised with the same file by standing in for its downloader.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from PIL import Image

from precompute.backbones import (
    BACKBONES,
    ResolvedWeights,
    build_base,
    get_backbone,
    resolve_weights,
)

# Small inputs keep the graphs cheap; the weights of a convolutional base do not depend on the input size.
pytestmark = pytest.mark.slow  # every test builds a keras.applications base and writes its weights

SIZES = {"mobilenetv2": 96, "efficientnetb0": 64}


def write_keras_h5(model: keras.Model, path: Path) -> Path:
    """Save ``model``'s weights in the legacy Keras HDF5 layout of the files Keras downloads.

    Root attributes ``layer_names``, ``backend`` and ``keras_version``; a group per layer whose ``weight_names``
    attribute lists its datasets (``<layer>/<weight>:0``), trainable weights first, as Keras 2 wrote them.
    Keras 3 reads such files by the order of the layers that have weights.
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = f.create_group(layer.name)
            weights = layer.trainable_weights + layer.non_trainable_weights
            names = [f"{layer.name}/{w.name}:0" for w in weights]
            group.attrs["weight_names"] = [name.encode("utf8") for name in names]
            for name, weight in zip(names, weights, strict=True):
                value = keras.ops.convert_to_numpy(weight)
                group.create_dataset(name, value.shape, dtype=value.dtype)[...] = value
    return path


def _weighted(model: keras.Model) -> list[keras.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _seeded_value(layer: keras.Layer, weight: keras.Variable, rng: np.random.Generator) -> np.ndarray:
    """A seeded value for one weight, scaled so that a signal still crosses the network (He-normal kernels,
    BatchNorm near identity), and never Keras' own initial value."""
    shape, name = tuple(weight.shape), weight.name
    if name == "count":
        return np.asarray(rng.integers(1, 1000), dtype=weight.dtype)
    if name in ("gamma", "moving_variance", "variance"):
        return (1.0 + rng.uniform(0.0, 0.1, shape)).astype("float32")
    if len(shape) < 2:  # biases, beta, means
        return rng.normal(0.0, 0.05, shape).astype("float32")
    fan_in = np.prod(shape[:2]) if isinstance(layer, keras.layers.DepthwiseConv2D) else np.prod(shape[:-1])
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype("float32")


def _seeded_source(name: str, seed: int = 0) -> keras.Model:
    """The backbone's Keras base with every weight drawn from a seeded generator."""
    backbone = get_backbone(name)
    size = SIZES[name]
    model = getattr(keras.applications, backbone.keras_name)(include_top=False, weights=None,
                                                             input_shape=(size, size, 3))
    rng = np.random.default_rng(seed)
    for layer in _weighted(model):
        for weight in layer.weights:
            weight.assign(_seeded_value(layer, weight, rng))
    return model


def _assert_same_bits(loaded: keras.Model, source: keras.Model) -> None:
    loaded_layers, source_layers = _weighted(loaded), _weighted(source)
    assert len(loaded_layers) == len(source_layers)
    n = 0
    for got_layer, want_layer in zip(loaded_layers, source_layers, strict=True):
        assert got_layer.name.split("_")[0] == want_layer.name.split("_")[0]  # same layer (counter names aside)
        for got, want in zip(got_layer.get_weights(), want_layer.get_weights(), strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(np.atleast_1d(got).view(np.uint8), np.atleast_1d(want).view(np.uint8))
            n += 1
    assert n > 100


def _write_source(name: str, folder: Path) -> tuple[str, keras.Model, Path]:
    """(backbone, seeded source model, its weights written under Keras' own file name in ``folder``)."""
    source = _seeded_source(name)
    return name, source, write_keras_h5(source, folder / get_backbone(name).keras_weights_file)


@pytest.fixture(scope="module", params=sorted(SIZES))
def keras_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[str, keras.Model, Path]:
    return _write_source(request.param, tmp_path_factory.mktemp(f"{request.param}-weights"))


def test_weights_file_and_folder_load_bit_exactly(keras_file: tuple[str, keras.Model, Path]) -> None:
    name, source, path = keras_file
    backbone = get_backbone(name)
    by_file = resolve_weights(backbone, str(path))
    by_folder = resolve_weights(backbone, str(path.parent))  # finds Keras' file name in the folder
    assert by_file == by_folder
    assert (by_file.source, by_file.keras_arg) == ("file", str(path))
    assert path.name in by_file.description
    for size in (SIZES[name], 2 * SIZES[name]):  # any input size
        _assert_same_bits(build_base(backbone, by_folder, size), source)


def test_a_folder_without_the_keras_file_names_it(tmp_path: Path) -> None:
    from precompute.backbones import WeightsUnavailableError

    with pytest.raises(WeightsUnavailableError, match="has no efficientnetb0_notop.h5"):
        resolve_weights(get_backbone("efficientnetb0"), str(tmp_path))
    with pytest.raises(ValueError, match="neither one of auto, imagenet, nsfwjs, random nor an existing"):
        resolve_weights(get_backbone("efficientnetb0"), str(tmp_path / "missing.h5"))
    # NASNetMobile's file is nasnet_mobile_no_top.h5 in Keras' cache, NASNet-mobile-no-top.h5 at its URL: both do.
    nasnet = get_backbone("nasnetmobile")
    with pytest.raises(WeightsUnavailableError, match="has no nasnet_mobile_no_top.h5 or NASNet-mobile-no-top.h5"):
        resolve_weights(nasnet, str(tmp_path))
    (tmp_path / "NASNet-mobile-no-top.h5").write_bytes(b"")
    assert resolve_weights(nasnet, str(tmp_path)).keras_arg == str(tmp_path / "NASNet-mobile-no-top.h5")


class _Requested(Exception):
    """Raised by the stand-in downloader: Keras asked for this file."""


def _stand_in_downloader(monkeypatch: pytest.MonkeyPatch, serve: Path | None = None) -> list[str]:
    """Replace Keras' downloader: serve ``serve`` for any request, or record the file name and stop."""
    from keras.src.utils import file_utils

    asked: list[str] = []

    def get_file(fname: str | None = None, origin: str | None = None, *args: object, **kwargs: object) -> str:
        asked.append(fname or Path(origin or "").name)
        if serve is None:
            raise _Requested(asked[-1])
        return str(serve)

    monkeypatch.setattr(file_utils, "get_file", get_file)
    return asked


def _photos(size: int) -> np.ndarray:
    data = pytest.importorskip("skimage.data", reason="scikit-image (the `test` extra) provides the sample photos")
    return np.stack([np.asarray(Image.fromarray(getattr(data, n)()).convert("RGB").resize((size, size)))
                     for n in ("chelsea", "coffee", "rocket")]).astype(np.float32)


def test_online_path_and_local_file_give_the_same_features(keras_file: tuple[str, keras.Model, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # weights="imagenet" as with internet (Keras' downloader serves the same file), against --weights FILE.
    from precompute.extract import build_feature_model, extract_array

    name, source, path = keras_file
    backbone = get_backbone(name)
    size = SIZES[name]
    asked = _stand_in_downloader(monkeypatch, serve=path)
    online = build_base(backbone, ResolvedWeights("imagenet", "imagenet", "ImageNet-1k"), size)
    assert len(asked) == 1  # (MobileNetV2 asks for the file of its input size: ..._1.0_96_no_top.h5 here)
    local = build_base(backbone, resolve_weights(backbone, str(path)), size)
    _assert_same_bits(online, source)
    _assert_same_bits(local, source)
    layers = [backbone.default_layers[0], backbone.default_layers[-1]]
    photos = _photos(size)
    want = extract_array(build_feature_model(online, layers), photos, backbone.preprocess)
    got = extract_array(build_feature_model(local, layers), photos, backbone.preprocess)
    for layer, a, b in zip(layers, got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max(), err_msg=layer)
    if name == "efficientnetb0":
        # Keras' EfficientNet graph from the file alone lacks the ImageNet-only input scaling: other features.
        plain = keras.applications.EfficientNetB0(include_top=False, weights=str(path), input_shape=(size, size, 3))
        other = extract_array(build_feature_model(plain, layers[:1]), photos, backbone.preprocess)[0]
        assert np.abs(other - want[0]).max() > 0.1 * np.abs(want[0]).max()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`input_shape` is undefined or non-square:UserWarning")  # 224 px file: intended
def test_keras_file_names_are_the_ones_keras_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    # --weights FOLDER looks for the file under the name Keras itself asks its downloader for (about 8 s: every
    # keras.applications backbone of the registry is built once).
    asked = _stand_in_downloader(monkeypatch)
    keras_backbones = [b for b in BACKBONES.values() if b.keras_name]
    assert len(keras_backbones) == 8
    for backbone in keras_backbones:
        size = backbone.input_size if backbone.fixed_imagenet_size else 75 if backbone.name != "xception" else 71
        with pytest.raises(_Requested):
            backbone.build((size, size, 3), "imagenet")
        assert asked[-1] == backbone.keras_weights_file, backbone.name
        keras.backend.clear_session()


def test_precompute_command_reads_a_weights_folder(tmp_path: Path) -> None:
    # The whole path of `precompute DATA --backbones mobilenetv2 --weights FOLDER`: the stored features are the
    # source model's, and the app's upload extractor rebuilds the same model from the index (about 20 s).
    from precompute import artifacts as art
    from precompute.cli import main
    from precompute.datasets import load_for_model
    from precompute.extract import build_feature_model, extract_array
    from precompute.models import load_extractor
    from tests.playground_fixtures import make_shapes_dataset

    (tmp_path / "weights").mkdir()
    name, source, path = _write_source("mobilenetv2", tmp_path / "weights")
    data = make_shapes_dataset(tmp_path / "shapes", n_per_class=3)
    layers = ["Conv1", "block_2_expand"]
    out = tmp_path / "artifacts"
    assert main([str(data), "--out", str(out), "--backbones", name, "--weights", str(path.parent),
                 "--layers", ",".join(layers), "--metrics", "cosine", "--input-size", "96", "--top-n", "5",
                 "--runtime", "keras"]) == 0  # the weights are under test here, not LiteRT's 1e-4 agreement
    entry = art.read_index(out).to_dict()["datasets"]["shapes"]["models"][name]
    assert entry["weights"]["source"] == "file" and entry["config"]["weights_file"] == str(path)
    manifest = art.read_table(art.manifest_path(out, "shapes"))
    images = np.stack([load_for_model(data / p, 96) for p in manifest["path"]]).astype(np.float32)
    backbone = get_backbone(name)
    expected = extract_array(build_feature_model(source, layers), images, backbone.preprocess)
    uploads = load_extractor(entry["config"], layers, runtime="keras")(images)
    for layer, want, upload in zip(layers, expected, uploads, strict=True):
        stored = np.load(art.features_path(out, "shapes", name, layer))
        np.testing.assert_allclose(stored, want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(upload, want, rtol=1e-5, atol=1e-6)
