"""``edgeclf benchmark`` on a real exported run: the table's numbers come from the runtime's own path.

Speed is never asserted (a shared machine); the values checked are the ones a bug would change:
which rows exist, their status and reference, accuracy recomputed independently through the
Classifier, sample counts, sizes, and the files written.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from typer.testing import CliRunner

from edgeclf.benchmarks import BenchmarkConfig, run_benchmark
from edgeclf.benchmarks.report import write_results
from edgeclf.benchmarks.runner import RowStatus, benchmark_samples
from edgeclf.exporter import ExportConfig, export_run
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.dataset import load_samples
from edgeclf.runtime.manifest import Manifest

FORMATS = ("tflite-fp32", "tflite-int8", "onnx-fp32")
QUICK = {"runs": 6, "e2e_runs": 3, "rounds": 2, "warmup": 1}


@pytest.fixture(scope="module")
def bench_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("bench") / "run"
    shutil.copytree(tiny_run, run)
    export_run(run, ExportConfig(formats=FORMATS, strict=False), log=lambda line: None)
    assert {a.format for a in Manifest.load(run).artifacts} == set(FORMATS)
    return run


def test_benchmark_table_with_keras_reference(bench_run: Path, tmp_path: Path) -> None:
    result = run_benchmark(BenchmarkConfig(run_dir=bench_run, out=tmp_path, **QUICK))
    assert [r.name for r in result.rows] == ["keras", *FORMATS]
    assert result.reference == "keras" and result.row("keras").reference
    manifest = Manifest.load(bench_run)
    samples, _ = benchmark_samples(manifest, None)
    images = load_samples(samples, manifest.input)
    assert result.images == len(images.images) > 0
    for row in result.rows:
        assert row.ran, row.status
        assert row.invoke is not None and row.invoke.n == QUICK["runs"]
        assert row.e2e is not None and row.e2e.n == QUICK["e2e_runs"]
        assert len(row.invoke.round_p50s) == QUICK["rounds"]
        assert row.load_ms > 0 and row.peak_rss_mb > 0
        if row.name == "keras":
            continue
        artifact = manifest.artifact(row.format)
        assert row.size_mb == pytest.approx(artifact.size_bytes / 1e6)
        assert row.backend == artifact.backend
        # The worker's accuracy is what the Classifier gives on the same images, recomputed here.
        with Classifier.from_run(bench_run, format=row.format) as clf:
            expected = float(np.mean(clf.scores(images.images).argmax(axis=1) == images.labels))
        assert row.accuracy == pytest.approx(expected)
        assert 0.0 <= row.agreement <= 1.0
    assert result.row("tflite-fp32").agreement == 1.0
    assert result.row("tflite-fp32").max_abs_diff <= 1e-4
    if result.flops:
        row = result.row("tflite-int8")
        assert row.gflops_per_s == pytest.approx(result.flops / (row.invoke.p50 / 1000.0) / 1e9)

    paths = write_results(result, tmp_path, plots=True)
    names = {p.name for p in paths}
    assert {
        "benchmark.md",
        "benchmark.csv",
        "benchmark.json",
        "accuracy_vs_latency.png",
        "size_per_format.png",
    } <= names
    data = json.loads((tmp_path / "benchmark.json").read_text())
    assert data["host"]["cpu"] and data["host"]["cores"] >= 1 and data["host"]["packages"]["numpy"]
    assert [r["name"] for r in data["rows"]] == ["keras", *FORMATS]
    rows = list(csv.DictReader((tmp_path / "benchmark.csv").open()))
    assert [r["name"] for r in rows] == ["keras", *FORMATS]
    markdown = (tmp_path / "benchmark.md").read_text()
    assert "| tflite-int8 | litert |" in markdown and "GFLOP/s" in markdown


def test_edge_only_reference_and_a_broken_file(bench_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(bench_run, run)
    (run / "model_onnx-fp32.onnx").write_bytes(b"not a model")
    result = run_benchmark(BenchmarkConfig(run_dir=run, out=tmp_path, reference="tflite-fp32", **QUICK))
    assert [r.name for r in result.rows] == list(FORMATS)
    assert result.reference == "tflite-fp32" and result.row("tflite-fp32").reference
    broken = result.row("onnx-fp32")
    assert broken.status is RowStatus.COULD_NOT_RUN and "sha256" in broken.reason and not broken.ran
    assert broken.invoke is None and broken.accuracy is None
    assert result.row("tflite-fp32").agreement == 1.0
    assert result.row("tflite-int8").invoke.n == QUICK["runs"]


def test_cli_json_and_exit_code(bench_run: Path, tmp_path: Path) -> None:
    from edgeclf.cli import app

    runner = CliRunner()
    args = ["benchmark", str(bench_run), "--formats", "tflite-fp32,tflite-int8", "--reference", "tflite-fp32"]
    args += ["--runs", "4", "--e2e-runs", "2", "--rounds", "2", "--warmup", "1", "--out", str(tmp_path), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["name"] for r in data["rows"]] == ["tflite-fp32", "tflite-int8"]
    assert data["rows"][1]["invoke_ms"]["n"] == 4
    missing = runner.invoke(app, ["benchmark", str(bench_run), "--formats", "onnx-int8", "--out", str(tmp_path)])
    assert missing.exit_code == 1
    assert "onnx-int8" in missing.output and "exported: " in missing.output
