"""Preprocessing as data: the per-channel affine maps every backbone's input goes through, in NumPy.

As ``keras.applications.imagenet_utils`` keeps the ``preprocess_input`` modes that each model module only selects,
this module keeps the maps (:class:`PixelAffine`) that each registry entry of ``precompute.backbones`` selects:
Keras' ``tf``, ``torch`` and ``caffe`` modes, the identity of Keras' EfficientNetB* (their graph normalises), the
EfficientNet-Lite port's and the pixels baseline's. Applying one imports no TensorFlow (the app's uploads), and the
same numbers go to a browser (``export.json`` of a TF.js export, ``precompute.schema_export``).

Examples
--------
>>> KERAS_CAFFE.channel_order, KERAS_PIXEL_AFFINES["mobilenet_v2"] == KERAS_TF
('bgr', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANNEL_ORDERS = ("rgb", "bgr")


@dataclass(frozen=True)
class PixelAffine:
    """A backbone's preprocessing as data: RGB pixels 0..255, reordered to ``channel_order``, then
    ``x * scale[c] + offset[c]`` per channel ``c`` of that order.

    Every ``preprocess_input`` mode of ``keras.applications`` is such a map (``imagenet_utils``: ``tf`` scales to
    [-1, 1], ``torch`` to 0..1 then standardises per channel, ``caffe`` swaps RGB to BGR and subtracts the ImageNet
    mean), and so are the EfficientNet-Lite port's and the pixels baseline's; nsfwjs' own ``x / 255`` is a first
    layer of its base (``precompute.ports.nsfwjs.INPUT_RESCALING``). As data, the same numbers preprocess without
    TensorFlow (the app's uploads) and can be handed to a browser (``export.json`` of the TF.js exports).
    """

    channel_order: str
    scale: tuple[float, float, float]
    offset: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"Unknown channel order {self.channel_order!r}; valid: {', '.join(CHANNEL_ORDERS)}.")
        if len(self.scale) != 3 or len(self.offset) != 3:
            raise ValueError(f"A PixelAffine needs 3 scales and 3 offsets; got {self.scale!r} and {self.offset!r}.")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """:func:`apply_pixel_affine` of this map."""
        return apply_pixel_affine(x, self)


def apply_pixel_affine(x: np.ndarray, affine: PixelAffine, *, in_place: bool = False) -> np.ndarray:
    """Preprocess images with a :class:`PixelAffine`, in NumPy (float32; no TensorFlow).

    Parameters
    ----------
    x : array_like, shape (..., 3)
        RGB images, channels last, values 0..255 (any numeric dtype); not modified unless ``in_place``.
    in_place : bool, default False
        Map a writable float32 ``x`` of an RGB affine in place and return it (a batch nobody else holds: the
        decoding threads' own, ``precompute.datasets.load_batches``); other inputs are copied as without it.

    Returns
    -------
    numpy.ndarray, float32, the shape of ``x``. Equal to the Keras function it stands for within float32 rounding
    (a few units in the last place: Keras divides and subtracts in steps, this multiplies and adds once).

    Examples
    --------
    >>> apply_pixel_affine(np.array([[0, 127.5, 255]]), KERAS_TF).tolist()
    [[-1.0, 0.0, 1.0]]
    """
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[-1] != 3:
        raise ValueError(f"Images need a last axis of 3 (RGB); got shape {x.shape}.")
    owned = in_place and affine.channel_order == "rgb" and x.dtype == np.float32 and x.flags.writeable
    if affine.channel_order == "bgr":
        x = x[..., ::-1]
    # One float32 copy (or none), then multiplied and added in place: the same two float32 roundings as
    # ``x * scale + offset`` without its two temporaries (a batch of 32 at 224 x 224: 2x faster).
    out = x if owned else np.array(x, dtype=np.float32)
    out *= np.asarray(affine.scale, dtype=np.float32)
    out += np.asarray(affine.offset, dtype=np.float32)
    return out


# keras.applications' imagenet_utils modes (Keras 3.x, `_preprocess_numpy_input`), as affine maps.
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
KERAS_TF = PixelAffine("rgb", (1 / 127.5,) * 3, (-1.0,) * 3)  # x / 127.5 - 1
KERAS_TORCH = PixelAffine(
    "rgb",
    tuple(1 / (255.0 * s) for s in _IMAGENET_STD_RGB),  # (x / 255 - mean) / std
    tuple(-m / s for m, s in zip(_IMAGENET_MEAN_RGB, _IMAGENET_STD_RGB, strict=True)),
)
KERAS_CAFFE = PixelAffine("bgr", (1.0,) * 3, tuple(-m for m in _CAFFE_MEAN_BGR))  # BGR minus the ImageNet mean
IDENTITY = PixelAffine("rgb", (1.0,) * 3, (0.0,) * 3)  # Keras EfficientNetB*: the graph normalises its input
LITE = PixelAffine("rgb", (1 / 128,) * 3, (-127 / 128,) * 3)  # EfficientNet-Lite: (x - 127) / 128
UNIT = PixelAffine("rgb", (1 / 255,) * 3, (0.0,) * 3)  # the pixels baseline: x / 255
# The mode of each keras.applications module's preprocess_input (a test checks each against Keras).
KERAS_PIXEL_AFFINES: dict[str, PixelAffine] = {
    "vgg16": KERAS_CAFFE,
    "resnet50": KERAS_CAFFE,
    "densenet": KERAS_TORCH,
    "efficientnet": IDENTITY,
    "nasnet": KERAS_TF,
    "mobilenet_v2": KERAS_TF,
    "xception": KERAS_TF,
    "inception_v3": KERAS_TF,
}


__all__ = [
    "CHANNEL_ORDERS",
    "IDENTITY",
    "KERAS_CAFFE",
    "KERAS_PIXEL_AFFINES",
    "KERAS_TF",
    "KERAS_TORCH",
    "LITE",
    "UNIT",
    "PixelAffine",
    "apply_pixel_affine",
]
