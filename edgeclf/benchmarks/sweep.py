"""Scaling sweeps: how invoke latency grows with threads (``--sweep threads``) and with input size
(``--sweep size``: the run's preset is built and exported once per size; untrained weights, since
speed does not depend on them — those rows carry latency only, no accuracy).
"""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeclf.benchmarks.config import BenchmarkConfig
from edgeclf.benchmarks.host import host_info, load_average
from edgeclf.benchmarks.runner import KERAS_ROW, Entry, Progress, benchmark_samples, measure, plan_rows
from edgeclf.kerasio import require_tensorflow
from edgeclf.runtime.dataset import load_samples
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.fileio import atomic_write_text
from edgeclf.runtime.manifest import Manifest


@dataclass
class SweepPoint:
    """One format at one setting."""

    name: str
    setting: int
    p50: float | None
    p25: float | None
    p75: float | None
    status: str
    flops: int | None = None
    cpu_ms: float | None = None  # process CPU time per invoke (load-independent)

    @property
    def gflops_per_s(self) -> float | None:
        """FLOPs per frame ÷ invoke p50 (when both are known)."""
        return self.flops / (self.p50 / 1000.0) / 1e9 if self.flops and self.p50 else None


@dataclass
class SweepResult:
    """All points of one sweep."""

    kind: str
    config: BenchmarkConfig
    host: dict[str, Any]
    points: list[SweepPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "sweep": self.kind,
            "config": self.config.to_dict(),
            "host": self.host,
            "points": [dict(dataclasses.asdict(p), gflops_per_s=p.gflops_per_s) for p in self.points],
        }


def _points(rows: list[Any], setting: int, flops: int | None = None) -> list[SweepPoint]:
    return [
        SweepPoint(
            r.name,
            setting,
            r.invoke.p50 if r.invoke else None,
            r.invoke.p25 if r.invoke else None,
            r.invoke.p75 if r.invoke else None,
            r.status_text,
            flops,
            r.cpu_ms_per_frame,
        )
        for r in rows
    ]


def run_sweep(config: BenchmarkConfig, progress: Progress | None = None) -> SweepResult:
    """Run ``config.sweep`` (``threads`` or ``size``) on ``config.run_dir``."""
    say = progress or (lambda message: None)
    run_dir = Path(config.run_dir)
    manifest = Manifest.load(run_dir)
    result = SweepResult(config.sweep or "", config, host_info())
    samples, _ = benchmark_samples(manifest, config.data)
    with tempfile.TemporaryDirectory(prefix="edgeclf-sweep-") as tmp:
        work = Path(tmp)
        if config.sweep == "threads":
            entries, _ = plan_rows(manifest, config, run_dir)
            loaded = load_samples(samples[:1], manifest.input)
            for threads in config.sweep_threads:
                say(f"threads={threads}")
                sub = work / f"threads-{threads}"
                sub.mkdir()
                rows, _, ready = measure(
                    run_dir,
                    entries,
                    dataclasses.replace(config, e2e_runs=0),
                    images=loaded.images,
                    files=[],
                    work_dir=sub,
                    threads=threads,
                    score=False,
                    progress=say,
                )
                flops = (ready.get(KERAS_ROW) or {}).get("flops")
                result.points.extend(_points(rows, threads, flops))
        elif config.sweep == "size":
            result.points.extend(_size_sweep(config, manifest, work, samples, say))
        else:  # pragma: no cover - BenchmarkConfig validates the name
            raise EdgeclfError(f"unknown sweep {config.sweep!r}")
    result.host["load_average_end"] = load_average()
    return result


def _size_sweep(
    config: BenchmarkConfig, manifest: Manifest, work: Path, samples: Any, say: Progress
) -> list[SweepPoint]:
    require_tensorflow("TensorFlow (to build and export a model per input size)")
    from edgeclf.exporter import ExportConfig, export_run
    from edgeclf.trainer.presets import count_flops, get_preset

    preset = get_preset(manifest.preset)
    points: list[SweepPoint] = []
    for size in config.sweep_sizes:
        say(f"size={size}: building and exporting {manifest.preset} at {size}×{size}")
        spec = dataclasses.replace(manifest.input, height=size, width=size)
        model = preset.build(spec, len(manifest.labels))
        flops = count_flops(model)
        run = work / f"size-{size}"
        run.mkdir()
        model.save(run / manifest.model_file)
        sized = Manifest(
            labels=manifest.labels,
            input=spec,
            output_activation=manifest.output_activation,
            preset=manifest.preset,
            model_file=manifest.model_file,
            data=manifest.data,
        )
        sized.save(run)
        export_run(
            run,
            ExportConfig(
                formats=tuple(f for f in config.formats if f != KERAS_ROW),
                calibration_images=16,
                validation_images=16,
                strict=False,
                validate_on=config.data,
            ),
            log=lambda line: None,
        )
        sized = Manifest.load(run)
        sized_config = dataclasses.replace(config, run_dir=run, e2e_runs=0)
        entries, _ = plan_rows(sized, sized_config, run)
        entries = [Entry(e.name, e.format, e.backend, "untrained (latency only)") for e in entries]
        loaded = load_samples(samples[:1], spec)
        rows, _, _ = measure(
            run,
            entries,
            sized_config,
            images=loaded.images,
            files=[],
            work_dir=run,
            threads=config.threads,
            score=False,
            progress=say,
        )
        points.extend(_points(rows, size, flops))
    return points


def to_markdown(result: SweepResult) -> str:
    """One line per format, one column per setting: invoke p50 (IQR) in ms."""
    settings = sorted({p.setting for p in result.points})
    names = list(dict.fromkeys(p.name for p in result.points))
    label = "threads" if result.kind == "threads" else "input px"
    out = io.StringIO()
    h = result.host
    out.write(f"### Sweep: {result.kind} — {Path(result.config.run_dir).name}\n\n")
    out.write(
        f"- host: {h['cpu']}, {h['cores']} cores, features {' '.join(h['features'])}; invoke p50 ms "
        f"(IQR) / CPU ms per frame, per {label}, batch 1, {result.config.runs} calls in {result.config.rounds} "
        "interleaved rounds\n"
    )
    flops = {p.setting: p.flops for p in result.points if p.flops}
    if flops:
        out.write("- GFLOP per frame: " + ", ".join(f"{s}: {f / 1e9:.3f}" for s, f in sorted(flops.items())) + "\n")
    out.write("\n| format | " + " | ".join(f"{s} {label}" for s in settings) + " |\n")
    out.write("|---|" + "---:|" * len(settings) + "\n")
    for name in names:
        cells = []
        for s in settings:
            p = next((q for q in result.points if q.name == name and q.setting == s), None)
            if p is None or p.p50 is None:
                cells.append("—" if p is None else "could not run")
            else:
                cpu = f" / {p.cpu_ms:.2f}" if p.cpu_ms is not None else ""
                cells.append(f"{p.p50:.2f} ({p.p75 - p.p25:.2f}){cpu}")
        out.write(f"| {name} | " + " | ".join(cells) + " |\n")
    return out.getvalue()


def print_sweep(result: SweepResult) -> None:
    """Print the sweep table."""
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(to_markdown(result)))


def write_sweep(result: SweepResult, out_dir: Path, plots: bool = True) -> list[Path]:
    """Write ``sweep-<kind>.md/.json`` (and a PNG); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        (f"sweep-{result.kind}.md", to_markdown(result)),
        (f"sweep-{result.kind}.json", json.dumps(result.to_dict(), indent=2) + "\n"),
    ):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    if plots:
        path = _plot(result, out_dir / f"sweep-{result.kind}.png")
        if path:
            written.append(path)
    return written


def _plot(result: SweepResult, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from edgeclf.runtime.fileio import atomic_path

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(p.name for p in result.points):
        pts = sorted((p for p in result.points if p.name == name and p.p50 is not None), key=lambda p: p.setting)
        if not pts:
            continue
        xs = [p.setting if result.kind == "threads" else p.setting**2 / 1000.0 for p in pts]
        ax.errorbar(
            xs,
            [p.p50 for p in pts],
            yerr=[[p.p50 - p.p25 for p in pts], [p.p75 - p.p50 for p in pts]],
            marker="o",
            capsize=3,
            label=name,
        )
    if result.kind == "threads":
        ax.set_xlabel("threads")
        ax.set_xticks(sorted({p.setting for p in result.points}))
    else:
        ax.set_xlabel("input pixels (thousands; side² — 96, 160, 224, 300 px…)")
    ax.set_ylabel("invoke latency p50, ms (bars: IQR)")
    ax.set_title(f"Latency vs {result.kind} — {Path(result.config.run_dir).name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
