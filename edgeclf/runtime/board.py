"""Board health read from sysfs: CPU temperature, clock and the Raspberry Pi firmware's throttle flags.

Every path hangs off one ``root`` (``/`` on a device), so tests and benchmarks can point it at a
fake tree. Anything the board does not expose is reported as ``None``, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

THERMAL = "sys/class/thermal"
CPU_FREQ = "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"
# The Pi firmware's get_throttled word, exposed by the raspberrypi-hwmon/firmware driver.
THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"

# Bits of the firmware's throttled word (``vcgencmd get_throttled`` prints the same number).
THROTTLE_FLAGS = {
    0: "under-voltage",
    1: "arm-frequency-capped",
    2: "throttled",
    3: "soft-temperature-limit",
    16: "under-voltage-occurred",
    17: "arm-frequency-capped-occurred",
    18: "throttled-occurred",
    19: "soft-temperature-limit-occurred",
}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class BoardHealth:
    """One reading; ``None`` where the board does not report the value."""

    cpu_temperature_c: float | None
    cpu_frequency_mhz: float | None
    throttled: int | None

    @property
    def throttle_flags(self) -> list[str]:
        """Names of the throttled word's set bits."""
        if self.throttled is None:
            return []
        return [name for bit, name in THROTTLE_FLAGS.items() if self.throttled >> bit & 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "cpu_temperature_c": self.cpu_temperature_c,
            "cpu_frequency_mhz": self.cpu_frequency_mhz,
            "throttled": None if self.throttled is None else hex(self.throttled),
            "throttle_flags": self.throttle_flags,
        }


def cpu_temperature(root: Path) -> float | None:
    """The CPU's temperature in °C: the ``cpu-thermal`` zone (a Pi), else the first zone that reads."""
    zones = sorted((root / THERMAL).glob("thermal_zone*"))
    zones.sort(key=lambda z: 0 if (_read(z / "type") or "").startswith(("cpu", "x86_pkg")) else 1)
    for zone in zones:
        raw = _read(zone / "temp")
        if raw and raw.lstrip("-").isdigit():
            return int(raw) / 1000.0  # millidegrees
    return None


def read_board(root: str | Path = "/") -> BoardHealth:
    """Read temperature, clock and throttle flags under ``root`` (a fake tree in tests)."""
    root = Path(root)
    freq = _read(root / CPU_FREQ)
    throttled = _read(root / THROTTLED)
    try:
        throttled_value = int(throttled, 16) if throttled else None  # the driver prints hex without 0x
    except ValueError:
        throttled_value = None
    return BoardHealth(
        cpu_temperature_c=cpu_temperature(root),
        cpu_frequency_mhz=int(freq) / 1000.0 if freq and freq.isdigit() else None,  # kHz
        throttled=throttled_value,
    )
