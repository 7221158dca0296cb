"""``edgeclf doctor RUN`` loads every exported file in every installed interpreter, for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import make_dense_run, tflite_runtime_python

from edgeclf.exporter import ExportConfig, export_run
from edgeclf.runtime.doctor import System, run_doctor

FORMATS = ("tflite-fp32", "tflite-dynamic", "onnx-fp32")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    # hidden=None: the dynamic-range file gets a per-channel FULLY_CONNECTED v12, which tflite-runtime 2.14 lacks.
    run = make_dense_run(tiny_run, tmp_path_factory.mktemp("doctor-run"), hidden=None)
    config = ExportConfig(formats=FORMATS, strict=False)
    export_run(run, config, log=lambda line: None)
    return run


def _models(findings):
    return {(f.data.get("file"), f.data.get("backend")): f for f in findings if f.check == "models" and f.data}


def test_every_file_runs_in_this_pythons_interpreters(exported, tmp_path):
    system = System(root=tmp_path, python=sys.executable, vcgencmd=None, disk_path=exported)
    models = _models(run_doctor(system, exported))
    assert models[("model_tflite-fp32.tflite", "litert")].status == "ok"
    assert models[("model_tflite-dynamic.tflite", "litert")].status == "ok"
    assert models[("model_onnx-fp32.onnx", "onnxruntime")].status == "ok"


def test_tflite_runtime_214_refuses_the_dynamic_range_file_and_the_fix_says_re_export(exported, tmp_path):
    python = tflite_runtime_python()
    if python is None:
        pytest.skip("no tflite-runtime 2.14 venv (.venv-tflite214 or $EDGECLF_TFLITE_RUNTIME_PYTHON)")
    system = System(root=tmp_path, python=str(python), vcgencmd=None, disk_path=exported)
    findings = run_doctor(system, exported)
    models = _models(findings)
    assert models[("model_tflite-fp32.tflite", "tflite-runtime")].status == "ok"
    refused = models[("model_tflite-dynamic.tflite", "tflite-runtime")]
    assert refused.status == "fail" and "FULLY_CONNECTED" in refused.message
    assert "--target tflite-runtime" in refused.fix
    onnx = [f for f in findings if f.check == "models" and "model_onnx-fp32.onnx" in f.message]
    assert onnx and onnx[0].status == "warn"  # that venv has no onnxruntime
