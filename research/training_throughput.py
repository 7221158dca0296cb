"""Training throughput: edgeclf's tf.data pipeline vs an ImageDataGenerator-style loop, side by side.

Both train the same preset model (same initial weights, same optimizer, same augmentation layer,
same batch size) on the same photos; epochs of the two are interleaved (A B, B A, …) so that a
machine that speeds up or slows down affects both alike, and the medians are compared.

* **pipeline** — what ``edgeclf train`` does: every image decoded once through
  :func:`edgeclf.runtime.dataset.load_samples` (timed separately, the one-off cost), then per epoch a
  tf.data pipeline over the decoded uint8 arrays: shuffle, batched augmentation in parallel, prefetch.
* **baseline** — what the seed did with ``ImageDataGenerator.flow_from_directory``: a
  ``keras.utils.PyDataset`` that decodes every file of every batch again in every epoch, with no
  cache and no prefetch (one worker). By default it decodes like ``ImageDataGenerator`` did
  (``keras.utils.load_img``: full-size decode, nearest resize); ``--baseline-decoder preprocess`` uses
  edgeclf's own (faster, draft-mode) decoder instead. The augmentation is the preset's Keras layer
  applied to each batch — cheaper than ImageDataGenerator's per-image scipy transforms, so the
  ratio measured here is a lower bound of the gain over the real ImageDataGenerator.

Run (takes a few minutes; use ``nice`` on a shared machine)::

    .venv/bin/python research/training_throughput.py --data /work/shared/data/cars-vs-bikes --preset default
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeclf.kerasio import import_tensorflow
from edgeclf.runtime.dataset import Sample, load_samples, open_labelled_folder
from edgeclf.runtime.errors import ImageDecodeError
from edgeclf.runtime.preprocess import preprocess


def _baseline_dataset(keras, samples, spec, batch_size, augmentation, num_classes, decoder, seed):
    """An ImageDataGenerator-style PyDataset: decode + augment each batch on demand, every epoch."""

    def decode(path: Path) -> np.ndarray:
        if decoder == "preprocess":
            return preprocess(path, spec)
        image = keras.utils.load_img(path, target_size=(spec.height, spec.width), interpolation="nearest")
        return np.asarray(image, dtype=np.uint8)

    class FromFiles(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(samples))

        def __len__(self) -> int:
            return math.ceil(len(samples) / batch_size)

        def __getitem__(self, index: int):
            chosen = [samples[i] for i in self.order[index * batch_size : (index + 1) * batch_size]]
            images, labels = [], []
            for sample in chosen:
                try:
                    images.append(decode(sample.path))
                except (ImageDecodeError, OSError):
                    continue
                labels.append(sample.label)
            x = augmentation(np.stack(images).astype(np.float32), training=True)
            x = np.clip(np.rint(keras.ops.convert_to_numpy(x)), 0, 255).astype(np.uint8)
            y = np.asarray(labels, np.float32).reshape(-1, 1) if num_classes == 2 else np.asarray(labels)
            return x, y

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(samples))

    return FromFiles()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="labelled photos (its train split is used)")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs of each, interleaved")
    parser.add_argument("--baseline-decoder", choices=("load_img", "preprocess"), default="load_img")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)

    tf, keras = import_tensorflow()

    from edgeclf.trainer.datasets import make_dataset
    from edgeclf.trainer.datasets import targets as training_targets
    from edgeclf.trainer.presets import get_preset

    preset = get_preset(args.preset)
    side = args.image_size or preset.image_size
    batch = args.batch_size or preset.batch_size
    spec = preset.input_spec(side)
    folder = open_labelled_folder(args.data)
    samples: list[Sample] = list(folder.split("train"))
    num_classes = len(folder.labels)
    keras.utils.set_random_seed(0)

    start = time.perf_counter()
    loaded = load_samples(samples, spec)
    decode_seconds = time.perf_counter() - start
    n_pipeline = len(loaded.labels)
    pipeline_ds = make_dataset(
        tf,
        loaded.images,
        training_targets(loaded.labels, num_classes),
        batch_size=batch,
        shuffle_seed=0,
        augmentation=preset.augmentation(0),
    )
    good = {str(p) for p in loaded.paths}
    base_samples = [s for s in samples if str(s.path) in good]  # same photos for both
    baseline_ds = _baseline_dataset(
        keras, base_samples, spec, batch, preset.augmentation(1), num_classes, args.baseline_decoder, 0
    )

    models = {}
    for name in ("pipeline", "baseline"):
        model = preset.build(spec, num_classes)
        if models:
            model.set_weights(next(iter(models.values())).get_weights())
        preset.compile(model, num_classes)
        models[name] = model
    datasets = {"pipeline": pipeline_ds, "baseline": baseline_ds}

    cpu: dict[str, list[float]] = {"pipeline": [], "baseline": []}

    def epoch(name: str) -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        models[name].fit(datasets[name], epochs=1, verbose=0, shuffle=False)
        cpu[name].append(time.process_time() - c0)
        return time.perf_counter() - t0

    warmup = {name: epoch(name) for name in ("pipeline", "baseline")}  # tracing, first-call costs
    for values in cpu.values():
        values.clear()
    times: dict[str, list[float]] = {"pipeline": [], "baseline": []}
    for r in range(args.rounds):
        order = ("pipeline", "baseline") if r % 2 == 0 else ("baseline", "pipeline")
        for name in order:
            times[name].append(epoch(name))
        print(
            f"round {r + 1}/{args.rounds}: pipeline {times['pipeline'][-1]:.2f} s "
            f"({cpu['pipeline'][-1]:.2f} s CPU), baseline {times['baseline'][-1]:.2f} s "
            f"({cpu['baseline'][-1]:.2f} s CPU)",
            flush=True,
        )

    med = {name: statistics.median(values) for name, values in times.items()}
    med_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    ips = {name: n_pipeline / med[name] for name in med}
    amortised_epochs = 10
    amortised = {
        "pipeline": amortised_epochs * n_pipeline / (decode_seconds + amortised_epochs * med["pipeline"]),
        "baseline": ips["baseline"],
    }
    result = {
        "data": str(folder.root),
        "images": n_pipeline,
        "preset": preset.name,
        "image_size": side,
        "batch_size": batch,
        "baseline_decoder": args.baseline_decoder,
        "rounds": args.rounds,
        "decode_once_seconds": round(decode_seconds, 3),
        "warmup_epoch_seconds": {k: round(v, 3) for k, v in warmup.items()},
        "epoch_seconds": {k: [round(v, 3) for v in values] for k, values in times.items()},
        "median_epoch_seconds": {k: round(v, 3) for k, v in med.items()},
        "images_per_second": {k: round(v, 1) for k, v in ips.items()},
        "ratio": round(ips["pipeline"] / ips["baseline"], 2),
        # CPU seconds of this process per epoch: the work done, less sensitive to other load.
        "median_epoch_cpu_seconds": {k: round(v, 3) for k, v in med_cpu.items()},
        "cpu_ratio": round(med_cpu["baseline"] / med_cpu["pipeline"], 2),
        f"ratio_including_decode_over_{amortised_epochs}_epochs": round(
            amortised["pipeline"] / amortised["baseline"], 2
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, Keras {keras.__version__}",
    }
    print()
    print(f"{'':<10} {'median epoch':>13} {'images/s':>9} {'CPU s/epoch':>12}")
    for name in ("pipeline", "baseline"):
        print(f"{name:<10} {med[name]:>12.2f}s {ips[name]:>9.1f} {med_cpu[name]:>12.2f}")
    print(
        f"ratio pipeline/baseline: {result['ratio']}x per epoch; "
        f"{result[f'ratio_including_decode_over_{amortised_epochs}_epochs']}x over {amortised_epochs} epochs "
        f"including the one-off decode ({decode_seconds:.2f} s for {n_pipeline} images); "
        f"{result['cpu_ratio']}x less CPU time per epoch"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
