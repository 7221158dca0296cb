"""Child Pythons that import this checkout: the environment that puts it first on ``sys.path``.

The doctor's probes, the exporter's tflite-runtime check, and the benchmarks' workers run Python
in a subprocess (another venv, a fresh interpreter); each must import *this* checkout's packages,
not an installed copy or none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CHECKOUT = (
    Path(__file__).resolve().parents[2]
)  # the folder holding edgeclf/runtime/, edgeclf/trainer/, edgeclf/exporter/…


def child_env(base: Mapping[str, str] | None = None, *, quiet_tensorflow: bool = False) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with :data:`CHECKOUT` first on ``PYTHONPATH``.

    Args:
        base: the environment to start from.
        quiet_tensorflow: also set ``TF_CPP_MIN_LOG_LEVEL=2`` unless already set, so a child that
            imports TensorFlow does not fill its stderr log with C++ start-up lines.
    """
    env = dict(os.environ if base is None else base)
    paths = [str(CHECKOUT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    if quiet_tensorflow:
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
