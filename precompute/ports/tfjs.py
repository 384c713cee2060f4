"""Map the weights of TensorFlow.js *layers* models onto Keras models, and convert them into Keras weights files.

Weights (read by ``precompute.readers.tfjs``) are mapped onto a Keras model layer by layer: by name where the Keras
name is stable (``Conv1``, ``block_3_expand``), by graph order where Keras generated a counter name (``conv2d_17``:
InceptionV3's numbers differ between Keras versions and sessions). Graph order is the order of a depth-first walk
from the outputs that follows each layer's inputs in their given order (the branch order of each ``Concatenate``),
so it does not depend on how either side lists its layers. Every pair must agree in layer type and weight shapes.

Command line (``precompute.import_tfjs``)::

    import-tfjs path/to/model.json --arch mobilenetv2 --out mobilenetv2.weights.h5

Examples
--------
>>> source = read_layers_model("nsfwjs/dist/models/mobilenet_v2/model.min.js")  # doctest: +SKIP
>>> model = build_architecture("mobilenetv2")  # doctest: +SKIP
>>> mapping = assign_weights(model, source)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precompute.artifacts import atomic_path
from precompute.readers.tfjs import TfjsLayersModel, read_layers_model, topology_layers, topology_outputs

# --arch choices: the keras.applications constructor and its default input size.
ARCHITECTURES: dict[str, tuple[str, int]] = {
    "mobilenetv2": ("MobileNetV2", 224),
    "inceptionv3": ("InceptionV3", 299),
}

# Keras 3 names a depthwise kernel "kernel"; Keras 2 (and so TF.js files) "depthwise_kernel".
_VAR_ALIASES: dict[str, tuple[str, ...]] = {"kernel": ("depthwise_kernel",), "depthwise_kernel": ("kernel",)}



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


# ------------------------------------------------------------------------------------------- graphs


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
    source_graph = topology_layers(source.topology)
    target_graph = _keras_layers(model)
    target_outputs = [t._keras_history.operation.name for t in model.outputs]
    if source_graph:
        # Walk the source from the layers the Keras model ends with (a base inside a model with a head), when their
        # names are stable; counter names may point anywhere, so then from the source's own outputs.
        stable = all(n in source_graph and not _is_counter_name(n, target_graph[n][0]) for n in target_outputs)
        roots = target_outputs if stable else topology_outputs(source.topology)
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
