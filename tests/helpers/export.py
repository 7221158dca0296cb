"""Shared pieces of the exporter's integration tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tflite_runtime_python() -> Path | None:
    """A Python with tflite-runtime 2.14 (``$EDGECLF_TFLITE_RUNTIME_PYTHON`` or ``.venv-tflite214``), if any."""
    value = os.environ.get("EDGECLF_TFLITE_RUNTIME_PYTHON")
    if value:
        return Path(value)
    local = REPO / ".venv-tflite214" / "bin" / "python"
    return local if local.is_file() else None


def copy_run(run: Path, target: Path) -> Path:
    """A private copy of a run folder (model, manifest, labels) so exports do not touch the shared fixture."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.keras", "manifest.json", "labels.txt"):
        shutil.copy2(run / name, target / name)
    return target


def listing(folder: Path) -> list[str]:
    """Every entry of a folder (hidden ones too), sorted: what a failed export must leave unchanged."""
    return sorted(p.name for p in folder.iterdir())
