"""The benchmark table as a rich console table, Markdown, CSV, JSON and PNG plots."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeclf.benchmarks.runner import BenchmarkResult, Row, RowStatus
from edgeclf.runtime.fileio import atomic_write_text

COLUMNS = (
    "format",
    "backend",
    "status",
    "size (MB)",
    "accuracy",
    "agreement",
    "max |Δp|",
    "load (ms)",
    "p50 (ms)",
    "p90 (ms)",
    "p99 (ms)",
    "IQR (ms)",
    "e2e p50 (ms)",
    "FPS",
    "peak RSS (MB)",
    "GFLOP/s",
    "CPU ms/frame",
)


def _num(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def cells(row: Row) -> list[str]:
    """One row's cells, in :data:`COLUMNS` order, formatted for people."""
    inv = row.invoke
    status = row.status_text
    if row.reference and row.status is not RowStatus.REFERENCE:
        status += " (reference)"
    return [
        row.name,
        row.backend,
        status,
        _num(row.size_mb, ".2f"),
        _pct(row.accuracy),
        "—" if row.reference else _pct(row.agreement),
        "—" if row.reference else _num(row.max_abs_diff, ".2g"),
        _num(row.load_ms, ".0f"),
        _num(inv.p50 if inv else None, ".2f"),
        _num(inv.p90 if inv else None, ".2f"),
        _num(inv.p99 if inv else None, ".2f"),
        _num(inv.iqr if inv else None, ".2f"),
        _num(row.e2e.p50 if row.e2e else None, ".2f"),
        _num(row.fps, ".0f"),
        _num(row.peak_rss_mb, ".0f"),
        _num(row.gflops_per_s, ".1f"),
        _num(row.cpu_ms_per_frame, ".2f"),
    ]


def host_lines(result: BenchmarkResult) -> list[str]:
    """Where and how it was measured, one fact a line."""
    h, c = result.host, result.config
    pkgs = ", ".join(f"{k} {v}" for k, v in h["packages"].items() if v)
    peak = h.get("peak_fp32_gflops")
    load = h.get("load_average_start")
    load_end = h.get("load_average_end")
    threads = c.threads or f"all ({h['cores']})"
    lines = [
        f"run `{c.run_dir}` (preset {result.manifest.preset}, input {result.manifest.input.height}×"
        f"{result.manifest.input.width}, labels {', '.join(result.manifest.labels)})",
        f"data: {h.get('data')} — {result.images} images"
        + (f", {len(result.skipped_images)} unreadable skipped" if result.skipped_images else ""),
        f"host: {h['cpu']}, {h['cores']} cores, {_num(h.get('mhz'), '.0f')} MHz, {h['machine']}, "
        f"features {' '.join(h['features']) or 'none'}; Python {h['python']}; {pkgs}",
        f"threads {threads}, batch 1, {c.warmup} warm-up calls, "
        f"{c.runs} timed invoke calls and {c.e2e_runs} end-to-end calls per format in {c.rounds} interleaved rounds; "
        f"load average {_load(load)} at start, {_load(load_end)} at the end",
    ]
    if result.flops:
        lines.append(
            f"model: {result.flops / 1e9:.3f} GFLOP per frame"
            + (f"; nominal fp32 peak of this host {peak:.0f} GFLOP/s (cores × clock × 32 FLOP/cycle)" if peak else "")
        )
    fastest = result.fastest()
    if fastest and fastest.invoke and result.flops and peak:
        bound_ms = result.flops / (peak * 1e9) * 1000.0
        lines.append(
            f"fastest: {fastest.name} at {fastest.invoke.p50:.2f} ms = {fastest.gflops_per_s:.1f} GFLOP/s, "
            f"{fastest.gflops_per_s / peak:.0%} of the fp32 peak; the fp32 compute bound is {bound_ms:.2f} ms "
            f"({fastest.invoke.p50 / bound_ms:.2f}× of it)"
        )
    return lines


def _load(value: Sequence[float] | None) -> str:
    return "?" if not value else "/".join(f"{v:.1f}" for v in value)


def noise_lines(result: BenchmarkResult) -> list[str]:
    """The rows whose invoke latency cannot be told apart on this run."""
    if not result.unrankable:
        return ["Every neighbouring pair in the latency ranking is clearly apart (IQRs do not overlap)."]
    pairs = "; ".join(f"{a} vs {b}" for a, b in result.unrankable)
    return [f"Too close to rank (IQRs overlap or the faster one changed between rounds): {pairs}."]


def to_markdown(result: BenchmarkResult) -> str:
    """The table and its context as Markdown."""
    out = io.StringIO()
    out.write(f"### Benchmark: {Path(result.config.run_dir).name}\n\n")
    for line in host_lines(result):
        out.write(f"- {line}\n")
    out.write("\n| " + " | ".join(c.replace("|", "\\|") for c in COLUMNS) + " |\n")
    out.write("|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|\n")
    for row in result.rows:
        out.write("| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |\n")
    out.write("\n")
    out.write(
        f"Latency = `invoke` alone; e2e = file → decode → resize → quantise → invoke → scores; "
        f"agreement and max |Δp| vs {result.reference}. CPU ms/frame = the process's CPU time per invoke "
        "(all threads): the work per frame, which the machine's load does not inflate as it does wall time.\n"
    )
    for line in noise_lines(result):
        out.write(f"{line}\n")
    return out.getvalue()


def to_csv(result: BenchmarkResult) -> str:
    """One line per row, machine-readable (numbers unformatted)."""
    out = io.StringIO()
    fields = [
        "name",
        "format",
        "backend",
        "status",
        "reference",
        "size_mb",
        "accuracy",
        "agreement",
        "max_abs_diff",
        "load_ms",
        "invoke_p50_ms",
        "invoke_p90_ms",
        "invoke_p99_ms",
        "invoke_p25_ms",
        "invoke_p75_ms",
        "invoke_min_ms",
        "e2e_p50_ms",
        "fps",
        "peak_rss_mb",
        "gflops_per_s",
        "threads",
        "cpu_ms_per_frame",
    ]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in result.rows:
        inv = row.invoke
        writer.writerow(
            {
                "name": row.name,
                "format": row.format,
                "backend": row.backend,
                "status": row.status_text,
                "reference": row.reference,
                "size_mb": row.size_mb,
                "accuracy": row.accuracy,
                "agreement": row.agreement,
                "max_abs_diff": row.max_abs_diff,
                "load_ms": row.load_ms,
                "invoke_p50_ms": inv.p50 if inv else None,
                "invoke_p90_ms": inv.p90 if inv else None,
                "invoke_p99_ms": inv.p99 if inv else None,
                "invoke_p25_ms": inv.p25 if inv else None,
                "invoke_p75_ms": inv.p75 if inv else None,
                "invoke_min_ms": inv.minimum if inv else None,
                "e2e_p50_ms": row.e2e.p50 if row.e2e else None,
                "fps": row.fps,
                "peak_rss_mb": row.peak_rss_mb,
                "gflops_per_s": row.gflops_per_s,
                "threads": row.threads,
                "cpu_ms_per_frame": row.cpu_ms_per_frame,
            }
        )
    return out.getvalue()


def print_table(result: BenchmarkResult, console: Any | None = None) -> None:
    """Print the table with rich (plain text when stdout is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: do not fold the table into 80 columns
            console = Console(width=240)
    table = Table(title=f"edgeclf benchmark — {Path(result.config.run_dir).name}", show_lines=False)
    for i, column in enumerate(COLUMNS):
        table.add_column(column, justify="left" if i < 3 else "right", overflow="fold")
    for row in result.rows:
        style = "bold" if row.reference else ("red" if not row.ran else None)
        table.add_row(*cells(row), style=style)
    console.print(table)
    for line in host_lines(result) + noise_lines(result):
        console.print(line, highlight=False, markup=False)


def write_plots(result: BenchmarkResult, out_dir: Path) -> list[Path]:
    """accuracy vs latency (one point per format) and size per format; ``[]`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    ran = [r for r in result.rows if r.invoke and r.accuracy is not None]
    if ran:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for row in ran:
            inv = row.invoke
            ax.errorbar(
                inv.p50,
                row.accuracy * 100,
                xerr=[[inv.p50 - inv.p25], [inv.p75 - inv.p50]],
                fmt="o",
                capsize=3,
            )
        low, high = accuracy_limits([r.accuracy * 100 for r in ran])
        ax.set_ylim(low, high)
        place_labels(ax, [(r.invoke.p50, r.accuracy * 100) for r in ran], [r.name for r in ran])
        ax.set_xlabel("invoke latency p50, ms (bars: IQR)")
        step = 100.0 / result.images if result.images else None
        ax.set_ylabel("accuracy on test images, %" + (f" (one image = {step:.2g} points)" if step else ""))
        ax.set_title(f"Accuracy vs latency — {Path(result.config.run_dir).name}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / "accuracy_vs_latency.png"
        save_figure(fig, path)
        plt.close(fig)
        written.append(path)
    sized = [r for r in result.rows if r.size_mb is not None]
    if sized:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar([r.name for r in sized], [r.size_mb for r in sized], color="#4c72b0")
        for i, r in enumerate(sized):
            ax.text(i, r.size_mb, f"{r.size_mb:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("file size, MB")
        ax.set_title("Size per format")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        fig.tight_layout()
        path = out_dir / "size_per_format.png"
        save_figure(fig, path)
        plt.close(fig)
        written.append(path)
    return written


# The accuracy axis spans at least this many points: formats that differ by one or two test images
# must not look like a cliff (a 0.25-point axis made one photo fill half the plot).
MIN_ACCURACY_SPAN = 10.0


def accuracy_limits(values: Sequence[float], min_span: float = MIN_ACCURACY_SPAN) -> tuple[float, float]:
    """y-axis limits (percent) around ``values``: at least ``min_span`` wide, within 0–100, with a margin."""
    low, high = min(values), max(values)
    span = max(min_span, (high - low) * 1.4)
    middle = (low + high) / 2
    bottom, top = middle - span / 2, middle + span / 2
    if top > 100.0:
        bottom, top = bottom - (top - 100.0), 100.0
    if bottom < 0.0:
        bottom, top = 0.0, min(100.0, top - bottom)
    return bottom, top


def place_labels(ax: Any, points: Sequence[tuple[float, float]], names: Sequence[str]) -> list[Any]:
    """Annotate each point with its name where the label overlaps no other label and no other point.

    Tries offsets around the point (right, left, above, below, then further out), measuring each
    label's box on the figure's renderer; returns the text objects.
    """
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    marks = [ax.transData.transform(p) for p in points]
    taken: list[Any] = []
    texts = []
    offsets = [(dx * k, dy * k) for k in (1, 2, 3, 4) for dx, dy in ((6, 4), (-6, 4), (6, -12), (-6, -12))]
    offsets += [(6, 14 * k) for k in range(1, 8)] + [(6, -14 * k) for k in range(1, 8)]
    for index, ((x, y), name) in enumerate(zip(points, names, strict=True)):
        text = None
        for dx, dy in offsets:
            if text is not None:
                text.remove()
            text = ax.annotate(
                name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8,
                ha="left" if dx >= 0 else "right",
                arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6} if abs(dy) > 12 else None,
            )  # fmt: skip
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            inside_axes = ax.get_window_extent(renderer).contains(box.x0, box.y0) and ax.get_window_extent(
                renderer
            ).contains(box.x1, box.y1)
            hits_point = any(box.contains(mx, my) for j, (mx, my) in enumerate(marks) if j != index)
            if inside_axes and not hits_point and not any(box.overlaps(other) for other in taken):
                break
        taken.append(text.get_window_extent(renderer).expanded(1.05, 1.15))
        texts.append(text)
    return texts


def save_figure(fig: Any, path: Path) -> None:
    """Write a matplotlib figure as a PNG atomically (110 dpi, the size of every benchmark plot)."""
    from edgeclf.runtime.fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")


def write_results(result: BenchmarkResult, out_dir: Path | None = None, plots: bool = True) -> list[Path]:
    """Write ``benchmark.md``, ``benchmark.csv``, ``benchmark.json`` (and plots) atomically; return the paths."""
    out_dir = Path(out_dir or result.config.results_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("benchmark.md", to_markdown(result)),
        ("benchmark.csv", to_csv(result)),
        ("benchmark.json", json.dumps(result.to_dict(), indent=2) + "\n"),
    ):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    if plots:
        written.extend(write_plots(result, out_dir))
    return written
