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


def test_the_builder_gives_uploads_the_pipeline_model() -> None:
    config = ModelConfig("pixels", "none", 32, "flatten")
    model = load_feature_model(config, ["pixels_8x8", "pixels_16x16"], runtime="keras")
    assert model.runtime == "keras" and model.base is not None and model.tflite is None
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    from precompute.extract import extract_array

    direct = extract_array(model.runner, images, model.preprocess)
    uploads = load_extractor(config.to_dict(), ["pixels_8x8", "pixels_16x16"], runtime="keras")(images)
    assert [d.shape for d in direct] == [(3, 192), (3, 768)]
    for a, b in zip(direct, uploads, strict=True):
        np.testing.assert_array_equal(a, b)
