"""The runtime never loads TensorFlow or Keras: importing it, loading models and classifying.

Run in a fresh interpreter, because the test session itself may already have TensorFlow loaded.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("tensorflow", "keras", "tf_keras", "tensorboard")
# edgeclf.runtime itself must not reach into the other stages either (the CLI may, lazily and lightly).
FORBIDDEN = (*HEAVY, "edgeclf.trainer", "edgeclf.exporter")

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import edgeclf.runtime, edgeclf.runtime.backends, edgeclf.runtime.classifier
    import edgeclf.runtime.camera, edgeclf.runtime.embedded
    run = sys.argv[1] if len(sys.argv) > 1 else None
    used = []
    if run:
        from edgeclf.runtime.classifier import Classifier, compatibility_problem
        from edgeclf.runtime.backends import backend_for
        from edgeclf.runtime.errors import BackendUnavailableError
        from edgeclf.runtime.manifest import Manifest
        manifest = Manifest.load(run)
        image = sorted((Path(manifest.data["root"]) / "test").rglob("*.jpg"))[0]
        for artifact in manifest.artifacts:
            try:
                backend = backend_for(artifact.file, artifact.backend)
            except BackendUnavailableError:
                continue
            if compatibility_problem(artifact, backend.name):
                continue
            with Classifier.from_run(run, format=artifact.format) as clf:
                clf.classify(image)
            used.append(artifact.format)
    runtime_roots = sorted({".".join(n.split(".")[: 2 if n.startswith("edgeclf.") else 1]) for n in sys.modules})
    if run:
        try:  # the whole command line too, when typer is installed
            from edgeclf.cli import app
        except ImportError:
            pass
        else:
            try:
                app(["classify", run, str(image), "--json"])
            except SystemExit as stop:
                assert stop.code in (0, None), stop.code
            used.append("cli")
    roots = sorted({".".join(n.split(".")[: 2 if n.startswith("edgeclf.") else 1]) for n in sys.modules})
    print(json.dumps({"modules": runtime_roots, "cli_modules": roots, "used": used}))
    """
)


def _run(*args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_runtime_loads_no_tensorflow():
    result = _run()
    assert not set(FORBIDDEN) & set(result["modules"]), result["modules"]
    # and no interpreter either until a model is loaded: they are imported lazily
    assert not {"ai_edge_litert", "tflite_runtime", "onnxruntime", "cv2"} & set(result["modules"])


def test_classifying_with_every_installed_backend_loads_no_tensorflow(fixture_run):
    result = _run(fixture_run)
    if not result["used"]:
        pytest.fail("no fixture model could be run in this venv")
    assert not set(FORBIDDEN) & set(result["modules"]), result["modules"]
    assert not set(HEAVY) & set(result["cli_modules"]), result["cli_modules"]
