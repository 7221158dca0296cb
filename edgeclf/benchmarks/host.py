"""What machine a benchmark ran on: CPU model, cores, clock, SIMD features, Python and library versions."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

# Packages whose versions decide the numbers (the interpreters and what feeds them).
PACKAGES = ("numpy", "pillow", "ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow", "keras")

# SIMD features that change which kernels the interpreters pick on x86-64 / ARM.
FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "asimddp", "i8mm")

# float32 FLOPs per cycle per core: 2 FMA units × 8 lanes × 2 (AVX2+FMA; AVX-512 on Zen 4 is
# double-pumped 256-bit, so the same); 2 × 4 × 2 for 128-bit NEON (Cortex-A72/A76).
FP32_FLOPS_PER_CYCLE = {"x86_64": 32, "AMD64": 32, "aarch64": 16, "arm64": 16}


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_model(text: str | None = None) -> str:
    """The CPU's marketing name (``model name``, or the ARM ``Model`` / ``Hardware`` line)."""
    text = _cpuinfo() if text is None else text
    for key in ("model name", "Model", "Hardware", "cpu model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def cpu_mhz(text: str | None = None) -> float | None:
    """The clock in MHz: the highest ``cpu MHz`` in /proc/cpuinfo, else cpufreq's maximum."""
    text = _cpuinfo() if text is None else text
    values = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
    if values:
        return max(values)
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text().strip()
        return int(khz) / 1000.0
    except (OSError, ValueError):
        return None


def cpu_features(text: str | None = None) -> list[str]:
    """Which of :data:`FEATURES` the CPU reports."""
    text = _cpuinfo() if text is None else text
    match = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return [f for f in FEATURES if f in flags]


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def peak_fp32_gflops(mhz: float | None, n_cores: int, machine: str | None = None) -> float | None:
    """Nominal float32 peak: cores × clock × FLOPs per cycle (``None`` when the clock is unknown)."""
    per_cycle = FP32_FLOPS_PER_CYCLE.get(machine or platform.machine())
    if mhz is None or per_cycle is None:
        return None
    return n_cores * mhz / 1000.0 * per_cycle


def package_versions() -> dict[str, str | None]:
    """Installed versions of :data:`PACKAGES` (``None`` when absent)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("tensorflow") is None:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions["tensorflow"] = importlib.metadata.version("tensorflow-cpu")
    return versions


def load_average() -> tuple[float, float, float] | None:
    """The 1/5/15-minute load average (how busy the shared machine was)."""
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover
        return None


def host_info() -> dict[str, Any]:
    """Everything recorded beside a benchmark table."""
    text = _cpuinfo()
    mhz = cpu_mhz(text)
    n = cores()
    return {
        "cpu": cpu_model(text),
        "machine": platform.machine(),
        "cores": n,
        "mhz": mhz,
        "features": cpu_features(text),
        "peak_fp32_gflops": peak_fp32_gflops(mhz, n),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "load_average_start": load_average(),
    }
