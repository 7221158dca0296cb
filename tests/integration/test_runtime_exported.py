"""The runtime's tests on files the real exporter makes from the real tiny run, in the main venv.

``make test`` has no ``$EDGECLF_FIXTURE_RUN``; here the tiny run is exported (every format) and the
runtime's unit tests that need model files (classifier, backends, CLI, camera, isolation) run against
it in a fresh pytest, exactly as ``make test-edge`` runs them against ``make fixture-models``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run

from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported_tiny_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.exporter import ExportConfig, export_run

    run = copy_run(tiny_run, tmp_path_factory.mktemp("runtime-export") / "run")
    # The formats that exercise every runtime path (float and quantised TFLite, ONNX Runtime); the
    # exporter's own tests cover every format, and `make test-edge` runs these tests on all of them.
    formats = ("tflite-fp32", "tflite-int8", "onnx-fp32")
    export_run(run, ExportConfig(formats=formats), log=lambda _line: None)
    return run


def test_runtime_unit_tests_pass_on_a_fresh_export(exported_tiny_run: Path) -> None:
    env = dict(os.environ, EDGECLF_FIXTURE_RUN=str(exported_tiny_run))
    tests = sorted(str(p) for p in (REPO / "tests" / "unit").glob("test_runtime_*.py"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = "\n".join(done.stdout.splitlines()[-30:])
    assert done.returncode == 0, tail
    assert "EDGECLF_FIXTURE_RUN is not set" not in done.stdout, tail
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    assert passed >= 50, tail


def test_softmax_run_files_label_every_class(tiny_run_softmax: Path, tmp_path: Path) -> None:
    """The three-class (softmax) path: a copied file alone gives one probability per label."""
    from edgeclf.exporter import ExportConfig, export_run

    run = copy_run(tiny_run_softmax, tmp_path / "run")
    export_run(run, ExportConfig(formats=("tflite-int8",)), log=lambda _line: None)
    manifest = Manifest.load(run)
    alone = tmp_path / "alone.tflite"
    alone.write_bytes((run / manifest.artifact("tflite-int8").file).read_bytes())
    test_images = sorted((Path(manifest.data["root"]) / "test").rglob("*.jpg"))
    with Classifier.from_file(alone) as clf, Classifier.from_run(run, format="tflite-int8") as reference:
        assert clf.labels == manifest.labels and len(clf.labels) == 3
        predictions = clf.classify(test_images[0], top_k=3)
        assert [p.label for p in predictions] != [] and len(predictions) == 3
        assert sum(p.score for p in predictions) == pytest.approx(1.0, abs=0.02)  # int8 softmax: ~1
        assert predictions == reference.classify(test_images[0], top_k=3)
