"""Run every format of a run folder through the same code path and collect one table.

Each row (the Keras reference and every exported artifact, optionally under extra backends) gets its
own worker process (:mod:`edgeclf.benchmarks.worker`). Workers are started one after another, so each
load time is measured on an otherwise idle set of workers; then the timing is interleaved: in each
of ``rounds`` rounds every worker runs its share of ``invoke`` and end-to-end calls in turn (the
starting worker rotates), so a slow minute on the shared machine lands on all formats alike.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.benchmarks.config import BenchmarkConfig
from edgeclf.benchmarks.host import host_info, load_average
from edgeclf.benchmarks.stats import Summary, summarize, unrankable_pairs
from edgeclf.kerasio import require_tensorflow, tensorflow_installed
from edgeclf.runtime import metrics
from edgeclf.runtime.backends import BACKENDS
from edgeclf.runtime.child import child_env
from edgeclf.runtime.dataset import LabelledFolder, Sample, load_samples, open_labelled_folder, reopen_from_manifest
from edgeclf.runtime.errors import DatasetError, EdgeclfError, ManifestError
from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.progress import track

REPO_ROOT = Path(__file__).resolve().parents[2]
KERAS_ROW = "keras"

Progress = Callable[[str], None]


class RowStatus(str, Enum):
    """What happened to one row; the details are in ``Row.reason``."""

    PASSED = "passed"  # measured; the file passed its checks at export
    FAILED_VALIDATION = "failed validation"  # measured, but the file was kept outside its bounds (--no-strict)
    REFERENCE = "reference"  # the Keras reference row
    COULD_NOT_RUN = "could not run"  # did not load or run; ``reason`` says why

    def __str__(self) -> str:
        return self.value


@dataclass
class Row:
    """One line of the table: one format under one backend.

    ``status`` is what happened, ``reason`` why (the error of a row that could not run, the export
    status of a file that failed validation), ``note`` a remark on a measured row (no reference).
    """

    name: str
    format: str
    backend: str
    status: RowStatus
    size_mb: float | None = None
    accuracy: float | None = None
    agreement: float | None = None
    max_abs_diff: float | None = None
    load_ms: float | None = None
    invoke: Summary | None = None
    e2e: Summary | None = None
    peak_rss_mb: float | None = None
    gflops_per_s: float | None = None
    threads: int | None = None
    reference: bool = False
    cpu_ms_per_frame: float | None = None  # process CPU time per invoke, all threads (load-independent)
    reason: str = ""
    note: str = ""

    @property
    def ran(self) -> bool:
        """True when the row was measured (it loaded and ran)."""
        return self.status is not RowStatus.COULD_NOT_RUN

    @property
    def status_text(self) -> str:
        """The status for people: ``could not run: <reason>``, ``failed validation (<reason>)``…"""
        text = self.status.value
        if self.reason:
            text += f": {self.reason}" if self.status is RowStatus.COULD_NOT_RUN else f" ({self.reason})"
        return f"{text} ({self.note})" if self.note else text

    @property
    def fps(self) -> float | None:
        """Frames per second end to end: 1000 / end-to-end p50."""
        return 1000.0 / self.e2e.p50 if self.e2e and self.e2e.p50 > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "format": self.format,
            "backend": self.backend,
            "status": self.status_text,
            "outcome": self.status.value,
            "reason": self.reason,
            "reference": self.reference,
            "size_mb": self.size_mb,
            "accuracy": self.accuracy,
            "agreement": self.agreement,
            "max_abs_diff": self.max_abs_diff,
            "load_ms": self.load_ms,
            "invoke_ms": self.invoke.to_dict() if self.invoke else None,
            "e2e_ms": self.e2e.to_dict() if self.e2e else None,
            "fps": self.fps,
            "peak_rss_mb": self.peak_rss_mb,
            "gflops_per_s": self.gflops_per_s,
            "threads": self.threads,
            "cpu_ms_per_frame": self.cpu_ms_per_frame,
        }


@dataclass
class BenchmarkResult:
    """The whole table plus what it was measured on."""

    config: BenchmarkConfig
    manifest: Manifest
    host: dict[str, Any]
    rows: list[Row]
    reference: str
    images: int
    skipped_images: list[str] = field(default_factory=list)
    flops: int | None = None
    unrankable: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    def row(self, name: str) -> Row:
        """The row called ``name``."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def fastest(self) -> Row | None:
        """The measured exported row with the lowest invoke p50 (the Keras row excluded)."""
        ran = [r for r in self.rows if r.invoke and r.name != KERAS_ROW]
        return min(ran, key=lambda r: r.invoke.p50) if ran else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``benchmark.json``)."""
        return {
            "run": str(self.config.run_dir),
            "preset": self.manifest.preset,
            "input": f"{self.manifest.input.height}x{self.manifest.input.width}",
            "labels": list(self.manifest.labels),
            "reference": self.reference,
            "images": self.images,
            "skipped_images": self.skipped_images,
            "flops_per_frame": self.flops,
            "host": self.host,
            "config": self.config.to_dict(),
            "rows": [r.to_dict() for r in self.rows],
            "unrankable": [list(p) for p in self.unrankable],
            "elapsed_s": self.elapsed_s,
        }


# -- test data -----------------------------------------------------------------------------------


def benchmark_samples(manifest: Manifest, data: Path | None) -> tuple[tuple[Sample, ...], str]:
    """The labelled images to score and where they came from.

    ``data`` with ``train/`` (splits layout): its ``test/`` split (``validation/`` when it has none);
    a plain folder of classes: all of it; ``None``: the test split recorded in the run's manifest.

    Raises:
        DatasetError: no images, or classes that differ from the model's labels.
    """
    if data is None:
        folder: LabelledFolder = reopen_from_manifest(dict(manifest.data), manifest.labels)
        where = f"{folder.root} (the run's own split)"
    else:
        data = Path(data)
        is_splits = (data / "train").is_dir()
        fractions = (0.7, 0.15, 0.15) if is_splits else (0.0, 0.0, 1.0)
        folder = open_labelled_folder(data, fractions=fractions, labels=manifest.labels)
        where = str(data)
    for split in ("test", "validation"):
        samples = folder.split(split)
        if samples:
            return samples, f"{where}, {split} split"
    raise DatasetError(f"{where}: no test images; pass --data DIR with one subfolder of images per class")


# -- workers -------------------------------------------------------------------------------------


class WorkerError(EdgeclfError):
    """A worker process failed to start or died."""


class _Worker:
    def __init__(self, name: str, spec: dict[str, Any], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name.replace('/', '_').replace(' ', '_')}.log"
        env = child_env(quiet_tensorflow=True)
        with self.log.open("w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgeclf.benchmarks.worker", json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
                cwd=str(REPO_ROOT),
            )

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            tail = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()][-1:]
            raise WorkerError(f"worker exited with code {code}" + (f": {tail[0][:300]}" if tail else ""))
        return json.loads(line)

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # type: ignore[union-attr]
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# True when TensorFlow is importable (checked without importing it).
tensorflow_available = tensorflow_installed


@dataclass(frozen=True)
class Entry:
    """What one worker runs: ``format`` (or the Keras model) with ``backend``."""

    name: str
    format: str
    backend: str | None
    status: RowStatus
    reason: str = ""


def plan_rows(manifest: Manifest, config: BenchmarkConfig, run_dir: Path) -> tuple[list[Entry], str]:
    """The rows to measure and the reference row's name.

    Raises:
        ManifestError: an asked-for format was not exported, or no reference can be had.
    """
    artifacts = list(manifest.artifacts)
    if config.formats:
        for name in config.formats:
            manifest.artifact(name)  # unknown -> error listing the exported ones
        artifacts = [a for a in artifacts if a.format in config.formats]
    reference = config.reference
    if reference == "auto":
        keras_ok = tensorflow_available() and (run_dir / manifest.model_file).is_file()
        reference = "keras" if keras_ok else "tflite-fp32"
    if reference == "keras":
        require_tensorflow("TensorFlow (for --reference keras; or use --reference tflite-fp32)")
        if not (run_dir / manifest.model_file).is_file():
            raise ManifestError(f"{run_dir}: no {manifest.model_file} for the Keras reference row")
    elif not any(a.format == "tflite-fp32" for a in manifest.artifacts):
        raise ManifestError(
            f"{run_dir}: edge-only mode compares against tflite-fp32, which was not exported; "
            f"run `edgeclf export {run_dir} --format tflite-fp32` on a machine with TensorFlow"
        )
    entries: list[Entry] = []
    if reference == "keras":
        entries.append(Entry(KERAS_ROW, KERAS_ROW, None, RowStatus.REFERENCE))
    elif config.formats and "tflite-fp32" not in config.formats:
        artifacts.insert(0, manifest.artifact("tflite-fp32"))
    for artifact in artifacts:
        status, reason = RowStatus.PASSED, ""
        if artifact.status != "passed":  # "failed": kept with --no-strict; anything else is named
            status, reason = RowStatus.FAILED_VALIDATION, "" if artifact.status == "failed" else artifact.status
        entries.append(Entry(artifact.format, artifact.format, None, status, reason))
        suffix = Path(artifact.file).suffix.lower()
        for backend in config.backends:
            known = BACKENDS.get(backend)  # an unknown name raises UnknownNameError listing the known ones
            if suffix in known.suffixes and backend != artifact.backend:
                entries.append(Entry(f"{artifact.format} ({backend})", artifact.format, backend, status, reason))
    return entries, reference


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` calls over ``parts`` rounds, the first rounds taking one more when it does not divide."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def measure(
    run_dir: Path,
    entries: list[Entry],
    config: BenchmarkConfig,
    *,
    images: np.ndarray | None,
    files: list[Path],
    work_dir: Path,
    threads: int | None,
    score: bool = True,
    progress: Progress | None = None,
) -> tuple[list[Row], dict[str, np.ndarray], dict[str, Any]]:
    """Start one worker per entry, interleave the timing rounds, and return rows, scores and extras.

    Returns ``(rows, scores by row name, ready messages by row name)``; rows that could not run carry
    the reason in ``status``.
    """
    say = progress or (lambda message: None)
    images_path = None
    if images is not None:
        images_path = work_dir / "images.npy"
        if not images_path.exists():
            np.save(images_path, images)
    rows: dict[str, Row] = {}
    ready: dict[str, Any] = {}
    workers: dict[str, _Worker] = {}
    try:
        for entry in entries:
            spec = {
                "kind": "keras" if entry.name == KERAS_ROW else "artifact",
                "run_dir": str(run_dir),
                "format": None if entry.name == KERAS_ROW else entry.format,
                "backend": entry.backend,
                "threads": threads,
                "images": str(images_path) if images_path else None,
                "scores_out": str(work_dir / f"scores-{len(workers)}.npy") if score and images_path else None,
                "files": [str(f) for f in files],
                "warmup": config.warmup,
            }
            row = Row(entry.name, entry.format, entry.backend or "", entry.status, reason=entry.reason)
            rows[entry.name] = row
            say(f"loading {entry.name}")
            worker = _Worker(entry.name, spec, work_dir)
            try:
                message = worker.read()
            except WorkerError as error:
                message = {"error": str(error)}
            if "error" in message:
                row.status, row.reason = RowStatus.COULD_NOT_RUN, str(message["error"])
                worker.close()
                continue
            info = message["ready"]
            ready[entry.name] = info
            row.backend = info["backend"]
            row.size_mb = info["size_bytes"] / 1e6
            row.load_ms = info["load_ms"]
            row.threads = info.get("threads")
            if entry.name != KERAS_ROW and info.get("status") == "failed":
                row.status, row.reason = RowStatus.FAILED_VALIDATION, ""
            if spec["scores_out"]:
                info["scores_path"] = spec["scores_out"]
            workers[entry.name] = worker
        names = list(workers)
        invoke = {n: [[] for _ in range(config.rounds)] for n in names}
        e2e = {n: [[] for _ in range(config.rounds)] for n in names}
        cpu_ms = dict.fromkeys(names, 0.0)
        invoke_split = split_evenly(config.runs, config.rounds)
        e2e_split = split_evenly(config.e2e_runs, config.rounds) if files else [0] * config.rounds
        with track("benchmark rounds", config.rounds * len(names)) as advance:
            for r in range(config.rounds):
                say(f"round {r + 1}/{config.rounds}")
                order = names[r % len(names) :] + names[: r % len(names)] if names else []
                for name in order:
                    worker = workers[name]
                    try:
                        if invoke_split[r]:
                            answer = worker.ask({"cmd": "invoke", "n": invoke_split[r]})
                            invoke[name][r] = answer["times"]
                            cpu_ms[name] += answer.get("cpu_ms", 0.0)
                        if e2e_split[r]:
                            e2e[name][r] = worker.ask({"cmd": "e2e", "n": e2e_split[r]})["times"]
                    except WorkerError as error:
                        rows[name].status, rows[name].reason = RowStatus.COULD_NOT_RUN, str(error)
                        names.remove(name)
                    advance()
        for name in list(workers):
            with contextlib.suppress(WorkerError):
                rows[name].peak_rss_mb = workers[name].ask({"cmd": "quit"})["peak_rss_mb"]
            row = rows[name]
            if row.ran:
                row.invoke = summarize([t for part in invoke[name] for t in part], invoke[name])
                row.e2e = summarize([t for part in e2e[name] for t in part], e2e[name])
                if row.invoke:
                    row.cpu_ms_per_frame = cpu_ms[name] / row.invoke.n
    finally:
        for worker in workers.values():
            worker.close()
    scores = {
        name: np.load(info["scores_path"]) for name, info in ready.items() if info.get("scores_path") and rows[name].ran
    }
    return list(rows.values()), scores, ready


def run_benchmark(config: BenchmarkConfig, progress: Progress | None = None) -> BenchmarkResult:
    """Measure every format of ``config.run_dir`` on ``config.data``; see :class:`BenchmarkConfig`.

    Raises:
        ManifestError: not a run folder, nothing exported, or the reference format is missing.
        DatasetError: no usable test images.
    """
    started = time.perf_counter()
    run_dir = Path(config.run_dir)
    manifest = Manifest.load(run_dir)
    if not manifest.artifacts:
        raise ManifestError(f"{run_dir}: nothing exported yet; run `edgeclf export {run_dir}` first")
    entries, reference = plan_rows(manifest, config, run_dir)
    host = host_info()
    samples, source = benchmark_samples(manifest, config.data)
    if config.max_images is not None:
        samples = take_balanced(samples, config.max_images)
    loaded = load_samples(samples, manifest.input)
    if len(loaded.images) == 0:
        raise DatasetError(f"{source}: none of the {len(samples)} images could be decoded")
    host["data"] = source
    with tempfile.TemporaryDirectory(prefix="edgeclf-bench-") as tmp:
        rows, scores, ready = measure(
            run_dir,
            entries,
            config,
            images=loaded.images,
            files=list(loaded.paths),
            work_dir=Path(tmp),
            threads=config.threads,
            progress=progress,
        )
        logs = {p.stem: p.read_text(errors="replace")[-2000:] for p in Path(tmp).glob("*.log")}
    host["load_average_end"] = load_average()
    flops = (ready.get(KERAS_ROW) or {}).get("flops") or _manifest_flops(manifest)
    ref_name = KERAS_ROW if reference == "keras" else "tflite-fp32"
    ref_scores = scores.get(ref_name)
    for row in rows:
        row.reference = row.name == ref_name
        if row.name in scores:
            s = scores[row.name]
            row.accuracy = metrics.accuracy(s, loaded.labels)
            if ref_scores is not None:
                row.agreement = metrics.agreement(s, ref_scores)
                row.max_abs_diff = float(metrics.abs_diff(s, ref_scores).max())
        if flops and row.invoke:
            row.gflops_per_s = flops / (row.invoke.p50 / 1000.0) / 1e9
    if ref_scores is None:
        ref_row = next((r for r in rows if r.name == ref_name), None)
        why = ref_row.status_text if ref_row else "missing"
        for row in rows:
            if row.ran and not row.reference:
                row.note = f"no reference: {ref_name} {why}"
    result = BenchmarkResult(
        config=config,
        manifest=manifest,
        host=host,
        rows=rows,
        reference=ref_name,
        images=len(loaded.images),
        skipped_images=[str(e) for e in loaded.failed],
        flops=flops,
        unrankable=unrankable_pairs([(r.name, r.invoke) for r in rows if r.invoke]),
        elapsed_s=time.perf_counter() - started,
    )
    result.host["worker_logs_tail"] = {k: v for k, v in logs.items() if "Traceback" in v or "rror" in v}
    return result


def _manifest_flops(manifest: Manifest) -> int | None:
    for section in (manifest.metrics, manifest.training):
        value = section.get("flops") if isinstance(section, Mapping) else None
        if isinstance(value, (int, float)) and value > 0:
            return int(value)
    return None


def take_balanced(samples: tuple[Sample, ...], limit: int) -> tuple[Sample, ...]:
    """At most ``limit`` samples, taking classes in turn so a cut keeps them balanced."""
    by_label: dict[int, list[Sample]] = {}
    for sample in samples:
        by_label.setdefault(sample.label, []).append(sample)
    queues = [list(v) for _, v in sorted(by_label.items())]
    taken: list[Sample] = []
    while len(taken) < limit and any(queues):
        for queue in queues:
            if queue and len(taken) < limit:
                taken.append(queue.pop(0))
    return tuple(taken)
