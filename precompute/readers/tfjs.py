"""Read TensorFlow.js *layers* models (``model.json`` plus weight shards) into numpy, without TensorFlow.js.

A TF.js layers model is a ``model.json`` (``modelTopology``: the Keras model config; ``weightsManifest``: groups
of weight shards, each weight with name, shape, dtype and an optional ``quantization``) plus binary shard files.
Quantised weights are stored as ``uint8``/``uint16`` codes with ``value = code * scale + min``, or as
``float16``. Some npm packages (nsfwjs) ship the same content as browserify bundles, ``model.min.js`` holding
the JSON as a JavaScript object literal (``precompute.readers.js_literal``) and ``group1-shard1of1.min.js`` holding
the shard as base64: both forms are read. ``topology_layers`` and ``topology_outputs`` read the layer graph of the
topology; ``precompute.ports.tfjs`` maps the weights onto Keras models. ``read_export_spec`` reads the manifest of an
export this project wrote (``export.json``, ``precompute.schema_export``; the files: ``precompute.tfjs_export``).

Examples
--------
>>> source = read_layers_model("nsfwjs/dist/models/mobilenet_v2/model.min.js")  # doctest: +SKIP
>>> source.layer_weights()["Conv1"]["kernel"].shape  # doctest: +SKIP
(3, 3, 3, 32)
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from precompute.readers.js_literal import parse_js_literal
from precompute.schema_export import EXPORT_FILE, TfjsExportSpec

# Stored dtypes of plain and quantised weights.
_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "bool": np.dtype("u1"),
    "uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2"),
}

class TfjsFormatError(ValueError):
    """A file is not a TF.js layers model, or its shards do not match its manifest."""


@dataclass(frozen=True)
class TfjsLayersModel:
    """A TF.js layers model in memory.

    Attributes
    ----------
    path : Path
        The ``model.json`` (or ``model.min.js``) it was read from.
    topology : dict or None
        ``modelTopology`` (a Keras 2 or 3 model config), None in a weights-only file.
    weights : dict of str to numpy.ndarray
        ``"layer/variable"`` to float32 (or int) array, dequantised, in manifest order.
    quantization : dict of str to str
        Weight name to the stored dtype of the quantised ones (``uint8``, ``uint16``, ``float16``).
    """

    path: Path
    topology: dict[str, Any] | None
    weights: dict[str, np.ndarray]
    quantization: dict[str, str] = field(default_factory=dict)

    def layer_weights(self) -> dict[str, dict[str, np.ndarray]]:
        """Layer name to ``{variable name: array}``; scoped names (``model_1/Conv1/kernel``) keep the layer."""
        known = set(topology_layers(self.topology))
        grouped: dict[str, dict[str, np.ndarray]] = {}
        for name, array in self.weights.items():
            layer, _, var = name.rpartition("/")
            if known and layer not in known and layer.rpartition("/")[2] in known:
                layer = layer.rpartition("/")[2]
            grouped.setdefault(layer, {})[var.split(":")[0]] = array
        return grouped


# ------------------------------------------------------------------------------------------- reading


def read_model_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``model.json`` content, from a JSON file or a browserify bundle (``module.exports={...}``).

    Raises
    ------
    TfjsFormatError
        Neither JSON nor a bundle exporting an object with ``weightsManifest``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No TF.js model file at {path}.")
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        try:
            content = json.loads(text)
        except json.JSONDecodeError as err:
            raise TfjsFormatError(f"{path} is not valid JSON: {err}") from err
    else:
        start = re.search(r"exports\s*=\s*\{\s*(?:modelTopology|weightsManifest|format|\"modelTopology\")", text)
        if start is None:
            raise TfjsFormatError(f"{path} is neither a model.json nor a JavaScript bundle exporting one.")
        try:
            content, _ = parse_js_literal(text, text.index("{", start.start()))
        except (ValueError, IndexError, KeyError) as err:
            raise TfjsFormatError(f"{path}: cannot read the exported object literal: {err}") from err
    if not isinstance(content, dict) or not isinstance(content.get("weightsManifest"), list):
        raise TfjsFormatError(f"{path} has no weightsManifest: not a TF.js layers model.")
    fmt = content.get("format", "layers-model")
    if fmt != "layers-model":
        raise TfjsFormatError(f"{path} is a TF.js {fmt!r}; only layers models (Keras) can be mapped onto Keras.")
    return content


def read_layers_model(path: str | os.PathLike[str]) -> TfjsLayersModel:
    """Read a TF.js layers model: topology and all weights, dequantised to float32.

    Parameters
    ----------
    path : path-like
        ``model.json`` (shards beside it, named as in ``weightsManifest[*].paths``) or ``model.min.js``
        (shards ``<path>.min.js`` holding base64).

    Returns
    -------
    TfjsLayersModel

    Raises
    ------
    TfjsFormatError
        Missing or short shards, unknown dtypes or quantisation, bytes left over.
    """
    path = Path(path)
    content = read_model_json(path)
    weights: dict[str, np.ndarray] = {}
    quantized: dict[str, str] = {}
    for group in content["weightsManifest"]:
        buffer = b"".join(_read_shard(path.parent, p) for p in group.get("paths", []))
        offset = 0
        for spec in group.get("weights", []):
            array, offset, qdtype = _decode_weight(spec, buffer, offset, path)
            weights[spec["name"]] = array
            if qdtype:
                quantized[spec["name"]] = qdtype
        if offset != len(buffer):
            raise TfjsFormatError(f"{path}: the shards {group.get('paths')} hold {len(buffer)} bytes, the manifest "
                                  f"describes {offset}.")
    return TfjsLayersModel(path, content.get("modelTopology"), weights, quantized)


def _read_shard(folder: Path, name: str) -> bytes:
    for candidate in (folder / name, folder / f"{name}.min.js", folder / f"{name}.js"):
        if candidate.is_file():
            data = candidate.read_bytes()
            if candidate.suffix == ".js" or data[:20].lstrip().startswith((b"!function", b"module", b"(function")):
                match = re.search(rb"exports\s*=\s*\"([A-Za-z0-9+/=\s]*)\"", data)
                if match is None:
                    raise TfjsFormatError(f"{candidate} is JavaScript but exports no base64 string.")
                return base64.b64decode(match.group(1))
            return data
    raise TfjsFormatError(f"Weight shard {name!r} not found in {folder} (also tried {name}.min.js).")


def _decode_weight(spec: dict[str, Any], buffer: bytes, offset: int, path: Path) -> tuple[np.ndarray, int, str]:
    name, shape = spec["name"], tuple(int(n) for n in spec["shape"])
    count = math.prod(shape)
    quant = spec.get("quantization")
    stored = quant["dtype"] if quant else spec["dtype"]
    if stored not in _DTYPES or spec["dtype"] not in _DTYPES:
        raise TfjsFormatError(f"{path}: weight {name!r} has unsupported dtype {stored!r}.")
    dtype = _DTYPES[stored]
    end = offset + count * dtype.itemsize
    if end > len(buffer):
        raise TfjsFormatError(f"{path}: the shards end before weight {name!r} (needs bytes {offset}..{end}, "
                              f"have {len(buffer)}).")
    raw = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
    if not quant:
        return raw.astype(dtype.newbyteorder("="), copy=True), end, ""
    if stored == "float16":
        return raw.astype(np.float32), end, stored
    if "scale" not in quant or "min" not in quant:
        raise TfjsFormatError(f"{path}: weight {name!r} is {stored}-quantised without scale and min.")
    # Float64 arithmetic, one rounding to float32: what tfjs computes, to within float32's precision.
    values = raw.astype(np.float64) * float(quant["scale"]) + float(quant["min"])
    return values.astype(np.float32), end, stored


def read_export_spec(folder: str | os.PathLike[str]) -> TfjsExportSpec:
    """``export.json`` of a TF.js export folder (``precompute.artifacts.tfjs_dir``).

    Raises
    ------
    OSError
        The file is missing or unreadable.
    ValueError
        Not JSON, another format, or a value that does not fit it.
    """
    return TfjsExportSpec.from_dict(json.loads((Path(folder) / EXPORT_FILE).read_text(encoding="utf-8")))


# ------------------------------------------------------------------------------------------- topology


def _history_names(node: Any) -> list[str]:
    """Layer names a Keras 2 (``[[name, node, tensor, kwargs], ...]``) or Keras 3 (``keras_history``) node reads."""
    names: list[str] = []
    if isinstance(node, dict):
        if "keras_history" in node:
            return [node["keras_history"][0]]
        for value in node.values():  # Keras 3: {"args": [{"class_name": ..., "config": {"keras_history": ...}}]}
            names += _history_names(value)
    elif isinstance(node, list | tuple):
        if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
            return [node[0]]
        for item in node:
            names += _history_names(item)
    return names


def topology_config(topology: dict[str, Any] | None) -> dict[str, Any]:
    if not topology:
        return {}
    config = topology.get("model_config", topology)
    return config.get("config", {}) if isinstance(config, dict) else {}


def topology_layers(topology: dict[str, Any] | None) -> dict[str, tuple[str, list[str]]]:
    """Layer name to (class name, inbound layer names) from a model config, in its listing order."""
    layers = topology_config(topology).get("layers", [])
    return {
        layer["name"]: (layer.get("class_name", ""), _history_names(layer.get("inbound_nodes", [])[:1]))
        for layer in layers
    }


def topology_outputs(topology: dict[str, Any] | None) -> list[str]:
    outputs = topology_config(topology).get("output_layers", [])
    if outputs and isinstance(outputs[0], str):  # a single output written flat: [name, 0, 0]
        outputs = [outputs]
    return [o[0] for o in outputs]
