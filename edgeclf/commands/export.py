"""``edgeclf export RUNDIR``: TFLite and ONNX files of a run's model, each validated against Keras.

Only light modules are imported here; TensorFlow is imported by the exporter when a model is
converted (a missing TensorFlow is one line saying ``pip install 'edgeclf[train]'``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeclf.commands.choices import FORMATS_FLAGS, export_format_list, split_names, target_choices, target_list
from edgeclf.exporter.config import DEFAULT_CALIBRATION_IMAGES, DEFAULT_OPSET, DEFAULT_VALIDATION_IMAGES

TargetChoice = target_choices()

if TYPE_CHECKING:  # pragma: no cover
    from edgeclf.exporter.export import ExportReport


RunDirArg = Annotated[Path, typer.Argument(help="A run folder made by `edgeclf train` (e.g. runs/latest).")]
FormatsOpt = Annotated[
    list[str] | None,
    typer.Option(
        *FORMATS_FLAGS,
        help=f"Formats to export, repeated or comma-separated: {export_format_list()} (default: all).",
        show_default=False,
    ),
]
CalibrationImagesOpt = Annotated[
    int, typer.Option("--calibration-images", min=1, help="Representative images for int8 formats.")
]
CalibrationDataOpt = Annotated[
    Path | None,
    typer.Option("--calibration-data", help="Folder of images to calibrate on (default: the run's training split)."),
]
PerChannelOpt = Annotated[
    bool, typer.Option("--per-channel/--per-tensor", help="Weight quantisation of the int8 formats.")
]
OpsetOpt = Annotated[int, typer.Option("--opset", help="ONNX opset (17 runs on onnxruntime >= 1.13).")]
DynamicBatchOpt = Annotated[
    bool, typer.Option("--dynamic-batch", help="Dynamic batch dimension (servers) instead of a static batch of 1.")
]
TargetOpt = Annotated[
    TargetChoice | None,  # type: ignore[valid-type]
    typer.Option(
        "--target",
        help=f"Make .tflite files this runtime loads and runs, or refuse the ones it cannot ({target_list()}).",
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict/--no-strict",
        help="--no-strict keeps a file outside its parity bounds, marked failed in the manifest.",
    ),
]
ValidateOnOpt = Annotated[
    Path | None,
    typer.Option("--validate-on", help="Labelled folder (one subfolder per class) to validate on."),
]
ValidationImagesOpt = Annotated[
    int, typer.Option("--validation-images", min=1, help="At most this many validation images.")
]
BoundsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--bounds",
        help="Override a parity bound, e.g. tflite-int8:agreement=97%,accuracy_drop=2 (keys: agreement, "
        "max_abs_diff, accuracy_drop).",
        show_default=False,
    ),
]
TfliteRuntimePythonOpt = Annotated[
    Path | None,
    typer.Option(
        "--tflite-runtime-python",
        help="Python with tflite-runtime 2.14 to verify .tflite loads (default: $EDGECLF_TFLITE_RUNTIME_PYTHON "
        "or .venv-tflite214/bin/python when present).",
    ),
]
UnknownDataOpt = Annotated[
    Path | None,
    typer.Option(
        "--unknown-data",
        help="Photos of other kinds: fit the threshold below which classify --threshold auto says 'unknown'.",
    ),
]
FalseAcceptOpt = Annotated[
    float,
    typer.Option("--false-accept", min=0.0, max=0.99, help="Share of --unknown-data photos the threshold accepts."),
]
JsonOutputOpt = Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")]


def export(
    run_dir: RunDirArg,
    formats: FormatsOpt = None,
    calibration_images: CalibrationImagesOpt = DEFAULT_CALIBRATION_IMAGES,
    calibration_data: CalibrationDataOpt = None,
    per_channel: PerChannelOpt = True,
    opset: OpsetOpt = DEFAULT_OPSET,
    dynamic_batch: DynamicBatchOpt = False,
    target: TargetOpt = None,
    strict: StrictOpt = True,
    validate_on: ValidateOnOpt = None,
    validation_images: ValidationImagesOpt = DEFAULT_VALIDATION_IMAGES,
    bounds: BoundsOpt = None,
    tflite_runtime_python: TfliteRuntimePythonOpt = None,
    unknown_data: UnknownDataOpt = None,
    false_accept: FalseAcceptOpt = 0.05,
    json_output: JsonOutputOpt = False,
) -> None:
    """Convert a run's model to TFLite and ONNX, validate every file against Keras, record it in the manifest."""
    from edgeclf.exporter import ExportConfig, export_run
    from edgeclf.exporter.config import parse_bounds
    from edgeclf.exporter.formats import all_formats

    names = split_names(formats)
    defaults = {name: fmt.bounds for name, fmt in all_formats().items()}
    config = ExportConfig(
        formats=names,
        calibration_images=calibration_images,
        calibration_data=calibration_data,
        per_channel=per_channel,
        opset=opset,
        dynamic_batch=dynamic_batch,
        target=target.value if target else None,
        strict=strict,
        validate_on=validate_on,
        validation_images=validation_images,
        bounds=parse_bounds(bounds or (), defaults),
        tflite_runtime_python=tflite_runtime_python,
        unknown_data=unknown_data,
        false_accept=false_accept,
    )
    from edgeclf.runtime.progress import progress_mode

    with progress_mode("plain" if json_output else "auto"):
        report = export_run(run_dir, config, log=lambda line: typer.echo(line, err=True))
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_table(report)
    if report.exit_code:
        bad = ", ".join(f"{r.format} ({r.status})" for r in report.results if not r.ok)
        typer.echo(f"error: not every format passed: {bad}; see {run_dir / 'export_report.json'}", err=True)
    elif not report.ok:
        typer.echo("warning: some files are outside their bounds and were kept, marked failed (--no-strict)", err=True)
    raise typer.Exit(report.exit_code)


def _print_table(report: ExportReport) -> None:
    from rich.console import Console
    from rich.table import Table

    from edgeclf.runtime.compatibility import verdict_for

    table = Table(title=f"edgeclf export {report.run_dir}  ({report.seconds:.1f} s)")
    for column in ("format", "status", "size MB", "accuracy", "Δ acc (pts)", "agreement", "max |Δp|", "tflite-rt 2.14"):
        table.add_column(column, justify="left" if column in ("format", "status", "tflite-rt 2.14") else "right")
    styles = {"passed": "green", "failed": "red", "refused": "yellow", "error": "red"}
    for result in report.results:
        v = result.validation
        size = f"{result.size_bytes / 1e6:.3f}" if result.size_bytes else "-"
        compat = verdict_for(result.compatibility, "tflite-runtime")
        table.add_row(
            result.format,
            f"[{styles.get(result.status, 'white')}]{result.status}[/]",
            size,
            f"{v['accuracy']:.2%}" if v else "-",
            f"{v['accuracy_change'] * 100:+.2f}" if v else "-",
            f"{v['agreement']:.2%}" if v else "-",
            f"{v['max_abs_diff']:.2g}" if v else "-",
            "n/a" if compat is None else "ok" if compat.ok else "no",
        )
    console = Console(file=sys.stdout, width=120)
    console.print(table)
    console.print(
        f"validated on {report.validation_count} images from {report.validation_source}; "
        f"Keras accuracy {report.keras_accuracy:.2%}"
    )
    for result in report.results:
        compat = verdict_for(result.compatibility, "tflite-runtime")
        not_for = f"not for {compat.verdict}" if compat is not None and not compat.ok else ""
        notes = (*result.failures, result.message, not_for, _variant_note(result))
        for line in notes:
            if line:
                console.print(f"{result.format}: {line}", markup=False, highlight=False)


def _variant_note(result) -> str:
    """Which quantisation remedy was kept, and what the ones before it measured."""
    if result.variant in (None, "default") or not result.attempts:
        return ""
    missed = [
        f"{a['variant']} ({a.get('error') or '; '.join(a.get('failures') or ()) or 'another runtime missed'})"
        for a in result.attempts
        if a["variant"] != result.variant
    ]
    return f"kept quantisation variant {result.variant!r} after " + ", ".join(missed)
