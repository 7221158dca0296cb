"""Choose the default preset by measurement: train variants of the presets on real photos.

Each variant is a registered preset (``edgeclf.trainer.presets``) with a few fields replaced; the network,
the augmentation and the compile step all come from the preset itself, never copied here. Images
are decoded once per input size through ``edgeclf.runtime.dataset`` (the one preprocessing path);
training is plain ``keras.Model.fit`` with the preset's augmentation in ``tf.data``, early stopping
on validation accuracy with the best weights restored, and an optional wall-time budget.

Every finished variant appends one JSON line to ``--results``; the table of all of them is
printed at the end (``--table-only`` prints it without training).

Example (what produced docs/presets.md)::

    nice -n 10 .venv/bin/python research/preset_search.py --data ../shared/data/cars-vs-bikes \\
        --variant default --results /tmp/preset_search.jsonl

Numbers depend on a shared 2-core machine: wall times vary by up to ~2x between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

# variant name -> (registered preset, fields replaced). Augmentation strength is given as
# "augment_scale" (a multiplier of the preset's own AugmentSpec), everything else is a Preset field.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "seed": ("seed", {}),
    "default": ("default", {}),
    # -- the MobileNet-style search (base: the default preset) --
    "ds-w0.5-128": ("default", {"width": 0.5, "image_size": 128}),
    "ds-w0.75-128": ("default", {"width": 0.75, "image_size": 128}),
    "ds-w1.0-128": ("default", {"width": 1.0, "image_size": 128}),
    "ds-w0.5-160": ("default", {"width": 0.5, "image_size": 160}),
    "ds-w0.5-96": ("default", {"width": 0.5, "image_size": 96}),
    "ds-w0.5-128-aug1.0": ("default", {"augment_scale": 2.0}),
    "ds-w0.5-128-aug0.25": ("default", {"augment_scale": 0.5}),
    "ds-w0.5-128-noaug": ("default", {"augment_scale": 0.0}),
    "ds-w0.5-128-adam-const": ("default", {"optimizer": "adam", "lr_schedule": "constant", "learning_rate": 1e-3}),
    "ds-w0.5-128-lr4e-3": ("default", {"learning_rate": 4e-3}),
    "ds-w0.5-128-lr1e-3": ("default", {"learning_rate": 1e-3}),
    "ds-w0.5-128-nols": ("default", {"label_smoothing": 0.0}),
    "ds-w0.5-128-drop0.5": ("default", {"dropout": 0.5}),
    "ds-w0.5-128-b32": ("default", {"batch_size": 32}),
    "mobilenetv2-scratch": ("mobilenetv2", {}),
    "mobilenetv3small-scratch": ("mobilenetv3small", {}),
}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/cars-vs-bikes")
    parser.add_argument("--variant", action="append", default=[], help=f"one of: {', '.join(VARIANTS)}")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a field")
    parser.add_argument("--name", help="name of the result row (default: the variant + overrides)")
    parser.add_argument("--epochs", type=int, help="override the preset's epoch count")
    parser.add_argument("--patience", type=int, help="override the preset's patience")
    parser.add_argument("--budget-min", type=float, default=None, help="stop training after this many minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-every-epoch", action="store_true", help="also record test accuracy after each epoch")
    parser.add_argument("--results", type=Path, default=Path("/tmp/preset_search.jsonl"))
    parser.add_argument("--table-only", action="store_true", help="print the table of --results and exit")
    parser.add_argument(
        "--describe", action="store_true", help="print params/FLOPs of every registered preset and exit"
    )
    return parser.parse_args()


def _coerce(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def resolve_variant(name: str, extra: dict[str, Any]):
    """The Preset a variant stands for (a registered preset with some fields replaced)."""
    from edgeclf.trainer.presets import get_preset

    base_name, overrides = VARIANTS[name]
    preset = get_preset(base_name)
    changes = {**overrides, **extra}
    scale = changes.pop("augment_scale", None)
    if scale is not None:
        changes["augment"] = preset.augment.scaled(float(scale))
    return dataclasses.replace(preset, **changes) if changes else preset


_CACHE: dict[int, Any] = {}


def load_splits(data: Path, preset) -> dict[str, Any]:
    """Decode train/validation/test once per input size (through edgeclf.runtime.dataset)."""
    from edgeclf.runtime.dataset import load_samples, open_labelled_folder

    key = preset.image_size
    if key not in _CACHE:
        folder = open_labelled_folder(data)
        spec = preset.input_spec()
        loaded = {}
        for split in ("train", "validation", "test"):
            result = load_samples(folder.split(split), spec, workers=2)
            for error in result.failed:
                print(f"skipped: {error}", file=sys.stderr)
            loaded[split] = (result.images, result.labels)
        _CACHE[key] = (folder.labels, loaded)
    return _CACHE[key]


def run_variant(preset, data: Path, *, seed: int, budget_min: float | None, test_every_epoch: bool) -> dict[str, Any]:
    import keras
    import numpy as np
    import tensorflow as tf

    from edgeclf.trainer.presets import count_flops

    labels, splits = load_splits(data, preset)
    num_classes = len(labels)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits["train"], splits["validation"], splits["test"]
    keras.utils.set_random_seed(seed)
    augment = preset.augmentation(seed)
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(preset.batch_size)
        .map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(64)
    model = preset.build(preset.input_spec(), num_classes)
    steps = int(np.ceil(len(x_train) / preset.batch_size))
    preset.compile(model, num_classes, steps_per_epoch=steps, epochs=preset.epochs)

    test_per_epoch: list[float] = []
    epoch_times: list[float] = []
    started = time.perf_counter()

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_times.append(time.perf_counter() - self._t)
            if test_every_epoch:
                test_per_epoch.append(float(self.model.evaluate(x_test, y_test, batch_size=64, verbose=0)[1]))
            line = f"  epoch {epoch + 1}: acc {logs['accuracy']:.3f} val {logs['val_accuracy']:.3f}"
            if test_every_epoch:
                line += f" test {test_per_epoch[-1]:.3f}"
            print(f"{line} ({epoch_times[-1]:.1f}s, {time.perf_counter() - started:.0f}s total)", flush=True)
            if budget_min is not None and time.perf_counter() - started > budget_min * 60:
                print(f"  wall-time budget of {budget_min} min reached", flush=True)
                self.model.stop_training = True

    early = keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=preset.patience, restore_best_weights=True
    )
    history = model.fit(train, validation_data=val, epochs=preset.epochs, callbacks=[Watch(), early], verbose=0)
    train_seconds = time.perf_counter() - started
    _test_loss, test_acc = model.evaluate(x_test, y_test, batch_size=64, verbose=0)
    val_acc = history.history["val_accuracy"]
    return {
        "test_accuracy": float(test_acc),
        "best_val_accuracy": float(max(val_acc)),
        "best_epoch": int(early.best_epoch + 1),
        "epochs_run": len(val_acc),
        "train_seconds": round(train_seconds, 1),
        "median_epoch_seconds": round(float(np.median(epoch_times)), 2),
        "params": int(model.count_params()),
        "mflops": round(count_flops(model) / 1e6, 1),
        "val_accuracy_per_epoch": [round(float(v), 4) for v in val_acc],
        "test_accuracy_per_epoch": [round(v, 4) for v in test_per_epoch],
        "counts": {k: len(v[0]) for k, v in splits.items()},
    }


def print_table(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    header = (
        f"{'variant':34} {'seed':>4} {'size':>4} {'width':>5} {'params':>9} {'MFLOP':>7} {'test acc':>8} "
        f"{'best val':>8} {'best ep':>7} {'epochs':>6} {'s/epoch':>7} {'train s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        p = r["preset"]
        print(
            f"{r['name']:34} {r['seed']:>4} {p['image_size']:>4} {p['width']:>5} {r['params']:>9,} {r['mflops']:>7.1f} "
            f"{r['test_accuracy']:>8.3f} {r['best_val_accuracy']:>8.3f} {r['best_epoch']:>7} {r['epochs_run']:>6} "
            f"{r['median_epoch_seconds']:>7.1f} {r['train_seconds']:>7.0f}"
        )


def describe_presets() -> None:
    """Params and FLOPs per frame of every registered preset at its default size (2 classes)."""
    from edgeclf.trainer.presets import PRESETS, count_flops

    header = (
        f"{'preset':18} {'network':16} {'input':>7} {'width':>5} {'params':>10} {'MFLOP/frame':>11} {'optimizer':>9}"
    )
    print(header)
    print("-" * len(header))
    for preset in PRESETS.values():
        model = preset.build(preset.input_spec(), 2)
        side = preset.image_size
        print(
            f"{preset.name:18} {preset.architecture:16} {f'{side}x{side}':>7} {preset.width:>5} "
            f"{model.count_params():>10,} {count_flops(model) / 1e6:>11.1f} {preset.optimizer:>9}"
        )


def main() -> None:
    args = _parse()
    if args.describe:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        describe_presets()
        return
    if args.table_only:
        print_table(args.results)
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not args.data.is_dir():
        sys.exit(f"{args.data}: no such data folder (needs train/validation/test class folders)")
    extra = {}
    for item in args.set:
        field_name, _, value = item.partition("=")
        extra[field_name] = _coerce(value)
    if args.epochs:
        extra["epochs"] = args.epochs
    if args.patience:
        extra["patience"] = args.patience
    for variant in args.variant or ["default"]:
        preset = resolve_variant(variant, extra)
        name = args.name or (variant + "".join(f" {k}={v}" for k, v in extra.items()))
        print(f"== {name}: {preset.architecture} {preset.image_size}px width {preset.width}", flush=True)
        result = run_variant(
            preset, args.data, seed=args.seed, budget_min=args.budget_min, test_every_epoch=args.test_every_epoch
        )
        row = {"name": name, "variant": variant, "overrides": extra, "seed": args.seed, **result}
        row["preset"] = preset.to_dict()
        with args.results.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(
            f"== {name}: test {result['test_accuracy']:.3f}, best epoch {result['best_epoch']}/{result['epochs_run']}, "
            f"{result['train_seconds']:.0f}s",
            flush=True,
        )
    print_table(args.results)


if __name__ == "__main__":
    main()
