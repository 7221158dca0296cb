"""``edgeclf benchmark --duration``: latency over time next to board health read from a fake sysfs tree.

A thread plays a Pi heating up while the benchmark runs: the temperature climbs and the firmware's
"throttled" flag comes on; every interval must record what the tree said at that moment.
"""

import csv
import importlib.util
import json
import os
import threading

import pytest

pytest.importorskip("typer", reason="the command line needs typer")
from typer.testing import CliRunner

from edgeclf.cli import app


def _fake_pi(root):
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("50000\n")
    firmware = root / "sys/devices/platform/soc/soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text("0\n")
    return zone / "temp", firmware / "get_throttled"


def _write(path, text):
    """Replace a file's content at once: a reader never sees it empty (a real sysfs file never is)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_sustained_mode_records_latency_temperature_and_throttling_over_time(fixture_run, tmp_path):
    temp_file, throttled_file = _fake_pi(tmp_path / "sysfs")
    stop = threading.Event()

    def heat_up():  # +1 °C every 0.2 s; throttled (bit 2, and bit 18 "has occurred") from 55 °C on
        temp = 50
        while not stop.wait(0.2):
            temp += 1
            _write(temp_file, f"{temp * 1000}\n")
            if temp >= 55:
                _write(throttled_file, "40004\n")

    heater = threading.Thread(target=heat_up)
    heater.start()
    out = tmp_path / "out"
    args = ["benchmark", str(fixture_run), "--duration", "3", "-f", "tflite-int8", "--threads", "1"]
    try:
        result = CliRunner().invoke(app, [*args, "--board-root", str(tmp_path / "sysfs"), "--out", str(out), "--json"])
    finally:
        stop.set()
        heater.join()
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    samples = report["samples"]
    assert report["format"] == "tflite-int8" and report["threads"] == 1 and report["duration_s"] >= 3
    assert 2 <= len(samples) <= 4  # one a second
    assert all(s["invocations"] > 0 and s["latency_p50_ms"] > 0 for s in samples)
    temps = [s["cpu_temperature_c"] for s in samples]
    assert temps == sorted(temps) and temps[-1] > temps[0] >= 50.0
    assert samples[-1]["throttle_flags"] == ["throttled", "throttled-occurred"]
    rows = list(csv.DictReader((out / "sustained.csv").open()))
    assert [float(r["cpu_temperature_c"]) for r in rows] == temps
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "sustained.png").stat().st_size > 5_000
