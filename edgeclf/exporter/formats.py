"""The registry of export formats and the quantisation presets they use.

Each format is a small frozen :class:`ExportFormat` (name, file suffix, precision, the backend that
runs it, the function that makes it, its default parity bounds), registered by the module that
implements it (:mod:`edgeclf.exporter.tflite`, :mod:`edgeclf.exporter.onnx`). Adding a format means registering
one more; the command line, the exporter and the parametrised tests pick it up from here.

>>> from edgeclf.exporter.formats import get_format
>>> get_format("tflite-int8").precision
'int8'
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeclf.runtime.manifest import RuntimeCheck
from edgeclf.runtime.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from edgeclf.exporter.context import ConversionContext
    from edgeclf.exporter.parity import Reference

# Modules that register the built-in formats when imported (imported lazily, on first lookup).
_BUILTIN_MODULES = ("edgeclf.exporter.tflite", "edgeclf.exporter.onnx")


@dataclass(frozen=True)
class Calibration:
    """How the representative images of a full-integer model are chosen.

    Attributes:
        images: how many images to sample (fewer when fewer exist).
        seed: the sampling seed (the same seed gives the same images).
        folder: a folder of images to sample from; ``None`` means the run's training split.
    """

    images: int = 300
    seed: int = 0
    folder: Path | None = None

    # Fewer calibration images than this get a warning: ranges from a handful of photos clip.
    WARN_BELOW = 100


@dataclass(frozen=True)
class Quantization:
    """A quantisation preset. Build one with the named constructors, not by hand.

    Attributes:
        kind: ``"none"``, ``"fp16"``, ``"dynamic"`` or ``"int8"``.
        calibration: representative images (``int8`` only).
        per_channel: quantise weights per output channel (``int8``/``dynamic``); per-tensor otherwise.
        method: how activation ranges are calibrated (``"minmax"``, or ``"percentile"``/``"entropy"``
            where the quantiser supports it: onnxruntime does, TFLite's converter is min/max only).
        float_ends: keep the first and the last layer (stem convolution, classifier head) in float.
    """

    kind: str
    calibration: Calibration | None = None
    per_channel: bool = True
    method: str = "minmax"
    float_ends: bool = False

    @classmethod
    def fp32(cls) -> Quantization:
        """No quantisation: float32 weights and activations."""
        return cls("none")

    @classmethod
    def fp16(cls) -> Quantization:
        """float16 weights, float32 activations."""
        return cls("fp16")

    @classmethod
    def dynamic(cls) -> Quantization:
        """int8 weights, float activations quantised on the fly (no calibration)."""
        return cls("dynamic")

    @classmethod
    def int8(
        cls, calibration: Calibration | None = None, per_channel: bool = True, method: str = "minmax"
    ) -> Quantization:
        """Full-integer int8 weights and activations, ranges calibrated on ``calibration`` with ``method``."""
        return cls("int8", calibration or Calibration(), per_channel, method)

    @property
    def needs_calibration(self) -> bool:
        """True when representative images must be loaded."""
        return self.kind == "int8"

    @property
    def dynamic_range(self) -> bool:
        """True for int8 weights with float activations quantised on the fly."""
        return self.kind == "dynamic"

    @property
    def integer_weights(self) -> bool:
        """True when weights are stored as int8 (per channel or per tensor: ``per_channel`` applies)."""
        return self.needs_calibration or self.dynamic_range

    def apply_to_converter(
        self, converter: Any, representative: Callable[[], Any] | None = None, *, per_channel_dense: bool = True
    ) -> dict[str, Any]:
        """Set a ``tf.lite.TFLiteConverter``'s quantisation flags for this preset; the only code that does.

        The exporter, the int8 speed benchmark and the tests all call it, so they cannot drift apart
        (MediaPipe Model Maker's ``QuantizationConfig.set_converter_with_quantization``).

        Args:
            converter: the converter to set up (before ``convert()``).
            representative: yields ``[image batch]`` lists; required for ``int8``.
            per_channel_dense: quantise Dense weights per channel too when ``per_channel`` (``False``
                keeps FULLY_CONNECTED at a version tflite-runtime 2.14 loads, and off its aarch64 crash).

        Returns:
            What was set, for the manifest (``per_channel``, ``per_channel_dense``, ``calibration_method``).
        """
        import tensorflow as tf

        if self.kind == "none":
            return {}
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if self.kind == "fp16":
            converter.target_spec.supported_types = [tf.float16]
            return {}
        details: dict[str, Any] = {}
        if self.needs_calibration:
            if representative is None:
                raise ValueError("an int8 conversion needs representative images")
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
            details["calibration_method"] = "minmax"  # the TFLite converter's calibrator
        dense = self.per_channel and per_channel_dense
        if not self.per_channel:
            converter._experimental_disable_per_channel = True
        if not dense:
            converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        return {**details, "per_channel": self.per_channel, "per_channel_dense": dense}


@dataclass(frozen=True)
class Variant:
    """One way to quantise a format, tried in order until a file passes its bounds.

    ``None`` keeps what the format and the export config say. A format's first variant is
    ``Variant("default")`` (exactly what was asked for); the later ones are remedies known to
    rescue an int8 file that misses a bound.

    Attributes:
        name: short name recorded in the manifest and the report (``"entropy"``, ``"per-tensor"``…).
        method: calibration method.
        per_channel: per-channel (``True``) or per-tensor (``False``) weights.
        calibration_images: calibrate on at least this many images (all there are when fewer).
        float_ends: keep the first and last layers in float.
    """

    name: str
    method: str | None = None
    per_channel: bool | None = None
    calibration_images: int | None = None
    float_ends: bool = False


DEFAULT_VARIANT = Variant("default")


def apply_variant(quantization: Quantization, variant: Variant, calibration: Calibration) -> Quantization:
    """The quantisation preset ``variant`` makes from a format's own preset and the run's calibration.

    The only place a variant touches a preset: the exporter and tests cannot drift apart.
    """
    if not quantization.integer_weights:
        return quantization
    if quantization.needs_calibration:
        images = max(calibration.images, variant.calibration_images or 0)
        calibration = dataclasses.replace(calibration, images=images)
    return dataclasses.replace(
        quantization,
        calibration=calibration if quantization.needs_calibration else None,
        per_channel=quantization.per_channel if variant.per_channel is None else variant.per_channel,
        method=variant.method or quantization.method,
        float_ends=variant.float_ends or quantization.float_ends,
    )


@dataclass(frozen=True)
class Bounds:
    """How close an artifact must stay to the Keras model on the validation images.

    Attributes:
        min_agreement: least fraction of images whose top-1 label equals Keras's (0..1).
        max_abs_diff: largest allowed absolute difference of any class probability, or ``None``.
        max_accuracy_drop: largest allowed accuracy loss vs Keras in percentage points, or ``None``.
    """

    min_agreement: float = 1.0
    max_abs_diff: float | None = None
    max_accuracy_drop: float | None = None

    def check(self, metrics: Mapping[str, Any]) -> list[str]:
        """Return one line per violated bound (measured value next to the bound); empty when all hold."""
        failures = []
        if metrics["agreement"] < self.min_agreement:
            failures.append(f"agreement {metrics['agreement']:.2%} < bound {self.min_agreement:.2%}")
        if self.max_abs_diff is not None and metrics["max_abs_diff"] > self.max_abs_diff:
            failures.append(f"max |Δp| {metrics['max_abs_diff']:.3g} > bound {self.max_abs_diff:.3g}")
        if self.max_accuracy_drop is not None:
            drop = -metrics["accuracy_change"] * 100.0
            if drop > self.max_accuracy_drop + 1e-9:
                failures.append(f"accuracy drop {drop:.2f} points > bound {self.max_accuracy_drop:.2f}")
        return failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the report and the manifest)."""
        return {
            "min_agreement": self.min_agreement,
            "max_abs_diff": self.max_abs_diff,
            "max_accuracy_drop": self.max_accuracy_drop,
        }


# Default bounds by family (docs/export.md explains each).
FP32_BOUNDS = Bounds(min_agreement=1.0, max_abs_diff=1e-4)
# float16 weights in a deep network move its logits by a few hundredths: EfficientNet-Lite0 (16
# blocks) gave max |Δp| 0.015 near p = 0.5 on the demo data with 100% top-1 agreement (0.0048 on
# real photos), over the former 1e-2; a broken conversion moves probabilities by far more.
FP16_BOUNDS = Bounds(min_agreement=0.995, max_abs_diff=3e-2)
INT8_BOUNDS = Bounds(min_agreement=0.98, max_accuracy_drop=1.0)


@dataclass(frozen=True)
class Converted:
    """What an export function returns: the file's bytes (metadata embedded) and notes for the manifest."""

    data: bytes
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inspection:
    """What a format learns from its converted file: operator versions and runtime compatibility.

    ``compatibility`` maps a backend name (optionally with a version, ``"tflite-runtime==2.14"``) to
    ``"ok"`` or a one-line reason; ``edgeclf.runtime.classifier`` refuses a backend with a reason.
    ``runtimes`` holds the parity figures of each runtime besides the format's own backend, and
    ``raw_outputs`` (by backend name) each such runtime's raw output tensors for every validation
    image, in order: the self-check probes take their reference outputs from it.
    """

    op_versions: Mapping[str, int] = field(default_factory=dict)
    compatibility: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    runtimes: tuple[RuntimeCheck, ...] = ()
    raw_outputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: registry name, also used in file names (``model_<name><suffix>``).
        suffix: ``".tflite"`` or ``".onnx"``.
        precision: ``"fp32"``, ``"fp16"``, ``"dynamic"`` or ``"int8"``.
        backend: the ``edgeclf.runtime`` backend that validates and (by default) runs it.
        quantization: the preset used to make it.
        export: ``export(ctx, fmt) -> Converted``: makes the file's bytes, metadata embedded.
        inspect: ``inspect(path, ctx, fmt, reference) -> Inspection``: reads operator versions and
            compatibility, validating the file against ``reference`` in the other runtimes it is for.
        bounds: default parity bounds vs Keras.
        description: one line for tables and ``--help``.
        targets: runtimes (besides ``backend``) this format can be made for with ``--target``.
        variants: ways to quantise it, tried in order until one passes (the first is what was asked).
    """

    name: str
    suffix: str
    precision: str
    backend: str
    quantization: Quantization
    export: Callable[[ConversionContext, ExportFormat], Converted]
    inspect: Callable[[Path, ConversionContext, ExportFormat, Reference], Inspection]
    bounds: Bounds
    description: str = ""
    targets: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = (DEFAULT_VARIANT,)

    @property
    def file_name(self) -> str:
        """File name of the artifact inside the run folder."""
        return f"model_{self.name}{self.suffix}"


def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


# The built-in formats register themselves when their modules are first imported (on first lookup).
FORMATS: Registry[ExportFormat] = Registry("export format", loader=_load_builtins)


def register_format(fmt: ExportFormat) -> ExportFormat:
    """Add ``fmt`` to the registry (registering a name twice warns; the later one replaces it)."""
    return FORMATS.register(fmt.name, fmt)


def all_formats() -> dict[str, ExportFormat]:
    """All registered formats, by name, in registration order."""
    return dict(FORMATS)


def format_names() -> tuple[str, ...]:
    """Names of all registered formats."""
    return FORMATS.names()


def get_format(name: str) -> ExportFormat:
    """Return the format registered as ``name``.

    Raises:
        UnknownNameError: unknown name (the message lists the known ones).
    """
    return FORMATS.get(name)
