"""The emulated-Pi check's own logic (pi/check.py, pi/emulator.py), without qemu: seconds, no TensorFlow.

The check itself runs in ``make pi-check``; these tests pin down how it *judges*: a crash, a load
failure or a numeric difference must fail it, a file the exporter marked incompatible must be refused.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
from pathlib import Path

import pytest

from edgeclf.runtime.manifest import Artifact, TensorInfo

PI_DIR = Path(__file__).resolve().parents[2] / "pi"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(PI_DIR))
    spec = importlib.util.spec_from_file_location(name, PI_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


emulator = _load("emulator")
check = _load("check")


def _artifact(fmt: str = "tflite-fp32", precision: str = "fp32", compatibility=None) -> Artifact:
    tensor = TensorInfo("x", "uint8", (1, 32, 32, 3))
    return Artifact(
        fmt, precision, f"model_{fmt}.tflite", 1, "0" * 64, "litert", (tensor,), (tensor,),
        compatibility=compatibility or {},
    )  # fmt: skip


def _probe(scores, raw=None, dtype="float32") -> check.Outcome:
    raw = raw if raw is not None else scores
    record = {"backend": "litert", "dtype": dtype, "raw": raw, "raw_single": raw, "scores": scores}
    return check.Outcome(check.Ended.RAN, "", 1.0, json.dumps(record))


# -- reading a process's end ----------------------------------------------------------------------


def test_a_signal_is_a_crash_named_by_its_signal():
    outcome = check.classify_exit(-signal.SIGSEGV, "", "Fatal Python error: Segmentation fault", 1.0)
    assert outcome.status is check.Ended.CRASHED
    assert "SIGSEGV" in outcome.message
    assert not outcome.ok


def test_one_error_line_with_exit_1_is_a_refusal_with_that_line():
    outcome = check.classify_exit(
        1, "", "some log\nerror: model.tflite: the exporter found this file incompatible\n", 1
    )
    assert outcome.status is check.Ended.REFUSED
    assert outcome.message == "model.tflite: the exporter found this file incompatible"


def test_a_traceback_is_a_failure_even_with_an_error_line():
    stderr = "error: x\nTraceback (most recent call last):\n  File ...\nValueError: boom\n"
    outcome = check.classify_exit(1, "", stderr, 1.0)
    assert outcome.status is check.Ended.FAILED
    assert "ValueError: boom" in outcome.message


def test_exit_zero_is_ran():
    assert check.classify_exit(0, "{}", "", 1.0).ok


# -- comparing -------------------------------------------------------------------------------------


def test_float_comparison_allows_1e_5_and_not_more():
    x86 = {"a.jpg": [0.25, 0.75]}
    assert check.compare({"a.jpg": [0.25 + 9e-6, 0.75 - 9e-6]}, x86, exact=False)[0]
    match, worst, _ = check.compare({"a.jpg": [0.25 + 2e-5, 0.75]}, x86, exact=False)
    assert not match
    assert worst == pytest.approx(2e-5)


def test_int8_comparison_is_exact():
    x86 = {"a.jpg": [128.0]}
    assert check.compare({"a.jpg": [128.0]}, x86, exact=True)[0]
    assert not check.compare({"a.jpg": [129.0]}, x86, exact=True)[0]


def test_different_or_missing_files_do_not_match():
    assert not check.compare({"a.jpg": [1.0]}, {"b.jpg": [1.0]}, exact=False)[0]
    assert not check.compare({}, {}, exact=False)[0]


def test_cli_json_lines_become_scores_in_label_order():
    stdout = (
        "model: ignored header\n"
        + json.dumps(
            {"file": "/x/a.jpg", "predictions": [{"label": "cars", "score": 0.9}, {"label": "bikes", "score": 0.1}]}
        )
        + "\n"
    )
    assert check.parse_scores(stdout, ("bikes", "cars")) == {"a.jpg": [0.1, 0.9]}


# -- judging one file on one backend ----------------------------------------------------------------


def test_matching_float_file_passes():
    passed, summary, _ = check.judge(_artifact(), None, _probe({"a": [0.3]}), _probe({"a": [0.3 + 1e-7]}))
    assert passed, summary


def test_dynamic_range_file_may_differ_by_the_measured_arm_rounding_and_not_more():
    art = _artifact("tflite-dynamic", "dynamic")
    near = check.judge(art, None, _probe({"a": [0.3 + 1.8e-3]}), _probe({"a": [0.3]}))
    assert near[0], near[1]
    far = check.judge(art, None, _probe({"a": [0.3 + 3e-3]}), _probe({"a": [0.3]}))
    assert not far[0] and "MISMATCH" in far[1]
    # A float file is still held to 1e-5.
    assert not check.judge(_artifact(), None, _probe({"a": [0.3 + 1.8e-3]}), _probe({"a": [0.3]}))[0]


def test_int8_file_must_be_identical_even_in_float_scores():
    art = _artifact("tflite-int8", "int8")
    pi = _probe({"a": [0.5]}, raw={"a": [128]}, dtype="uint8")
    x86 = _probe({"a": [0.5]}, raw={"a": [127]}, dtype="uint8")
    passed, summary, _ = check.judge(art, None, pi, x86)
    assert not passed
    assert "MISMATCH" in summary


def test_unmarked_file_that_crashes_on_the_pi_fails():
    crashed = check.classify_exit(-signal.SIGSEGV, "", "", 1.0)
    passed, summary, detail = check.judge(_artifact("tflite-int8", "int8"), None, crashed, _probe({"a": [1.0]}))
    assert not passed
    assert "CRASH" in summary and "SIGSEGV" in detail


def test_unmarked_file_that_does_not_load_fails():
    refused = check.classify_exit(1, "", "error: m.tflite: tflite-runtime cannot load this model (op version 12)", 1)
    passed, summary, _ = check.judge(_artifact(), None, refused, _probe({"a": [1.0]}))
    assert not passed
    assert "does not load" in summary


def test_marked_file_must_be_refused_not_run():
    marked = "tflite-runtime==2.14: FULLY_CONNECTED v12"
    refusal = check.classify_exit(1, "", "error: m.tflite: the exporter found this file incompatible with x", 1)
    assert check.judge(_artifact(), marked, refusal, refusal)[0]
    passed, summary, _ = check.judge(_artifact(), marked, _probe({"a": [1.0]}), _probe({"a": [1.0]}))
    assert not passed
    assert "NOT refused" in summary


def test_marked_file_that_crashes_instead_of_being_refused_fails():
    crashed = check.classify_exit(-signal.SIGSEGV, "", "", 1.0)
    assert not check.judge(_artifact(), "tflite-runtime==2.14: crash", crashed, crashed)[0]


def test_compatibility_table_shows_each_outcome():
    verdicts = [
        {"flavour": "f", "backend": "litert", "format": "tflite-fp32", "marked": None, "passed": True, "summary": "ok"},
        {"flavour": "f", "backend": "litert", "format": "tflite-int8", "marked": None, "passed": False,
         "summary": "CRASH: killed by SIGSEGV"},
        {"flavour": "f", "backend": "litert", "format": "tflite-dynamic", "marked": "x", "passed": True,
         "summary": "refused", "raw": {"verdict": "confirmed: crashes"}},
    ]  # fmt: skip
    report = {"board": "Pi", "cpu": "cortex-a72", "verdicts": verdicts, "versions": {"f": {"ai-edge-litert": "2.3.0"}}}
    arts = tuple(_artifact(f) for f in ("tflite-fp32", "tflite-int8", "tflite-dynamic"))
    manifest = type("M", (), {"artifacts": arts})()
    table = check.markdown_table(report, manifest)
    row = next(line for line in table.splitlines() if line.startswith("| ai-edge-litert"))
    assert row.split(" | ")[3:] == ["✓", "✗ CRASH: killed by SIGSEGV", "refused (confirmed: crashes) |"]


def test_files_of_another_run_get_their_own_columns_after_the_runs_own():
    verdicts = [
        {"flavour": "f", "backend": "litert", "format": "tflite-int8", "marked": None, "passed": True, "summary": "ok"},
        {"flavour": "f", "backend": "litert", "format": "tflite-int8 (pretrained)", "marked": None, "passed": False,
         "summary": "differs"},
    ]  # fmt: skip
    report = {"board": "Pi", "cpu": "cortex-a72", "verdicts": verdicts, "versions": {"f": {"ai-edge-litert": "2.3.0"}}}
    manifest = type("M", (), {"artifacts": (_artifact("tflite-int8"),)})()
    table = check.markdown_table(report, manifest).splitlines()
    head = next(line for line in table if line.startswith("| runtime"))
    assert head.split(" | ")[3:] == ["tflite-int8", "tflite-int8 (pretrained) |"]
    row = next(line for line in table if line.startswith("| ai-edge-litert"))
    assert row.split(" | ")[3:] == ["✓", "✗ differs |"]


def test_pretrained_runs_to_check_come_from_the_environment(monkeypatch):
    monkeypatch.setattr(check, "check", lambda options: options)
    assert check.main(["--extra-run", "a", "--extra-run", "b"]).extra_run == [*check.DEFAULT_EXTRA_RUNS, "a", "b"]


# -- building the emulated Pi ------------------------------------------------------------------------


def test_platform_tags_reach_tflite_runtimes_manylinux_2_34():
    tags = emulator.platform_tags("aarch64")
    assert "manylinux_2_34_aarch64" in tags and "manylinux2014_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags  # newer than bookworm's glibc 2.36


def test_numpy1_flavour_replaces_the_numpy_pin_and_frees_ml_dtypes():
    text = emulator.constraints_for(emulator.FLAVOURS["tflite-runtime"])
    pins = [line for line in text.splitlines() if line.lower().startswith(("numpy", "ml_dtypes", "ml-dtypes"))]
    assert pins == [emulator.NUMPY1]
    default = emulator.constraints_for(emulator.FLAVOURS["edge"])
    assert "numpy==2." in default


@pytest.mark.parametrize(("cpu", "part"), [("cortex-a72", "0xd08"), ("cortex-a76", "0xd0b")])
def test_cpuinfo_describes_the_chosen_pi_core(tmp_path, cpu, part):
    (tmp_path / "proc").mkdir()
    emulator.write_cpuinfo(tmp_path, emulator.CPUS[cpu])
    text = (tmp_path / "proc" / "cpuinfo").read_text()
    assert f"CPU part\t: {part}" in text
    assert "CPU implementer\t: 0x41" in text  # ARM
    assert "GenuineIntel" not in text and "AuthenticAMD" not in text


def test_pi_cpu_refuses_qemus_max(monkeypatch):
    monkeypatch.setenv("PI_CPU", "max")
    with pytest.raises(emulator.EmulatorError, match="never 'max'"):
        emulator.selected_cpu()


def test_launcher_names_the_core_and_makes_itself_sys_executable(tmp_path, monkeypatch):
    monkeypatch.setattr(emulator, "CACHE", tmp_path)
    launcher = emulator.write_launcher(tmp_path / "sysroot", emulator.CPUS["cortex-a76"])
    text = launcher.read_text()
    assert "-cpu cortex-a76" in text
    assert '-0 "$0"' in text  # the guest's sys.executable is this script, so its subprocesses are emulated too
    assert launcher.stat().st_mode & 0o111


def test_a_run_without_exported_models_is_one_error_line_from_main_not_a_system_exit(tmp_path, capsys):
    from edgeclf.runtime.manifest import InputSpec, Manifest

    Manifest(("cars", "bikes"), InputSpec(8, 8), "softmax", "test").save(tmp_path)
    assert check.main(["--run", str(tmp_path), "--images", str(tmp_path), "--tests"]) == 1
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path}: no exported models (run `make fixture-models` or `edgeclf export`)\n"
    )
