"""The backend registry, and each backend on the exported fixture models (when EDGECLF_FIXTURE_RUN is set)."""

import numpy as np
import pytest

from edgeclf.runtime.backends import BACKENDS, backend_for, get_backend
from edgeclf.runtime.backends.tflite import TFLiteBackend
from edgeclf.runtime.classifier import compatibility_problem
from edgeclf.runtime.errors import BackendUnavailableError, EdgeclfError, InputShapeError, ModelLoadError
from edgeclf.runtime.manifest import Manifest


def test_registry_names_and_suffixes():
    assert list(BACKENDS) == ["litert", "tflite-runtime", "onnxruntime"]
    assert get_backend("litert").suffixes == (".tflite",)
    assert get_backend("onnxruntime").suffixes == (".onnx",)


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(EdgeclfError, match="unknown backend 'tensorrt'; known: litert, tflite-runtime, onnxruntime"):
        get_backend("tensorrt")


def test_unknown_suffix_is_refused():
    with pytest.raises(EdgeclfError, match=r"no backend runs \.pt"):
        backend_for("model.pt")


def test_missing_package_names_the_pip_command(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3")
    absent = TFLiteBackend(
        name="litert", module="edgeclf_no_such_package.interpreter", suffixes=(".tflite",), install="pip install x"
    )
    assert not absent.available()
    with pytest.raises(BackendUnavailableError, match="is not installed: pip install x"):
        absent.load(model)


def test_install_hints_name_the_extra_or_the_pinned_runtime():
    assert "edgeclf[edge]" in get_backend("litert").install
    assert "edgeclf[edge]" in get_backend("onnxruntime").install
    hint = get_backend("tflite-runtime").install
    assert "tflite-runtime==2.14.0" in hint and "numpy<2" in hint and "3.11" in hint


def test_backend_for_prefers_the_manifest_backend_when_installed():
    installed = [b for b in BACKENDS.values() if ".tflite" in b.suffixes and b.available()]
    if not installed:
        with pytest.raises(BackendUnavailableError, match=r"no interpreter for \.tflite files"):
            backend_for("m.tflite")
        return
    for backend in installed:
        assert backend_for("m.tflite", preferred=backend.name) is backend
    assert backend_for("m.tflite") is installed[0]  # litert first when both are there


def test_missing_model_file_is_a_load_error(tmp_path):
    backend = next((b for b in BACKENDS.values() if b.available()), None)
    if backend is None:
        pytest.skip("no interpreter installed in this venv")
    with pytest.raises(ModelLoadError, match="no such model file"):
        backend.load(tmp_path / f"absent{backend.suffixes[0]}")


def test_corrupt_model_file_is_a_load_error_not_a_crash(tmp_path):
    tried = 0
    for backend in BACKENDS.values():
        if not backend.available():
            continue
        path = tmp_path / f"corrupt{backend.suffixes[0]}"
        path.write_bytes(b"this is not a model" * 10)
        with pytest.raises(ModelLoadError, match=f"{backend.name} cannot load this model"):
            backend.load(path)
        tried += 1
    if not tried:
        pytest.skip("no interpreter installed in this venv")


def _sessions(run):
    manifest = Manifest.load(run)
    for artifact in manifest.artifacts:
        try:
            backend = backend_for(artifact.file, artifact.backend)
        except BackendUnavailableError:
            continue
        if compatibility_problem(artifact, backend.name):
            continue  # refused by the classifier with the exporter's reason; see test_runtime_classifier
        yield artifact, backend.load(run / artifact.file, threads=1)


def test_sessions_report_the_tensors_the_exporter_recorded(fixture_run):
    seen = 0
    for artifact, session in _sessions(fixture_run):
        assert session.inputs[0].dtype == artifact.inputs[0].dtype
        assert tuple(session.inputs[0].shape[1:]) == tuple(artifact.inputs[0].shape[1:])
        assert session.outputs[0].dtype == artifact.outputs[0].dtype
        assert session.outputs[0].scale == pytest.approx(artifact.outputs[0].scale)
        assert session.threads == 1
        seen += 1
    assert seen, "no artifact of the fixture run could be loaded here"


def test_run_handles_any_batch_size_and_matches_single_images(fixture_run):
    manifest = Manifest.load(fixture_run)
    rng = np.random.default_rng(0)
    for _, session in _sessions(fixture_run):
        spec = session.inputs[0]
        batch = rng.integers(0, 256, (3, *manifest.input.shape)).astype(np.uint8).astype(spec.dtype)
        together = session.run(batch)
        one_by_one = np.concatenate([session.run(batch[i : i + 1]) for i in range(3)])
        assert together.shape[0] == 3
        np.testing.assert_allclose(together.astype(np.float64), one_by_one.astype(np.float64), atol=1e-5)
        # set_input / invoke / get_output give the same result as run (what benchmarks time)
        session.set_input(batch[:1])
        session.invoke()
        np.testing.assert_array_equal(session.get_output(), one_by_one[:1])
        with pytest.raises(InputShapeError, match="dtype"):
            session.run(batch.astype(np.float64))
        with pytest.raises(InputShapeError, match="shape"):
            session.run(batch[:, :-1])
