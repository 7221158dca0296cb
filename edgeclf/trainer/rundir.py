"""The run folder's life cycle: create or resume, lock, discard when nothing was trained, link ``latest``.

A run folder is *finished* once it holds ``manifest.json`` (written last), *unfinished* once its
first epoch is recorded in ``checkpoints/history.json``; anything else a run leaves before that
(:data:`UNTRAINED_FILES`) is safe to throw away, so a run that fails early never traps the
corrected rerun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from edgeclf.runtime.errors import DatasetError, EdgeclfError
from edgeclf.runtime.manifest import MANIFEST_NAME, MODEL_NAME
from edgeclf.runtime.runlock import LOCK_NAME, run_lock
from edgeclf.trainer.config import TrainConfig
from edgeclf.trainer.history import HISTORY_NAME
from edgeclf.trainer.runlog import RunLog

CONFIG_NAME = "train_config.json"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
# What a run that never finished an epoch may have written (safe to discard).
UNTRAINED_FILES = (CONFIG_NAME, CHECKPOINTS, f".{MODEL_NAME}.partial")


@contextlib.contextmanager
def claimed_run_dir(config: TrainConfig) -> Iterator[tuple[TrainConfig, Path]]:
    """Create (or find, for ``--resume``) the run folder, lock it, and yield the config to run with.

    On resume the yielded config is the saved one (with this call's epochs, strategy and
    verbosity). If the block fails before any epoch finished, nothing of value was made: a folder
    this call created is removed, an existing one keeps everything but edgeclf's own files.

    Raises:
        EdgeclfError: nothing to resume, a finished or foreign folder, ``--out`` not creatable.
        DatasetError: a new run without ``--data``.
    """
    if config.resume:
        run_dir = Path(config.out) if config.out else find_unfinished_run(config)
        if not run_dir.is_dir():
            raise EdgeclfError(
                f"--resume: {run_dir} does not exist (a run that fails before its first epoch leaves nothing to "
                "resume); run the same command without --resume"
            )
    else:
        if not config.data:
            raise DatasetError("no data folder given; pass --data DIR (one subfolder of images per class)")
        run_dir = new_run_dir(config)
    created = claim_run_dir(run_dir)
    try:
        with run_lock(run_dir, "train"):
            if config.resume:
                config, run_dir = prepare_resume(dataclasses.replace(config, out=str(run_dir)))
            else:
                check_fresh(run_dir)
            yield config, run_dir
    except BaseException:
        if not has_trained_epoch(run_dir):
            # Nothing of value was made (no epoch finished): leave no folder that traps a corrected
            # rerun. A folder we did not create keeps everything but our own files.
            discard_untrained(run_dir, remove_folder=created)
        raise


def new_run_dir(config: TrainConfig) -> Path:
    """``--out`` if given, else a new ``<runs_dir>/<preset>-<YYYYmmdd-HHMMSS>[-N]`` that does not exist yet."""
    if config.out:
        return Path(config.out)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(config.runs_dir) / f"{config.preset}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def is_finished(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a manifest (written last by a finished run)."""
    return (run_dir / MANIFEST_NAME).exists()


def has_trained_epoch(run_dir: Path) -> bool:
    """True when at least one epoch of ``run_dir`` finished (or the run did)."""
    return (run_dir / CHECKPOINTS / HISTORY_NAME).exists() or is_finished(run_dir)


def find_unfinished_run(config: TrainConfig) -> Path:
    """The newest unfinished run in ``config.runs_dir``."""
    runs = Path(config.runs_dir)
    candidates = [
        p
        for p in (runs.iterdir() if runs.is_dir() else ())
        if p.is_dir() and not p.is_symlink() and (p / CONFIG_NAME).exists() and not is_finished(p)
    ]
    if not candidates:
        raise EdgeclfError(f"--resume: no unfinished run in {runs}/; pass --out RUNDIR of the run to continue")
    return max(candidates, key=lambda p: (p / CONFIG_NAME).stat().st_mtime)


def prepare_resume(config: TrainConfig) -> tuple[TrainConfig, Path]:
    """Return the saved config of the run to continue (with this call's epochs/strategy/verbosity)."""
    run_dir = Path(config.out) if config.out else find_unfinished_run(config)
    saved_file = run_dir / CONFIG_NAME
    if is_finished(run_dir):
        raise EdgeclfError(f"--resume: {run_dir} is already a finished run (it has {MANIFEST_NAME}); start a new run")
    if not saved_file.exists():
        raise EdgeclfError(f"--resume: {run_dir} has no {CONFIG_NAME}; it is not a run started by `edgeclf train`")
    try:
        saved = TrainConfig.from_dict(json.loads(saved_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        raise EdgeclfError(f"--resume: {saved_file} is unreadable ({error}); start a new run") from None
    if not has_trained_epoch(run_dir):
        # Nothing was trained yet (e.g. it failed on a bad --weights path): start it again, with
        # this call's corrected flags taking precedence over the saved ones.
        given = {
            name: getattr(config, name)
            for name in ("data", "epochs", "batch_size", "image_size", "learning_rate", "patience", "weights")
            if getattr(config, name) is not None
        }
        discard_untrained(run_dir, remove_folder=False)
        restarted = dataclasses.replace(
            saved, **given, out=str(run_dir), resume=False, verbose=config.verbose, workers=config.workers
        )
        return restarted, run_dir
    if config.data and saved.data and Path(config.data).resolve() != Path(saved.data).resolve():
        raise EdgeclfError(f"--resume: {run_dir} was trained on {saved.data}, not {config.data}; drop --data or fix it")
    if config.preset != saved.preset and config.preset != TrainConfig.__dataclass_fields__["preset"].default:
        raise EdgeclfError(f"--resume: {run_dir} uses preset {saved.preset!r}, not {config.preset!r}")
    merged = dataclasses.replace(
        saved,
        out=str(run_dir),
        resume=True,
        epochs=config.epochs if config.epochs is not None else saved.epochs,
        strategy=config.strategy,
        verbose=config.verbose,
        workers=config.workers,
    )
    return merged, run_dir


def claim_run_dir(run_dir: Path) -> bool:
    """Create the run folder (parents too); return True when this call created it.

    Raises:
        EdgeclfError: ``--out`` is a file, lies under a file, or cannot be created (read-only…).
    """
    if run_dir.is_dir():
        return False
    if run_dir.exists() or run_dir.is_symlink():
        raise EdgeclfError(f"--out {run_dir}: exists and is not a folder; pass a new folder name")
    try:
        run_dir.mkdir(parents=True)
    except FileExistsError:
        return False  # another process made it a moment ago; the lock decides who writes it
    except OSError as error:
        raise EdgeclfError(
            f"--out {run_dir}: cannot create the run folder ({error.strerror or error}); "
            "pass a folder in a writable place"
        ) from None
    return True


def check_fresh(run_dir: Path) -> None:
    """A new run may use an empty folder, or one left by a run that never finished an epoch."""
    if is_finished(run_dir):
        raise EdgeclfError(f"{run_dir} already holds a finished run; pass another --out")
    if has_trained_epoch(run_dir):
        raise EdgeclfError(f"{run_dir} holds an unfinished run; pass --resume to continue it, or another --out")
    leftovers = [p.name for p in run_dir.iterdir() if p.name not in (LOCK_NAME, *UNTRAINED_FILES)]
    if leftovers:
        raise EdgeclfError(
            f"{run_dir} already exists and holds files that are not edgeclf's ({', '.join(sorted(leftovers)[:3])}…); "
            "pass another --out"
        )
    discard_untrained(run_dir, remove_folder=False)


def discard_untrained(run_dir: Path, *, remove_folder: bool) -> None:
    """Remove what an untrained run wrote (or the whole folder, when this run created it)."""
    if remove_folder:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in UNTRAINED_FILES:
        target = run_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                target.unlink()


def update_latest(run_dir: Path, runs_dir: Path, log: RunLog) -> None:
    """Point ``runs_dir/latest`` at ``run_dir`` (atomically) when the run lives in ``runs_dir``."""
    if run_dir.resolve().parent != runs_dir.resolve():
        return
    link = runs_dir / LATEST
    tmp = runs_dir / f".{LATEST}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, link)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        log(f"warning: could not update {link} ({error})")
