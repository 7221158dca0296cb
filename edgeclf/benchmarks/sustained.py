"""``edgeclf benchmark --duration S``: one format run without pause, latency next to board health over time.

A Pi that heats up lowers its clock (the firmware's throttled flags say so) and the latency rises
with it; a short benchmark never sees that. Each interval records the median latency of the
invocations in it, their count, the CPU temperature, clock and throttle flags (``edgeclf.runtime.board``;
``board_root`` points at a fake sysfs tree in tests).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.runtime.board import read_board
from edgeclf.runtime.classifier import Classifier, ClassifierOptions
from edgeclf.runtime.fileio import atomic_write_text


@dataclass(frozen=True)
class SustainedSample:
    """One interval."""

    seconds: float  # end of the interval, since the start
    invocations: int
    latency_p50_ms: float
    latency_max_ms: float
    cpu_temperature_c: float | None
    cpu_frequency_mhz: float | None
    throttle_flags: list[str] = field(default_factory=list)


@dataclass
class SustainedResult:
    """The whole run."""

    model: str
    format: str
    backend: str
    threads: int
    duration_s: float
    samples: list[SustainedSample]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            **{k: v for k, v in asdict(self).items() if k != "samples"},
            "samples": [asdict(s) for s in self.samples],
        }


def run_sustained(
    model_or_run: str | Path,
    options: ClassifierOptions,
    duration: float,
    *,
    interval: float = 1.0,
    board_root: str | Path = "/",
    progress: Callable[[str], None] = lambda message: None,
) -> SustainedResult:
    """Invoke the model back to back for ``duration`` seconds; one :class:`SustainedSample` per ``interval``."""
    with Classifier.open(model_or_run, options) as clf:
        image = np.random.default_rng(0).integers(0, 256, clf.spec.shape, dtype=np.uint8)
        prepared = clf.prepare(image)
        clf.session.run(prepared)  # warm-up: first-call allocations are not the board's doing
        samples: list[SustainedSample] = []
        start = time.monotonic()
        interval_end = start + interval
        latencies: list[float] = []
        while True:
            began = time.perf_counter()
            clf.session.run(prepared)
            latencies.append((time.perf_counter() - began) * 1000.0)
            now = time.monotonic()
            if now >= interval_end or now - start >= duration:
                board = read_board(board_root)
                samples.append(
                    SustainedSample(
                        seconds=round(now - start, 3),
                        invocations=len(latencies),
                        latency_p50_ms=round(float(np.median(latencies)), 3),
                        latency_max_ms=round(float(np.max(latencies)), 3),
                        cpu_temperature_c=board.cpu_temperature_c,
                        cpu_frequency_mhz=board.cpu_frequency_mhz,
                        throttle_flags=board.throttle_flags,
                    )
                )
                progress(f"{now - start:5.1f} s: p50 {samples[-1].latency_p50_ms:.2f} ms, {board.cpu_temperature_c} °C")
                latencies = []
                interval_end = now + interval
                if now - start >= duration:
                    break
        return SustainedResult(
            str(clf.path),
            clf.format,
            clf.backend_name,
            clf.session.threads,
            round(time.monotonic() - start, 3),
            samples,
        )


def to_csv(result: SustainedResult) -> str:
    """One row per interval."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["seconds", "invocations", "latency_p50_ms", "latency_max_ms", "cpu_temperature_c",
                     "cpu_frequency_mhz", "throttle_flags"])  # fmt: skip
    for s in result.samples:
        writer.writerow([s.seconds, s.invocations, s.latency_p50_ms, s.latency_max_ms, s.cpu_temperature_c,
                         s.cpu_frequency_mhz, " ".join(s.throttle_flags)])  # fmt: skip
    return buffer.getvalue()


def write_sustained(result: SustainedResult, out_dir: Path, plots: bool = True) -> list[Path]:
    """``sustained.json``, ``sustained.csv`` and (with matplotlib) ``sustained.png``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "sustained.json", out_dir / "sustained.csv"]
    atomic_write_text(paths[0], json.dumps(result.to_dict(), indent=2) + "\n")
    atomic_write_text(paths[1], to_csv(result))
    if plots:
        plot = _plot(result, out_dir / "sustained.png")
        if plot is not None:
            paths.append(plot)
    return paths


def _plot(result: SustainedResult, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from edgeclf.benchmarks.report import save_figure

    t = [s.seconds for s in result.samples]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(t, [s.latency_p50_ms for s in result.samples], color="#4c72b0", label="latency p50")
    ax.set_xlabel("seconds")
    ax.set_ylabel("invoke latency p50, ms", color="#4c72b0")
    ax.set_ylim(bottom=0)
    temps = [s.cpu_temperature_c for s in result.samples]
    if any(v is not None for v in temps):
        right = ax.twinx()
        right.plot(t, [np.nan if v is None else v for v in temps], color="#c44e52", label="CPU temperature")
        right.set_ylabel("CPU temperature, °C", color="#c44e52")
    for s, start in zip(result.samples, [0.0, *t[:-1]], strict=True):
        if any(not flag.endswith("occurred") for flag in s.throttle_flags):  # throttled during this interval
            ax.axvspan(start, s.seconds, color="#dd8452", alpha=0.2, lw=0)
    ax.set_title(
        f"{result.format} ({result.backend}, {result.threads} threads) under sustained load; shaded: throttled"
    )
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
