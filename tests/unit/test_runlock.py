"""One writer per run folder: a second is refused at once, and a killed holder never leaves it locked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.runlock import RunBusyError, run_lock

REPO = Path(__file__).resolve().parents[2]

HOLD = (
    "import sys, time\n"
    "from edgeclf.runtime.runlock import run_lock\n"
    "with run_lock(sys.argv[1], 'export'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(60)\n"
)


def _holder(run: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    proc = _holder(tmp_path)
    try:
        busy = rf"another edgeclf process is writing .*\(export pid {proc.pid}\)"
        with pytest.raises(RunBusyError, match=busy), run_lock(tmp_path, "train"):
            pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # as kill -9: no cleanup runs in the holder
        proc.wait()
    with run_lock(tmp_path, "train") as lock_file:  # the kernel released the flock
        assert lock_file.read_text() == f"train pid {os.getpid()}\n"


def test_the_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    with run_lock(tmp_path, "export"), pytest.raises(RunBusyError), run_lock(tmp_path, "export"):
        pass
    with run_lock(tmp_path, "export"):  # released on exit
        pass


def test_a_missing_run_folder_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeclfError, match="cannot write into the run folder"), run_lock(tmp_path / "missing", "x"):
        pass
