"""``ExportConfig``: everything one ``edgeclf export`` run is told, as one frozen dataclass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeclf.exporter.formats import Bounds
from edgeclf.runtime.errors import ConfigError

DEFAULT_CALIBRATION_IMAGES = 300
DEFAULT_VALIDATION_IMAGES = 1000
# Opset 17 runs on onnxruntime >= 1.13 and on every current wheel (x86-64 and the Pi's aarch64).
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ExportConfig:
    """Options of :func:`edgeclf.exporter.export_run`; the command line builds one, it is saved beside the artifacts.

    Attributes:
        formats: names from the format registry; empty means every registered format.
        calibration_images: representative images for int8 formats (sampled with ``calibration_seed``).
        calibration_data: a folder of images to calibrate on; ``None``: the run's training split.
        calibration_seed: seed of the calibration (and validation) sampling.
        per_channel: per-channel weight quantisation for int8 formats (``False``: per-tensor).
        opset: ONNX opset.
        dynamic_batch: export with a dynamic batch dimension instead of a static batch of 1.
        target: ``"tflite-runtime"`` to make ``.tflite`` files tflite-runtime 2.14 loads and runs
            (or refuse the ones that cannot be); ``None`` for ai-edge-litert.
        strict: ``True``: a file outside its parity bounds is not written; ``False``: it is written
            and marked ``failed`` in the manifest.
        validate_on: a labelled folder to validate on; ``None``: the run's validation split.
        validation_images: at most this many validation images (all when fewer).
        bounds: per-format overrides of the default parity bounds.
        tflite_runtime_python: a Python with tflite-runtime 2.14 used to verify ``.tflite`` loads;
            ``None`` for a static check of operator versions only.
    """

    formats: tuple[str, ...] = ()
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    calibration_data: Path | None = None
    calibration_seed: int = 0
    per_channel: bool = True
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = False
    target: str | None = None
    strict: bool = True
    validate_on: Path | None = None
    validation_images: int = DEFAULT_VALIDATION_IMAGES
    bounds: Mapping[str, Bounds] = field(default_factory=dict)
    tflite_runtime_python: Path | None = None
    unknown_data: Path | None = (
        None  # photos of other kinds: fit the "unknown" threshold (edgeclf/exporter/open_set_fit.py)
    )
    false_accept: float = 0.05  # share of those photos the threshold lets through

    def __post_init__(self) -> None:
        if not 0.0 <= self.false_accept < 1.0:
            raise ConfigError(f"--false-accept must be in [0, 1), got {self.false_accept}")
        if self.calibration_images < 1:
            raise ConfigError(f"--calibration-images must be at least 1, got {self.calibration_images}")
        if self.validation_images < 1:
            raise ConfigError(f"--validation-images must be at least 1, got {self.validation_images}")
        if not 7 <= self.opset <= 30:
            raise ConfigError(f"--opset {self.opset} is not an ONNX opset tf2onnx can target (try 13..18)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved as ``export_config.json``)."""
        data = dataclasses.asdict(self)
        data["bounds"] = {name: bounds.to_dict() for name, bounds in self.bounds.items()}
        for key in ("calibration_data", "validate_on", "tflite_runtime_python", "unknown_data"):
            data[key] = None if data[key] is None else str(data[key])
        data["formats"] = list(self.formats)
        return data


def parse_bounds(specs: list[str] | tuple[str, ...], defaults: Mapping[str, Bounds]) -> dict[str, Bounds]:
    """Parse ``FORMAT:key=value[,key=value]`` overrides (keys: agreement, max_abs_diff, accuracy_drop).

    ``agreement`` is a fraction (0.97) or a percentage (97%); ``none`` lifts a bound.

    Raises:
        ExportError: unknown format or key, or a value that is not a number.
    """
    keys = {"agreement": "min_agreement", "max_abs_diff": "max_abs_diff", "accuracy_drop": "max_accuracy_drop"}
    result: dict[str, Bounds] = {}
    for spec in specs:
        name, sep, rest = spec.partition(":")
        if not sep or name not in defaults:
            raise ConfigError(f"--bounds {spec!r}: expected FORMAT:key=value with FORMAT one of {', '.join(defaults)}")
        current = result.get(name, defaults[name])
        changes: dict[str, Any] = {}
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or key not in keys:
                raise ConfigError(f"--bounds {spec!r}: unknown key {key!r}; known: {', '.join(keys)}")
            value = value.strip()
            try:
                if value.lower() == "none" and key != "agreement":
                    number = None
                elif value.endswith("%"):
                    number = float(value[:-1]) / 100.0
                else:
                    number = float(value)
            except ValueError:
                raise ConfigError(f"--bounds {spec!r}: {value!r} is not a number") from None
            changes[keys[key]] = number
        result[name] = dataclasses.replace(current, **changes)
    return result
