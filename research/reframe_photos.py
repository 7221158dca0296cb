"""Re-frame labelled photos to a camera's aspect ratio, to measure how a resize mode copes with it.

Camera frames are 4:3 or 16:9, while photo sets are mostly 4:3 and 3:2 with some portraits. This
writes a copy of a split, each photo re-framed to ``--aspect`` at full resolution (nothing is
resized here; the model's own preprocessing does that when the copy is evaluated):

* ``pad``: the whole photo, centred on a black canvas of that aspect ratio — the subject seen by a
  wider camera, with nothing around it;
* ``crop``: the centre region of that aspect ratio — a wide camera pointed at the same subject,
  losing the top and bottom of a taller photo.

Usage::

    python -m research.reframe_photos PHOTOS/cars-vs-bikes OUT --mode pad --aspect 16:9
    edgeclf evaluate RUN --data OUT

Photos are decoded by the one loader (EXIF orientation applied) and written as PNG (lossless).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from edgeclf.runtime.dataset import open_labelled_folder
from edgeclf.runtime.fileio import atomic_write_bytes
from edgeclf.runtime.preprocess import centre_crop_box, load_image

MODES = ("pad", "crop")
PAD_FILL = (0, 0, 0)


def parse_aspect(text: str) -> tuple[int, int]:
    """``"16:9"`` → ``(16, 9)``."""
    width, _, height = text.partition(":")
    try:
        aspect = (int(width), int(height))
    except ValueError:
        raise argparse.ArgumentTypeError(f"aspect should look like 16:9, got {text!r}") from None
    if min(aspect) < 1:
        raise argparse.ArgumentTypeError(f"aspect sides must be positive, got {text!r}")
    return aspect


def reframe(image: Image.Image, mode: str, aspect: tuple[int, int]) -> Image.Image:
    """``image`` padded or centre-cropped (no scaling) to the aspect ratio ``aspect`` (width, height)."""
    if mode == "crop":
        return image.crop(centre_crop_box(image.size, aspect))
    width, height = image.size
    if width * aspect[1] < height * aspect[0]:  # narrower than the target: widen
        size = (round(height * aspect[0] / aspect[1]), height)
    else:
        size = (width, round(width * aspect[1] / aspect[0]))
    canvas = Image.new("RGB", size, PAD_FILL)
    canvas.paste(image, ((size[0] - width) // 2, (size[1] - height) // 2))
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="labelled photos (DIR/test/<class>/* or DIR/<class>/*)")
    parser.add_argument("out", type=Path, help="where to write OUT/<class>/<name>.png")
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--aspect", type=parse_aspect, default=(16, 9), help="width:height (default 16:9)")
    parser.add_argument("--split", default="test", help="which split to copy (default test)")
    args = parser.parse_args(argv)
    folder = open_labelled_folder(args.data)
    samples = folder.split(args.split)
    for sample in samples:
        image = reframe(load_image(sample.path), args.mode, args.aspect)
        target = args.out / folder.labels[sample.label] / f"{Path(sample.path).stem}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        atomic_write_bytes(target, buffer.getvalue())
    aspect = f"{args.aspect[0]}:{args.aspect[1]}"
    print(f"{len(samples)} photos of {args.data} ({args.split}) → {args.out} ({args.mode} to {aspect})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
