"""A research script (``research/NAME.py``, not installed) loaded from its file.

By path, not by putting the checkout on ``sys.path``: that would shadow the installed package the
tests may be checking (the emulated Pi runs them against the built wheel).
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RESEARCH = Path(__file__).resolve().parents[2] / "research"


def research_script(name: str) -> ModuleType:
    """``research/<name>.py`` as a module (loaded once per session)."""
    key = f"research_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, RESEARCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
