"""ONNX formats: float32 through tf2onnx, and static QDQ int8 through onnxruntime.quantization.

tf2onnx needs an explicit input signature for Keras 3 models (onnx/tensorflow-onnx#2348, #2448);
ours is ``uint8 (1, H, W, 3)`` named ``images`` (``None`` batch with ``--dynamic-batch``). The int8
file is *static* QDQ, per-channel, calibrated on the same images as the TFLite int8 file: ONNX
Runtime's dynamic quantisation emits ConvInteger, which is slow for CNNs (microsoft/onnxruntime#12854).
The run's manifest is embedded as ``metadata_props["edgeclf"]``.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.exporter.context import ConversionContext
from edgeclf.exporter.formats import (
    DEFAULT_VARIANT,
    FP32_BOUNDS,
    INT8_BOUNDS,
    Converted,
    ExportFormat,
    Inspection,
    Quantization,
    Variant,
    register_format,
)
from edgeclf.exporter.parity import Reference
from edgeclf.runtime.embedded import EMBEDDED_KEY
from edgeclf.runtime.errors import ExportError, first_line
from edgeclf.runtime.progress import track

# Oldest onnxruntime implementing each ONNX opset (onnxruntime's docs/Versioning.md, reported).
_MIN_ONNXRUNTIME_FOR_OPSET = {
    13: "1.6",
    14: "1.8",
    15: "1.9",
    16: "1.11",
    17: "1.13",
    18: "1.14",
    19: "1.16",
    20: "1.17",
    21: "1.18",
}


# Min/max calibration is the first try of onnx-int8 and percentile (onnxruntime's 99.999th
# percentile) the first remedy. Percentile builds a 2048-bin histogram of every tensor over every
# calibration image: it took ~170 s of the demo export's 460 s (300 images, EfficientNet-Lite0 at
# 224), min/max a few seconds. Min/max clips nothing and can lose resolution to outliers: on the
# cars-vs-bikes test photos it gave 96.25% top-1 agreement with Keras on a default-preset model after
# 8 epochs (below the 98% bound), percentile 98.50%; on the fully trained model 99.00% vs 99.25%
# (docs/export.md). So a file that misses its bound with min/max is calibrated again with percentile.
_CALIBRATION_METHODS = {
    "minmax": lambda methods: methods.MinMax,
    "percentile": lambda methods: methods.Percentile,
    "entropy": lambda methods: methods.Entropy,
}


def keras_to_onnx(model: Any, input_shape: tuple[int | None, ...], opset: int) -> Any:
    """The float32 ONNX ModelProto of ``model`` with a uint8 ``images`` input of ``input_shape``."""
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec(input_shape, tf.uint8, name="images"),)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    except Exception as error:  # tf2onnx raises many types; report its first line
        raise ExportError(f"onnx: tf2onnx conversion failed at opset {opset} ({first_line(error)})") from error
    return proto


def _embed(proto: Any, payload: dict[str, Any]) -> bytes:
    kept = [p for p in proto.metadata_props if p.key != EMBEDDED_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key = EMBEDDED_KEY
    entry.value = json.dumps(payload, sort_keys=True)
    proto.producer_name = "edgeclf"
    return proto.SerializeToString()


def convert_onnx_fp32(ctx: ConversionContext, fmt: ExportFormat) -> Converted:
    """tf2onnx with an explicit uint8 input signature; manifest embedded in ``metadata_props``."""
    import onnx

    proto = onnx.ModelProto()
    proto.CopyFrom(ctx.onnx_fp32)
    details = {"opset": ctx.opset, "batch": "dynamic" if ctx.batch_size is None else ctx.batch_size}
    return Converted(_embed(proto, ctx.embedded_payload()), details)


class _CalibrationReader:
    """Feeds the calibration images one at a time (``onnxruntime.quantization.CalibrationDataReader``).

    ``set_range`` lets onnxruntime calibrate in chunks (its ``CalibStridedMinMax`` option, which every
    calibration method honours): the histogram calibrators otherwise keep every intermediate tensor of
    every image in memory before binning them — for EfficientNet-Lite0 at 224×224 and 300 images that
    grew past 20 GB and the kernel killed the export.
    """

    def __init__(self, images: np.ndarray, input_name: str, advance: Callable[[int], None] = lambda n=1: None) -> None:
        self._items = [{input_name: image[None]} for image in images]
        self._iter = iter(self._items)
        self._advance = advance

    def __len__(self) -> int:
        return len(self._items)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._iter = iter(self._items[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._iter, None)
        if item is not None:
            self._advance(1)
        return item

    def rewind(self) -> None:  # pragma: no cover - only used by some calibration methods
        raise NotImplementedError


def calibration_chunk(count: int, largest: int = 16) -> int:
    """Images per calibration chunk: the largest divisor of ``count`` up to ``largest`` (onnxruntime
    requires the chunks to divide the set evenly; histograms are merged across chunks)."""
    return max(d for d in range(1, min(largest, max(count, 1)) + 1) if count % d == 0)


def convert_onnx_int8(ctx: ConversionContext, fmt: ExportFormat) -> Converted:
    """Static QDQ int8 (per-channel weights, uint8 activations) calibrated on the representative images."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    reader_class = type("CalibrationReader", (_CalibrationReader, CalibrationDataReader), {})
    fp32 = ctx.onnx_fp32
    source = ctx.work_dir / f"{fmt.name}.fp32.onnx"
    target = ctx.work_dir / f"{fmt.name}.qdq.onnx"
    onnx.save(fp32, str(source))
    quant = fmt.quantization
    images = ctx.calibration_images(quant.calibration.images if quant.calibration else None)
    input_name = fp32.graph.input[0].name
    excluded = _end_layers(fp32) if quant.float_ends else []

    def quantize(method: str) -> None:
        # Percentile calibration prints its progress on stdout, which would corrupt `--json`.
        with (
            contextlib.redirect_stdout(io.StringIO()),
            track(f"{fmt.name}: calibrating ({method})", len(images)) as advance,
        ):
            quantize_static(
                str(source),
                str(target),
                reader_class(images, input_name, advance),
                quant_format=QuantFormat.QDQ,
                per_channel=fmt.quantization.per_channel,
                calibrate_method=_CALIBRATION_METHODS[method](CalibrationMethod),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
                extra_options={"CalibStridedMinMax": calibration_chunk(len(images))},
            )

    method = fmt.quantization.method
    try:
        try:
            quantize(method)
        except Exception as error:  # onnxruntime.quantization raises many types
            if method == "minmax":
                raise
            # A histogram method fails on a tensor with (almost) no spread, e.g. a model whose output
            # is still constant ("Too many bins for data range"); min/max still works there.
            ctx.warn(f"warning: {fmt.name}: {method} calibration failed ({first_line(error)}); using min/max")
            method = "minmax"
            quantize(method)
    except Exception as error:  # onnxruntime.quantization raises many types
        raise ExportError(f"{fmt.name}: onnxruntime static quantisation failed ({first_line(error)})") from error
    proto = onnx.load(str(target))
    details = {
        "opset": ctx.opset,
        "batch": "dynamic" if ctx.batch_size is None else ctx.batch_size,
        "quant_format": "QDQ",
        "per_channel": fmt.quantization.per_channel,
        "calibration_method": method,
        "activation_type": "uint8",
        "weight_type": "int8",
        "calibration_images": len(images),
        "float_nodes": excluded,
    }
    return Converted(_embed(proto, ctx.embedded_payload()), details)


# Layers that carry weights; the first and last of them are the stem and the classifier head.
_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")


def _end_layers(proto: Any) -> list[str]:
    """Names of the first and the last weighted node (graph order is topological in ONNX)."""
    weighted = [node.name for node in proto.graph.node if node.op_type in _WEIGHTED_OPS]
    return sorted({weighted[0], weighted[-1]}) if weighted else []


def inspect_onnx(path: Path, ctx: ConversionContext, fmt: ExportFormat, reference: Reference) -> Inspection:
    """Opsets, IR version and the operator types of a converted ``.onnx`` file (onnxruntime, the only
    runtime it is for, was validated against ``reference`` already)."""
    import onnx
    import onnxruntime

    proto = onnx.load(str(path))
    opsets = {(entry.domain or "ai.onnx"): int(entry.version) for entry in proto.opset_import}
    main_opset = opsets.get("ai.onnx", 0)
    oldest = _MIN_ONNXRUNTIME_FOR_OPSET.get(main_opset)
    return Inspection(
        op_versions=dict(sorted(opsets.items())),
        compatibility={"onnxruntime": "ok"},
        details={
            "ir_version": int(proto.ir_version),
            "op_types": sorted({node.op_type for node in proto.graph.node}),
            "oldest_runtime": f"onnxruntime {oldest} (opset {main_opset}, reported)" if oldest else "unknown",
            "compatibility_notes": {"onnxruntime": f"validated with onnxruntime {onnxruntime.__version__} at export"},
        },
    )


ONNX_FP32 = register_format(
    ExportFormat(
        name="onnx-fp32",
        suffix=".onnx",
        precision="fp32",
        backend="onnxruntime",
        quantization=Quantization.fp32(),
        export=convert_onnx_fp32,
        inspect=inspect_onnx,
        bounds=FP32_BOUNDS,
        description="ONNX float32 (tf2onnx)",
    )
)
# Tried in this order when the int8 file misses a bound; the first that passes is kept: the other
# calibration methods, per-tensor weights, more calibration images, then the stem and the head in
# float (the layers whose ranges suffer most from clipping).
ONNX_INT8_VARIANTS = (
    DEFAULT_VARIANT,
    Variant("percentile", method="percentile"),
    Variant("entropy", method="entropy"),
    Variant("per-tensor", per_channel=False),
    Variant("calibration-1000", calibration_images=1000),
    Variant("float-ends", float_ends=True),
)
ONNX_INT8 = register_format(
    ExportFormat(
        name="onnx-int8",
        suffix=".onnx",
        precision="int8",
        backend="onnxruntime",
        quantization=Quantization.int8(method="minmax"),
        export=convert_onnx_int8,
        inspect=inspect_onnx,
        bounds=INT8_BOUNDS,
        description="ONNX static QDQ int8, per-channel, min/max-calibrated (percentile when that misses)",
        variants=ONNX_INT8_VARIANTS,
    )
)
