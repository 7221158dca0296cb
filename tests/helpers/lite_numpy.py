"""An independent float64 numpy forward pass of EfficientNet-Lite, straight from the torch-layout weights.

Written from the architecture's description, not from the Keras port: kernels stay OIHW, padding is
computed as TensorFlow's ``'same'`` (extra row/column at the bottom/right), BatchNorm uses epsilon
1e-3 and the input is scaled as ``(x - 127) / 128``. Used to check the Keras port layer for layer.
"""

from __future__ import annotations

import math

import numpy as np


def _same_pad(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    h, w = x.shape[1:3]
    pads = []
    for size in (h, w):
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))


def _windows(x: np.ndarray, k: int, stride: int):
    """Yield (dy, dx, strided slice) for each kernel offset over a 'same'-padded NHWC input."""
    h, w = x.shape[1:3]
    out_h, out_w = math.ceil(h / stride), math.ceil(w / stride)
    padded = _same_pad(x, k, stride)
    for dy in range(k):
        for dx in range(k):
            yield dy, dx, padded[:, dy : dy + stride * out_h : stride, dx : dx + stride * out_w : stride, :]


def conv(x: np.ndarray, w_oihw: np.ndarray, stride: int = 1) -> np.ndarray:
    k = w_oihw.shape[2]
    out = 0.0
    for dy, dx, window in _windows(x, k, stride):
        out = out + window @ w_oihw[:, :, dy, dx].T
    return out


def depthwise(x: np.ndarray, w_c1kk: np.ndarray, stride: int) -> np.ndarray:
    k = w_c1kk.shape[2]
    out = 0.0
    for dy, dx, window in _windows(x, k, stride):
        out = out + window * w_c1kk[:, 0, dy, dx]
    return out


def batchnorm(x: np.ndarray, state: dict, prefix: str) -> np.ndarray:
    g, b = state[prefix + ".weight"], state[prefix + ".bias"]
    mean, var = state[prefix + ".running_mean"], state[prefix + ".running_var"]
    return (x - mean) / np.sqrt(var + 1e-3) * g + b


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def forward(state: dict, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pooled 1280 features, 1000 ImageNet logits)`` of uint8 NHWC ``images``."""
    s = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
    x = (images.astype(np.float64) - 127.0) / 128.0
    x = relu6(batchnorm(conv(x, s["_conv_stem.weight"], 2), s, "_bn0"))
    n = 0
    while f"_blocks.{n}._depthwise_conv.weight" in s:
        p = f"_blocks.{n}."
        inputs = x
        if p + "_expand_conv.weight" in s:
            x = relu6(batchnorm(conv(x, s[p + "_expand_conv.weight"]), s, p + "_bn0"))
        dw = s[p + "_depthwise_conv.weight"]
        # Stride 2 where the block's output is smaller: the reference has no table, so it reads the
        # reduction points of EfficientNet-B0's stages (blocks that change channels 16->24, 24->40,
        # 40->80 and 112->192).
        out_channels = s[p + "_project_conv.weight"].shape[0]
        stride = 2 if inputs.shape[-1] != out_channels and out_channels in (24, 40, 48, 80, 88, 192, 208) else 1
        x = relu6(batchnorm(depthwise(x, dw, stride), s, p + "_bn1"))
        x = batchnorm(conv(x, s[p + "_project_conv.weight"]), s, p + "_bn2")
        if stride == 1 and inputs.shape[-1] == x.shape[-1]:
            x = x + inputs
        n += 1
    x = relu6(batchnorm(conv(x, s["_conv_head.weight"]), s, "_bn1"))
    features = x.mean(axis=(1, 2))
    return features, features @ s["_fc.weight"].T + s["_fc.bias"]
