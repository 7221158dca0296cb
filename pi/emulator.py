"""The emulated 64-bit Raspberry Pi: a Debian 12 (bookworm) arm64 userland run under qemu user mode.

Nobody on the project has a Pi, so we run the same *software* a Pi has: Raspberry Pi OS bookworm is
Debian 12 arm64 with Python 3.11, and the interpreters come as the same aarch64 wheels a Pi's pip
downloads. qemu-user emulates the Pi's CPU core (Cortex-A72 on a Pi 4, Cortex-A76 on a Pi 5).

What is built, all under ``.cache/pi/`` (gitignored) and reused while its inputs are unchanged:

* ``sysroot/`` — the arm64 ``.deb``s of ``python3.11`` and the libraries it needs, resolved by apt
  with a *private* configuration (its own state, lists and cache dirs, ``APT::Architecture arm64``)
  and unpacked with ``dpkg-deb -x``. Nothing arm64 is installed into the host. qemu finds the guest's
  loader and libraries through ``-L sysroot``.
* ``site/<flavour>-<arch>/`` — one ``pip install --target`` per flavour (a set of interpreter wheels,
  see :data:`FLAVOURS`) for ``aarch64`` (the Pi) and for ``x86_64`` (this machine, the reference the
  Pi's outputs are compared with). The same pins on both sides, so only the CPU differs.
* ``project/`` — this checkout built as a wheel and installed with ``--no-deps`` on every run, so the
  code under test is always the current one (it is pure Python: one copy serves both architectures).

Two traps (measured; docs/stack.md): qemu shows the guest the *host's* x86 ``/proc/cpuinfo`` and onnxruntime then
crashes at import — qemu reads ``sysroot/proc/cpuinfo`` instead when it exists, so we write an ARM one
for the chosen core; and qemu's default ``-cpu max`` has given wrong int8 results through XNNPACK, so
the Pi's core is always named.

Command line (``.venv/bin/python pi/emulator.py --help``)::

    python pi/emulator.py setup                       # build/refresh everything (idempotent, fast when cached)
    python pi/emulator.py run edge -- -c 'import platform; print(platform.machine())'
    PI_CPU=cortex-a76 python pi/emulator.py run tflite-runtime -- -m pytest ...
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("PI_CACHE", ROOT / ".cache" / "pi")).resolve()
QEMU = os.environ.get("PI_QEMU", "qemu-aarch64-static")
PYTHON_VERSION = "3.11"  # Raspberry Pi OS bookworm's python3 (Debian 12)

# -- the Debian side -------------------------------------------------------------------------------

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("PI_DEBIAN_MIRROR", "http://deb.debian.org/debian")
DEBIAN_SECURITY = os.environ.get("PI_DEBIAN_SECURITY", "http://deb.debian.org/debian-security")
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# python3.11 pulls libc6, libssl3, libsqlite3… through its own dependencies; the C++ runtime and zlib
# are named because the interpreter wheels link against them but python3.11 does not depend on them.
DEBIAN_PACKAGES = ("python3.11", "libstdc++6", "libgcc-s1", "zlib1g")
SHADOWED_HOST_DIRS = (
    "/usr/local/lib/python3.11/dist-packages",
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3.11/dist-packages",
    "/usr/local/lib/python3.11/site-packages",
)


@dataclass(frozen=True)
class CpuModel:
    """A Raspberry Pi's CPU as qemu emulates it and as its ``/proc/cpuinfo`` describes it."""

    qemu_cpu: str
    board: str
    part: str  # "CPU part" in /proc/cpuinfo (ARM's part number)
    variant: str
    revision: int
    features: str
    revision_code: str  # the board's "Revision" code


CPUS = {
    "cortex-a72": CpuModel(
        qemu_cpu="cortex-a72",
        board="Raspberry Pi 4 Model B Rev 1.5",
        part="0xd08",
        variant="0x0",
        revision=3,
        features="fp asimd evtstrm crc32 cpuid",
        revision_code="d03115",
    ),
    "cortex-a76": CpuModel(
        qemu_cpu="cortex-a76",
        board="Raspberry Pi 5 Model B Rev 1.0",
        part="0xd0b",
        variant="0x4",
        revision=1,
        features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        revision_code="c04170",
    ),
}
DEFAULT_CPU = "cortex-a72"  # Pi 4

# -- the Python side -------------------------------------------------------------------------------

# Wheel platform tags a Pi's pip accepts: manylinux up to the glibc of bookworm (2.36). Naming them
# all is needed: tflite-runtime 2.14's aarch64 wheel is tagged manylinux_2_34 only.
GLIBC_MINOR = 36


def platform_tags(arch: str) -> list[str]:
    """The manylinux tags pip should accept for ``arch`` on a glibc-2.36 system, newest first."""
    return [f"manylinux_2_{n}_{arch}" for n in range(GLIBC_MINOR, 16, -1)] + [f"manylinux2014_{arch}"]


@dataclass(frozen=True)
class Flavour:
    """One way a Pi owner can install edgeclf: a requirement set and the backends it provides.

    ``requirements`` may use ``{project}`` for the project's freshly built wheel. ``numpy`` overrides
    the numpy pin of ``constraints.txt`` (tflite-runtime 2.14 is built against NumPy 1.x).
    """

    name: str
    description: str
    requirements: tuple[str, ...]
    backends: tuple[str, ...]
    numpy: str | None = None


# NumPy 1.x as Raspberry Pi OS bookworm ships it (python3-numpy 1:1.24.2): a venv made with
# --system-site-packages (for apt's picamera2) must keep it — apt's simplejpeg, which picamera2
# imports, is built against NumPy 1 and fails under NumPy 2 (raspberrypi/picamera2#1088).
NUMPY1 = "numpy==1.24.2"

FLAVOURS: dict[str, Flavour] = {
    f.name: f
    for f in (
        Flavour(
            name="edge",
            description="pip install 'edgeclf[edge]' (ai-edge-litert + onnxruntime, NumPy 2)",
            requirements=("{project}[edge]",),
            backends=("litert", "onnxruntime"),
        ),
        Flavour(
            name="tflite-runtime",
            description="pip install edgeclf tflite-runtime==2.14.0 'numpy<2' (the last tflite-runtime)",
            requirements=("{project}", "tflite-runtime==2.14.0"),
            backends=("tflite-runtime",),
            numpy=NUMPY1,
        ),
        Flavour(
            name="edge-numpy1",
            description="pip install 'edgeclf[edge]' 'numpy<2' (NumPy 1 as apt's picamera2 needs it)",
            requirements=("{project}[edge]",),
            backends=("litert", "onnxruntime"),
            numpy=NUMPY1,
        ),
    )
}
# Installed with every flavour so the runtime's own tests run on the Pi.
TEST_REQUIREMENTS = ("pytest",)

GUEST_ARCH = "aarch64"
HOST_ARCH = "x86_64"


# -- helpers ---------------------------------------------------------------------------------------


_LOG_LOCK = threading.Lock()


class EmulatorError(Exception):
    """The emulated Pi cannot be set up (no qemu, an apt or pip failure, a bad PI_CPU…); ``main`` prints it."""


def log(message: str) -> None:
    """Progress on stderr, prefixed so it stands out in `make` output (one whole line per call)."""
    with _LOG_LOCK:
        sys.stderr.write(f"[pi] {message}\n")
        sys.stderr.flush()


def run(cmd: Sequence[str | os.PathLike[str]], **kwargs) -> subprocess.CompletedProcess:
    """Run a command, failing loudly with the command line when it fails."""
    kwargs.setdefault("check", True)
    return subprocess.run([str(c) for c in cmd], **kwargs)


def fingerprint(*parts: object) -> str:
    """A short hash of everything a cached directory was built from."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stamp_matches(directory: Path, key: str) -> bool:
    """True when ``directory`` was completely built from inputs hashing to ``key``."""
    stamp = directory / ".stamp"
    return stamp.exists() and stamp.read_text().strip() == key


def replace_dir(build: Path, final: Path, key: str) -> None:
    """Stamp ``build`` and move it onto ``final``: a half-built directory is never taken as done."""
    (build / ".stamp").write_text(key + "\n")
    if final.exists():
        shutil.rmtree(final)
    build.rename(final)


def dir_size(path: Path) -> int:
    """Bytes used by the regular files below ``path`` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


# -- qemu ------------------------------------------------------------------------------------------


def ensure_qemu() -> str:
    """Return the qemu-aarch64 binary, installing Debian's qemu-user-static when it is missing.

    Only the emulator itself goes into the host; the arm64 userland stays in ``.cache/pi``.
    """
    found = shutil.which(QEMU)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise EmulatorError(
            f"{QEMU} not found: install Debian's qemu-user-static (sudo apt-get install qemu-user-static)"
        )
    log("installing qemu-user-static on the host (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if run(["apt-get", "install", "-y", "-q", "qemu-user-static"], env=env, check=False).returncode != 0:
        run(["apt-get", "update", "-q"], env=env)
        run(["apt-get", "install", "-y", "-q", "qemu-user-static"], env=env)
    found = shutil.which(QEMU)
    if not found:
        raise EmulatorError(f"{QEMU} still not found after installing qemu-user-static")
    return found


# -- the sysroot -----------------------------------------------------------------------------------


def _apt_config(apt_root: Path) -> Path:
    """Write a private apt configuration for arm64 bookworm; return the file for ``APT_CONFIG``.

    apt resolves dependencies against an *empty* dpkg status file of its own, so it fetches the whole
    closure of :data:`DEBIAN_PACKAGES` (libc6 included) and never looks at what the host has.
    """
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d",
                "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):  # fmt: skip
        (apt_root / sub).mkdir(parents=True, exist_ok=True)
    status = apt_root / "var/lib/dpkg/status"
    status.touch()
    source = f"[arch=arm64 signed-by={DEBIAN_KEYRING}]"
    (apt_root / "etc/apt/sources.list").write_text(
        f"deb {source} {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
        f"deb {source} {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main\n"
        f"deb {source} {DEBIAN_SECURITY} {DEBIAN_SUITE}-security main\n"
    )
    config = apt_root / "apt.conf"
    config.write_text(
        f'APT::Architecture "arm64";\n'
        f'APT::Architectures {{ "arm64"; }};\n'
        f'APT::Install-Recommends "false";\n'
        f'Dir::State "{apt_root}/var/lib/apt";\n'
        f'Dir::State::status "{status}";\n'
        f'Dir::Cache "{apt_root}/var/cache/apt";\n'
        f'Dir::Etc "{apt_root}/etc/apt";\n'
        # The host's trusted Debian keys verify the arm64 indexes (signed-by above names the keyring).
        f'Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d";\n'
    )
    return config


def build_sysroot() -> Path:
    """Fetch and unpack the arm64 Debian userland; reuse it when the package list is unchanged.

    Returns:
        The sysroot directory (``qemu -L`` target).
    """
    sysroot = CACHE / "sysroot"
    key = fingerprint(DEBIAN_SUITE, DEBIAN_MIRROR, DEBIAN_SECURITY, DEBIAN_PACKAGES, SHADOWED_HOST_DIRS)
    if stamp_matches(sysroot, key):
        return sysroot
    apt_root = CACHE / "apt"
    env = {**os.environ, "APT_CONFIG": str(_apt_config(apt_root)), "DEBIAN_FRONTEND": "noninteractive"}
    log(f"fetching Debian {DEBIAN_SUITE} arm64 packages: {' '.join(DEBIAN_PACKAGES)} (+ dependencies)")
    run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
    run(["apt-get", "install", "-y", "-q", "--download-only", *DEBIAN_PACKAGES], env=env, stdout=subprocess.DEVNULL)
    # Unpack exactly the versions apt chose now (the archive cache may hold older ones from earlier runs).
    wanted = _resolved_debs(env, apt_root / "var/cache/apt/archives")
    build = Path(tempfile.mkdtemp(prefix="sysroot.", dir=CACHE))
    for deb in wanted:
        run(["dpkg-deb", "-x", deb, build])
    (build / "proc").mkdir(exist_ok=True)
    # qemu -L falls back to the *host's* path when the sysroot lacks it: without these empty folders
    # the guest's site module would add the host's x86 dist-packages to sys.path.
    for shadow in SHADOWED_HOST_DIRS:
        (build / shadow.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (build / "packages.txt").write_text("".join(f"{d.name}\n" for d in wanted))
    replace_dir(build, sysroot, key)
    log(f"sysroot ready: {len(wanted)} packages, {dir_size(sysroot) / 2**20:.0f} MiB")
    return sysroot


def _resolved_debs(env: dict[str, str], archives: Path) -> list[Path]:
    """The downloaded .deb files of the closure apt resolves for :data:`DEBIAN_PACKAGES` *now*.

    The archive cache may also hold older versions from earlier runs; a simulated install against the
    empty status file names exactly one version of each package: ``Inst NAME (VERSION ... [ARCH])``.
    """
    sim = run(["apt-get", "install", "-s", "-q", *DEBIAN_PACKAGES], env=env, capture_output=True, text=True).stdout
    debs = []
    for name, version, arch in re.findall(r"^Inst (\S+) \((\S+) .*\[(\S+)\]\)", sim, flags=re.M):
        deb = archives / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"  # apt's file naming
        if not deb.exists():
            raise EmulatorError(f"apt resolved {name} {version} but {deb} was not downloaded")
        debs.append(deb)
    if not debs:
        raise EmulatorError(f"apt resolved nothing for {DEBIAN_PACKAGES}:\n{sim}")
    return debs


def write_cpuinfo(sysroot: Path, cpu: CpuModel) -> None:
    """Describe the emulated Pi's CPU in ``sysroot/proc/cpuinfo`` (qemu shows it to the guest).

    One block per host core, because qemu runs the guest's threads on the host's cores.
    """
    blocks = [
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {cpu.features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {cpu.variant}\nCPU part\t: {cpu.part}\nCPU revision\t: {cpu.revision}\n"
        for i in range(os.cpu_count() or 1)
    ]
    board = f"Revision\t: {cpu.revision_code}\nSerial\t\t: 10000000edgec1f0\nModel\t\t: {cpu.board}\n"
    text = "\n".join(blocks) + "\n" + board
    target = sysroot / "proc" / "cpuinfo"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def write_launcher(sysroot: Path, cpu: CpuModel) -> Path:
    """Write ``.cache/pi/bin/python3.11``: a host shell script that starts the Pi's Python under qemu.

    Why a script: qemu-user does not follow ``execve``, and binfmt_misc (which would) is host-wide
    configuration we leave alone. qemu's ``-0`` makes the guest's ``argv[0]`` — hence
    ``sys.executable`` — this script, so when code in the guest starts ``sys.executable`` (tests do)
    the host kernel runs the script and the child is emulated on the same core too.
    """
    bin_dir = CACHE / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / f"python{PYTHON_VERSION}"
    python = sysroot / "usr" / "bin" / f"python{PYTHON_VERSION}"
    text = (
        "#!/bin/sh\n"
        f"# The emulated {cpu.board}'s Python (written by pi/emulator.py; PI_CPU={cpu.qemu_cpu}).\n"
        f'exec {QEMU} -cpu {cpu.qemu_cpu} -L "{sysroot}" -0 "$0" "{python}" "$@"\n'
    )
    if not launcher.exists() or launcher.read_text() != text:
        launcher.write_text(text)
        launcher.chmod(0o755)
    return launcher


def write_flavour_launcher(launcher: Path, target_site: Path, project: Path, flavour: Flavour) -> Path:
    """Write ``.cache/pi/bin/python-<flavour>``: the Pi's Python with that flavour's wheels importable.

    Any tool that takes "a Python to run" can use it, e.g. the exporter's tflite-runtime verification
    on the emulated Pi's aarch64 kernels:
    ``edgeclf export RUN --tflite-runtime-python .cache/pi/bin/python-tflite-runtime``.
    """
    path = launcher.parent / f"python-{flavour.name}"
    text = (
        "#!/bin/sh\n"
        f"# The emulated Pi's Python with the {flavour.name} wheels ({flavour.description}).\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{project}:{target_site}" PYTHONNOUSERSITE=1 exec "{launcher}" "$@"\n'
    )
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        path.chmod(0o755)
    return path


# -- the wheels ------------------------------------------------------------------------------------


def project_dependencies() -> dict[str, object]:
    """The project's declared dependencies (what a site dir depends on from pyproject.toml)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"dependencies": project.get("dependencies", []), "extras": project.get("optional-dependencies", {})}


def constraints_for(flavour: Flavour) -> str:
    """constraints.txt with the flavour's numpy pin instead of the project's (if it sets one).

    ml_dtypes (pulled in by ai-edge-litert) follows numpy: the project's pin (0.6) needs NumPy 2, so
    it is left for pip to choose when numpy is pinned to 1.x.
    """
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    if flavour.numpy:
        lines = [line for line in lines if not re.match(r"(numpy|ml[-_]dtypes)\s*==", line, re.I)] + [flavour.numpy]
    return "\n".join(lines) + "\n"


def build_project_wheel() -> Path:
    """Build this checkout as a wheel (every run: it is the code under test) and return its path."""
    dist = CACHE / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    # --no-build-isolation: the main venv's setuptools builds it, no download for a pure-Python wheel.
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, ROOT]
    result = run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise EmulatorError(f"building the edgeclf wheel failed:\n{result.stderr}{result.stdout}")
    wheels = sorted(dist.glob("edgeclf-*.whl"))
    if len(wheels) != 1:
        raise EmulatorError(f"expected one edgeclf wheel in {dist}, found {wheels}")
    return wheels[0]


def install_project(wheel: Path) -> Path:
    """Install the project wheel alone (``--no-deps``) into ``.cache/pi/project``; return that dir."""
    target = CACHE / "project"
    build = Path(tempfile.mkdtemp(prefix="project.", dir=CACHE))
    pip_target(build, [str(wheel)], arch=None, no_deps=True)
    replace_dir(build, target, wheel.name)
    return target


def pip_target(
    target: Path, requirements: Iterable[str], *, arch: str | None, constraints: Path | None = None, no_deps=False
) -> None:
    """``pip install --target`` wheels for CPython 3.11 on ``arch`` (``None``: pure-Python, no platform)."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-compile", "--target", str(target)]
    if arch is not None:
        cmd += ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311"]
        for tag in platform_tags(arch):
            cmd += ["--platform", tag]
    if constraints is not None:
        cmd += ["-c", str(constraints)]
    if no_deps:
        cmd.append("--no-deps")
    cmd += list(requirements)
    result = run(cmd, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise EmulatorError(f"pip failed ({' '.join(cmd)}):\n{result.stderr}{result.stdout}")


def _install_site(site: Path, key: str, requirements: list[str], arch: str, constraints: str, tidy=None) -> None:
    """``pip install --target`` into a fresh folder, then swap it in for ``site`` with stamp ``key``.

    ``tidy(build)`` runs on the fresh folder before the swap; a failure leaves neither a half-made site nor its stamp.
    """
    site.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{site.name}.", dir=site.parent))
    constraints_file = build.with_suffix(".constraints.txt")
    constraints_file.write_text(constraints)
    try:
        pip_target(build, requirements, arch=arch, constraints=constraints_file)
        if tidy is not None:
            tidy(build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    finally:
        constraints_file.unlink(missing_ok=True)
    replace_dir(build, site, key)
    log(f"{site.name}: {dir_size(site) / 2**20:.0f} MiB")


def _drop_project(build: Path) -> None:
    # The project itself comes from .cache/pi/project (rebuilt every run), not from this cache.
    for name in ("edgeclf", "bin"):
        shutil.rmtree(build / name, ignore_errors=True)
    for info in build.glob("edgeclf-*.dist-info"):
        shutil.rmtree(info)
    (build / "versions.json").write_text(json.dumps(installed_versions(build), indent=1, sort_keys=True))


def build_site(flavour: Flavour, arch: str, wheel: Path) -> Path:
    """Install ``flavour``'s wheels for ``arch`` into ``.cache/pi/site/<flavour>-<arch>`` (cached)."""
    site = CACHE / "site" / f"{flavour.name}-{arch}"
    constraints = constraints_for(flavour)
    key = fingerprint(dataclasses.asdict(flavour), arch, constraints, project_dependencies(), TEST_REQUIREMENTS)
    if not stamp_matches(site, key):
        log(f"installing {flavour.name} wheels for {arch}: {flavour.description}")
        requirements = [r.replace("{project}", str(wheel)) for r in (*flavour.requirements, *TEST_REQUIREMENTS)]
        _install_site(site, key, requirements, arch, constraints, tidy=_drop_project)
    return site


def build_extra_site(extra: str, arch: str) -> Path:
    """The wheels of one of the project's extras (e.g. ``serve``) for ``arch``, in a site of their own (cached).

    Kept apart from the flavours' sites: the runtime's own tests, which pi-check runs in those sites,
    start ``edgeclf serve`` as a child process, and qemu-user cannot exec an aarch64 child itself.
    """
    site = CACHE / "site" / f"extra-{extra}-{arch}"
    requirements = list(project_dependencies()["extras"][extra])  # type: ignore[index]
    constraints = (ROOT / "constraints.txt").read_text()
    key = fingerprint(extra, arch, requirements, constraints)
    if not stamp_matches(site, key):
        log(f"installing the {extra} extra's wheels for {arch}: {' '.join(requirements)}")
        _install_site(site, key, requirements, arch, constraints)
    return site


def installed_versions(site: Path) -> dict[str, str]:
    """``{distribution: version}`` read from the ``*.dist-info`` folders of a ``--target`` dir."""
    versions = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        versions[name.lower().replace("_", "-")] = version
    return versions


# -- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A Python to run the check in: the emulated Pi (``aarch64``) or this machine (``x86_64``)."""

    flavour: Flavour
    arch: str
    site: Path
    project: Path
    sysroot: Path | None = None
    cpu: CpuModel | None = None
    launcher: Path | None = None

    @property
    def emulated(self) -> bool:
        return self.arch == GUEST_ARCH

    def command(self, args: Sequence[str]) -> list[str]:
        """The argv that runs ``python3.11 -S ARGS`` on this target.

        ``-S`` skips ``site``: only ``PYTHONPATH`` (project + flavour wheels) is importable, exactly
        as in a fresh venv, on the host as in the guest.
        """
        if self.emulated:
            assert self.launcher is not None
            return [str(self.launcher), "-S", *args]
        return [sys.executable, "-S", *args]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for the target: its import path, and no leakage of the host's Python settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QEMU_"))}
        env["PYTHONPATH"] = os.pathsep.join([str(self.project), str(self.site)])
        env["PYTHONNOUSERSITE"] = "1"
        env["PYTHONUTF8"] = "1"
        env.update(extra or {})
        return env

    def describe(self) -> str:
        where = f"emulated {self.cpu.board} ({self.cpu.qemu_cpu})" if self.emulated and self.cpu else "x86-64 host"
        return f"{self.flavour.name} on {where}"


def selected_cpu() -> CpuModel:
    """The Pi core to emulate: ``PI_CPU`` (``cortex-a72`` = Pi 4, default; ``cortex-a76`` = Pi 5)."""
    name = os.environ.get("PI_CPU", DEFAULT_CPU)
    if name not in CPUS:
        raise EmulatorError(f"PI_CPU={name!r} is not a Raspberry Pi core; known: {', '.join(CPUS)} (never 'max')")
    return CPUS[name]


def selected_flavours(names: Iterable[str] | None = None) -> list[Flavour]:
    """Flavours by name (``PI_FLAVOURS``, comma-separated, or all)."""
    names = list(names or []) or [n for n in os.environ.get("PI_FLAVOURS", "").split(",") if n] or list(FLAVOURS)
    unknown = [n for n in names if n not in FLAVOURS]
    if unknown:
        raise EmulatorError(f"unknown flavour(s) {unknown}; known: {', '.join(FLAVOURS)}")
    return [FLAVOURS[n] for n in names]


@dataclass
class Setup:
    """Everything :func:`setup` built, with its timings."""

    sysroot: Path
    project: Path
    cpu: CpuModel
    targets: dict[tuple[str, str], Target]
    seconds: dict[str, float]

    def target(self, flavour: str, arch: str) -> Target:
        return self.targets[(flavour, arch)]


def setup(flavours: Iterable[Flavour] | None = None, *, host: bool = True) -> Setup:
    """Build (or reuse) the emulated Pi and the flavours' wheel sets; return how to run them."""
    CACHE.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    ensure_qemu()
    sysroot = build_sysroot()
    cpu = selected_cpu()
    write_cpuinfo(sysroot, cpu)
    launcher = write_launcher(sysroot, cpu)
    seconds["sysroot"] = time.perf_counter() - start

    start = time.perf_counter()
    wheel = build_project_wheel()
    project = install_project(wheel)
    seconds["project"] = time.perf_counter() - start

    start = time.perf_counter()
    targets = {}
    archs = (GUEST_ARCH, HOST_ARCH) if host else (GUEST_ARCH,)
    wanted = [(flavour, arch) for flavour in flavours or selected_flavours() for arch in archs]
    # pip spends most of a cold install waiting on downloads: three at once.
    with ThreadPoolExecutor(max_workers=3) as pool:
        sites = list(pool.map(lambda job: build_site(job[0], job[1], wheel), wanted))
    for (flavour, arch), site in zip(wanted, sites, strict=True):
        emulated = arch == GUEST_ARCH
        if emulated:
            write_flavour_launcher(launcher, site, project, flavour)
        targets[(flavour.name, arch)] = Target(
            flavour, arch, site, project, *((sysroot, cpu, launcher) if emulated else (None, None, None))
        )
    seconds["wheels"] = time.perf_counter() - start
    return Setup(sysroot, project, cpu, targets, seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="build or refresh the emulated Pi and every flavour's wheels")
    runner = sub.add_parser("run", help="run the Pi's python3.11 with a flavour's wheels: run FLAVOUR -- ARGS")
    runner.add_argument("flavour", choices=list(FLAVOURS))
    runner.add_argument("--host", action="store_true", help="run the x86-64 twin instead of the emulated Pi")
    runner.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    try:
        return _command(options)
    except EmulatorError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _command(options: argparse.Namespace) -> int:
    if options.command == "setup":
        built = setup()
        sizes = {p.name: dir_size(p) for p in (built.sysroot, *(t.site for t in built.targets.values()))}
        print(json.dumps({"seconds": built.seconds, "mib": {k: round(v / 2**20) for k, v in sizes.items()}}, indent=1))
        return 0
    built = setup([FLAVOURS[options.flavour]], host=options.host)
    target = built.target(options.flavour, HOST_ARCH if options.host else GUEST_ARCH)
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    return subprocess.run(target.command(args), env=target.env()).returncode


if __name__ == "__main__":
    sys.exit(main())
