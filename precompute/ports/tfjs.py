"""Read TensorFlow.js *layers* models and map their weights onto Keras models, without TensorFlow.js.

A TF.js layers model is a ``model.json`` (``modelTopology``: the Keras model config; ``weightsManifest``: groups
of weight shards, each weight with name, shape, dtype and an optional ``quantization``) plus binary shard files.
Quantised weights are stored as ``uint8``/``uint16`` codes with ``value = code * scale + min``, or as
``float16``. Some npm packages (nsfwjs) ship the same content as browserify bundles, ``model.min.js`` holding
the JSON as a JavaScript object literal and ``group1-shard1of1.min.js`` holding the shard as base64: both forms
are read.

Weights are mapped onto a Keras model layer by layer: by name where the Keras name is stable (``Conv1``,
``block_3_expand``), by graph order where Keras generated a counter name (``conv2d_17``: InceptionV3's numbers
differ between Keras versions and sessions). Graph order is the order of a depth-first walk from the outputs that
follows each layer's inputs in their given order (the branch order of each ``Concatenate``), so it does not depend
on how either side lists its layers. Every pair must agree in layer type and weight shapes.

Command line::

    import-tfjs path/to/model.json --arch mobilenetv2 --out mobilenetv2.weights.h5

Examples
--------
>>> source = read_layers_model("nsfwjs/dist/models/mobilenet_v2/model.min.js")  # doctest: +SKIP
>>> model = build_architecture("mobilenetv2")  # doctest: +SKIP
>>> mapping = assign_weights(model, source)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from precompute.artifacts import atomic_path

# --arch choices: the keras.applications constructor and its default input size.
ARCHITECTURES: dict[str, tuple[str, int]] = {
    "mobilenetv2": ("MobileNetV2", 224),
    "inceptionv3": ("InceptionV3", 299),
}

# Stored dtypes of plain and quantised weights.
_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"), "int32": np.dtype("<i4"), "bool": np.dtype("u1"),
    "uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "float16": np.dtype("<f2"),
}
# Keras 3 names a depthwise kernel "kernel"; Keras 2 (and so TF.js files) "depthwise_kernel".
_VAR_ALIASES: dict[str, tuple[str, ...]] = {"kernel": ("depthwise_kernel",), "depthwise_kernel": ("kernel",)}


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
        known = set(_source_layers(self.topology))
        grouped: dict[str, dict[str, np.ndarray]] = {}
        for name, array in self.weights.items():
            layer, _, var = name.rpartition("/")
            if known and layer not in known and layer.rpartition("/")[2] in known:
                layer = layer.rpartition("/")[2]
            grouped.setdefault(layer, {})[var.split(":")[0]] = array
        return grouped


@dataclass(frozen=True)
class WeightMapping:
    """How ``assign_weights`` paired Keras layers with source layers.

    Attributes
    ----------
    pairs : list of (keras_layer, source_layer, how)
        ``how`` is ``"name"`` or ``"order"``; in the Keras model's graph order.
    unused : list of str
        Source layers with weights that no Keras layer took (e.g. a classifier head not built).
    """

    pairs: list[tuple[str, str, str]]
    unused: list[str]

    def summary(self) -> str:
        by = {how: sum(1 for *_, h in self.pairs if h == how) for how in ("name", "order")}
        text = f"{len(self.pairs)} layers mapped ({by['name']} by name, {by['order']} by graph order)"
        if self.unused:
            text += f"; {len(self.unused)} source layers unused: {', '.join(self.unused)}"
        return text


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
            content, _ = _parse_js_literal(text, text.index("{", start.start()))
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


_JS_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"""
    r"""|(?P<punct>[{}\[\]:,])|(?P<bang>!\s*[01])|(?P<ident>[A-Za-z_$][\w$]*))"""
)
_JS_CONSTANTS = {"null": None, "true": True, "false": False, "NaN": math.nan, "Infinity": math.inf}


def _parse_js_literal(text: str, pos: int) -> tuple[Any, int]:
    """Parse the minified JavaScript object literal at ``text[pos]``: JSON plus bare keys, ``.5``, ``!0``."""

    def token(at: int) -> re.Match[str]:
        match = _JS_TOKEN.match(text, at)
        if match is None:
            raise ValueError(f"unexpected text at {at}: {text[at:at + 30]!r}")
        return match

    def string(literal: str) -> str:
        return json.loads(literal if literal[0] == '"' else '"' + literal[1:-1].replace('"', '\\"') + '"')

    def value(at: int) -> tuple[Any, int]:
        tok = token(at)
        kind, raw, at = tok.lastgroup, tok.group(tok.lastgroup), tok.end()
        if kind == "str":
            return string(raw), at
        if kind == "num":
            return (float(raw) if any(c in raw for c in ".eE") else int(raw)), at
        if kind == "bang":
            return raw[-1] == "0", at  # minifiers write true as !0, false as !1
        if kind == "ident":
            return _JS_CONSTANTS[raw], at
        if raw == "[":
            items: list[Any] = []
            if token(at).group("punct") == "]":
                return items, token(at).end()
            while True:
                item, at = value(at)
                items.append(item)
                sep = token(at)
                at = sep.end()
                if sep.group("punct") == "]":
                    return items, at
                if sep.group("punct") != ",":
                    raise ValueError(f"expected , or ] at {sep.start()}")
        if raw == "{":
            obj: dict[str, Any] = {}
            if token(at).group("punct") == "}":
                return obj, token(at).end()
            while True:
                key = token(at)
                if key.lastgroup not in ("str", "ident", "num"):
                    raise ValueError(f"expected a key at {key.start()}")
                name = string(key.group("str")) if key.lastgroup == "str" else key.group(key.lastgroup)
                colon = token(key.end())
                if colon.group("punct") != ":":
                    raise ValueError(f"expected : at {colon.start()}")
                obj[name], at = value(colon.end())
                sep = token(at)
                at = sep.end()
                if sep.group("punct") == "}":
                    return obj, at
                if sep.group("punct") != ",":
                    raise ValueError(f"expected , or }} at {sep.start()}")
        raise ValueError(f"unexpected {raw!r} at {tok.start()}")

    return value(pos)


# ------------------------------------------------------------------------------------------- graphs


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


def _model_config(topology: dict[str, Any] | None) -> dict[str, Any]:
    if not topology:
        return {}
    config = topology.get("model_config", topology)
    return config.get("config", {}) if isinstance(config, dict) else {}


def _source_layers(topology: dict[str, Any] | None) -> dict[str, tuple[str, list[str]]]:
    """Layer name to (class name, inbound layer names) from a model config, in its listing order."""
    layers = _model_config(topology).get("layers", [])
    return {
        layer["name"]: (layer.get("class_name", ""), _history_names(layer.get("inbound_nodes", [])[:1]))
        for layer in layers
    }


def _source_outputs(topology: dict[str, Any] | None) -> list[str]:
    outputs = _model_config(topology).get("output_layers", [])
    if outputs and isinstance(outputs[0], str):  # a single output written flat: [name, 0, 0]
        outputs = [outputs]
    return [o[0] for o in outputs]


def _keras_layers(model: Any) -> dict[str, tuple[str, list[str]]]:
    graph = {}
    for layer in model.layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        parents = [t._keras_history.operation.name for t in nodes[0].input_tensors] if nodes else []
        graph[layer.name] = (type(layer).__name__, parents)
    return graph


def _graph_order(graph: dict[str, tuple[str, list[str]]], roots: Sequence[str]) -> list[str]:
    """Depth-first post-order from ``roots``, inputs in their order; iterative (deep graphs)."""
    order, seen = [], set()
    for root in roots:
        if root in seen or root not in graph:
            continue
        stack = [(root, iter(graph[root][1]))]
        seen.add(root)
        while stack:
            name, parents = stack[-1]
            parent = next((p for p in parents if p not in seen), None)
            if parent is None:
                stack.pop()
                order.append(name)
            elif parent in graph:
                seen.add(parent)
                stack.append((parent, iter(graph[parent][1])))
            else:
                seen.add(parent)
    return order


def _snake_case(class_name: str) -> str:
    # Keras' own rule for default layer names (keras.src.utils.naming.to_snake_case).
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_counter_name(name: str, class_name: str) -> bool:
    """True for a name Keras generated from the class and a counter (``conv2d``, ``conv2d_17``)."""
    return re.fullmatch(rf"{re.escape(_snake_case(class_name))}(_\d+)?", name) is not None


# ------------------------------------------------------------------------------------------- mapping


def assign_weights(model: Any, source: TfjsLayersModel, *, allow_unused: bool = True) -> WeightMapping:
    """Set every weight of the Keras ``model`` from ``source``; by layer name, else by graph order.

    Parameters
    ----------
    model : keras.Model
        A functional model whose layers with weights all have a counterpart in ``source``.
    source : TfjsLayersModel
        From ``read_layers_model``.
    allow_unused : bool
        False: also fail when source layers with weights are left over.

    Returns
    -------
    WeightMapping
        Which source layer each Keras layer took, and the source layers left over.

    Raises
    ------
    ValueError
        A Keras layer without a counterpart, a type or shape disagreement (all problems listed); nothing is
        assigned then.
    """
    source_weights = source.layer_weights()
    source_graph = _source_layers(source.topology)
    target_graph = _keras_layers(model)
    target_outputs = [t._keras_history.operation.name for t in model.outputs]
    if source_graph:
        # Walk the source from the layers the Keras model ends with (a base inside a model with a head), when their
        # names are stable; counter names may point anywhere, so then from the source's own outputs.
        stable = all(n in source_graph and not _is_counter_name(n, target_graph[n][0]) for n in target_outputs)
        roots = target_outputs if stable else _source_outputs(source.topology)
        listed = _graph_order(source_graph, roots) if roots else list(source_graph)  # no outputs: listing order
        source_order = [n for n in listed if n in source_weights]
    else:
        source_order = list(source_weights)  # weights only: manifest order, names are all there is
    target_order = [n for n in _graph_order(target_graph, target_outputs) if model.get_layer(n).weights]

    pairs: dict[str, tuple[str, str]] = {}
    for name in target_order:
        if name in source_weights and not _is_counter_name(name, target_graph[name][0]):
            pairs[name] = (name, "name")
    taken = {src for src, _ in pairs.values()}
    rest_target = [n for n in target_order if n not in pairs]
    rest_source = [n for n in source_order if n not in taken]
    problems: list[str] = []
    for i, name in enumerate(rest_target):
        if i >= len(rest_source):
            problems.append(f"Keras layer {name!r} has no source layer left to take (by name or order)")
            continue
        pairs[name] = (rest_source[i], "order")
    taken = {src for src, _ in pairs.values()}

    assignments: list[tuple[Any, list[np.ndarray]]] = []
    for name in target_order:
        if name not in pairs:
            continue
        src, how = pairs[name]
        layer = model.get_layer(name)
        src_class = source_graph.get(src, ("", []))[0]
        if how == "order" and src_class and src_class != type(layer).__name__:
            problems.append(f"{name!r} ({type(layer).__name__}) paired by order with {src!r} ({src_class})")
            continue
        arrays = []
        for var in layer.weights:
            var_name = var.name.split("/")[-1].split(":")[0]
            found = next((source_weights[src][n] for n in (var_name, *_VAR_ALIASES.get(var_name, ()))
                          if n in source_weights[src]), None)
            if found is None:
                problems.append(f"{src!r} has no {var_name!r} for {name!r} (has {sorted(source_weights[src])})")
            elif tuple(found.shape) != tuple(var.shape):
                problems.append(f"{src}/{var_name} has shape {tuple(found.shape)}, {name!r} needs {tuple(var.shape)}")
            arrays.append(found)
        if len(source_weights[src]) != len(layer.weights):
            problems.append(f"{src!r} has {len(source_weights[src])} weights, {name!r} has {len(layer.weights)}")
        assignments.append((layer, arrays))
    unused = [n for n in (source_order + [n for n in source_weights if n not in source_order]) if n not in taken]
    if unused and not allow_unused:
        problems.append(f"source layers left unused: {', '.join(unused)}")
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(f"{source.path} does not map onto {model.name}:\n  {shown}")
    for layer, arrays in assignments:
        layer.set_weights([np.asarray(a, dtype=v.dtype) for a, v in zip(arrays, layer.weights, strict=True)])
    return WeightMapping([(n, *pairs[n]) for n in target_order], unused)


# ------------------------------------------------------------------------------------------- conversion


def build_architecture(arch: str, input_shape: tuple[int, int, int] | None = None) -> Any:
    """The ``keras.applications`` convolutional base for ``arch`` (``include_top=False``, no weights)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}.")
    from keras import applications

    keras_name, size = ARCHITECTURES[arch]
    return getattr(applications, keras_name)(include_top=False, weights=None,
                                             input_shape=input_shape or (size, size, 3))


def save_weights_atomic(model: Any, out_path: str | os.PathLike[str]) -> Path:
    """``model.save_weights`` to a temporary sibling, then an atomic rename to ``out_path`` (``.weights.h5``)."""
    out_path = Path(out_path)
    if not out_path.name.endswith(".weights.h5"):
        raise ValueError(f"The output must end with '.weights.h5' (the Keras weights format); got {str(out_path)!r}.")
    with atomic_path(out_path) as tmp:
        model.save_weights(tmp)
    return out_path


def convert_layers_model(model_json: str | os.PathLike[str], arch: str,
                         out_path: str | os.PathLike[str]) -> WeightMapping:
    """Convert a TF.js layers model into a Keras weights file for ``arch``'s convolutional base.

    The file loads with ``keras.applications.<Arch>(include_top=False, weights=out_path, input_shape=...)`` at
    any input size. Layers of the source beyond the base (a classifier head) are left out and reported.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}.")
    if not str(out_path).endswith(".weights.h5"):
        raise ValueError(f"The output must end with '.weights.h5' (the Keras weights format); got {str(out_path)!r}.")
    source = read_layers_model(model_json)
    model = build_architecture(arch)
    mapping = assign_weights(model, source)
    save_weights_atomic(model, out_path)
    return mapping


def main(argv: Sequence[str] | None = None) -> int:
    """``import-tfjs MODEL_JSON --arch {mobilenetv2,inceptionv3} --out FILE.weights.h5``."""
    parser = argparse.ArgumentParser(
        prog="import-tfjs",
        description="Convert a TensorFlow.js layers model (model.json + shards, float32 or uint8/uint16/float16 "
                    "quantised; or nsfwjs' model.min.js bundles) into Keras weights for a keras.applications "
                    "convolutional base (include_top=False).",
    )
    parser.add_argument("model_json", type=Path, help="model.json (shards beside it) or model.min.js")
    parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES), help="the Keras architecture")
    parser.add_argument("--out", required=True, type=Path, help="output file, ending in .weights.h5")
    args = parser.parse_args(argv)
    if not args.out.name.endswith(".weights.h5"):
        parser.error(f"--out must end with .weights.h5; got {str(args.out)!r}")
    try:
        mapping = convert_layers_model(args.model_json, args.arch, args.out)
    except (OSError, ValueError) as err:
        print(f"import-tfjs: error: {err}", file=sys.stderr)
        return 1
    for keras_name, source_name, how in mapping.pairs:
        print(f"{keras_name:<40} <- {source_name:<40} ({how})")
    print(mapping.summary())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
