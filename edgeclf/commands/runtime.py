"""``edgeclf classify`` and ``edgeclf camera``: run an exported model with numpy, Pillow and one interpreter.

Nothing here imports TensorFlow: these are the commands a Raspberry Pi runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import signal
import sys
import time
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from edgeclf.commands.choices import FORMAT_FLAGS, BackendChoice, runtime_format_list
from edgeclf.runtime.classifier import Classifier, ClassifierOptions, Prediction
from edgeclf.runtime.errors import ConfigError, EdgeclfError, ImageDecodeError, InputShapeError, option_error
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS

_GLOB_CHARS = set("*?[")


ModelArg = Annotated[
    Path,
    typer.Argument(
        help="A run folder (uses its manifest.json) or one exported .tflite/.onnx file (uses its embedded metadata).",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        *FORMAT_FLAGS,
        help=f"Artifact of a run folder: {runtime_format_list()} "
        "(default: the first exported one an installed interpreter runs, in this order).",
    ),
]
BackendOpt = Annotated[
    BackendChoice | None,  # type: ignore[valid-type]
    typer.Option("--backend", help="Interpreter (default: the artifact's, or any installed one)."),
]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="Interpreter threads (default: all cores).")]
TopKOpt = Annotated[int, typer.Option("--top-k", min=1, help="Labels shown per image.")]
ThresholdOpt = Annotated[
    str,
    typer.Option(
        "--threshold",
        help="Hide labels scoring below this probability; 'auto': say 'unknown' below the threshold fitted at "
        "export (edgeclf export --unknown-data DIR).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")]
MaxMegapixelsOpt = Annotated[
    float,
    typer.Option(
        "--max-megapixels",
        min=0.01,
        help="Refuse images with more megapixels than this (decompression bombs; 40 fits a Raspberry Pi's memory).",
    ),
]
SmoothOpt = Annotated[int, typer.Option("--smooth", min=1, help="Average each label's score over the last N frames.")]
HoldOpt = Annotated[
    int, typer.Option("--hold", min=1, help="A new label must lead K frames in a row before it is announced.")
]
OnChangeOpt = Annotated[bool, typer.Option("--on-change", help="Print each label change as a JSON line on stdout.")]
WebhookOpt = Annotated[
    str | None, typer.Option("--webhook", help="POST each label change (JSON) to this URL, with retries.")
]


def _expand(
    paths: list[str], stdin_lines: Iterator[str], skipped: list[Path] | None = None
) -> Iterator[tuple[str, Path | None, str | None]]:
    """Yield ``(shown name, path or None, error or None)`` for files, folders, globs and ``-``.

    Files of a folder without an image suffix are appended to ``skipped`` (for the summary).
    """
    from edgeclf.runtime.dataset import list_images

    for raw in paths:
        if raw == "-":
            for line in stdin_lines:
                line = line.strip()
                if line:
                    yield from _expand([line], iter(()), skipped)
            continue
        path = Path(raw)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError as error:  # ENAMETOOLONG, EACCES…: this name fails, the batch goes on
            yield raw, None, f"{_printable(raw)}: cannot open ({error.strerror or error})"
            continue
        if is_dir:
            try:
                images, others = list_images(path)
            except OSError as error:
                yield raw, None, f"{_printable(raw)}: cannot list the folder ({error.strerror or error})"
                continue
            if others and skipped is not None:
                skipped.extend(others)
            if not images:
                yield raw, None, f"{_printable(raw)}: folder holds no images ({', '.join(_suffixes())})"
            for image in images:
                yield str(image), image, None
        elif not exists and _GLOB_CHARS & set(raw):
            matches = sorted(glob.glob(raw, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                yield raw, None, f"{raw}: no file matches this pattern"
            for match in files:
                yield str(match), match, None
        else:
            yield raw, path, None


def _printable(name: str) -> str:
    """A file name on one line: control characters (a newline would split a table row) escaped."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)


def _suffixes() -> tuple[str, ...]:
    from edgeclf.runtime.preprocess import IMAGE_SUFFIXES

    return IMAGE_SUFFIXES


def parse_threshold(text: str) -> tuple[float, bool]:
    """``--threshold`` → (probability, use the fitted open-set threshold); 'auto' is (0.0, True)."""
    if text.strip().lower() == "auto":
        return 0.0, True
    try:
        return float(text), False
    except ValueError:
        raise option_error("--threshold", "a probability between 0 and 1, or auto", text) from None


def classifier_options(
    format_name: str | None,
    backend: Enum | str | None,
    threads: int | None,
    top_k: int,
    threshold: str,
    max_megapixels: float = DEFAULT_MAX_PIXELS / 1e6,
) -> ClassifierOptions:
    """The :class:`ClassifierOptions` the command-line flags ask for (``--threshold auto`` sets ``unknown``)."""
    value, unknown = parse_threshold(threshold)
    return ClassifierOptions(
        format=format_name,
        backend=backend.value if isinstance(backend, Enum) else backend,
        threads=threads,
        top_k=top_k,
        threshold=value,
        unknown=unknown,
        max_pixels=round(max_megapixels * 1e6),
    )


def describe_classifier(clf: Classifier) -> str:
    """``format, backend, N threads`` of a loaded classifier, for the one line each command prints first."""
    threads = clf.session.threads
    return f"{clf.format}, {clf.backend_name}, {threads} thread{'' if threads == 1 else 's'}"


def _topk_text(predictions: list[Prediction]) -> str:
    return ", ".join(f"{p.label} {p.score:.3f}" for p in predictions) or "-"


def classify_record(shown: str, predictions: list[Prediction], ms: float) -> dict:
    """One image's ``classify --json`` line (``edgeclf serve``'s ``/api/classify`` answers the same)."""
    top = predictions[0] if predictions else None
    return {
        "file": shown,
        "label": top.label if top else None,
        "score": round(top.score, 6) if top else None,
        "predictions": [{**p.to_dict(), "score": round(p.score, 6)} for p in predictions],
        "ms": round(ms, 2),
    }


def classify(
    model: ModelArg,
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Image files, folders (searched recursively), glob patterns, or - to read paths from stdin.",
            show_default=False,
        ),
    ],
    format_name: FormatOpt = None,
    backend: BackendOpt = None,
    threads: ThreadsOpt = None,
    top_k: TopKOpt = 1,
    threshold: ThresholdOpt = "0",
    json_output: JsonOpt = False,
    max_megapixels: MaxMegapixelsOpt = DEFAULT_MAX_PIXELS / 1e6,
) -> None:
    """Classify image files with an exported model; a table by default, --json for one line per image.

    A file that cannot be read (corrupt, truncated, empty, not an image, too large) gets one line on
    stderr and the run goes on. Exit code 0 when every file was classified, 1 when any failed.
    """
    options = classifier_options(format_name, backend, threads, top_k, threshold, max_megapixels)
    clf = Classifier.open(model, options)
    ok = failed = 0
    started = time.perf_counter()
    with clf:
        header = f"model: {clf.path} ({describe_classifier(clf)})"
        if not json_output:
            typer.echo(header)
            typer.echo(f"{'file':<40}  {'label':<16}  {'score':>6}  top-{top_k}")
        skipped: list[Path] = []
        for shown, path, problem in _expand(paths, iter(sys.stdin) if "-" in paths else iter(()), skipped):
            shown = _printable(shown)
            if problem is None:
                try:
                    began = time.perf_counter()
                    predictions = clf.classify(path)
                    ms = (time.perf_counter() - began) * 1000.0
                except (ImageDecodeError, InputShapeError) as error:
                    problem = _printable(str(error))
            if problem is not None:
                failed += 1
                typer.echo(f"error: {problem}", err=True)
                continue
            ok += 1
            top = predictions[0] if predictions else None
            if json_output:
                typer.echo(json.dumps(classify_record(shown, predictions, ms)))
            else:
                label, score = (top.label, f"{top.score:.3f}") if top else ("(below threshold)", "-")
                typer.echo(f"{shown:<40}  {label:<16}  {score:>6}  {_topk_text(predictions)}")
    seconds = time.perf_counter() - started
    total = ok + failed
    summary = f"{total} file{'' if total == 1 else 's'}: {ok} classified, {failed} failed ({seconds:.2f} s)"
    if skipped:
        kinds = ", ".join(sorted({p.suffix.lower() or "(no suffix)" for p in skipped}))
        summary += f"; {len(skipped)} non-image file(s) in the folders skipped ({kinds})"
    if total == 0:
        raise EdgeclfError("no images given; pass files, folders, glob patterns or - for paths on stdin")
    typer.echo(summary, err=json_output or failed > 0)
    if failed:
        raise typer.Exit(code=1)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (``systemctl stop``, ``kill``) like Ctrl-C: stop the loop and print the summary."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. called from a test runner's worker): leave it
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def camera(
    model: ModelArg,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="picamera2, a camera index (0), a video file or an rtsp:// / http:// URL "
            "(default: picamera2 when installed, else camera 0).",
        ),
    ] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Classify one frame in N.")] = 1,
    max_frames: Annotated[int | None, typer.Option("--max-frames", min=1, help="Stop after N classified.")] = None,
    duration: Annotated[float | None, typer.Option("--duration", min=0.001, help="Stop after N seconds.")] = None,
    width: Annotated[int | None, typer.Option("--width", min=16, help="Requested camera frame width.")] = None,
    height: Annotated[int | None, typer.Option("--height", min=16, help="Requested camera frame height.")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Reconnection attempts in a row.")] = 5,
    read_timeout: Annotated[
        float, typer.Option("--read-timeout", min=0.01, help="Seconds without a frame that count as a stall.")
    ] = 5.0,
    format_name: FormatOpt = None,
    backend: BackendOpt = None,
    threads: ThreadsOpt = None,
    top_k: TopKOpt = 1,
    threshold: ThresholdOpt = "0",
    json_output: JsonOpt = False,
    smooth: SmoothOpt = 1,
    hold: HoldOpt = 1,
    on_change: OnChangeOpt = False,
    webhook: WebhookOpt = None,
) -> None:
    """Classify camera or video frames and print the top label and the measured FPS.

    With --smooth/--hold the label shown is the stable one; --on-change prints only label changes
    (JSON lines) and --webhook POSTs each. Under systemd (Type=notify) it reports readiness and pings
    the watchdog every frame.

    Ctrl-C stops with a summary. A camera that disconnects or stalls is reopened with backoff
    (reported on stderr); after --retries failures in a row the command stops with exit code 1.
    """
    from edgeclf.runtime.camera import CameraOptions, FrameResult, run_camera, source_factory
    from edgeclf.runtime.notify import Notifier
    from edgeclf.runtime.stable import LabelStabilizer, StableOptions
    from edgeclf.runtime.webhook import Webhook

    if (width is None) != (height is None):
        raise ConfigError("--width and --height go together")
    size = (width, height) if width and height else None
    threshold_value = parse_threshold(threshold)[0]
    cam_options = CameraOptions(
        source=source,
        every=every,
        max_frames=max_frames,
        duration=duration,
        classifier=classifier_options(format_name, backend, threads, top_k, threshold),
        retries=retries,
        read_timeout=read_timeout,
        size=size,
    )
    stable = StableOptions(smooth=smooth, hold=hold)
    make_source = source_factory(source, size)  # fails fast (missing OpenCV) before the model loads
    sink = Webhook(webhook, on_event=lambda m: typer.echo(m, err=True)) if webhook else None
    notifier = Notifier()
    with Classifier.open(model, cam_options.classifier) as clf:
        typer.echo(
            f"model: {clf.path} ({describe_classifier(clf)}); source: {make_source().name}",
            err=True,
        )

        # The open-set decision (--threshold auto) is taken on the smoothed scores, not the raw ones.
        stabilizer = LabelStabilizer(clf.labels, stable, predict=clf.predictions)

        def on_frame(result: FrameResult) -> None:
            notifier.ping()
            predictions, change = stabilizer.update(result.scores, top_k, threshold_value)
            if change is not None and sink is not None:
                sink.send(change.to_dict())
            if stable != StableOptions():
                result = dataclasses.replace(result, predictions=predictions)
            if on_change:
                if change is not None:
                    typer.echo(json.dumps(change.to_dict()))
            elif json_output:
                typer.echo(json.dumps(result.to_dict()))
            else:
                top = result.predictions[0] if result.predictions else None
                label = f"{top.label} {top.score:.3f}" if top else "(below threshold)"
                typer.echo(f"frame {result.frame:>6}  {label:<28}  {result.fps:5.1f} fps  {result.latency_ms:6.1f} ms")

        notifier.ready()
        with _sigterm_as_interrupt():
            summary = run_camera(clf, make_source, cam_options, on_frame, on_event=lambda m: typer.echo(m, err=True))
        notifier.stopping()
        if sink is not None:
            sink.close()
    if json_output:
        typer.echo(json.dumps(summary.to_dict()))
    else:
        typer.echo(summary.line(), err=True)
    if summary.error:
        raise typer.Exit(code=1)
