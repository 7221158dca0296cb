"""``edgeclf doctor`` on fake system trees: missing pieces, warnings and their fixes, --json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeclf.runtime.doctor import System, cameras, format_finding, host, packages, run_doctor


def _system(root: Path, **overrides) -> System:
    fields = dict(root=root, python=sys.executable, vcgencmd=None, uid=1000, groups=(), disk_path=root)
    fields.update(overrides)
    return System(**fields)


def _write(root: Path, absolute: str, text: str) -> Path:
    path = root / absolute.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _by_check(findings, check):
    return [f for f in findings if f.check == check]


def test_an_empty_tree_gives_info_lines_not_errors(tmp_path):
    findings = run_doctor(_system(tmp_path))
    assert {f.check for f in findings} >= {"python-os", "interpreters", "memory", "disk", "temperature", "cameras"}
    assert _by_check(findings, "memory")[0].message == "cannot read /proc/meminfo"
    assert _by_check(findings, "temperature")[0].status == "info"
    assert _by_check(findings, "throttling")[0].status == "info"
    assert _by_check(findings, "cameras")[0].message == "no /dev/video* device"
    assert not [f for f in findings if f.status == "fail"]


def test_low_memory_is_a_warning_with_a_fix(tmp_path):
    _write(tmp_path, "/proc/meminfo", "MemTotal:  948304 kB\nMemFree: 20000 kB\nMemAvailable:  102400 kB\n")
    (finding,) = host.check_memory(_system(tmp_path))
    assert (finding.status, finding.data) == ("warn", {"total_mb": 926, "available_mb": 100})
    assert "swap" in finding.fix


def test_hot_cpu_and_capped_frequency_are_reported(tmp_path):
    _write(tmp_path, "/sys/class/thermal/thermal_zone0/temp", "83250\n")
    _write(tmp_path, "/sys/class/thermal/thermal_zone1/temp", "41000\n")
    _write(tmp_path, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1000000\n")
    _write(tmp_path, "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "1800000\n")
    (finding,) = host.check_temperature(_system(tmp_path))
    assert finding.status == "warn" and finding.data == {"celsius": 83.25}
    assert "1000 of 1800 MHz" in finding.message


def test_throttling_bits_from_sysfs_are_spelled_out(tmp_path):
    _write(tmp_path, "/sys/devices/platform/soc/soc:firmware/get_throttled", "50005\n")
    (finding,) = host.check_throttling(_system(tmp_path))
    assert finding.status == "warn"
    assert finding.data["flags"] == [
        "under-voltage now",
        "throttled now",
        "under-voltage has occurred",
        "throttling has occurred",
    ]
    assert "power supply" in finding.fix


def test_vcgencmd_is_preferred_and_zero_means_ok(tmp_path):
    tool = _write(tmp_path, "/usr/bin/vcgencmd", "#!/bin/sh\necho throttled=0x0\n")
    tool.chmod(0o755)
    _write(tmp_path, "/sys/devices/platform/soc/soc:firmware/get_throttled", "50005\n")
    (finding,) = host.check_throttling(_system(tmp_path, vcgencmd=str(tool)))
    assert (finding.status, finding.data["source"]) == ("ok", "vcgencmd get_throttled")


def test_os_release_and_board_model_are_read_under_the_root(tmp_path):
    _write(tmp_path, "/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    _write(tmp_path, "/proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.5\x00")
    finding = host.check_python_os(_system(tmp_path))[0]
    assert finding.data["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert finding.data["model"] == "Raspberry Pi 4 Model B Rev 1.5"


def _video_tree(root: Path, gid: int) -> None:
    """/dev/video0 and /dev/video10, mode 660, owned by the fake tree's video group."""
    for n in (0, 10):
        device = _write(root, f"/dev/video{n}", "")
        device.chmod(0o660)
        if os.geteuid() == 0:
            os.chown(device, 0, gid)
    _write(root, "/etc/group", f"root:x:0:\nvideo:x:{os.stat(root / 'dev/video0').st_gid}:pi\n")


def test_camera_outside_the_video_group_says_usermod(tmp_path):
    _video_tree(tmp_path, 44)
    gid = os.stat(tmp_path / "dev/video0").st_gid
    (finding,) = cameras.check_video_devices(_system(tmp_path, uid=4242, groups=()))
    assert finding.status == "fail"
    assert finding.data["blocked"] == ["video0", "video10"]
    assert "usermod -aG video" in finding.fix
    (allowed,) = cameras.check_video_devices(_system(tmp_path, uid=4242, groups=(gid,)))
    assert (allowed.status, allowed.data["devices"]) == ("ok", ["video0", "video10"])


def test_tflite_runtime_with_numpy_2_is_a_numpy_abi_failure(tmp_path):
    facts = {
        "ok": True,
        "versions": {"numpy": "2.4.6", "tflite-runtime": "2.14.0"},
        "origins": {"numpy": "/venv/numpy/__init__.py", "tflite_runtime": "/venv/tflite_runtime/__init__.py"},
    }
    (finding,) = packages.check_numpy_abi(_system(tmp_path), facts)
    assert finding.status == "fail" and "tflite-runtime 2.14.0" in finding.message
    assert "numpy<2" in finding.fix
    facts["versions"]["numpy"] = "1.26.4"
    assert [f.status for f in packages.check_numpy_abi(_system(tmp_path), facts)] == ["ok"]


def test_apt_module_that_fails_on_numpy_abi_is_found_with_apts_numpy_version(tmp_path, monkeypatch):
    # A Pi venv made with --system-site-packages: apt's simplejpeg, pip's NumPy 2 in front of apt's 1.24.
    dist = tmp_path / "usr/lib/python3/dist-packages"
    (dist / "numpy-1.24.2.egg-info").mkdir(parents=True)
    _write(
        dist,
        "/simplejpeg/__init__.py",
        'raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")\n',
    )
    monkeypatch.setenv("PYTHONPATH", str(dist))
    system = _system(tmp_path)
    facts = packages.python_facts(system)
    assert facts["origins"]["simplejpeg"].startswith(str(dist))
    findings = [f for f in packages.check_numpy_abi(system, facts) if f.data.get("module") == "simplejpeg"]
    assert len(findings) == 1 and findings[0].status == "fail"
    assert "apt's NumPy 1.24.2" in findings[0].message and "numpy.dtype size changed" in findings[0].message
    assert "numpy==1.24.2" in findings[0].fix


def test_interpreters_listed_match_what_this_python_can_import():
    import importlib.util

    facts = packages.python_facts(System(python=sys.executable))
    found = packages.installed_backends(facts)
    assert ("litert" in found) == (importlib.util.find_spec("ai_edge_litert") is not None)
    assert ("onnxruntime" in found) == (importlib.util.find_spec("onnxruntime") is not None)
    assert ("tflite-runtime" in found) == (importlib.util.find_spec("tflite_runtime") is not None)


def test_a_python_that_does_not_exist_is_one_failure(tmp_path):
    facts = packages.python_facts(_system(tmp_path, python=str(tmp_path / "nope" / "python")))
    (finding,) = packages.check_interpreters(facts)
    assert finding.status == "fail" and "cannot run" in finding.message


def test_cli_json_and_one_line_per_finding(tmp_path):
    from edgeclf.cli import app

    _video_tree(tmp_path, 44)
    result = CliRunner().invoke(app, ["doctor", "--root", str(tmp_path), "--json"])
    data = json.loads(result.stdout)
    assert {"check", "status", "message", "fix", "data"} <= set(data[0])
    text = CliRunner().invoke(app, ["doctor", "--root", str(tmp_path)])
    lines = text.stdout.strip().splitlines()
    assert len(lines) == len(data)
    assert all(line.startswith("[") for line in lines)
    # root may open anything; another user outside the video group may not, and the exit code says so.
    assert result.exit_code == (1 if any(d["status"] == "fail" for d in data) else 0)


def test_format_finding_puts_the_fix_on_the_same_line():
    from edgeclf.runtime.doctor import Finding

    assert format_finding(Finding("x", "warn", "bad", "do this")) == "[warn] x: bad — fix: do this"
    assert format_finding(Finding("x", "ok", "fine")) == "[ok] x: fine"


def test_missing_run_folder_is_one_manifest_error(tmp_path):
    from edgeclf.runtime.errors import ManifestError

    with pytest.raises(ManifestError):
        run_doctor(_system(tmp_path), tmp_path / "no-run")
