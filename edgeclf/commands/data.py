"""``edgeclf make-demo-data``: write the synthetic elephants-vs-cars photo set (no TensorFlow needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from edgeclf.trainer.demo_data import DEFAULT_COUNTS as _COUNTS


def make_demo_data(
    out: Annotated[Path, typer.Argument(help="Folder to create, e.g. data/demo. Must not exist (or be empty).")],
    train_per_class: Annotated[int, typer.Option(min=1, help="Training images per class.")] = _COUNTS["train"],
    validation_per_class: Annotated[int, typer.Option(min=1, help="Validation images.")] = _COUNTS["validation"],
    test_per_class: Annotated[int, typer.Option(min=0, help="Test images per class (0: none).")] = _COUNTS["test"],
    width: Annotated[int, typer.Option(min=16, max=4096, help="Image width in pixels.")] = 320,
    height: Annotated[int, typer.Option(min=16, max=4096, help="Image height in pixels.")] = 240,
    seed: Annotated[int, typer.Option(help="Seed: the same options give byte-identical files.")] = 0,
    tint_classes: Annotated[
        bool,
        typer.Option(
            "--tint-classes",
            help="Tint each class (cars warm, elephants cool) when writing the set: a colour cue a tiny "
            "model learns in 2 epochs (what `make fixture-models` uses).",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary instead of text.")] = False,
) -> None:
    """Generate the embedded default data set: SYNTHETIC drawings of elephants and cars as JPEG files.

    Layout: OUT/{train,validation,test}/{cars,elephants}/NNNN.jpg, the seed article's convention, so
    `edgeclf train --data OUT` walks the same path as a folder of real photos.
    """
    from edgeclf.runtime.progress import progress_mode, track
    from edgeclf.trainer.demo_data import generate_demo_dataset, is_complete_demo_dataset

    already = is_complete_demo_dataset(out)
    counts = {"train": train_per_class, "validation": validation_per_class, "test": test_per_class}
    total = 2 * sum(counts.values())
    start = time.perf_counter()
    with (
        progress_mode("plain" if json_output else "auto"),
        track("writing demo images", 0 if already else total) as advance,
    ):
        generate_demo_dataset(
            out,
            train_per_class=train_per_class,
            validation_per_class=validation_per_class,
            test_per_class=test_per_class,
            image_size=(width, height),
            seed=seed,
            tinted=tint_classes,
            progress=lambda done, of: advance(),
        )
    seconds = time.perf_counter() - start
    if json_output:
        summary = {
            "out": str(out),
            "created": not already,
            "classes": ["cars", "elephants"],
            "per_class": counts,
            "images": total,
            "size": [width, height],
            "seed": seed,
            "tinted": tint_classes,
            "seconds": round(seconds, 2),
        }
        typer.echo(json.dumps(summary, indent=2))
    elif already:
        typer.echo(f"{out}: demo data set already complete ({total} images); nothing to do")
    else:
        split_text = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
        typer.echo(
            f"wrote {total} synthetic images ({width}x{height} JPEG; per class: {split_text}) "
            f"of cars and elephants to {out} in {seconds:.1f} s"
        )
