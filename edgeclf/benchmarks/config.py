"""``BenchmarkConfig``: everything one ``edgeclf benchmark`` run is told, as one frozen dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeclf.runtime.backends.base import check_threads
from edgeclf.runtime.errors import ConfigError, EdgeclfError

REFERENCES = ("auto", "keras", "tflite-fp32")
SWEEPS = ("threads", "size")
DEFAULT_SWEEP_SIZES = (96, 160, 224, 300)


@dataclass(frozen=True)
class BenchmarkConfig:
    """Options of :func:`edgeclf.benchmarks.run_benchmark`; the command line builds one, it is saved with the results.

    Attributes:
        run_dir: a run folder with ``manifest.json`` and exported artifacts.
        data: the labelled images: a folder with ``test/`` (its test split is used), or a plain
            folder of classes (all of it is used); ``None``: the run's own test split.
        formats: artifact formats to measure; empty means every exported one.
        backends: extra backends to run each artifact with besides its own (e.g. ``tflite-runtime``).
        reference: ``keras`` (needs TensorFlow), ``tflite-fp32`` (edge-only), or ``auto`` (Keras
            when TensorFlow is importable, else tflite-fp32).
        runs: timed ``invoke`` calls per format (split over ``rounds``).
        e2e_runs: timed end-to-end calls (file → scores) per format (split over ``rounds``).
        warmup: untimed ``invoke`` calls before timing.
        rounds: interleaving rounds: each round gives every format its share in turn.
        threads: interpreter threads (``None``: all cores).
        max_images: score at most this many test images (``None``: all).
        out: where to write the Markdown/CSV/JSON/plots; ``None``: ``edgeclf/benchmarks/results/<run name>``.
        plots: write PNG plots (needs matplotlib).
        sweep: ``None``, ``"threads"`` or ``"size"``.
        sweep_threads: thread counts for the threads sweep.
        sweep_sizes: input sides for the size sweep (a model is built and exported per size).
    """

    run_dir: Path
    data: Path | None = None
    formats: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()
    reference: str = "auto"
    runs: int = 100
    e2e_runs: int = 30
    warmup: int = 10
    rounds: int = 5
    threads: int | None = None
    max_images: int | None = None
    out: Path | None = None
    plots: bool = True
    sweep: str | None = None
    sweep_threads: tuple[int, ...] = (1, 2, 4)
    sweep_sizes: tuple[int, ...] = DEFAULT_SWEEP_SIZES

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise ConfigError(f"--reference {self.reference!r}: expected one of {', '.join(REFERENCES)}")
        if self.sweep is not None and self.sweep not in SWEEPS:
            raise ConfigError(f"--sweep {self.sweep!r}: expected one of {', '.join(SWEEPS)}")
        for name in ("runs", "rounds"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("e2e_runs", "warmup"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative, got {getattr(self, name)}")
        if self.threads is not None:
            check_threads(self.threads)  # 1..4x the cores, as for classify
        for threads in self.sweep_threads:
            check_threads(threads)
        if self.max_images is not None and self.max_images < 1:
            raise ConfigError(f"--max-images must be at least 1, got {self.max_images}")
        if any(t < 1 for t in self.sweep_threads) or any(s < 16 for s in self.sweep_sizes):
            raise EdgeclfError("sweep thread counts must be >= 1 and sweep sizes >= 16 px")

    @property
    def results_dir(self) -> Path:
        """Where the tables and plots go."""
        if self.out is not None:
            return Path(self.out)
        return Path(__file__).resolve().parent / "results" / Path(self.run_dir).resolve().name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (saved in ``benchmark.json``)."""
        data = dataclasses.asdict(self)
        for key in ("run_dir", "data", "out"):
            data[key] = None if data[key] is None else str(data[key])
        for key in ("formats", "backends", "sweep_threads", "sweep_sizes"):
            data[key] = list(data[key])
        return data
