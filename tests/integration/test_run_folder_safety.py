"""A run folder has one writer at a time, and a failed or killed command never traps the next one.

Real training and real exports on the tiny generated data set; no stand-ins.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

from helpers.export import REPO, copy_run

from edgeclf.exporter import ExportConfig, export_run
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.runlock import RunBusyError, run_lock
from edgeclf.trainer.train import TrainConfig, train

QUIET = {"log": lambda _line: None}


def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "edgeclf.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_two_exports_of_one_run_at_once_lose_nothing(tiny_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    procs = {fmt: _cli("export", str(run), "-f", fmt) for fmt in ("tflite-fp32", "onnx-fp32")}
    outcomes = {fmt: (p.wait(timeout=600), p.stderr.read()) for fmt, p in procs.items()}
    listed = {a.format: a.file for a in Manifest.load(run).artifacts}
    on_disk = sorted(p.name for p in run.iterdir() if p.suffix in (".tflite", ".onnx"))
    for fmt, (code, stderr) in outcomes.items():
        if code == 0:
            assert fmt in listed, f"{fmt} exited 0 but the manifest lists only {sorted(listed)}"
        else:  # refused up front, in one line, naming why
            errors = [line for line in stderr.splitlines() if line.startswith("error:")]
            assert errors and "another edgeclf process is writing this run folder" in errors[-1], stderr
            assert "Traceback" not in stderr
    assert sorted(listed.values()) == on_disk  # no validated file sits on disk unlisted
    assert any(code == 0 for code, _ in outcomes.values())


def test_export_is_refused_up_front_while_another_process_writes_the_run(tiny_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    before = (run / "manifest.json").read_bytes()
    with run_lock(run, "train"), pytest.raises(RunBusyError, match=r"another edgeclf process .*\(train pid \d+\)"):
        export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)
    assert (run / "manifest.json").read_bytes() == before
    assert not list(run.glob("*.tflite"))


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(tiny_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    stale = run / ".export-k1ll3d"
    (stale / "work").mkdir(parents=True)
    (stale / "model_tflite-fp32.tflite").write_bytes(b"half a file")
    report = export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)
    assert report.ok
    assert not stale.exists()
    assert not [p.name for p in run.iterdir() if p.name.startswith(".export-")]


def test_a_full_disk_during_export_is_one_line_and_leaves_the_manifest_valid(tiny_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_run, tmp_path / "run")
    # RLIMIT_FSIZE makes any write past 64 kB fail with EFBIG, as a full disk fails with ENOSPC.
    # The ONNX file of the tiny model (~0.9 MB) is converted in memory, so it is its write that fails;
    # the manifest and labels are smaller.
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))\n"
        "from edgeclf.cli import main\n"
        "sys.argv = ['edgeclf', 'export', sys.argv[1], '-f', 'onnx-fp32']\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(run)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "export stopped, cannot write" in last
    assert Manifest.load(run).artifacts == ()
    assert not list(run.glob("*.onnx")) and not list(run.glob(".export-*"))


# -- train ----------------------------------------------------------------------------------------


def _config(data: Path, out: Path, **overrides) -> TrainConfig:
    fields = dict(data=str(data), out=str(out), image_size=16, epochs=1, batch_size=8, verbose=0)
    fields.update(overrides)
    return TrainConfig(**fields)


@pytest.fixture(scope="module")
def data(tiny_run: Path) -> Path:
    return Path(Manifest.load(tiny_run).data["root"])


def test_train_into_a_folder_another_process_writes_is_refused_up_front(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    with run_lock(out, "train"), pytest.raises(RunBusyError, match="another edgeclf process"):
        train(_config(data, out))
    assert sorted(p.name for p in out.iterdir()) == [".edgeclf.lock"]


@pytest.mark.parametrize("case", ["existing file", "under a file"])
def test_train_out_that_cannot_be_a_folder_is_one_error(data: Path, tmp_path: Path, case: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    out = blocker if case == "existing file" else blocker / "run"
    with pytest.raises(EdgeclfError, match=r"--out .*(not a folder|cannot create the run folder)"):
        train(_config(data, out))
    assert blocker.read_text() == "a file"


def test_a_training_that_failed_before_its_first_epoch_does_not_trap_the_rerun(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(EdgeclfError, match="weights file not found"):
        train(_config(data, out, weights=str(tmp_path / "missing.weights.h5")))
    assert not out.exists()  # nothing of value was made, so nothing is left
    with pytest.raises(EdgeclfError, match=r"does not exist .* run the same command without --resume"):
        train(_config(data, out, resume=True, weights="none"))


@pytest.mark.slow  # trains for real (one epoch)
def test_a_run_killed_before_its_first_epoch_is_resumed_with_the_corrected_flags(data: Path, tmp_path: Path) -> None:
    # What a run killed before its first epoch leaves (kill -9: no cleanup ran).
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_config.json").write_text(
        json.dumps(_config(data, out, weights=str(tmp_path / "missing.weights.h5")).to_dict())
    )
    (out / ".edgeclf.lock").write_text("train pid 1\n")
    finished = train(_config(data, out, resume=True, weights="none"))
    manifest = Manifest.load(finished)
    assert manifest.metrics["epochs_run"] == 1
    assert manifest.training["weights"] in (None, "none")


def test_train_refuses_an_absurd_image_size_before_any_work(data: Path, tmp_path: Path) -> None:
    with pytest.raises(EdgeclfError, match=r"--image-size 100000 is above 1024: one image alone would take 30,000 MB"):
        train(_config(data, tmp_path / "big", image_size=100_000))
    assert not (tmp_path / "big").exists()


def test_val_fraction_zero_says_what_is_wrong(data: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for label in ("cars", "elephants"):
        (flat / label).mkdir(parents=True)
        for path in sorted((data / "train" / label).iterdir()):
            (flat / label / path.name).write_bytes(path.read_bytes())
    with pytest.raises(EdgeclfError, match=r"validation split is empty \(--val-fraction 0\?\)") as caught:
        train(_config(flat, tmp_path / "run", fractions=(1.0, 0.0, 0.0)))
    assert "skipped" not in str(caught.value)
    assert not (tmp_path / "run").exists()


# -- evaluate -------------------------------------------------------------------------------------


def test_evaluate_a_corrupt_model_says_so(tiny_run: Path, data: Path, tmp_path: Path) -> None:
    from edgeclf.trainer.evaluate import evaluate

    run = copy_run(tiny_run, tmp_path / "run")
    (run / "model.keras").write_bytes((run / "model.keras").read_bytes()[:1000])
    with pytest.raises(EdgeclfError, match=r"model\.keras: not a Keras archive") as caught:
        evaluate(run, data)
    assert "not found" not in str(caught.value).lower()
    with pytest.raises(EdgeclfError, match=r"model\.keras: not a Keras archive"):
        export_run(run, ExportConfig(formats=("tflite-fp32",)), **QUIET)


@pytest.mark.parametrize("case", ["existing file", "under a file"])
def test_evaluate_out_that_cannot_be_written_is_refused_up_front(
    tiny_run: Path, data: Path, tmp_path: Path, case: str
) -> None:
    from edgeclf.trainer.evaluate import evaluate

    blocker = tmp_path / "report.json"
    blocker.write_text("{}")
    out = blocker if case == "existing file" else blocker / "evaluation"
    with pytest.raises(EdgeclfError, match=r"--out .*(not a folder|cannot write there)"):
        evaluate(tiny_run, data, out_dir=out)
    assert blocker.read_text() == "{}"
