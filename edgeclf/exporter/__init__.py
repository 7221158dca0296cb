"""edgeclf's exporter: a run's Keras model → TFLite and ONNX files, each validated against Keras.

>>> from exporter import ExportConfig, export_run
>>> report = export_run("runs/latest", ExportConfig(formats=("tflite-int8",)))   # doctest: +SKIP

Importing this package is cheap: TensorFlow, tf2onnx and onnx are imported when a format is made.
"""

from edgeclf.exporter.config import ExportConfig
from edgeclf.exporter.export import ExportReport, FormatResult, export_run
from edgeclf.exporter.formats import (
    Bounds,
    Calibration,
    ExportFormat,
    Quantization,
    all_formats,
    format_names,
    get_format,
)

__all__ = [
    "Bounds",
    "Calibration",
    "ExportConfig",
    "ExportFormat",
    "ExportReport",
    "FormatResult",
    "Quantization",
    "all_formats",
    "export_run",
    "format_names",
    "get_format",
]
