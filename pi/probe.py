"""Run one exported model on a batch of photos and print its raw outputs and scores as one JSON line.

``pi/check.py`` runs this in a target Python (the emulated Pi, or its x86-64 twin), one process
per model, so a crash in one interpreter is caught as that process's signal. It goes through
``edgeclf.runtime`` (the Classifier, its backends and the one preprocessing function), never a second
inference path.

Usage: ``python probe.py RUN_DIR FORMAT BACKEND [--raw] IMAGE...``

* default: ``Classifier.from_run`` — the user's path, which refuses a file the exporter marked
  incompatible with the backend (exit 1, ``error: …`` on stderr);
* ``--raw``: load the file straight into the backend, ignoring that mark, to see what the
  interpreter really does with it.

The images are run together as one batch *and* one by one (a dynamic-batch model is resized for the
batch; a static batch-1 model is looped), so batch code paths of the interpreters are exercised too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edgeclf.runtime.backends import get_backend
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.manifest import Manifest


def load(run_dir: Path, fmt: str, backend: str, raw: bool) -> Classifier:
    if not raw:
        return Classifier.from_run(run_dir, format=fmt, backend=backend, threads=2)
    manifest = Manifest.load(run_dir)
    artifact = manifest.artifact(fmt)
    # The Classifier constructor still checks tensors against the manifest; only the compatibility
    # refusal (which lives in Classifier.from_run/_load) is bypassed.
    return Classifier(get_backend(backend).load(run_dir / artifact.file, threads=2), manifest, artifact)


def main(argv: list[str]) -> int:
    raw = "--raw" in argv
    run_dir, fmt, backend, *images = [a for a in argv if a != "--raw"]
    try:
        with load(Path(run_dir), fmt, backend, raw) as clf:
            batch = np.stack([clf.preprocess(image) for image in images])
            together = clf.session.run(clf.prepare(batch))
            single = np.concatenate([clf.session.run(clf.prepare(batch[i : i + 1])) for i in range(len(batch))])
            scores = clf.postprocess(together)
            names = [Path(image).name for image in images]
            record = {
                "backend": clf.backend_name,
                "dtype": str(together.dtype),
                "raw": {n: together[i].ravel().tolist() for i, n in enumerate(names)},
                "raw_single": {n: single[i].ravel().tolist() for i, n in enumerate(names)},
                "scores": {n: scores[i].tolist() for i, n in enumerate(names)},
            }
    except EdgeclfError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
