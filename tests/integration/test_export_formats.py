"""Every registered export format, made from the real tiny runs and run with its real runtime.

Each run (sigmoid and softmax) is exported once per session; the checks are parametrised over the
format registry, so a newly registered format is tested by being registered.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from helpers.export import copy_run, make_dense_run, tflite_runtime_python

from edgeclf.exporter import ExportConfig, export_run, format_names, get_format
from edgeclf.exporter.export import REPORT_NAME
from edgeclf.runtime.backends import get_backend
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.dataset import load_samples, reopen_from_manifest
from edgeclf.runtime.embedded import read_embedded_manifest
from edgeclf.runtime.fileio import sha256_file
from edgeclf.runtime.manifest import Manifest

FORMATS = format_names()
RUNS = ("tiny_run", "tiny_run_softmax")


@pytest.fixture(scope="session")
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Both tiny runs exported to every format (once per session): ``{fixture name: (run_dir, report)}``."""
    out = {}
    for name in RUNS:
        run = copy_run(request.getfixturevalue(name), tmp_path_factory.mktemp(f"export-{name}"))
        config = ExportConfig(tflite_runtime_python=tflite_runtime_python())
        out[name] = (run, export_run(run, config, log=lambda _line: None))
    return out


@pytest.fixture(scope="session")
def keras_reference(exported: dict) -> dict:
    """Keras probabilities on each run's validation images, computed here, independently of the exporter."""
    import keras

    out = {}
    for name, (run, _report) in exported.items():
        manifest = Manifest.load(run)
        folder = reopen_from_manifest(dict(manifest.data), manifest.labels)
        images = load_samples(folder.split("validation"), manifest.input)
        model = keras.models.load_model(run / "model.keras", compile=False)
        raw = np.asarray(model(images.images, training=False), dtype=np.float64)
        probs = np.concatenate([1 - raw, raw], axis=1) if raw.shape[1] == 1 else raw
        out[name] = (images, probs)
    return out


@pytest.mark.parametrize("run_name", RUNS)
@pytest.mark.parametrize("format_name", FORMATS)
def test_every_format_is_written_validated_and_recorded(exported: dict, run_name: str, format_name: str) -> None:
    run, report = exported[run_name]
    result = next(r for r in report.results if r.format == format_name)
    assert result.status == "passed", (result.failures, result.message)
    fmt = get_format(format_name)
    path = run / fmt.file_name
    assert path.is_file()
    artifact = Manifest.load(run).artifact(format_name)
    assert artifact.file == path.name
    assert artifact.size_bytes == path.stat().st_size == result.size_bytes
    assert artifact.sha256 == sha256_file(path)
    assert artifact.precision == fmt.precision
    assert artifact.backend == fmt.backend
    assert artifact.status == "passed"
    assert artifact.validation["images"] == report.validation_count > 0
    assert artifact.validation["agreement"] >= fmt.bounds.min_agreement
    # The report on disk says the same as the returned one.
    on_disk = json.loads((run / REPORT_NAME).read_text())
    assert {r["format"]: r["status"] for r in on_disk["results"]}[format_name] == "passed"


@pytest.mark.parametrize("run_name", RUNS)
@pytest.mark.parametrize("format_name", FORMATS)
def test_real_runtime_matches_keras_within_bounds(
    exported: dict, keras_reference: dict, run_name: str, format_name: str
) -> None:
    run, _report = exported[run_name]
    images, keras_probs = keras_reference[run_name]
    fmt = get_format(format_name)
    with Classifier.from_run(run, format=format_name) as classifier:
        assert classifier.backend_name == fmt.backend
        scores = np.concatenate([classifier.scores(images.images[i : i + 1]) for i in range(len(images.images))])
    assert scores.shape == keras_probs.shape
    agreement = float(np.mean(scores.argmax(1) == keras_probs.argmax(1)))
    assert agreement >= fmt.bounds.min_agreement
    if fmt.bounds.max_abs_diff is not None:
        assert float(np.abs(scores - keras_probs).max()) <= fmt.bounds.max_abs_diff
    if fmt.bounds.max_accuracy_drop is not None:
        drop = float(np.mean(keras_probs.argmax(1) == images.labels) - np.mean(scores.argmax(1) == images.labels))
        assert drop * 100 <= fmt.bounds.max_accuracy_drop
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-2)


@pytest.mark.parametrize("format_name", FORMATS)
def test_tensors_and_quantisation_read_back_from_the_file(exported: dict, format_name: str) -> None:
    run, _report = exported["tiny_run"]
    artifact = Manifest.load(run).artifact(format_name)
    session = get_backend(artifact.backend).load(run / artifact.file)
    assert artifact.inputs == session.inputs
    assert artifact.outputs == session.outputs
    (inp,), out = artifact.inputs, artifact.outputs[0]
    assert inp.dtype == "uint8"
    assert inp.shape == (1, 32, 32, 3)  # static batch 1 by default
    if format_name == "tflite-int8":
        assert out.dtype == "uint8"
        assert out.scale is not None and 0 < out.scale < 1
        assert out.zero_point is not None and 0 <= out.zero_point <= 255
    else:
        assert out.dtype == "float32"
        assert out.scale is None and out.zero_point is None
    assert out.shape == (1, 1)


@pytest.mark.parametrize("format_name", FORMATS)
def test_each_file_carries_its_manifest(exported: dict, format_name: str) -> None:
    run, _report = exported["tiny_run_softmax"]
    manifest = Manifest.load(run)
    path = run / get_format(format_name).file_name
    embedded = read_embedded_manifest(path)
    assert embedded is not None
    assert embedded.labels == manifest.labels
    assert embedded.input == manifest.input
    assert embedded.output_activation == "softmax"
    # A single copied file is enough to classify.
    copy = run.parent / f"copied-{path.name}"
    copy.write_bytes(path.read_bytes())
    with Classifier.from_file(copy) as classifier:
        assert classifier.labels == manifest.labels
        assert classifier.scores(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 3)


@pytest.mark.parametrize("format_name", FORMATS)
def test_operator_versions_and_compatibility_are_recorded(exported: dict, format_name: str) -> None:
    run, report = exported["tiny_run"]
    artifact = Manifest.load(run).artifact(format_name)
    assert artifact.details["oldest_runtime"]
    if artifact.file.endswith(".tflite"):
        assert "CONV_2D" in artifact.op_versions or "DEPTHWISE_CONV_2D" in artifact.op_versions
        assert all(isinstance(v, int) and v >= 1 for v in artifact.op_versions.values())
        # A static batch of 1 keeps the shape arithmetic of a dynamic batch out of the graph (docs/stack.md).
        assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(artifact.op_versions)
        assert artifact.compatibility["litert"] == "ok"
        assert "tflite-runtime==2.14" in artifact.compatibility
    else:
        assert artifact.op_versions == {
            "ai.onnx": 17,
            **{k: v for k, v in artifact.op_versions.items() if k != "ai.onnx"},
        }
        assert artifact.compatibility == {"onnxruntime": "ok"}
        assert artifact.details["ir_version"] >= 7
    if format_name == "onnx-int8":
        # Min/max first; a later variant's method when min/max missed a bound (the variant says which).
        expected = {"default": "minmax", "percentile": "percentile", "entropy": "entropy"}
        fell_back = any("calibration failed" in warning for warning in report.warnings)
        kept = artifact.details["variant"]
        assert fell_back or artifact.details["calibration_method"] == expected.get(kept, "minmax")
        assert {"QuantizeLinear", "DequantizeLinear"} <= set(artifact.details["op_types"])
        assert "ConvInteger" not in artifact.details["op_types"]  # static QDQ, not dynamic quantisation


@pytest.mark.parametrize("run_name", RUNS)
@pytest.mark.parametrize("format_name", [n for n in FORMATS if n.startswith("tflite-")])
def test_tflite_runtime_verdict_matches_a_real_load(exported: dict, run_name: str, format_name: str) -> None:
    python = tflite_runtime_python()
    if python is None:
        pytest.skip("no tflite-runtime 2.14 Python (.venv-tflite214 or $EDGECLF_TFLITE_RUNTIME_PYTHON)")
    import subprocess

    from edgeclf.exporter.tflite import static_tflite_runtime_problems

    run, _report = exported[run_name]
    artifact = Manifest.load(run).artifact(format_name)
    check = next(r for r in artifact.runtimes if r.runtime == "tflite-runtime==2.14")
    script = (
        "import sys, numpy as np\n"
        "from tflite_runtime.interpreter import Interpreter\n"
        "it = Interpreter(sys.argv[1]); it.allocate_tensors(); d = it.get_input_details()[0]\n"
        "it.set_tensor(d['index'], np.zeros(d['shape'], d['dtype'])); it.invoke()\n"
    )
    done = subprocess.run([str(python), "-c", script, str(run / artifact.file)], capture_output=True, text=True)
    loads = done.returncode == 0
    # "ok" means it loads there AND stays within the parity bounds on every validation image.
    assert check.status == ("error" if not loads else check.status)
    assert (artifact.compatibility["tflite-runtime==2.14"] == "ok") == (loads and check.status == "passed")
    if loads:
        assert check.metrics["images"] == artifact.validation["images"]
        assert (not check.failures) == (check.status == "passed")
    # The static table (used when no tflite-runtime Python is at hand) agrees with a real load here.
    problems = [p for p in static_tflite_runtime_problems((run / artifact.file).read_bytes()) if "aarch64" not in p]
    assert (not problems) == loads, problems


def test_dynamic_batch_exports_a_resizable_batch(tiny_run: Path, tmp_path: Path) -> None:
    run = make_dense_run(tiny_run, tmp_path / "run")  # a model that converts fast
    report = export_run(
        run, ExportConfig(formats=("tflite-fp32", "onnx-fp32"), dynamic_batch=True), log=lambda _line: None
    )
    assert [r.status for r in report.results] == ["passed", "passed"]
    for name in ("tflite-fp32", "onnx-fp32"):
        artifact = Manifest.load(run).artifact(name)
        assert artifact.inputs[0].shape[0] == -1
        assert artifact.details["batch"] == "dynamic"
        with Classifier.from_run(run, format=name) as classifier:
            assert classifier.scores(np.zeros((5, 32, 32, 3), np.uint8)).shape == (5, 2)


@pytest.mark.parametrize("run_name", RUNS)
@pytest.mark.parametrize("format_name", FORMATS)
def test_each_file_carries_probes_that_verify_passes(exported: dict, run_name: str, format_name: str) -> None:
    from edgeclf.runtime.classifier import ClassifierOptions
    from edgeclf.runtime.embedded import read_embedded_payload
    from edgeclf.runtime.probes import verify_model

    run, _report = exported[run_name]
    artifact = Manifest.load(run).artifact(format_name)
    embedded = read_embedded_payload(run / artifact.file)["probes"]
    assert embedded == artifact.details["probes"]  # the file and the manifest carry the same probes
    report = verify_model(run, ClassifierOptions(format=format_name, threads=1))
    assert report.ok and report.probes >= 2, report.line()
    assert report.integer == (artifact.outputs[0].dtype in ("uint8", "int8"))
