"""``edgeclf doctor`` inside the emulated Raspberry Pi (Debian 12 arm64 under qemu, ``pi/emulator.py``).

Slow: builds the emulated Pi on first use and runs qemu. The file is the one that really segfaults
tflite-runtime 2.14 on aarch64 (see ``test_pi_check_crash.py``); the doctor's load probe runs in a
subprocess, so the crash becomes a finding instead of killing the doctor.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.crashing_run import crashing_run

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DOCTOR = (
    "import json, sys; from edgeclf.runtime.doctor import run_doctor; "
    "print(json.dumps([f.to_dict() for f in run_doctor(run_dir=sys.argv[1])]))"
)


def _doctor_on_pi(flavour: str, run: Path) -> list[dict]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "pi" / "emulator.py"), "run", flavour, "--", "-c", DOCTOR, str(run)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_doctor_on_the_pi_reports_the_tflite_runtime_crash_as_a_failure(tmp_path):
    run = crashing_run(tmp_path / "run", compatibility={})
    findings = _doctor_on_pi("tflite-runtime", run)
    platform = next(f for f in findings if f["check"] == "python-os")
    assert "aarch64" in platform["message"]
    model = next(f for f in findings if f["check"] == "models" and f["data"].get("backend") == "tflite-runtime")
    assert model["status"] == "fail" and "crashed with signal 11" in model["message"]
    assert "litert" in model["fix"]


def test_doctor_on_the_pi_loads_the_same_file_in_ai_edge_litert(tmp_path):
    run = crashing_run(tmp_path / "run", compatibility={})
    findings = _doctor_on_pi("edge", run)
    model = next(f for f in findings if f["check"] == "models" and f["data"].get("backend") == "litert")
    assert model["status"] == "ok", model
