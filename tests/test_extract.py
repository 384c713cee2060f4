"""Real Keras backbones (random weights, small inputs): layers, one-pass extraction, offline errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from precompute.artifacts import read_array
from precompute.backbones import (
    BACKBONES,
    ResolvedWeights,
    WeightsUnavailableError,
    build_base,
    count_flops,
    get_backbone,
    resolve_weights,
)
from precompute.extract import (
    build_feature_model,
    check_layers,
    extract_array,
    extract_to_files,
    feature_dims,
)
from precompute.models import load_extractor

RANDOM = ResolvedWeights("random", None, "random", seed=0)
# Keras' smallest accepted input for each architecture keeps these tests fast.
SMALL_SIZE = {"xception": 71, "inceptionv3": 75}


@pytest.mark.parametrize("name", [n for n in BACKBONES if n != "efficientnet-lite0"])
@pytest.mark.slow
def test_default_layers_exist_and_give_one_vector_each(name: str) -> None:
    backbone = get_backbone(name)
    size = backbone.input_size if name == "pixels" else SMALL_SIZE.get(name, 32)
    base = build_base(backbone, RANDOM, size)
    layers = check_layers(base, backbone.default_layers, name)
    assert 3 <= len(layers) <= 8
    model = build_feature_model(base, layers, flatten=backbone.flatten)
    images = np.random.default_rng(0).uniform(0, 255, size=(2, size, size, 3)).astype(np.float32)
    outputs = extract_array(model, images, backbone.preprocess)
    assert [o.shape for o in outputs] == [(2, d) for d in feature_dims(model)]
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in outputs)


@pytest.mark.slow
def test_one_pass_equals_one_model_per_layer() -> None:
    backbone = get_backbone("vgg16")
    base = build_base(backbone, RANDOM, 32)
    layers = ["block1_conv2", "block3_conv3", "block5_conv3"]
    images = np.random.default_rng(1).uniform(0, 255, size=(5, 32, 32, 3)).astype(np.float32)
    together = extract_array(build_feature_model(base, layers), images, backbone.preprocess)
    for layer, joint in zip(layers, together, strict=True):
        alone = extract_array(build_feature_model(base, [layer]), images, backbone.preprocess)[0]
        np.testing.assert_allclose(joint, alone, rtol=1e-5, atol=1e-6)
    maxed = extract_array(build_feature_model(base, ["block1_conv2"], "max"), images, backbone.preprocess)[0]
    assert (maxed >= together[0] - 1e-6).all()  # max pooling dominates the mean


def test_extract_to_files_writes_every_layer(tmp_path: Path) -> None:
    backbone = get_backbone("pixels")
    model = build_feature_model(build_base(backbone, RANDOM), backbone.default_layers, flatten=True)
    images = np.random.default_rng(2).uniform(0, 255, size=(7, 32, 32, 3)).astype(np.float32)
    paths = [tmp_path / f"{name}.npy" for name in backbone.default_layers]
    timing = extract_to_files(model, [images[:4], images[4:]], backbone.preprocess, 7, paths, progress=False)
    assert timing.n_images == 7 and timing.images_per_second > 0
    assert [read_array(p).shape for p in paths] == [(7, 192), (7, 768), (7, 3072)]
    np.testing.assert_allclose(read_array(paths[2]), (images / 255).reshape(7, -1), rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def test_interrupted_extraction_leaves_no_file(tmp_path: Path) -> None:
    backbone = get_backbone("pixels")
    model = build_feature_model(build_base(backbone, RANDOM), ["pixels_8x8"], flatten=True)

    def batches():
        yield np.zeros((2, 32, 32, 3), np.float32)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_to_files(model, batches(), backbone.preprocess, 4, [tmp_path / "f.npy"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unknown_layer_lists_valid_names() -> None:
    base = build_base(get_backbone("vgg16"), RANDOM, 32)
    expected = r"Unknown layer\(s\) 'block9_conv1' for vgg16\. Valid layer names .*block5_conv3"
    with pytest.raises(ValueError, match=expected):
        check_layers(base, ["block1_conv1", "block9_conv1"], "vgg16")


def test_random_weights_are_reproducible_for_uploads() -> None:
    config = {"backbone": "efficientnetb0", "weights_source": "random", "seed": 7, "input_size": 32,
              "pooling": "avg"}
    images = np.random.default_rng(3).uniform(0, 255, size=(2, 32, 32, 3)).astype(np.float32)
    first = load_extractor(config, ["top_conv"])(images)[0]
    get_backbone("vgg16").build((32, 32, 3), None)  # other models built in between must not matter
    second = load_extractor(config, ["top_conv"])(images)[0]
    np.testing.assert_allclose(first, second, rtol=1e-5)


def test_offline_imagenet_names_the_file_and_the_option() -> None:
    backbone = get_backbone("vgg16")
    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / backbone.keras_weights_file
    if cached.exists():
        pytest.skip(f"{cached} is cached here, so the offline failure path cannot be exercised")
    with pytest.raises(WeightsUnavailableError) as info:
        build_base(backbone, resolve_weights(backbone, "imagenet"), 32)
    message = str(info.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message and "--weights" in message


def test_weights_values_are_checked(tmp_path: Path) -> None:
    backbone = get_backbone("vgg16")
    with pytest.raises(ValueError, match="neither one of"):
        resolve_weights(backbone, str(tmp_path / "missing.h5"))
    with pytest.raises(WeightsUnavailableError, match="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        resolve_weights(backbone, str(tmp_path))
    with pytest.raises(ValueError, match="Unknown backbone 'vgg17'. Valid backbones: vgg16"):
        get_backbone("vgg17")


@pytest.mark.slow
def test_local_weights_file_round_trip(tmp_path: Path) -> None:
    backbone = get_backbone("mobilenetv2")
    base = build_base(backbone, RANDOM, 32)
    path = tmp_path / "mine.weights.h5"
    base.save_weights(path)
    loaded = build_base(backbone, resolve_weights(backbone, str(path)), 32)
    for a, b in zip(base.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_flops_of_a_known_layer() -> None:
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same")(inputs))
    assert count_flops(model) == 2 * 8 * 8 * 3 * 3 * 3 * 4


@pytest.mark.parametrize("name", ["efficientnet-lite0", "mobilenetv2", "nasnetmobile"])
@pytest.mark.slow
def test_random_weights_depend_on_the_seed_only(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread drawing from Python's ``random`` during a build (a Dask client, a decoder pool) must not
    change seeded weights: uploads and Dask workers rebuild the stored model from its seed."""
    import random

    import keras

    backbone = get_backbone(name)
    first = build_base(backbone, RANDOM, 32).get_weights()
    seed_then_disturb = keras.utils.set_random_seed

    def disturbed(seed: int) -> None:
        seed_then_disturb(seed)
        random.random()  # what a concurrent thread does between the seeding and the initializers

    monkeypatch.setattr(keras.utils, "set_random_seed", disturbed)
    again = build_base(backbone, RANDOM, 32).get_weights()
    assert len(first) == len(again)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other_seed = build_base(backbone, ResolvedWeights("random", None, "random", seed=1), 32).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(first, other_seed, strict=True))
