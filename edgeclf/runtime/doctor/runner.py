"""Run every check, in the order a user fixes things: platform, packages, models, cameras, health."""

from __future__ import annotations

from pathlib import Path

from edgeclf.runtime.doctor import cameras, host, packages
from edgeclf.runtime.doctor.findings import Finding, System


def run_doctor(system: System | None = None, run_dir: str | Path | None = None) -> list[Finding]:
    """Every finding about this device (and the run's model files when ``run_dir`` is given).

    Raises:
        ManifestError: ``run_dir`` is given but is not a run folder.
    """
    system = system or System()
    facts = packages.python_facts(system)
    findings = host.check_python_os(system, facts)
    findings += packages.check_interpreters(facts)
    findings += packages.check_numpy_abi(system, facts)
    if run_dir is not None:
        findings += packages.check_models(system, facts, Path(run_dir))
    findings += cameras.check_video_devices(system)
    findings += cameras.check_picamera2(system, facts)
    findings += cameras.check_opencv(system, facts)
    findings += host.check_memory(system)
    findings += host.check_disk(system)
    findings += host.check_temperature(system)
    findings += host.check_throttling(system)
    return findings
