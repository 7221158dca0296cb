"""Checks of the machine itself: Python and OS, memory, disk, temperature and throttling."""

from __future__ import annotations

import platform
import shutil
import struct
import subprocess

from edgeclf.runtime.doctor.findings import Finding, System

# Below this much available memory a 224-px model plus camera buffers starts to swap on a Pi.
LOW_MEMORY_MB = 200
LOW_DISK_MB = 500
HOT_CELSIUS = 80.0  # the Pi firmware starts soft throttling at 80 °C (85 °C hard)

# Bits of `vcgencmd get_throttled` (Raspberry Pi firmware documentation).
THROTTLE_BITS = {
    0: "under-voltage now",
    1: "ARM frequency capped now",
    2: "throttled now",
    3: "soft temperature limit now",
    16: "under-voltage has occurred",
    17: "ARM frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}


def check_python_os(system: System, facts: dict | None = None) -> list[Finding]:
    """Python version and bitness (of the examined Python, from ``facts`` when given), OS release, board model."""
    os_release = system.read("/etc/os-release") or ""
    pretty = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in os_release.splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    model = (system.read("/proc/device-tree/model") or system.read("/sys/firmware/devicetree/base/model") or "").strip(
        "\x00\n "
    )
    facts = facts if facts and facts.get("ok") else {}
    bits = int(facts.get("bits") or struct.calcsize("P") * 8)
    py = str(facts.get("python") or platform.python_version())
    version = tuple(int(p) for p in py.split(".")[:2] if p.isdigit())
    where = f" ({facts['executable']})" if facts.get("executable") else ""
    text = f"Python {py} ({bits}-bit){where} on {pretty}, {facts.get('machine') or platform.machine()}"
    text += f", {model}" if model else ""
    findings = [Finding("python-os", "ok", text, data={"python": py, "bits": bits, "os": pretty, "model": model})]
    if bits == 32:
        findings.append(
            Finding(
                "python-os",
                "warn",
                "32-bit Python: ai-edge-litert and onnxruntime publish no 32-bit Arm wheels",
                "install the 64-bit Raspberry Pi OS (bookworm, arm64)",
            )
        )
    if version >= (3, 12):
        findings.append(
            Finding(
                "python-os",
                "info",
                f"tflite-runtime has no wheels for Python {py} (2.14.0, its last release, stops at 3.11)",
                "use ai-edge-litert (pip install ai-edge-litert)",
            )
        )
    return findings


def _meminfo_mb(text: str, key: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(key + ":"):
            try:
                return int(line.split()[1]) / 1024.0
            except (IndexError, ValueError):
                return None
    return None


def check_memory(system: System) -> list[Finding]:
    """Available memory from /proc/meminfo."""
    text = system.read("/proc/meminfo")
    if text is None:
        return [Finding("memory", "info", "cannot read /proc/meminfo")]
    total, available = _meminfo_mb(text, "MemTotal"), _meminfo_mb(text, "MemAvailable")
    if total is None or available is None:
        return [Finding("memory", "info", "/proc/meminfo has no MemTotal/MemAvailable")]
    data = {"total_mb": round(total), "available_mb": round(available)}
    message = f"{available:.0f} MB available of {total:.0f} MB"
    if available < LOW_MEMORY_MB:
        return [Finding("memory", "warn", message, "close other programs or add swap (sudo dphys-swapfile)", data)]
    return [Finding("memory", "ok", message, data=data)]


def check_disk(system: System) -> list[Finding]:
    """Free space where the run folder lives."""
    try:
        usage = shutil.disk_usage(system.disk_path)
    except OSError as error:
        return [Finding("disk", "info", f"cannot read free space of {system.disk_path} ({error.strerror or error})")]
    free = usage.free / 2**20
    data = {"path": str(system.disk_path), "free_mb": round(free), "total_mb": round(usage.total / 2**20)}
    message = f"{free:.0f} MB free on the disk holding {system.disk_path}"
    if free < LOW_DISK_MB:
        return [Finding("disk", "warn", message, "free some space (models, camera captures, pip caches)", data)]
    return [Finding("disk", "ok", message, data=data)]


def check_temperature(system: System) -> list[Finding]:
    """CPU temperature from /sys/class/thermal and the current vs maximum CPU frequency."""
    zones = sorted(system.path("/sys/class/thermal").glob("thermal_zone*/temp"))
    readings = []
    for zone in zones:
        try:
            readings.append(int(zone.read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    if not readings:
        return [Finding("temperature", "info", "no thermal sensor in /sys/class/thermal")]
    hottest = max(readings)
    message = f"CPU {hottest:.1f} °C"
    current = system.read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    maximum = system.read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if current and maximum and current.strip().isdigit() and maximum.strip().isdigit():
        message += f", cpu0 at {int(current) / 1000:.0f} of {int(maximum) / 1000:.0f} MHz"
    data = {"celsius": hottest}
    if hottest >= HOT_CELSIUS:
        return [Finding("temperature", "warn", message + " (throttling range)", "add a heatsink or fan", data)]
    return [Finding("temperature", "ok", message, data=data)]


def _throttled_value(system: System) -> tuple[int | None, str]:
    if system.vcgencmd:
        try:
            out = subprocess.run(
                [system.vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            if out.startswith("throttled="):
                return int(out.split("=", 1)[1], 16), "vcgencmd get_throttled"
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
    # Newer Pi kernels expose the same bits without the firmware tool.
    text = system.read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    if text and text.strip():
        try:
            return int(text.strip(), 16), "sysfs get_throttled"
        except ValueError:
            pass
    return None, ""


def check_throttling(system: System) -> list[Finding]:
    """Under-voltage and throttling flags of the Raspberry Pi firmware."""
    value, source = _throttled_value(system)
    if value is None:
        return [Finding("throttling", "info", "no throttling report (not a Raspberry Pi, or vcgencmd missing)")]
    flags = [text for bit, text in THROTTLE_BITS.items() if value & (1 << bit)]
    data = {"value": hex(value), "flags": flags, "source": source}
    if not flags:
        return [Finding("throttling", "ok", f"not throttled ({source}: {hex(value)})", data=data)]
    fix = "use the official power supply (5 V 3 A Pi 4, 5 V 5 A Pi 5)" if value & 0x10001 else "improve cooling"
    status = "warn" if value & 0xF else "info"
    return [Finding("throttling", status, f"{', '.join(flags)} ({source}: {hex(value)})", fix, data)]
