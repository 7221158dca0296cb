"""What every export function is given: the Keras model, the run's manifest and shared inputs."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.registry import Registry

# Runtimes ``--target`` can name, and what each means.
TARGETS: Registry[str] = Registry("target")
TARGETS.register("tflite-runtime", "tflite-runtime 2.14 (the last release, on many Raspberry Pis)")


@dataclass
class ConversionContext:
    """Shared state of one ``export_run``: built once, handed to each format's functions.

    What several formats convert from (the static-batch model, its frozen ``tf.function``, the float
    ONNX graph, the calibration images) is made on first use by the methods below and kept for the
    next format; the parity reference is not here: it is passed to each check explicitly
    (:class:`edgeclf.exporter.parity.Reference`).

    Attributes:
        model: the loaded Keras model (uint8 ``(None, H, W, 3)`` input).
        manifest: the run's manifest (labels, input spec) without the new artifacts.
        batch_size: ``1`` for a static batch (default), ``None`` for a dynamic batch dimension.
        opset: ONNX opset.
        target: ``None`` or a key of :data:`TARGETS`.
        work_dir: a private folder for intermediate files (removed after the export).
        tflite_runtime_python: a Python that has tflite-runtime 2.14, for verifying loads; or ``None``.
        load_calibration: ``load_calibration(count)`` returns ``count`` calibration images (all there
            are when fewer) ``(N, H, W, 3)`` uint8; ``None``: as many as the export config says.
        warn: prints a one-line warning.
    """

    model: Any
    manifest: Manifest
    batch_size: int | None
    opset: int
    target: str | None
    work_dir: Path
    tflite_runtime_python: Path | None
    load_calibration: Callable[[int | None], np.ndarray]
    warn: Callable[[str], None] = print
    _calibration: dict[int | None, np.ndarray] = field(default_factory=dict, repr=False)

    def calibration_images(self, count: int | None = None) -> np.ndarray:
        """``count`` representative images (the same array for every format asking for that many)."""
        if count not in self._calibration:
            self._calibration[count] = self.load_calibration(count)
        return self._calibration[count]

    def calibration_count(self, count: int | None = None) -> int:
        """How many images :meth:`calibration_images` gave for ``count`` (0 when never asked)."""
        return len(self._calibration.get(count, ()))

    @functools.cached_property
    def conversion_model(self) -> Any:
        """The run's model with a static batch-``batch_size`` input (the model itself for a dynamic batch)."""
        from edgeclf.exporter.tflite import static_batch_model

        return self.model if self.batch_size is None else static_batch_model(self.model, self.input_shape())

    @functools.cached_property
    def frozen_function(self) -> Any:
        """:attr:`conversion_model` as a concrete ``tf.function``, variables frozen (what TFLite converts)."""
        from edgeclf.exporter.tflite import freeze

        return freeze(self.conversion_model, self.input_shape(), self.manifest.input.dtype)

    @functools.cached_property
    def onnx_fp32(self) -> Any:
        """The float32 ONNX ModelProto of the run's model (the int8 file quantises a copy)."""
        from edgeclf.exporter.onnx import keras_to_onnx

        return keras_to_onnx(self.model, self.input_shape(), self.opset)

    def embedded_payload(self) -> dict[str, Any]:
        """What each artifact embeds: :meth:`Manifest.to_embedded`."""
        return self.manifest.to_embedded()

    def input_shape(self) -> tuple[int | None, int, int, int]:
        """``(batch, H, W, 3)`` of the exported models' input."""
        spec = self.manifest.input
        return (self.batch_size, spec.height, spec.width, spec.channels)
