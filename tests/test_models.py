"""The one builder from a stored model config (precompute.models): the config's round trip and names, and that the
pipeline, Dask and uploads get the same feature model from it."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.models import ModelConfig, load_extractor, load_feature_model, model_name


def test_config_round_trips_through_the_index_entry() -> None:
    config = ModelConfig("efficientnet-lite0", "random", 64, "avg", seed=3)
    entry = config.to_dict()
    assert entry == {"backbone": "efficientnet-lite0", "weights_source": "random", "weights_file": None, "seed": 3,
                     "input_size": 64, "pooling": "avg"}  # no "quantize": float32 configs keep their old form
    assert list(entry) == ["backbone", "weights_source", "weights_file", "seed", "input_size", "pooling"]
    assert ModelConfig.from_dict(entry) == config
    quantized = ModelConfig("mobilenetv2", "nsfwjs", 224, weights_file="/c/m.weights.h5", quantize="int8")
    assert quantized.to_dict()["quantize"] == "int8" and ModelConfig.from_dict(quantized.to_dict()) == quantized


def test_model_names() -> None:
    assert model_name("vgg16", "imagenet") == "vgg16" and model_name("vgg16", "file") == "vgg16"
    assert model_name("vgg16", "random") == "vgg16-random"
    assert model_name("mobilenetv2", "nsfwjs", "int8") == "mobilenetv2-nsfwjs-int8"
    assert ModelConfig("pixels", "none", 32, "flatten").name == "pixels"


def test_a_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match=r"needs input_size"):
        ModelConfig.from_dict({"backbone": "vgg16", "weights_source": "imagenet"})
    with pytest.raises(ValueError, match=r"'auto'.*imagenet, nsfwjs, random, file, none"):
        ModelConfig.from_dict({"backbone": "vgg16", "weights_source": "auto", "input_size": 32})


def test_an_upload_with_the_pixels_baseline_gets_the_mean_of_each_block_of_pixels() -> None:
    """What ``load_extractor`` returns, computed by hand: ``pixels_8x8`` of a 32 px image is the mean of each 4x4
    block of ``x / 255``, block row by block row, channels last (``pixels_16x16``: of each 2x2 block). The Keras
    model a precompute run builds for the same config gives the same features (uploads search the run's features)."""
    config = ModelConfig("pixels", "none", 32, "flatten")
    layers = ["pixels_8x8", "pixels_16x16"]
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    expected = []
    for grid in (8, 16):
        side = 32 // grid
        expected.append(np.array([[images[n, i * side:(i + 1) * side, j * side:(j + 1) * side, c].mean() / 255
                                   for i in range(grid) for j in range(grid) for c in range(3)] for n in range(3)]))

    uploads = load_extractor(config.to_dict(), layers, runtime="keras")(images)
    model = load_feature_model(config, layers, runtime="keras")
    assert model.runtime == "keras" and model.base is not None and model.tflite is None
    from precompute.extract import extract_array

    pipeline = extract_array(model.runner, images, model.preprocess)
    for features in (uploads, pipeline):
        assert [f.shape for f in features] == [(3, 192), (3, 768)]
        for got, want in zip(features, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
