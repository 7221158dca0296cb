"""Measure which TFLite operator versions tflite-runtime 2.14 loads, on every preset's exports.

Run with the main venv and a Python that has tflite-runtime 2.14::

    .venv/bin/python tests/helpers/tflite_runtime_table.py .venv-tflite214/bin/python [CLASSES...]

(CLASSES: 2 for a sigmoid head, 3 for a softmax head; default both.)

For each preset (untrained weights, small input) and each TFLite format, with and without
``--target tflite-runtime``, it converts through the exporter, then loads and runs the file in
tflite-runtime 2.14 (through edgeclf.runtime's ``tflite-runtime`` backend). It prints the highest
version of every operator seen loading there, which is ``edgeclf.exporter.tflite.TFLITE_RUNTIME_214_MAX_VERSIONS``,
and every (file, operator, version) that failed.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main(python: Path, class_counts: tuple[int, ...] = (2, 3)) -> None:
    from edgeclf.exporter.context import ConversionContext
    from edgeclf.exporter.formats import all_formats
    from edgeclf.exporter.tflite import op_versions, verify_with_tflite_runtime
    from edgeclf.runtime.manifest import InputSpec, Manifest
    from edgeclf.trainer.presets import PRESETS

    rng = np.random.default_rng(0)
    loaded: dict[str, int] = {}
    failed: list[tuple[str, dict[str, int], str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, preset, classes in [(n, p, c) for n, p in PRESETS.items() for c in class_counts]:
            size = 96
            spec = InputSpec(size, size)
            model = preset.build(spec, classes)
            labels = tuple("abc"[:classes])
            activation = "sigmoid" if classes == 2 else "softmax"
            manifest = Manifest(labels=labels, input=spec, output_activation=activation, preset=name)
            images = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
            for target in (None, "tflite-runtime"):
                for fmt in all_formats().values():
                    if fmt.suffix != ".tflite":
                        continue
                    ctx = ConversionContext(
                        model=model,
                        manifest=manifest,
                        batch_size=1,
                        opset=17,
                        target=target,
                        work_dir=work,
                        tflite_runtime_python=None,
                        load_calibration=lambda _count=None, images=images: images,
                    )
                    data = fmt.export(ctx, fmt).data
                    path = work / f"{name}-{fmt.name}-{target}.tflite"
                    path.write_bytes(data)
                    from edgeclf.runtime.classifier import Classifier

                    with Classifier.from_file(path, backend="litert") as clf:
                        reference = np.concatenate([clf.scores(images[i : i + 1]) for i in range(len(images))])
                    versions = op_versions(data)
                    reason = verify_with_tflite_runtime(path, python, images, reference, work)
                    tag = f"{name} {activation} {fmt.name} target={target}"
                    print(tag, json.dumps(versions), "OK" if reason is None else reason, flush=True)
                    if reason is None:
                        for op, version in versions.items():
                            loaded[op] = max(loaded.get(op, 0), version)
                    else:
                        failed.append((tag, versions, reason))
    print("\nTFLITE_RUNTIME_214_MAX_VERSIONS =", json.dumps(dict(sorted(loaded.items())), indent=4))
    for tag, versions, reason in failed:
        print("FAILED", tag, versions, reason)


if __name__ == "__main__":
    main(Path(sys.argv[1]), tuple(int(c) for c in sys.argv[2:]) or (2, 3))
