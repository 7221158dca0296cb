"""Checks of the Python packages: interpreters, NumPy ABI mismatches, and which model files load.

Facts about the target Python are gathered in a subprocess (:data:`PROBE_CODE`), so the doctor can
examine another venv (``System.python``) and survive a package that crashes on import.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgeclf.runtime.backends import BACKENDS
from edgeclf.runtime.doctor.findings import Finding, System

# Distribution names of each backend's package (a backend's module name is not its pip name).
BACKEND_DISTS = {
    "litert": ("ai-edge-litert",),
    "tflite-runtime": ("tflite-runtime",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
}
DISTS = ("numpy", "pillow", "opencv-python", "opencv-python-headless", "opencv-contrib-python", "picamera2")
DISTS += (*(d for names in BACKEND_DISTS.values() for d in names), "simplejpeg")
MODULES = ("numpy", "cv2", "picamera2", "simplejpeg", "ai_edge_litert", "tflite_runtime", "onnxruntime")
APT_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
# Compiled against the NumPy of Debian's python3-numpy when they come from apt.
APT_NUMPY_MODULES = ("simplejpeg", "picamera2")
ABI_MESSAGES = ("compiled using NumPy 1.x", "_ARRAY_API not found", "numpy.dtype size changed", "multiarray failed")

PROBE_CODE = """
import importlib.metadata as md, importlib.util as u, json, platform, struct, sys
def ver(d):
    try:
        return md.version(d)
    except Exception:
        return None
def origin(m):
    try:
        s = u.find_spec(m)
        return s.origin if s else None
    except Exception:
        return None
print(json.dumps({"ok": True, "executable": sys.executable, "python": platform.python_version(),
                  "bits": struct.calcsize("P") * 8, "machine": platform.machine(),
                  "versions": {d: ver(d) for d in sys.argv[1].split(",")},
                  "origins": {m: origin(m) for m in sys.argv[2].split(",")}}))
"""

IMPORT_CODE = """
import json, sys, warnings
warnings.simplefilter("ignore")
try:
    __import__(sys.argv[1])
    print(json.dumps({"ok": True}))
except BaseException as e:
    print(json.dumps({"ok": False, "error": str(e).strip() or type(e).__name__}))
"""

LOAD_CODE = """
import json, sys
try:
    import numpy as np
    from edgeclf.runtime.backends import get_backend
    session = get_backend(sys.argv[1]).load(sys.argv[2], threads=1)
    tensor = session.inputs[0]
    # One image, and a batch of 4 when the batch dimension is dynamic: some kernels crash only on
    # batches (tflite-runtime 2.14's aarch64 per-channel int8 Dense without bias, for one).
    for batch in (1, 4) if tensor.shape[0] < 0 else (1,):
        shape = [max(d, 1) for d in tensor.shape]
        shape[0] = batch
        session.run(np.zeros(shape, dtype=tensor.dtype))
    session.close()
    print(json.dumps({"ok": True}))
except BaseException as e:
    print(json.dumps({"ok": False, "error": str(e).strip() or type(e).__name__}))
"""


def python_facts(system: System) -> dict[str, Any]:
    """Versions and import locations of the relevant packages in ``system.python``."""
    facts = system.run_python(PROBE_CODE, ",".join(DISTS), ",".join(MODULES))
    facts.setdefault("versions", {})
    facts.setdefault("origins", {})
    return facts


def _major(version: str | None) -> int | None:
    match = re.match(r"(\d+)", version or "")
    return int(match.group(1)) if match else None


def installed_backends(facts: dict[str, Any]) -> dict[str, str]:
    """Backend name → installed version, for the interpreters present in the target Python."""
    out = {}
    for name, backend in BACKENDS.items():
        module = backend.module.split(".")[0]
        if facts["origins"].get(module) is None:
            continue
        version = next((facts["versions"][d] for d in BACKEND_DISTS.get(name, ()) if facts["versions"].get(d)), None)
        out[name] = version or "unknown version"
    return out


def check_interpreters(facts: dict[str, Any]) -> list[Finding]:
    """Which interpreter packages are installed."""
    if not facts.get("ok"):
        return [Finding("interpreters", "fail", f"cannot inspect the Python packages ({facts.get('error')})")]
    found = installed_backends(facts)
    findings = [
        Finding("interpreters", "ok", f"{name} {version} ({BACKENDS[name].module})", data={"backend": name})
        for name, version in found.items()
    ]
    if not any(".tflite" in BACKENDS[name].suffixes for name in found):
        findings.append(
            Finding("interpreters", "warn", "no TFLite interpreter installed", "pip install ai-edge-litert")
        )
    if "onnxruntime" not in found:
        findings.append(
            Finding(
                "interpreters", "info", "onnxruntime not installed (.onnx files cannot run)", "pip install onnxruntime"
            )
        )
    return findings


def apt_numpy_version(system: System) -> str | None:
    """Version of Debian's python3-numpy (from its egg-info/dist-info name), or ``None``."""
    folder = system.path(APT_DIST_PACKAGES)
    for info in sorted(folder.glob("numpy-*.*-info")) if folder.is_dir() else ():
        match = re.match(r"numpy-([0-9][^-]*?)(?:\.egg-info|\.dist-info)$", info.name)
        if match:
            return match.group(1)
    return None


def check_numpy_abi(system: System, facts: dict[str, Any]) -> list[Finding]:
    """Compiled packages built for another NumPy major version than the one this Python loads."""
    if not facts.get("ok"):
        return []
    versions, origins = facts["versions"], facts["origins"]
    numpy_version = versions.get("numpy")
    numpy_major = _major(numpy_version)
    findings: list[Finding] = []
    tflite = versions.get("tflite-runtime")
    if tflite and origins.get("tflite_runtime") and numpy_major is not None and numpy_major >= 2:
        findings.append(
            Finding(
                "numpy-abi",
                "fail",
                f"tflite-runtime {tflite} is built for NumPy 1.x but NumPy {numpy_version} is installed: it imports, "
                "then fails when a model is loaded",
                "pip install 'numpy<2' (or use ai-edge-litert, which works with NumPy 1 and 2)",
            )
        )
    apt_numpy = apt_numpy_version(system)
    apt_dir = str(system.path(APT_DIST_PACKAGES))
    numpy_origin = origins.get("numpy") or ""
    for module in APT_NUMPY_MODULES:
        where = origins.get(module)
        if not where:
            continue
        from_apt = where.startswith(apt_dir) or where.startswith(APT_DIST_PACKAGES)
        numpy_from_apt = numpy_origin.startswith(apt_dir) or numpy_origin.startswith(APT_DIST_PACKAGES)
        result = system.run_python(IMPORT_CODE, module)
        abi_error = not result.get("ok") and any(m in result.get("error", "") for m in ABI_MESSAGES)
        mismatch = from_apt and not numpy_from_apt and apt_numpy and _major(apt_numpy) != numpy_major
        if abi_error or mismatch:
            detail = result.get("error") if not result.get("ok") else "imports now, but may fail in compiled code"
            findings.append(
                Finding(
                    "numpy-abi",
                    "fail" if abi_error else "warn",
                    f"{module} from apt was built against apt's NumPy {apt_numpy or '1.x'}, but this Python loads "
                    f"NumPy {numpy_version} from {Path(numpy_origin).parent.parent}: {detail}",
                    f"in the venv: pip install 'numpy=={apt_numpy}' (apt's version), or pip uninstall numpy so "
                    "apt's is used",
                    {"module": module, "import_error": result.get("error")},
                )
            )
        elif not result.get("ok"):
            findings.append(
                Finding(
                    "imports",
                    "fail",
                    f"import {module} fails: {result.get('error')}",
                    "reinstall it (sudo apt install --reinstall python3-" + module + ")",
                )
            )
    if not findings and numpy_version:
        findings.append(
            Finding("numpy-abi", "ok", f"NumPy {numpy_version}; no compiled package built for another major")
        )
    return findings


def _load_fix(error: str, stderr: str, backend: str) -> str:
    if any(m in error or m in stderr for m in ABI_MESSAGES):
        return "pip install 'numpy<2'"
    if "opcode" in error or "version" in error:
        return "re-export for this interpreter: edgeclf export RUN --target tflite-runtime"
    if "signal" in error:
        return (
            f"use another interpreter for this file (e.g. {'litert' if backend == 'tflite-runtime' else 'onnxruntime'})"
        )
    return "re-export the run (edgeclf export RUN)"


def check_models(system: System, facts: dict[str, Any], run_dir: Path) -> list[Finding]:
    """Load every model file of the run in every installed interpreter that reads its suffix, and run it once."""
    from edgeclf.runtime.manifest import Manifest

    manifest = Manifest.load(run_dir)
    found = installed_backends(facts) if facts.get("ok") else {}
    findings: list[Finding] = []
    runnable = 0
    for artifact in manifest.artifacts:
        path = run_dir / artifact.file
        suffix = path.suffix.lower()
        names = [n for n in found if suffix in BACKENDS[n].suffixes]
        if not names:
            findings.append(
                Finding(
                    "models",
                    "warn",
                    f"{artifact.file}: no installed interpreter reads {suffix} files",
                    " or ".join(b.install for b in BACKENDS.values() if suffix in b.suffixes),
                )
            )
            continue
        for name in names:
            result = system.run_python(LOAD_CODE, name, str(path))
            data = {"file": artifact.file, "backend": name, "version": found[name]}
            if result.get("ok"):
                runnable += 1
                findings.append(
                    Finding("models", "ok", f"{artifact.file} loads and runs in {name} {found[name]}", data=data)
                )
            else:
                error = str(result.get("error"))
                if any(m in result.get("stderr", "") for m in ABI_MESSAGES):
                    error += " (NumPy ABI mismatch, see numpy-abi)"
                findings.append(
                    Finding(
                        "models",
                        "fail",
                        f"{artifact.file} in {name} {found[name]}: {error}",
                        _load_fix(error, result.get("stderr", ""), name),
                        {**data, "error": error},
                    )
                )
    if manifest.artifacts and not runnable:
        findings.append(Finding("models", "fail", f"no model file of {run_dir} runs here", "see the lines above"))
    if not manifest.artifacts:
        findings.append(Finding("models", "warn", f"{run_dir} has no exported model files", "edgeclf export RUN"))
    return findings
