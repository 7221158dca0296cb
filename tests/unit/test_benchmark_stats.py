"""The benchmark's arithmetic and host facts (no interpreter, no TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeclf.benchmarks.config import BenchmarkConfig
from edgeclf.benchmarks.host import cpu_features, cpu_mhz, cpu_model, peak_fp32_gflops
from edgeclf.benchmarks.report import COLUMNS, cells
from edgeclf.benchmarks.runner import Row, RowStatus, split_evenly, take_balanced
from edgeclf.benchmarks.stats import can_rank, summarize, unrankable_pairs
from edgeclf.runtime.dataset import Sample
from edgeclf.runtime.errors import EdgeclfError

X86_CPUINFO = """processor\t: 0
model name\t: AMD EPYC 9B14
cpu MHz\t\t: 2596.144
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni
processor\t: 1
model name\t: AMD EPYC 9B14
cpu MHz\t\t: 2400.000
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni
"""

PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def test_summarize_percentiles_and_rounds() -> None:
    times = list(range(1, 101))
    summary = summarize(times, [times[:50], times[50:]])
    assert summary is not None
    assert summary.n == 100
    assert summary.p50 == pytest.approx(50.5)
    assert summary.p90 == pytest.approx(np.percentile(times, 90))
    assert summary.p99 == pytest.approx(np.percentile(times, 99))
    assert summary.iqr == pytest.approx(np.percentile(times, 75) - np.percentile(times, 25))
    assert summary.minimum == 1
    assert summary.round_p50s == (25.5, 75.5)
    assert summarize([]) is None


def test_can_rank_needs_separate_spreads_and_consistent_rounds() -> None:
    fast = summarize([1.0, 1.1, 1.2, 1.3], [[1.0, 1.1], [1.2, 1.3]])
    slow = summarize([2.0, 2.1, 2.2, 2.3], [[2.0, 2.1], [2.2, 2.3]])
    overlapping = summarize([1.1, 1.2, 1.5, 2.2])
    assert can_rank(fast, slow) and can_rank(slow, fast)
    assert not can_rank(fast, overlapping)
    # Separate IQRs overall, but the "slow" one was faster in half the rounds: not rankable.
    a = summarize([1.0] * 6 + [5.0] * 2, [[1.0, 1.0], [5.0, 5.0], [1.0, 1.0], [1.0, 1.0]])
    b = summarize([3.0] * 8, [[3.0, 3.0], [3.0, 3.0], [3.0, 3.0], [3.0, 3.0]])
    a = a.__class__(**{**a.__dict__, "p75": 1.0})  # force non-overlapping IQRs
    assert not can_rank(a, b, min_consistency=0.8)
    assert can_rank(a, b, min_consistency=0.75)


def test_unrankable_pairs_are_latency_neighbours() -> None:
    named = [
        ("c", summarize([5.0, 5.1, 5.2, 5.3])),
        ("a", summarize([1.0, 1.1, 1.2, 1.3])),
        ("b", summarize([1.1, 1.2, 1.25, 1.4])),
    ]
    assert unrankable_pairs(named) == [("a", "b")]


def test_host_parsing_x86_and_pi() -> None:
    assert cpu_model(X86_CPUINFO) == "AMD EPYC 9B14"
    assert cpu_mhz(X86_CPUINFO) == pytest.approx(2596.144)
    assert cpu_features(X86_CPUINFO) == ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert cpu_model(PI4_CPUINFO) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_features(PI4_CPUINFO) == []  # a Cortex-A72 has no dot-product (asimddp) instructions
    assert peak_fp32_gflops(2600.0, 2, "x86_64") == pytest.approx(166.4)
    assert peak_fp32_gflops(1800.0, 4, "aarch64") == pytest.approx(115.2)
    assert peak_fp32_gflops(None, 2, "x86_64") is None


def test_config_refuses_bad_values(tmp_path: Path) -> None:
    with pytest.raises(EdgeclfError, match="--reference"):
        BenchmarkConfig(run_dir=tmp_path, reference="onnx")
    with pytest.raises(EdgeclfError, match="--runs"):
        BenchmarkConfig(run_dir=tmp_path, runs=0)
    with pytest.raises(EdgeclfError, match="--sweep"):
        BenchmarkConfig(run_dir=tmp_path, sweep="batch")
    config = BenchmarkConfig(run_dir=tmp_path / "my-run")
    assert config.results_dir.name == "my-run"
    assert config.results_dir.parent.name == "results"
    assert config.to_dict()["run_dir"] == str(tmp_path / "my-run")


def test_split_and_balanced_take() -> None:
    assert split_evenly(10, 3) == [4, 3, 3]
    assert sum(split_evenly(7, 7)) == 7
    samples = tuple(Sample(Path(f"a{i}.jpg"), 0) for i in range(5)) + tuple(
        Sample(Path(f"b{i}.jpg"), 1) for i in range(2)
    )
    taken = take_balanced(samples, 4)
    assert [s.label for s in taken] == [0, 1, 0, 1]
    assert len(take_balanced(samples, 100)) == 7


def test_row_cells_for_a_row_that_could_not_run() -> None:
    row = Row("onnx-int8", "onnx-int8", "onnxruntime", RowStatus.COULD_NOT_RUN, reason="onnxruntime is not installed")
    values = cells(row)
    assert len(values) == len(COLUMNS)
    assert values[2] == "could not run: onnxruntime is not installed"
    assert values[8] == "—" and row.fps is None and not row.ran
    assert (row.to_dict()["outcome"], row.to_dict()["reason"]) == ("could not run", "onnxruntime is not installed")
    measured = Row("tflite-int8", "tflite-int8", "litert", RowStatus.PASSED, e2e=summarize([4.0, 5.0, 6.0]))
    assert measured.fps == pytest.approx(200.0) and measured.ran


def test_row_status_text_keeps_the_reason_and_the_note() -> None:
    failed = Row("onnx-int8", "onnx-int8", "onnxruntime", RowStatus.FAILED_VALIDATION, reason="error")
    assert failed.status_text == "failed validation (error)" and failed.ran
    failed.note = "no reference: tflite-fp32 missing"
    assert failed.status_text == "failed validation (error) (no reference: tflite-fp32 missing)"
    assert cells(Row("keras", "keras", "", RowStatus.REFERENCE, reference=True))[2] == "reference"
    assert (
        cells(Row("tflite-fp32", "tflite-fp32", "litert", RowStatus.PASSED, reference=True))[2] == "passed (reference)"
    )


def test_benchmark_modules_do_not_import_tensorflow() -> None:
    """On a Pi (no TensorFlow) the benchmark runs edge-only: none of its modules may pull TF in."""
    import subprocess
    import sys

    code = (
        "import sys, edgeclf.benchmarks, edgeclf.benchmarks.report, edgeclf.benchmarks.sweep\n"
        "import edgeclf.benchmarks.worker, edgeclf.commands.benchmark\n"
        "stages = ('edgeclf.trainer', 'edgeclf.exporter')\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras') or m.startswith(stages))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
