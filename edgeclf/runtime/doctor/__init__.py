"""``edgeclf doctor``: what this device can run, and what to fix — one finding per line.

Runtime side only: the standard library, numpy and Pillow, plus probes that import an interpreter
or camera package in a *subprocess* (a NumPy ABI mismatch or a segfaulting interpreter becomes a
finding, not a crash of the doctor). Every system path is read under :attr:`System.root`, so tests
point it at a fake tree with pieces missing.
"""

from __future__ import annotations

from edgeclf.runtime.doctor.findings import Finding, System, format_finding
from edgeclf.runtime.doctor.runner import run_doctor

__all__ = ["Finding", "System", "format_finding", "run_doctor"]
