"""Board health from a fake sysfs tree: temperature, clock and the Pi firmware's throttle flags."""

from edgeclf.runtime.board import read_board


def _tree(root, zones=(), freq=None, throttled=None):
    for i, (kind, milli) in enumerate(zones):
        zone = root / f"sys/class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    if freq is not None:
        path = root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"
        path.parent.mkdir(parents=True)
        path.write_text(f"{freq}\n")
    if throttled is not None:
        path = root / "sys/devices/platform/soc/soc:firmware/get_throttled"
        path.parent.mkdir(parents=True)
        path.write_text(f"{throttled}\n")
    return root


def test_a_throttled_hot_pi(tmp_path):
    health = read_board(_tree(tmp_path, [("cpu-thermal", 81234)], freq=600000, throttled="50005"))
    assert health.cpu_temperature_c == 81.234
    assert health.cpu_frequency_mhz == 600.0
    assert health.throttled == 0x50005
    assert health.throttle_flags == ["under-voltage", "throttled", "under-voltage-occurred", "throttled-occurred"]
    assert health.to_dict()["throttled"] == "0x50005"


def test_the_cpu_zone_is_preferred_over_others(tmp_path):
    health = read_board(_tree(tmp_path, [("acpitz", 27800), ("x86_pkg_temp", 55000)]))
    assert health.cpu_temperature_c == 55.0


def test_a_board_that_reports_nothing_gives_none_not_guesses(tmp_path):
    health = read_board(tmp_path)
    assert (health.cpu_temperature_c, health.cpu_frequency_mhz, health.throttled) == (None, None, None)
    assert health.throttle_flags == []
    garbled = read_board(_tree(tmp_path / "g", [("cpu-thermal", "n/a")], freq="fast", throttled="zz"))
    assert (garbled.cpu_temperature_c, garbled.cpu_frequency_mhz, garbled.throttled) == (None, None, None)
