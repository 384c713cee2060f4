"""The one model config (precompute.schema.ModelConfig) and the one builder from it (precompute.models): the config's
round trip, names and checks, and that the pipeline, Dask and uploads get the same feature model from it."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.models import checked_config, load_extractor, load_feature_model
from precompute.schema import ModelConfig


def test_config_round_trips_through_the_index_entry() -> None:
    config = ModelConfig(backbone="efficientnet-lite0", weights_source="random", input_size=64, seed=3)
    entry = config.to_dict()
    assert entry == {"backbone": "efficientnet-lite0", "weights_source": "random", "weights_file": None, "seed": 3,
                     "input_size": 64, "pooling": "avg"}  # no "quantize": float32 configs keep their old form
    assert list(entry) == ["backbone", "weights_source", "weights_file", "seed", "input_size", "pooling"]
    assert ModelConfig.from_dict(entry) == config
    quantized = ModelConfig(backbone="mobilenetv2", weights_source="nsfwjs", input_size=224,
                            weights_file="/c/m.weights.h5", quantize="int8")
    assert quantized.to_dict()["quantize"] == "int8" and ModelConfig.from_dict(quantized.to_dict()) == quantized
    # Frozen and hashable: it keys the app's caches as it is; an index entry's unknown keys are dropped to build.
    assert len({config, ModelConfig.from_dict(entry), quantized}) == 2
    with pytest.raises(AttributeError):
        config.seed = 4  # type: ignore[misc]
    read = ModelConfig.from_dict({**entry, "pooling": None, "newer_key": 1})
    assert read.extra == {"newer_key": 1} and checked_config(read) == config


def _name(backbone: str, source: str, quantize: str | None = None, head_file: str | None = None) -> str:
    return ModelConfig(backbone=backbone, weights_source=source, quantize=quantize, head_file=head_file).name


def test_model_names() -> None:
    assert _name("vgg16", "imagenet") == "vgg16" and _name("vgg16", "file") == "vgg16"
    assert _name("vgg16", "random") == "vgg16-random"
    assert _name("mobilenetv2", "nsfwjs", "int8") == "mobilenetv2-nsfwjs-int8"
    assert _name("pixels", "none") == "pixels" and _name("efficientnet-lite2", "imagenet", None, "h.npz") == (
        "efficientnet-lite2+head")


def test_a_bad_config_is_named() -> None:
    with pytest.raises(ValueError, match=r"needs input_size"):
        checked_config({"backbone": "vgg16", "weights_source": "imagenet"})
    with pytest.raises(ValueError, match=r"'auto'.*imagenet, nsfwjs, random, file, none"):
        checked_config({"backbone": "vgg16", "weights_source": "auto", "input_size": 32})


def test_a_backbone_states_its_facts_and_pickles_as_its_registry_entry() -> None:
    import pickle

    from precompute.backbones import BACKBONES, get_backbone, resolve_weights

    assert all(pickle.loads(pickle.dumps(backbone)) is backbone for backbone in BACKBONES.values())
    pixels, lite0 = get_backbone("pixels"), get_backbone("efficientnet-lite0")
    assert not pixels.has_weights and resolve_weights(pixels, "imagenet").source == "none"
    assert pixels.fixed_input_size and not lite0.fixed_input_size and lite0.has_weights
    assert pixels.numpy_model(["pixels_8x8"]) is not None and pixels.numpy_model(["block1_conv1"]) is None
    assert lite0.numpy_model is None and lite0.auto_runtime_cpu == "litert"
    assert get_backbone("vgg16").auto_runtime_cpu == "keras"


def test_an_upload_with_the_pixels_baseline_gets_the_mean_of_each_block_of_pixels() -> None:
    """What ``load_extractor`` returns, computed by hand: ``pixels_8x8`` of a 32 px image is the mean of each 4x4
    block of ``x / 255``, block row by block row, channels last (``pixels_16x16``: of each 2x2 block). The Keras
    model a precompute run builds for the same config gives the same features (uploads search the run's features)."""
    config = ModelConfig(backbone="pixels", weights_source="none", input_size=32, pooling="flatten")
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


@pytest.mark.slow  # builds the Keras model of the head
def test_an_upload_of_a_head_on_pixels_gets_the_heads_features(tmp_path) -> None:
    """``pixels+head`` (what ``--train-head best`` picked on fashion-mnist-200): the head on top of the grid, not the
    grid alone (the NumPy pixels model has no head)."""
    from precompute.head import LinearHead, write_heads

    rng = np.random.default_rng(0)
    head = LinearHead(rng.normal(size=(192, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32))
    sha = write_heads(tmp_path / "head.npz", {"pixels_8x8": head})
    config = ModelConfig(backbone="pixels", weights_source="none", input_size=32, pooling="flatten",
                         head_file=str(tmp_path / "head.npz"), head_sha256=sha)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    base = ModelConfig(backbone="pixels", weights_source="none", input_size=32, pooling="flatten")
    expected = head.transform(load_extractor(base, ["pixels_8x8"])(images)[0])
    got = load_extractor(config, ["pixels_8x8"], runtime="keras")(images)[0]
    assert got.shape == (2, 4) and np.allclose(got, expected, rtol=1e-4, atol=1e-4)

