"""``edgeclf benchmark RUNDIR --data TESTDIR``: every format of a run in one table.

Only light modules are imported here: the Keras reference row imports TensorFlow inside its own
worker process, and without TensorFlow (a Raspberry Pi) the reference becomes tflite-fp32.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edgeclf.benchmarks.config import REFERENCES, SWEEPS
from edgeclf.commands.choices import FORMATS_FLAGS, backend_list, choices, runtime_format_list, split_names

if TYPE_CHECKING:  # pragma: no cover
    from edgeclf.benchmarks.config import BenchmarkConfig


# The choices are the config's own (edgeclf/benchmarks/config.py), never a copy kept here.
Reference = choices("Reference", REFERENCES)  # what the agreement and max |Δp| columns compare against
Sweep = choices("Sweep", SWEEPS)


def _ints(values: list[str] | None, default: tuple[int, ...]) -> tuple[int, ...]:
    items = split_names(values)
    if not items:
        return default
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise typer.BadParameter(f"expected whole numbers, got {', '.join(items)}") from None


RunDirArg = Annotated[Path, typer.Argument(help="A run folder with exported models (see `edgeclf export`).")]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Labelled images: a folder with test/ (its test split is used) or a folder of classes "
        "(all of it). Default: the run's own test split.",
    ),
]
FormatsOpt = Annotated[
    list[str] | None,
    typer.Option(
        *FORMATS_FLAGS,
        help=f"Formats to measure, repeated or comma-separated: {runtime_format_list()} (default: all exported).",
    ),
]
BackendsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--backend",
        help=f"Also run each file with this backend ({backend_list()}), repeated or comma-separated.",
    ),
]
ReferenceOpt = Annotated[
    Reference,  # type: ignore[valid-type]
    typer.Option("--reference", help="Reference row: keras, tflite-fp32 (edge-only), or auto."),
]
RunsOpt = Annotated[int, typer.Option("--runs", min=1, help="Timed invoke calls per format.")]
E2eRunsOpt = Annotated[int, typer.Option("--e2e-runs", min=0, help="Timed end-to-end calls per format.")]
WarmupOpt = Annotated[int, typer.Option("--warmup", min=0, help="Untimed invoke calls before timing.")]
RoundsOpt = Annotated[int, typer.Option("--rounds", min=1, help="Interleaving rounds (formats take turns).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="Interpreter threads (default: all cores).")]
MaxImagesOpt = Annotated[int | None, typer.Option("--max-images", min=1, help="Score at most this many test images.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Results folder (default: edgeclf/benchmarks/results/<run name>)."),
]
PlotsOpt = Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots (needs matplotlib).")]
SweepOpt = Annotated[
    Sweep | None,  # type: ignore[valid-type]
    typer.Option("--sweep", help="threads: latency per thread count; size: a model exported per input size."),
]
SweepThreadsOpt = Annotated[
    list[str] | None, typer.Option("--sweep-threads", help="Thread counts for --sweep threads (default 1,2,4).")
]
SweepSizesOpt = Annotated[
    list[str] | None,
    typer.Option("--sweep-sizes", help="Input sides for --sweep size (default 96,160,224,300)."),
]
AsJsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON instead of a table.")]
DurationOpt = Annotated[
    float | None,
    typer.Option(
        "--duration",
        min=1.0,
        help="Sustained mode: run one format (the first --format, else the default one) back to back "
        "for this many seconds; latency over time next to CPU temperature, clock and throttle flags.",
    ),
]
BoardRootOpt = Annotated[Path, typer.Option("--board-root", hidden=True, help="Root of sysfs (tests).")]


def benchmark(
    run_dir: RunDirArg,
    data: DataOpt = None,
    formats: FormatsOpt = None,
    backends: BackendsOpt = None,
    reference: ReferenceOpt = Reference("auto"),
    runs: RunsOpt = 100,
    e2e_runs: E2eRunsOpt = 30,
    warmup: WarmupOpt = 10,
    rounds: RoundsOpt = 5,
    threads: ThreadsOpt = None,
    max_images: MaxImagesOpt = None,
    out: OutOpt = None,
    plots: PlotsOpt = True,
    sweep: SweepOpt = None,
    sweep_threads: SweepThreadsOpt = None,
    sweep_sizes: SweepSizesOpt = None,
    as_json: AsJsonOpt = False,
    duration: DurationOpt = None,
    board_root: BoardRootOpt = Path("/"),
) -> None:
    """Measure the Keras model and every exported format on the same images: accuracy, agreement, latency, memory."""
    if duration is not None:
        _sustained(run_dir, split_names(formats), threads, duration, board_root, out, plots, as_json)
        return
    from edgeclf.benchmarks.config import DEFAULT_SWEEP_SIZES, BenchmarkConfig

    config = BenchmarkConfig(
        run_dir=run_dir,
        data=data,
        formats=split_names(formats),
        backends=split_names(backends),
        reference=reference.value,
        runs=runs,
        e2e_runs=e2e_runs,
        warmup=warmup,
        rounds=rounds,
        threads=threads,
        max_images=max_images,
        out=out,
        plots=plots,
        sweep=sweep.value if sweep else None,
        sweep_threads=_ints(sweep_threads, (1, 2, 4)),
        sweep_sizes=_ints(sweep_sizes, DEFAULT_SWEEP_SIZES),
    )
    if config.sweep is not None:
        _sweep(config, as_json)
    else:
        _table(config, as_json)


def _progress(as_json: bool):
    """Progress lines on stderr (none with --json), and the progress-bar mode to use."""
    from edgeclf.runtime.progress import progress_mode

    say = (lambda m: None) if as_json else (lambda m: print(f"· {m}", file=sys.stderr, flush=True))
    return say, progress_mode("plain" if as_json else "auto")


def _measure(config: BenchmarkConfig, as_json: bool, run, write, show):
    """``run(config)`` with progress, ``write`` its files, then print it: JSON, or ``show``'s table and the files."""
    say, mode = _progress(as_json)
    with mode:
        result = run(config, progress=say)
    paths = write(result, config.results_dir, plots=config.plots)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        show(result)
        typer.echo("wrote " + ", ".join(str(p) for p in paths))
    return result


def _sweep(config: BenchmarkConfig, as_json: bool) -> None:
    from edgeclf.benchmarks.sweep import print_sweep, run_sweep, write_sweep

    _measure(config, as_json, run_sweep, write_sweep, print_sweep)


def _table(config: BenchmarkConfig, as_json: bool) -> None:
    from edgeclf.benchmarks.report import print_table, write_results
    from edgeclf.benchmarks.runner import run_benchmark

    result = _measure(config, as_json, run_benchmark, write_results, print_table)
    if any(not row.ran for row in result.rows):
        raise typer.Exit(code=1)


def _sustained(
    run_dir: Path,
    formats: tuple[str, ...],
    threads: int | None,
    duration: float,
    board_root: Path,
    out: Path | None,
    plots: bool,
    as_json: bool,
) -> None:
    from edgeclf.benchmarks.sustained import run_sustained, write_sustained
    from edgeclf.runtime.classifier import ClassifierOptions

    options = ClassifierOptions(format=formats[0] if formats else None, threads=threads)
    say = (lambda m: None) if as_json else (lambda m: print(f"· {m}", file=sys.stderr, flush=True))
    result = run_sustained(run_dir, options, duration, board_root=board_root, progress=say)
    paths = write_sustained(result, out or run_dir / "benchmark-sustained", plots=plots)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo("wrote " + ", ".join(str(p) for p in paths))
