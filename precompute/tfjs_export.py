"""Write a Keras feature model as a TensorFlow.js *layers* model, in float32 and the TF.js converter's quantisations.

The ``tensorflowjs`` pip package cannot be used here: it needs full ``tensorflow``, jax and flax, and its
``save_keras_model`` targets Keras 2 (``tf_keras``) while this project runs Keras 3. TF.js 4.22's layers loader
reads the **Keras 2** model config (``InputLayer`` with ``batch_input_shape``, ``inbound_nodes`` as
``[[[layer, node, tensor, {}], ...]]``), not Keras 3's ``get_config()`` (``batch_shape``, ``__keras_tensor__``
arguments, ``DTypePolicy`` dicts). So this module writes the files itself, with numpy and json:

- the topology: each layer's Keras 3 config translated to the Keras 2 form for the layer classes that
  ``LAYER_CONVERTERS`` knows (those of the registry's backbones), keeping only what inference needs; any other
  class, or an option TF.js computes differently, raises :class:`NotExportableError` naming it (the index records
  the reason and the app falls back to the server);
- the leading per-channel affine layers of the graph (nsfwjs' ``Rescaling``, EfficientNetB*'s ``Rescaling`` and
  ``Normalization``) are folded, with the backbone's ``preprocess``, into one map ``x[order] * scale + offset``
  that the browser applies (:func:`derive_input_transform`: derived numerically, checked on random inputs);
- the weights: ``weightsManifest`` plus 4 MB shards ``group1-shard<i>of<n>.bin``, as tfjs-converter's
  ``write_weights.py`` writes them; ``uint8``/``uint16`` by its ``quantization.py`` (affine per tensor, the range
  nudged so that 0 is exact, ``value = code * scale + min``), ``float16`` by a cast.

The folder holds one folder per variant and ``export.json``, the manifest (its record and the layout:
``precompute.schema_export``). ``precompute.readers.tfjs`` reads both back. This module changes no weight of a
Keras model (the weight converters into Keras are ``precompute.ports``).

Examples
--------
>>> spec = export_feature_model(feature_model, layers, backbone.preprocess, 224, "out/tfjs")  # doctest: +SKIP
>>> spec.variants["uint8"].bytes  # doctest: +SKIP
3512345
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precompute import artifacts
from precompute.preprocessing import PixelAffine
from precompute.readers.tfjs import read_export_spec
from precompute.schema_export import EXPORT_FILE, TfjsExportSpec, VariantFiles

VARIANTS = ("float32", "float16", "uint16", "uint8")  # the TF.js converter's weight quantisations, and none
SHARD_BYTES = 4 * 1024 * 1024  # tfjs-converter's default: the largest file every major browser caches
MODEL_FILE = "model.json"
# model.json's "convertedBy": this module's name when the first exports were written (precompute.ports.tfjs_export).
# Kept so that every export stays byte-identical; changing it changes every model.json (bump EXPORTER_VERSION).
CONVERTED_BY = "precompute.ports.tfjs_export"

# Keras activation names TF.js computes the same way (Keras 3 serialises swish as "silu"). Not hard_sigmoid:
# Keras 3 computes relu6(x + 3) / 6, TF.js 0.2 x + 0.5.
ACTIVATIONS: dict[str, str] = {
    "linear": "linear", "relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh",
    "softmax": "softmax", "swish": "swish", "silu": "swish", "elu": "elu", "selu": "selu", "softplus": "softplus",
    "softsign": "softsign",
}
# Layers that the graph may start with and that map each channel affinely: folded into the input transform.
_AFFINE_INPUT_LAYERS = ("Rescaling", "Normalization")


class NotExportableError(ValueError):
    """The model holds something TF.js 4.22's layers loader cannot load, or would compute differently."""


def parse_variants(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"float32,uint8"`` (or a list) to checked variant names, in ``VARIANTS`` order; ``none``/empty: ().

    Raises
    ------
    ValueError
        An unknown name; the message lists the valid ones.
    """
    if text is None:
        return ()
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"Unknown TF.js variant(s) {', '.join(map(repr, unknown))}; valid: {', '.join(VARIANTS)} "
                         "(comma-separated), or none.")
    return tuple(v for v in VARIANTS if v in names)


# ------------------------------------------------------------------------------------------- input transform


def derive_input_transform(function: Callable[[np.ndarray], np.ndarray], size: int, seed: int = 0,
                           rtol: float = 1e-5) -> PixelAffine:
    """The per-channel affine map (with an optional channel reversal) that ``function`` computes on 0..255 pixels.

    ``function`` takes ``(n, size, size, 3)`` float32 pixels; it is probed with black images and one channel at
    255, and the result is checked on random images.

    Raises
    ------
    NotExportableError
        ``function`` mixes channels other than by reversing them, varies over the image, or is not affine.
    """
    zeros = np.zeros((1, size, size, 3), np.float32)
    base = np.asarray(function(zeros), dtype=np.float64)
    if base.shape != zeros.shape:
        raise NotExportableError(f"The preprocessing returns shape {base.shape} for {zeros.shape}: not per pixel.")
    offset = base[0, 0, 0]
    # Each channel in turn ramps over 0..255 (the others black); a least-squares slope per output channel is
    # exact to float32 precision, where one difference quotient carries the output's rounding.
    ramp = (np.arange(size * size) % 256).astype(np.float32).reshape(size, size)
    matrix = np.zeros((3, 3))
    for channel in range(3):
        probe = zeros.copy()
        probe[0, ..., channel] = ramp
        out = np.asarray(function(probe), dtype=np.float64)[0].reshape(-1, 3)
        matrix[:, channel] = np.polyfit(ramp.reshape(-1).astype(np.float64), out, 1)[0]
    # Snapped to float32: the browser computes in float32, and exact constants (1, 1/255) come out exact.
    matrix = matrix.astype(np.float32).astype(np.float64)
    offset = offset.astype(np.float32).astype(np.float64)
    diagonal, anti = np.diag(matrix), np.diag(matrix[:, ::-1])
    off = np.abs(matrix).max() * 1e-6
    if np.all(np.abs(matrix - np.diag(diagonal)) <= off):
        transform = PixelAffine("rgb", tuple(map(float, diagonal)), tuple(map(float, offset)))
    elif np.all(np.abs(matrix[:, ::-1] - np.diag(anti)) <= off):
        transform = PixelAffine("bgr", tuple(map(float, anti)), tuple(map(float, offset)))
    else:
        raise NotExportableError(f"The preprocessing mixes colour channels (matrix {matrix.round(6).tolist()}): "
                                 "not a per-channel affine map.")
    pixels = np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    expected = np.asarray(function(pixels), dtype=np.float64)
    error = np.abs(transform.apply(pixels) - expected).max()
    if not error <= rtol * max(1.0, np.abs(expected).max()):
        raise NotExportableError(f"The preprocessing is not a per-channel affine map of the pixels: off by {error:.3g} "
                                 "on random images.")
    return transform


# ------------------------------------------------------------------------------------------- topology


def _numpy(variable: Any) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def _check_activation(name: Any, layer: str) -> str:
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise NotExportableError(f"Layer {layer!r} uses activation {name!r}, which TF.js does not compute as Keras "
                                 f"does (supported: {', '.join(sorted(ACTIVATIONS))}).")
    return ACTIVATIONS[name]


def _check_channels_last(config: dict[str, Any], layer: str) -> None:
    if config.get("data_format", "channels_last") not in (None, "channels_last"):
        raise NotExportableError(f"Layer {layer!r} is {config['data_format']}; only channels_last is exported.")


def _keep(config: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {key: config[key] for key in keys if key in config}


_CONV_KEYS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "use_bias")


def _conv2d(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    _check_channels_last(config, layer.name)
    if config.get("groups", 1) != 1:
        raise NotExportableError(f"Layer {layer.name!r} is a grouped Conv2D (groups={config['groups']}); "
                                 "TF.js has none.")
    out = _keep(config, _CONV_KEYS)
    out["activation"] = _check_activation(config.get("activation", "linear"), layer.name)
    weights = [("kernel", _numpy(layer.kernel))]
    if config.get("use_bias", True):
        weights.append(("bias", _numpy(layer.bias)))
    return out, weights


def _depthwise(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    _check_channels_last(config, layer.name)
    out = _keep(config, ("kernel_size", "strides", "padding", "data_format", "dilation_rate", "use_bias",
                         "depth_multiplier"))
    out["activation"] = _check_activation(config.get("activation", "linear"), layer.name)
    weights = [("depthwise_kernel", _numpy(layer.kernel))]  # Keras 2 and TF.js name it depthwise_kernel
    if config.get("use_bias", True):
        weights.append(("bias", _numpy(layer.bias)))
    return out, weights


def _separable(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    _check_channels_last(config, layer.name)
    out = _keep(config, (*_CONV_KEYS, "depth_multiplier"))
    out["activation"] = _check_activation(config.get("activation", "linear"), layer.name)
    weights = [("depthwise_kernel", _numpy(layer.depthwise_kernel)),
               ("pointwise_kernel", _numpy(layer.pointwise_kernel))]
    if config.get("use_bias", True):
        weights.append(("bias", _numpy(layer.bias)))
    return out, weights


def _dense(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    out = _keep(config, ("units", "use_bias"))
    out["activation"] = _check_activation(config.get("activation", "linear"), layer.name)
    weights = [("kernel", _numpy(layer.kernel))]
    if config.get("use_bias", True):
        weights.append(("bias", _numpy(layer.bias)))
    return out, weights


def _batch_norm(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    axis = config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    if axis not in (-1, 3):
        raise NotExportableError(f"BatchNormalization {layer.name!r} normalises axis {axis}; only the channels.")
    if config.get("renorm") or config.get("synchronized"):
        raise NotExportableError(f"BatchNormalization {layer.name!r} uses renorm/synchronized, unknown to TF.js.")
    out = {"axis": -1, **_keep(config, ("momentum", "epsilon", "center", "scale"))}
    weights = []
    if config.get("scale", True):
        weights.append(("gamma", _numpy(layer.gamma)))
    if config.get("center", True):
        weights.append(("beta", _numpy(layer.beta)))
    weights += [("moving_mean", _numpy(layer.moving_mean)), ("moving_variance", _numpy(layer.moving_variance))]
    return out, weights


def _activation(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    return {"activation": _check_activation(config.get("activation"), layer.name)}, []


def _relu(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    if config.get("negative_slope") or config.get("threshold"):
        raise NotExportableError(f"ReLU {layer.name!r} has a negative slope or threshold; TF.js' ReLU has neither.")
    max_value = config.get("max_value")
    return {"max_value": None if max_value is None else float(max_value)}, []


def _keeping(*keys: str, channels_last: bool = False) -> Callable:
    def convert(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
        if channels_last:
            _check_channels_last(config, layer.name)
        return _keep(config, keys), []
    return convert


def _global_pool(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    _check_channels_last(config, layer.name)
    if config.get("keepdims"):
        raise NotExportableError(f"{type(layer).__name__} {layer.name!r} keeps its dims; TF.js 4.22 cannot.")
    return _keep(config, ("data_format",)), []


def _concatenate(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    axis = config.get("axis", -1)
    if axis not in (-1, 3):
        raise NotExportableError(f"Concatenate {layer.name!r} joins axis {axis}; only the channels are exported.")
    return {"axis": -1}, []


def _rescaling(layer: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    scale, offset = config.get("scale"), config.get("offset")
    if not all(isinstance(v, int | float) for v in (scale, offset)):
        raise NotExportableError(f"Rescaling {layer.name!r} inside the network is per channel; TF.js' is scalar.")
    return {"scale": float(scale), "offset": float(offset)}, []


# Keras class -> converter(layer, keras 3 config) -> (Keras 2 config without name, [(TF.js weight name, array)]).
LAYER_CONVERTERS: dict[str, Callable[[Any, dict[str, Any]], tuple[dict[str, Any], list[tuple[str, np.ndarray]]]]] = {
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise,
    "SeparableConv2D": _separable,
    "Dense": _dense,
    "BatchNormalization": _batch_norm,
    "Activation": _activation,
    "ReLU": _relu,
    "Add": _keeping(),
    "Multiply": _keeping(),
    "Concatenate": _concatenate,
    "ZeroPadding2D": _keeping("padding", "data_format", channels_last=True),
    "Cropping2D": _keeping("cropping", "data_format", channels_last=True),
    "AveragePooling2D": _keeping("pool_size", "strides", "padding", "data_format", channels_last=True),
    "MaxPooling2D": _keeping("pool_size", "strides", "padding", "data_format", channels_last=True),
    "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling2D": _global_pool,
    "Dropout": _keeping("rate"),
    "Flatten": _keeping("data_format", channels_last=True),
    "Reshape": _keeping("target_shape"),
    "Rescaling": _rescaling,
}


def _history(node: Any) -> list[tuple[str, int, int]]:
    """The ``keras_history`` entries a Keras 3 inbound node reads, in argument order."""
    found: list[tuple[str, int, int]] = []
    if isinstance(node, dict):
        if "keras_history" in node:
            name, node_index, tensor_index = node["keras_history"]
            return [(name, int(node_index), int(tensor_index))]
        for key in ("args", "kwargs", "config"):  # args before kwargs: the call's own order
            if key in node:
                found += _history(node[key])
        if not any(key in node for key in ("args", "kwargs", "config")):
            for value in node.values():
                found += _history(value)
    elif isinstance(node, list | tuple):
        for item in node:
            found += _history(item)
    return found


def _refs(value: Any) -> list[list[Any]]:
    """``input_layers``/``output_layers`` of a Keras 3 config as a list of ``[name, node, tensor]``."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [list(value)]
    return [list(v) for v in value]


@dataclass
class _Graph:
    topology: dict[str, Any]
    weights: list[tuple[str, np.ndarray]]
    folded: list[str]  # leading affine layers folded into the input transform, in graph order


def convert_graph(model: Any) -> _Graph:
    """The Keras 2 style topology (``modelTopology``) and the named weights of a Keras 3 functional model.

    Raises
    ------
    NotExportableError
        A layer class not in ``LAYER_CONVERTERS`` (or an option TF.js lacks), a nested model, a layer called twice.
    """
    import keras

    config = model.get_config()
    inputs = _refs(config["input_layers"])
    if len(inputs) != 1:
        raise NotExportableError(f"The model has {len(inputs)} inputs; one image input is exported.")
    input_name = inputs[0][0]
    layers = config["layers"]
    consumers: dict[str, list[str]] = {}
    for entry in layers:
        if len(entry.get("inbound_nodes", [])) > 1:
            raise NotExportableError(f"Layer {entry['name']!r} is called {len(entry['inbound_nodes'])} times; "
                                     "shared layers are not exported.")
        for name, _, _ in _history(entry.get("inbound_nodes", [])):
            consumers.setdefault(name, []).append(entry["name"])
    outputs = _refs(config["output_layers"])
    output_names = {ref[0] for ref in outputs}
    by_name = {entry["name"]: entry for entry in layers}

    # The leading chain of per-channel affine layers: the input transform takes them over.
    folded: list[str] = []
    head = input_name
    while len(consumers.get(head, [])) == 1 and head not in output_names:
        nxt = consumers[head][0]
        if by_name[nxt]["class_name"] not in _AFFINE_INPUT_LAYERS:
            break
        folded.append(nxt)
        head = nxt

    input_entry = by_name[input_name]
    shape = input_entry["config"].get("batch_shape") or input_entry["config"].get("batch_input_shape")
    out_layers: list[dict[str, Any]] = [{
        "class_name": "InputLayer", "name": input_name, "inbound_nodes": [],
        "config": {"batch_input_shape": [None, *shape[1:]], "dtype": "float32", "sparse": False, "name": input_name},
    }]
    weights: list[tuple[str, np.ndarray]] = []
    for entry in layers:
        name, class_name = entry["name"], entry["class_name"]
        if name == input_name or name in folded:
            continue
        layer = model.get_layer(name)
        if isinstance(layer, keras.Model):
            raise NotExportableError(f"Layer {name!r} is a nested model; flatten it before exporting.")
        convert = LAYER_CONVERTERS.get(class_name)
        if convert is None:
            raise NotExportableError(f"Layer {name!r} is a {class_name}, which this exporter does not translate for "
                                     f"TF.js (known: {', '.join(sorted(LAYER_CONVERTERS))}).")
        layer_config, layer_weights = convert(layer, entry["config"])
        inbound = [[input_name if src == head else src, node, tensor, {}]
                   for src, node, tensor in _history(entry.get("inbound_nodes", []))]
        out_layers.append({"class_name": class_name, "name": name,
                           "config": {"name": name, "trainable": False, **layer_config},
                           "inbound_nodes": [inbound]})
        weights += [(f"{name}/{weight}", array) for weight, array in layer_weights]
    topology = {
        "keras_version": "2.15.0", "backend": "tensorflow",
        "model_config": {"class_name": "Functional", "config": {
            "name": model.name, "layers": out_layers, "input_layers": [[input_name, 0, 0]],
            "output_layers": [[n, int(i), int(t)] for n, i, t in outputs],
        }},
    }
    return _Graph(topology, weights, folded)


# ------------------------------------------------------------------------------------------- weights


def quantize_weight(data: np.ndarray, dtype: str) -> tuple[np.ndarray, dict[str, Any]]:
    """One float32 weight as tfjs-converter's ``quantization.quantize_weights`` stores it: ``(codes, metadata)``.

    ``uint8``/``uint16``: affine over the weight's [min, max], the range nudged so 0 is a code when it lies within,
    ``value = code * scale + min``; a constant weight is all zeros with ``scale`` 1 and ``min`` its value.
    ``float16``: a cast. ``float32``: unchanged, no metadata.

    Examples
    --------
    >>> codes, meta = quantize_weight(np.array([-1.0, 0.0, 1.0], np.float32), "uint8")
    >>> codes.tolist(), meta["dtype"]
    ([0, 128, 255], 'uint8')
    """
    data = np.asarray(data, dtype=np.float32)
    if dtype == "float32":
        return data, {}
    if dtype == "float16":
        return data.astype(np.float16), {"dtype": "float16", "original_dtype": "float32"}
    if dtype not in ("uint8", "uint16"):
        raise ValueError(f"Unknown quantisation {dtype!r}; valid: {', '.join(VARIANTS)}.")
    target = np.dtype(dtype)
    low, high = float(data.min()), float(data.max())
    if low == high:
        return np.zeros(data.shape, target), {"dtype": dtype, "min": low, "scale": 1.0, "original_dtype": "float32"}
    quant_max = np.iinfo(target).max
    scale = (high - low) / quant_max
    if low <= 0 <= high:
        zero = np.round(-low / scale)
        low = -zero * scale
        high = quant_max * scale + low
    codes = np.round((np.clip(data.astype(np.float64), low, high) - low) / scale).astype(target)
    return codes, {"dtype": dtype, "min": float(low), "scale": float(scale), "original_dtype": "float32"}


def _write_variant(folder: Path, topology: dict[str, Any], weights: list[tuple[str, np.ndarray]],
                   variant: str) -> VariantFiles:
    specs, chunks = [], []
    for name, array in weights:
        codes, meta = quantize_weight(array, variant)
        spec: dict[str, Any] = {"name": name, "shape": list(array.shape), "dtype": "float32"}
        if meta:
            spec["quantization"] = meta
        specs.append(spec)
        chunks.append(np.ascontiguousarray(codes).astype(codes.dtype.newbyteorder("<"), copy=False).tobytes())
    data = b"".join(chunks)
    n_shards = max(1, math.ceil(len(data) / SHARD_BYTES))
    paths = [f"group1-shard{i + 1}of{n_shards}.bin" for i in range(n_shards)]
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths):
        (folder / path).write_bytes(data[i * SHARD_BYTES:(i + 1) * SHARD_BYTES])
    model_json = {
        "format": "layers-model", "generatedBy": _generated_by(), "convertedBy": CONVERTED_BY,
        "modelTopology": topology, "weightsManifest": [{"paths": paths, "weights": specs}],
    }
    (folder / MODEL_FILE).write_text(json.dumps(model_json), encoding="utf-8")
    files = (MODEL_FILE, *paths)
    return VariantFiles(sum((folder / f).stat().st_size for f in files), files)


def _generated_by() -> str:
    try:
        import keras

        return f"keras v{keras.__version__}"
    except ImportError:  # pragma: no cover - the exporter always runs with Keras
        return "keras"


# ------------------------------------------------------------------------------------------- export


def export_feature_model(feature_model: Any, layers: Sequence[str], preprocess: Callable[[np.ndarray], np.ndarray],
                         input_size: int, out_dir: str | os.PathLike[str],
                         variants: Sequence[str] = VARIANTS, head: dict[str, Any] | None = None) -> TfjsExportSpec:
    """Write ``feature_model`` (``precompute.extract.build_feature_model``) as TF.js layers models under ``out_dir``.

    Parameters
    ----------
    feature_model : Keras functional model, one output per layer of ``layers``, in that order
    layers : the backbone's layer names of those outputs (``export.json``'s ``layers``)
    preprocess : the backbone's preprocessing of ``(n, s, s, 3)`` pixels 0..255 (``Backbone.preprocess``)
    input_size : ``s``
    out_dir : the ``tfjs`` folder; replaced as a whole, atomically, once every variant is written
    variants : names of ``VARIANTS``
    head : for a model with trained heads (``precompute.head.append_heads``), how to find them (``export.json``'s
        ``head``: per layer its Dense layer's name and width)

    Returns
    -------
    TfjsExportSpec
        What ``export.json`` holds.

    Raises
    ------
    NotExportableError
        A layer TF.js cannot load, or a preprocessing that is not per-channel affine; nothing is written.
    ValueError
        An unknown variant, or outputs that do not match ``layers``.
    """
    import keras

    variants = parse_variants(list(variants))
    if not variants:
        raise ValueError(f"No TF.js variant to export; valid: {', '.join(VARIANTS)}.")
    if len(feature_model.outputs) != len(layers):
        raise ValueError(f"The feature model has {len(feature_model.outputs)} outputs for {len(layers)} layers.")
    graph = convert_graph(feature_model)
    function = preprocess
    if graph.folded:
        leading = keras.Model(feature_model.inputs[0], feature_model.get_layer(graph.folded[-1]).output)

        def function(x: np.ndarray) -> np.ndarray:
            return keras.ops.convert_to_numpy(leading(preprocess(x), training=False))

    transform = derive_input_transform(function, input_size)
    dims = tuple(int(out.shape[-1]) for out in feature_model.outputs)
    with _replacing(Path(out_dir)) as tmp:
        written = {v: _write_variant(tmp / v, graph.topology, graph.weights, v) for v in variants}
        spec = TfjsExportSpec(input_size, transform, tuple(layers), dims, written, head)
        (tmp / EXPORT_FILE).write_text(json.dumps(spec.to_dict(), indent=1), encoding="utf-8")
    return spec


def link_export(source: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> TfjsExportSpec:
    """Make ``out_dir`` an export equal to ``source``'s, by hard links (copies where the file system has none).

    Files are never changed in place (an export is replaced as a whole), so linked copies stay independent.
    """
    source, out_dir = Path(source), Path(out_dir)
    spec = read_export_spec(source)
    names = [EXPORT_FILE, *(f"{variant}/{name}" for variant, files in spec.variants.items() for name in files.files)]
    with _replacing(out_dir) as tmp:
        for name in names:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source / name, tmp / name)
            except OSError:
                shutil.copy2(source / name, tmp / name)
    return spec


@contextlib.contextmanager
def _replacing(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside ``out_dir`` that replaces it when the block succeeds (removed if it fails).

    Named ``.<name>.<random>.tmp``: one left by a killed run is removed by the next run's
    ``precompute.artifacts.remove_stale_temporaries``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        yield tmp
        artifacts.follow_umask(tmp)  # mkdtemp made it 0700, and copies keep their source's mode
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["ACTIVATIONS", "CONVERTED_BY", "LAYER_CONVERTERS", "MODEL_FILE", "SHARD_BYTES", "VARIANTS",
           "NotExportableError", "convert_graph", "derive_input_transform", "export_feature_model", "link_export",
           "parse_variants", "quantize_weight"]
