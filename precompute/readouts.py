"""NumPy readouts of stored linear layers: what a float32 LiteRT conversion leaves out of its graph.

The stored layers are mostly convolution outputs *before* their BatchNorm (``stem_conv``, ``*_expand_conv``,
``top_conv``). A graph that outputs such a tensor cannot fold that BatchNorm (and its activation) into the
convolution: the converter keeps a MUL over the largest maps for each stored layer, and a MEAN over them.
But a convolution without activation is linear, and so is global average pooling, so the stored feature is a
linear map of a much smaller quantity:

- a 1x1 convolution with stride 1 (``*_expand_conv``, ``top_conv``): ``mean(conv(z)) = mean(z) @ W + b``; the
  graph outputs ``mean(z)`` of its input (6x fewer channels after an expansion), the convolution folds its
  BatchNorm and activation as if nothing were stored, and ``top_conv`` leaves the graph altogether;
- any convolution of the model's input (``stem_conv``, after its ZeroPadding2D / Rescaling layers):
  ``mean(conv(x))[o] = sum over (ky, kx, c) of A[ky, kx, c] W[ky, kx, c, o] + b[o]``, where ``A`` is the mean of
  the (padded) input over the positions each kernel tap reads: 27 numbers per image for a 3x3 RGB stem,
  computed in NumPy from the batch the model receives; the stem leaves the graph's outputs.

Exact in real arithmetic; in float64 here, so the features stay within float32 rounding of the Keras path
(tests/test_runtimes.py). Every other stored layer (an activation, max pooling, flatten, a larger kernel inside
the network) is output as before.

``plan_readouts`` splits a feature model into the graph to convert and its :class:`Readout` per feature;
``write_readouts`` / ``read_readouts`` keep them beside the ``.tflite`` file (``readout_path``), and
``apply_readouts`` computes the features from the graph's outputs (``precompute.runtimes.LiteRTModel``).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precompute.artifacts import atomic_path

# The float32 conversions' NumPy readouts of linear layers; part of their cache key only.
READOUT_VERSION = 1
READOUT_SUFFIX = ".readout.npz"


@functools.cache
def _blas_controller() -> Any:
    """NumPy's BLAS thread pools. The readouts run on one thread: OpenBLAS' idle workers spin for a while after
    each multi-threaded call, and on 2 cores they took the cores from XNNPACK's threads (mobilenetv2, 4 layers,
    load 5-7: 112 img/s with the readouts' BLAS on 2 threads, 162 on one, 145 without readouts)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


# Layers between the model's input and a stem convolution that NumPy replays.
_INPUT_LAYERS = ("InputLayer", "ZeroPadding2D", "Rescaling")


@dataclass
class Readout:
    """How one feature comes out of a LiteRT model: graph output ``output`` as is (``kind`` "output"), that
    output (the pooled input of a 1x1 convolution) times ``kernel`` (kind "pooled"), or ``kernel`` applied to
    the tap means of the model's input (kind "input", with ``conv``: the convolution's kernel size, strides,
    dilation and padding, its own and its ZeroPadding2D layers', and the per-channel ``scale`` / ``offset`` of
    Rescaling layers before it)."""

    kind: str
    output: int = -1
    kernel: np.ndarray | None = None  # (taps * channels, dim), the Keras kernel reshaped
    bias: np.ndarray | None = None  # (dim,)
    conv: dict[str, Any] | None = None  # "input": kernel_size, strides, dilation, padding, scale, offset
    _selections: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, int]] | None = None

    @property
    def dim(self) -> int:
        return 0 if self.kernel is None else int(self.kernel.shape[1])

    def apply(self, outputs: list[np.ndarray], batch: np.ndarray) -> np.ndarray:
        if self.kind == "output":
            return outputs[self.output]
        pooled = outputs[self.output].astype(np.float64) if self.kind == "pooled" else self._tap_means(batch)
        features = pooled @ self.kernel.astype(np.float64, copy=False)
        if self.bias is not None:
            features += self.bias
        return features.astype(np.float32)

    def _selection(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(rows (kh, height) float32, columns (kw, width) float64, real positions per tap (kh, kw), positions):
        which input rows and columns each kernel tap reads (1) over the convolution's output grid; padding reads
        nothing."""
        self._selections = self._selections or {}
        if (height, width) not in self._selections:
            conv = self.conv
            axes = []
            for axis, size in enumerate((height, width)):
                kernel, stride, dilation = (conv[k][axis] for k in ("kernel_size", "strides", "dilation"))
                before, after = conv["padding"][axis]
                out = (size + before + after - (kernel - 1) * dilation - 1) // stride + 1
                pick = np.zeros((kernel, size))
                for k in range(kernel):
                    read = np.arange(out) * stride + k * dilation - before
                    np.add.at(pick[k], read[(read >= 0) & (read < size)], 1.0)
                axes.append((pick, out))
            (rows, out_h), (cols, out_w) = axes
            counts = np.outer(rows.sum(axis=1), cols.sum(axis=1))
            self._selections[height, width] = (rows.astype(np.float32), cols, counts, out_h * out_w)
        return self._selections[height, width]

    def _tap_means(self, batch: np.ndarray) -> np.ndarray:
        """(n, kh * kw * c) float64: per kernel tap and channel, the mean of the (rescaled, padded) input the tap
        reads over the convolution's output positions.

        Rows first, as one float32 matrix product per image (0/1 weights: sums of at most ``height`` values),
        then columns in float64: a fraction of a millisecond per 224-px image.
        """
        n, height, width, channels = batch.shape
        rows, cols, counts, positions = self._selection(height, width)
        by_row = np.matmul(rows, batch.reshape(n, height, width * channels))  # (n, kh, width * c)
        taps = np.einsum("xw,nywc->nyxc", cols, by_row.reshape(n, -1, width, channels).astype(np.float64))
        scale, offset = self.conv.get("scale"), self.conv.get("offset")
        if scale is not None:  # Rescaling before any padding: padded positions stay 0
            taps = taps * np.asarray(scale) + np.asarray(offset) * counts[None, :, :, None]
        return taps.reshape(n, -1) / positions


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> list[int]:
    """TensorFlow's ``padding="same"``: (before, after) along one axis."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return [total // 2, total - total // 2]


def _linear_conv(layer: Any) -> bool:
    import keras

    return (
        type(layer) is keras.layers.Conv2D
        and getattr(layer, "groups", 1) == 1
        and layer.data_format == "channels_last"
        and getattr(layer.activation, "__name__", "") == "linear"
    )


def _input_steps(tensor: Any, model_input: Any) -> dict[str, Any] | None:
    """The ZeroPadding2D and Rescaling layers from the model's input to ``tensor`` as ``{"padding": [[top,
    bottom], [left, right]], "scale": [3] or None, "offset": [3] or None}``; None when another layer (or another
    input) is on the way, or a Rescaling follows a padding (its offset would reach the padded zeros)."""
    layers = []
    while tensor is not model_input:
        layer = tensor._keras_history[0]  # noqa: SLF001 - Keras' own link from a tensor to its layer
        if type(layer).__name__ not in _INPUT_LAYERS[1:]:
            return None
        layers.append(layer)
        tensor = layer.input
    padding = [[0, 0], [0, 0]]
    scale = offset = None
    for layer in reversed(layers):  # from the input on
        if type(layer).__name__ == "ZeroPadding2D":
            padding = [
                [a + int(b) for a, b in zip(side, new, strict=True)]
                for side, new in zip(padding, layer.padding, strict=True)
            ]
            continue
        if padding != [[0, 0], [0, 0]]:
            return None
        s_new, o_new = (np.broadcast_to(np.asarray(v, np.float64), (3,)) for v in (layer.scale, layer.offset))
        scale, offset = (s_new, o_new) if scale is None else (scale * s_new, offset * s_new + o_new)
    return {
        "padding": padding,
        "scale": None if scale is None else scale.tolist(),
        "offset": None if offset is None else offset.tolist(),
    }


def plan_readouts(feature_model: Any) -> tuple[Any, list[Readout] | None]:
    """``(graph model, readouts)``: the Keras model to convert and how each feature comes out of it.

    ``feature_model`` as ``precompute.extract.build_feature_model`` makes it (one GlobalAveragePooling2D per
    stored layer). Returns ``(feature_model, None)`` when no stored layer is a linear convolution read this way.
    """
    import keras

    model_input = feature_model.inputs[0]
    graph_outputs: list[Any] = []
    readouts: list[Readout] = []
    changed = False
    for tensor in feature_model.outputs:
        pool = tensor._keras_history[0]  # noqa: SLF001
        layer = pool.input._keras_history[0] if isinstance(pool, keras.layers.GlobalAveragePooling2D) else None
        if layer is not None and _linear_conv(layer):
            kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float64)
            bias = np.asarray(keras.ops.convert_to_numpy(layer.bias), dtype=np.float64) if layer.use_bias else None
            flat = kernel.reshape(-1, kernel.shape[-1])
            steps = _input_steps(layer.input, model_input)
            if steps is not None:  # a convolution of the input: NumPy reads it from the batch
                size = list(layer.input.shape[1:3])
                kernel_size, strides, dilation = (
                    list(map(int, v)) for v in (layer.kernel_size, layer.strides, layer.dilation_rate)
                )
                own = (
                    [_same_padding(size[i], kernel_size[i], strides[i], dilation[i]) for i in range(2)]
                    if layer.padding == "same"
                    else [[0, 0], [0, 0]]
                )
                padding = [
                    [a + b for a, b in zip(p, q, strict=True)] for p, q in zip(steps["padding"], own, strict=True)
                ]
                readouts.append(
                    Readout(
                        "input",
                        kernel=flat,
                        bias=bias,
                        conv={
                            "kernel_size": kernel_size,
                            "strides": strides,
                            "dilation": dilation,
                            "padding": padding,
                            "scale": steps["scale"],
                            "offset": steps["offset"],
                        },
                    )
                )
                changed = True
                continue
            if tuple(layer.kernel_size) == (1, 1) and tuple(layer.strides) == (1, 1):
                pooled = keras.layers.GlobalAveragePooling2D(name=f"{layer.name}__input_gap")(layer.input)
                graph_outputs.append(pooled)
                readouts.append(Readout("pooled", len(graph_outputs) - 1, kernel=flat, bias=bias))
                changed = True
                continue
        graph_outputs.append(tensor)
        readouts.append(Readout("output", len(graph_outputs) - 1))
    if not changed or not graph_outputs:  # nothing to gain, or no graph left to convert
        return feature_model, None
    graph = keras.Model(model_input, graph_outputs, name=f"{feature_model.name}_readout")
    return graph, readouts


def readout_path(path: Path) -> Path:
    """The readouts file beside a ``.tflite`` file."""
    return Path(path).with_suffix(READOUT_SUFFIX)


def write_readouts(path: Path, readouts: list[Readout] | None) -> None:
    if readouts is None:
        path.unlink(missing_ok=True)
        return
    arrays: dict[str, np.ndarray] = {}
    spec = []
    for i, r in enumerate(readouts):
        spec.append({"kind": r.kind, "output": r.output, "conv": r.conv, "bias": r.bias is not None})
        if r.kernel is not None:  # the float32 weights, exactly
            arrays[f"kernel{i}"] = r.kernel.astype(np.float32)
        if r.bias is not None:
            arrays[f"bias{i}"] = r.bias.astype(np.float32)
    arrays["spec"] = np.frombuffer(json.dumps({"format": READOUT_VERSION, "readouts": spec}).encode(), np.uint8)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)
        os.chmod(tmp, 0o644)


def read_readouts(path: Path) -> list[Readout] | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        spec = json.loads(bytes(data["spec"]).decode())
        if spec.get("format") != READOUT_VERSION:
            raise ValueError(f"{path}: readouts of format {spec.get('format')!r}, not {READOUT_VERSION}")
        # float64 in memory (the float32 weights exactly), so that each call multiplies without converting.
        return [
            Readout(
                entry["kind"],
                entry["output"],
                data[f"kernel{i}"].astype(np.float64) if f"kernel{i}" in data else None,
                data[f"bias{i}"].astype(np.float64) if entry["bias"] else None,
                entry["conv"],
            )
            for i, entry in enumerate(spec["readouts"])
        ]


def apply_readouts(readouts: list[Readout], outputs: list[np.ndarray], batch: np.ndarray) -> list[np.ndarray]:
    """The features of a batch from its graph outputs (on one BLAS thread: ``_blas_controller``)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        return [r.apply(outputs, batch) for r in readouts]


__all__ = [
    "READOUT_SUFFIX",
    "READOUT_VERSION",
    "Readout",
    "apply_readouts",
    "plan_readouts",
    "read_readouts",
    "readout_path",
    "write_readouts",
]
