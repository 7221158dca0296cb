"""``edgeclf verify``: the probes recorded at export catch a changed model even when its sha256 was updated.

Uses the exported fixture models (``$EDGECLF_FIXTURE_RUN``, whose scores follow the picture, so
altered weights move them; on the serve run's 60-epoch model of the tinted data, halving its largest
weight left the probes within tolerance: verify still passed) and whichever interpreter is installed (ai-edge-litert,
or tflite-runtime 2.14 in its own venv: the exporter recorded a reference for each).
"""

import dataclasses
import importlib.util
import json
import shutil

import numpy as np
import pytest

from edgeclf.runtime.backends import get_backend
from edgeclf.runtime.classifier import Classifier, ClassifierOptions, compatibility_problem
from edgeclf.runtime.errors import SelfCheckError
from edgeclf.runtime.fileio import sha256_file
from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.probes import PROBES_KEY, check_probes, load_probes, verify_model

TFLITE = [b for b in ("litert", "tflite-runtime") if get_backend(b).available()]
pytestmark = pytest.mark.skipif(not TFLITE, reason="no TFLite interpreter installed")


def _options(fmt):
    return ClassifierOptions(format=fmt, backend=TFLITE[0], threads=1)


def test_verify_passes_on_the_exported_files(fixture_run):
    tflite = [a for a in Manifest.load(fixture_run).artifacts if a.file.endswith(".tflite")]
    assert tflite, "the fixture run has no .tflite file"
    # A file the exporter marked unloadable here (tflite-dynamic's FULLY_CONNECTED v12 in tflite-runtime
    # 2.14) is refused before any probe runs; test_runtime_classifier checks that refusal.
    for artifact in [a for a in tflite if not compatibility_problem(a, TFLITE[0])]:
        report = verify_model(fixture_run, _options(artifact.format))
        assert report.ok and report.probes >= 2 and report.mismatched == 0, report.line()
        assert report.integer == (artifact.outputs[0].dtype in ("uint8", "int8"))
        assert report.max_abs_diff <= report.tolerance


def _largest_weight(path, backend):
    """The bytes of the model's largest constant tensor, found once in the file, and its array."""
    with Classifier.from_file(path, backend=backend) as clf:
        interpreter = clf.session._interpreter
        data = path.read_bytes()
        best = None
        for detail in interpreter.get_tensor_details():
            try:
                array = np.array(interpreter.get_tensor(detail["index"]))
            except ValueError:
                continue
            raw = array.tobytes()
            usable = array.size >= 16 and np.unique(array).size > 4 and data.count(raw) == 1
            if usable and (best is None or array.nbytes > best.nbytes):
                best = array
    assert best is not None, "no constant tensor found in the file"
    return best


def _tamper(run, fmt, backend):
    """Change the weights of ``fmt``'s file in place and write its new sha256 into the manifest."""
    manifest = Manifest.load(run)
    artifact = manifest.artifact(fmt)
    path = run / artifact.file
    weights = _largest_weight(path, backend)
    if weights.dtype.kind == "f":
        changed = (weights * 1.5).astype(weights.dtype)
    else:
        info = np.iinfo(weights.dtype)
        changed = np.clip(weights.astype(np.int64) // 2, info.min, info.max).astype(weights.dtype)
    data = path.read_bytes()
    path.write_bytes(data.replace(weights.tobytes(), changed.tobytes()))
    updated = dataclasses.replace(artifact, sha256=sha256_file(path))
    manifest.with_artifact(updated).save(run)


@pytest.mark.parametrize("fmt", ["tflite-int8", "tflite-fp32"])
def test_verify_fails_on_altered_weights_whose_sha256_was_updated(fixture_run, tmp_path, fmt):
    run = tmp_path / "run"
    shutil.copytree(fixture_run, run, ignore=shutil.ignore_patterns("*.keras", "checkpoints"))
    _tamper(run, fmt, TFLITE[0])
    with Classifier.from_run(run, options=_options(fmt)) as clf:  # the sha256 check passes now
        report = check_probes(clf, load_probes(clf))
    assert not report.ok and report.mismatched >= 1
    assert "FAILED" in report.line()


def test_the_command_exits_1_with_one_line_and_0_when_good(fixture_run, tmp_path):
    pytest.importorskip("typer", reason="the command line needs typer")
    from typer.testing import CliRunner

    from edgeclf.cli import app

    good = CliRunner().invoke(app, ["verify", str(fixture_run), "--format", "tflite-int8", "--backend", TFLITE[0]])
    assert good.exit_code == 0 and ": ok; " in good.stdout
    run = tmp_path / "run"
    shutil.copytree(fixture_run, run, ignore=shutil.ignore_patterns("*.keras", "checkpoints"))
    _tamper(run, "tflite-int8", TFLITE[0])
    bad = CliRunner().invoke(app, ["verify", str(run), "--format", "tflite-int8", "--backend", TFLITE[0], "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["ok"] is False
    assert bad.stderr.startswith("error: ") and "FAILED" in bad.stderr and len(bad.stderr.splitlines()) == 1
    if importlib.util.find_spec("uvicorn") is not None:
        refused = CliRunner().invoke(app, ["serve", str(run), "--format", "tflite-int8", "--backend", TFLITE[0]])
        assert refused.exit_code == 1 and "FAILED" in refused.stderr  # serve checks before it listens


def test_a_file_without_probes_or_without_a_reference_for_this_runtime_is_refused(fixture_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fixture_run, run, ignore=shutil.ignore_patterns("*.keras", "checkpoints"))
    with Classifier.from_run(run, options=_options("tflite-int8")) as clf:
        probes = load_probes(clf)
        other = {**probes, "outputs": {"onnxruntime": probes["outputs"][clf.backend_name]}}
        with pytest.raises(SelfCheckError, match=f"no reference outputs for {clf.backend_name}"):
            check_probes(clf, other)
        assert PROBES_KEY in clf.artifact.details
