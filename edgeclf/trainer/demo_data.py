"""The embedded default dataset: synthetic photos of elephants and cars, drawn procedurally.

The seed article trained a small CNN on photos of two classes in ``train/``, ``validation/`` and
``test/`` folders. This module writes a data set in exactly that layout, offline and
deterministically, so that ``make train`` works on a fresh machine without downloading anything and
walks the same path (JPEG files → :func:`edgeclf.runtime.preprocess.preprocess`) as a user's photos.

The pictures are *synthetic*: side views of elephants and cars drawn with Pillow, with random pose
(facing left or right, position, tilt, at most a tenth out of frame), scale, colour (elephant greys and
browns overlap silver, grey and brown cars), background clutter shared by both classes (sky and
ground gradients, trees, bushes, rocks, houses, road lines, wheel-like and ear-like blobs),
occluding foreground plants, lighting (brightness, contrast, a light gradient), blur, sensor noise
and JPEG compression at a random quality. Background and colour are deliberately *not* tied to the
class, so a model has to learn the shapes; it does not reach 100% after one epoch.

Only numpy and Pillow are used (no TensorFlow), so the command works on any install.
Every image comes from its own random generator seeded by ``(seed, split, class, index)``: the same
arguments give the same bytes on every run, and changing one count does not change the other images.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from edgeclf.runtime.errors import ConfigError, DatasetError

__all__ = [
    "CLASSES",
    "CLASS_TINT",
    "SPLITS",
    "DemoDataSpec",
    "generate_demo_dataset",
    "is_complete_demo_dataset",
    "render_demo_jpeg",
    "tint_classes",
]

CLASSES = ("cars", "elephants")  # sorted: the label order every stage derives from folder names
SPLITS = ("train", "validation", "test")
COMPLETE_MARKER = ".complete"
FORMAT_VERSION = 2  # bump when the drawing changes, so an old folder is not mistaken for a new one

# Images per class and split of `make train`'s demo set. The pretrained default separates these
# clean drawings from 100 training photos a class; the 50 + 50 held-out photos a class are the
# exporter's 200 validation images. Every file is run on each of them in every runtime it is declared
# for, and tflite-runtime 2.14 takes 30-300 ms an image on x86-64 (int8 slowest), so the validation
# set is what sets the time of `make export`; twice the images took about twice as long.
DEFAULT_COUNTS = {"train": 100, "validation": 50, "test": 50}

# Side of the shared sensor-noise field (see _noise_bank).
_NOISE_BANK_SIDE = 768

# Objects are drawn at this multiple of the output size and downsampled: smooth edges, cheaply.
_SUPERSAMPLE = 2


@dataclass(frozen=True)
class DemoDataSpec:
    """What a demo folder was generated with; stored in ``OUT/.complete``."""

    train_per_class: int
    validation_per_class: int
    test_per_class: int
    width: int
    height: int
    seed: int
    format_version: int = FORMAT_VERSION
    tinted: bool = False  # every class multiplied by its CLASS_TINT (markers without the key: False)
    classes: tuple[str, ...] = CLASSES

    def counts(self) -> dict[str, int]:
        return {
            "train": self.train_per_class,
            "validation": self.validation_per_class,
            "test": self.test_per_class,
        }


def generate_demo_dataset(
    out: str | Path,
    *,
    train_per_class: int = DEFAULT_COUNTS["train"],
    validation_per_class: int = DEFAULT_COUNTS["validation"],
    test_per_class: int = DEFAULT_COUNTS["test"],
    image_size: tuple[int, int] = (320, 240),
    seed: int = 0,
    tinted: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write the synthetic elephants-vs-cars photo set to ``out``.

    Layout: ``out/{train,validation,test}/{cars,elephants}/NNNN.jpg`` and ``out/.complete``
    (JSON of the parameters), written last. The folder is built in a temporary sibling and renamed
    into place, so an interrupted run leaves nothing that looks like a finished data set.

    Args:
        out: destination folder. It must not exist, be empty, or already hold a complete demo set
            generated with the same parameters (then it is returned unchanged).
        train_per_class, validation_per_class, test_per_class: images per class in each split
            (``test_per_class=0`` writes no ``test/`` folder).
        image_size: ``(width, height)`` of every image in pixels.
        seed: the data set's seed; the same arguments give byte-identical files.
        tinted: tint each class with :data:`CLASS_TINT` (see :func:`tint_classes`) before the set appears.
        progress: called as ``progress(done, total)`` after each image.

    Returns:
        ``out`` as a :class:`Path`.

    Raises:
        DatasetError: bad arguments, or ``out`` exists and is not a complete demo set with the same
            parameters.
    """
    out = Path(out)
    width, height = (int(v) for v in image_size)
    counts = (int(train_per_class), int(validation_per_class), int(test_per_class))
    spec = DemoDataSpec(*counts, width, height, int(seed), tinted=bool(tinted))
    _check_spec(spec)
    existing = _existing_spec(out)
    if existing is not None:
        if existing == spec:
            return out
        raise DatasetError(
            f"{out}: holds a demo data set generated with other parameters ({_describe(existing)}); "
            "remove it or choose another folder"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(
            f"{out}: exists and is not a complete demo data set (no {COMPLETE_MARKER}); "
            "remove it or choose another folder"
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        _write_images(staging, spec, progress)
        if spec.tinted:
            tint_classes(staging)
        marker = asdict(spec)
        marker["classes"] = list(spec.classes)
        (staging / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        _move_into_place(staging, out, spec)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _write_images(folder: Path, spec: DemoDataSpec, progress: Callable[[int, int], None] | None) -> None:
    """Every split's images into ``folder/SPLIT/CLASS/NNNN.jpg``, each from its own seeded generator."""
    total = 2 * sum(spec.counts().values())
    done = 0
    for split_index, split in enumerate(SPLITS):
        count = spec.counts()[split]
        if count == 0:
            continue
        for class_index, name in enumerate(CLASSES):
            target = folder / split / name
            target.mkdir(parents=True)
            for index in range(count):
                seed = (spec.seed, split_index, class_index, index)
                (target / f"{index:04d}.jpg").write_bytes(render_demo_jpeg(name, (spec.width, spec.height), seed=seed))
                done += 1
                if progress is not None:
                    progress(done, total)


def _move_into_place(staging: Path, out: Path, spec: DemoDataSpec) -> None:
    """Rename the finished ``staging`` folder to ``out``: the moment the data set appears."""
    try:
        if out.exists():
            out.rmdir()  # empty when checked before; fails if something was written there since
        os.replace(staging, out)
    except OSError:
        # Another process filled `out` meanwhile (e.g. two `make train` at once): fine if it is the same set.
        if _existing_spec(out) == spec:
            shutil.rmtree(staging, ignore_errors=True)
            return
        raise DatasetError(
            f"{out}: something else was written there while the demo data was generated; "
            "remove it or choose another folder"
        ) from None


# Per-class channel gains (R, G, B) for :func:`tint_classes`: cars warm, elephants cool.
CLASS_TINT: dict[str, tuple[float, float, float]] = {"cars": (1.0, 0.65, 0.3), "elephants": (0.3, 0.65, 1.0)}


def tint_classes(root: str | Path, tints: dict[str, tuple[float, float, float]] = CLASS_TINT) -> int:
    """Multiply every picture under ``root/*/CLASS/`` by its class's (R, G, B) gains, in place; return the count.

    The untinted demo pictures need many epochs (colour is not tied to the class); with a tint a
    2-epoch model tells the classes apart, which is what test fixtures need: a model whose scores
    move with the picture, so a preprocessing or quantisation mistake downstream becomes visible.
    Every class folder found must have a tint (a forgotten one would stay untinted silently).
    """
    paths = sorted(Path(root).glob("*/*/*.jpg"))
    missing = sorted({p.parent.name for p in paths} - set(tints))
    if missing:
        raise DatasetError(f"{root}: no tint for class folder(s) {', '.join(missing)}")
    for path in paths:
        with Image.open(path) as image:
            tinted = np.asarray(image.convert("RGB"), np.float32) * tints[path.parent.name]
        Image.fromarray(np.clip(np.rint(tinted), 0, 255).astype(np.uint8)).save(path, quality=90)
    return len(paths)


def is_complete_demo_dataset(out: str | Path) -> bool:
    """True when ``out`` is a finished demo data set (any parameters)."""
    return _existing_spec(Path(out)) is not None


def _check_spec(spec: DemoDataSpec) -> None:
    if spec.train_per_class < 1 or spec.validation_per_class < 1:
        raise DatasetError(
            "the demo data set needs at least one training and one validation image per class, got "
            f"train={spec.train_per_class}, validation={spec.validation_per_class}"
        )
    if spec.test_per_class < 0:
        raise DatasetError(f"test images per class must be 0 or more, got {spec.test_per_class}")
    if max(spec.counts().values()) > 9999:
        raise DatasetError("at most 9999 demo images per class and split")
    if not (16 <= spec.width <= 4096 and 16 <= spec.height <= 4096):
        raise DatasetError(f"demo image size must be between 16 and 4096 pixels a side, got {spec.width}x{spec.height}")


def _existing_spec(out: Path) -> DemoDataSpec | None:
    marker = out / COMPLETE_MARKER
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
        data["classes"] = tuple(data["classes"])
        return DemoDataSpec(**data)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise DatasetError(f"{marker}: unreadable ({error}); remove {out} and generate it again") from None


def _describe(spec: DemoDataSpec) -> str:
    return (
        f"train/validation/test={spec.train_per_class}/{spec.validation_per_class}/{spec.test_per_class} "
        f"per class, {spec.width}x{spec.height}, seed {spec.seed}, format {spec.format_version}"
        + (", tinted" if spec.tinted else "")
    )


# --------------------------------------------------------------------------------------------------
# Drawing. Every function takes the image's own generator `rng`; nothing global is random.
# --------------------------------------------------------------------------------------------------

_ELEPHANT_COLOURS = [(128, 124, 120), (105, 100, 96), (150, 142, 134), (120, 104, 92), (142, 120, 100), (90, 86, 84)]
_CAR_COLOURS = [
    (200, 30, 30),  # red
    (30, 60, 170),  # blue
    (235, 235, 235),  # white
    (25, 25, 28),  # black
    (170, 172, 176),  # silver — overlaps light elephants
    (110, 110, 112),  # grey — overlaps elephants
    (125, 100, 80),  # brown — overlaps brown elephants
    (220, 190, 40),  # yellow
    (40, 120, 60),  # green
    (20, 110, 140),  # teal
]
_SKIES = [((110, 160, 225), (200, 220, 240)), ((160, 175, 190), (215, 215, 210)), ((240, 170, 110), (250, 220, 160))]
_GROUNDS = [
    ((170, 150, 90), (120, 100, 60)),  # savanna
    ((80, 130, 60), (50, 90, 40)),  # grass
    ((95, 95, 98), (60, 60, 64)),  # asphalt
    ((200, 180, 140), (160, 135, 100)),  # sand / dirt road
    ((120, 110, 100), (80, 74, 68)),  # gravel
]


def render_demo_jpeg(kind: str, size: tuple[int, int], *, seed: tuple[int, ...]) -> bytes:
    """Draw one synthetic photo of ``kind`` (``"cars"`` or ``"elephants"``) and return JPEG bytes."""
    rng = np.random.default_rng(list(seed))
    image = render_demo_image(kind, size, rng)
    buffer = io.BytesIO()
    quality = int(rng.integers(35, 96))
    image.save(buffer, "JPEG", quality=quality, subsampling=int(rng.choice([0, 2])), optimize=False)
    return buffer.getvalue()


def render_demo_image(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Draw one synthetic RGB photo of ``kind`` with the generator ``rng`` (before JPEG coding)."""
    if kind not in CLASSES:
        raise ConfigError(f"unknown demo class {kind!r}; known: {', '.join(CLASSES)}")
    width, height = size
    horizon = rng.uniform(0.3, 0.65)
    canvas = _background(size, horizon, rng)
    _clutter(canvas, horizon, rng)

    # The subject: its layer is drawn supersampled, tilted, then composited with a soft shadow.
    ss = _SUPERSAMPLE
    layer = Image.new("RGBA", (width * ss, height * ss), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    # The subject is the main object of the photo and at most a tenth of it leaves the frame: with
    # smaller or half-hidden subjects (format 1: 0.35-0.9 wide, up to a fifth outside) a few photos
    # per hundred were ambiguous even to the pretrained model, and its int8 files flipped exactly
    # those (onnx-int8 98.75% agreement with Keras); the clutter, light and noise still vary freely.
    scale = rng.uniform(0.5, 0.9)  # object width as a fraction of the image width
    obj_w = scale * width * ss
    obj_h = obj_w * (0.72 if kind == "elephants" else 0.5) * rng.uniform(0.85, 1.15)
    ground_y = (horizon + rng.uniform(0.12, 0.45) * (1 - horizon)) * height * ss
    x0 = rng.uniform(-0.1 * obj_w, width * ss - 0.9 * obj_w)
    y0 = min(ground_y - obj_h, height * ss - 0.7 * obj_h)
    facing_right = bool(rng.random() < 0.5)
    box = (x0, y0, obj_w, obj_h, facing_right)
    shadow = Image.new("L", layer.size, 0)
    ImageDraw.Draw(shadow).ellipse(
        (x0 + 0.05 * obj_w, y0 + 0.88 * obj_h, x0 + 0.95 * obj_w, y0 + 1.04 * obj_h), fill=int(rng.integers(60, 140))
    )
    if kind == "elephants":
        _draw_elephant(draw, box, rng)
    else:
        _draw_car(draw, box, rng)
    tilt = rng.uniform(-8, 8)
    shadow = shadow.reduce(ss).filter(ImageFilter.GaussianBlur(2))
    canvas.paste((0, 0, 0), (0, 0), shadow.point(lambda v: v // 2))
    bbox = layer.getbbox()
    if bbox is not None:
        # Rotate only the subject's neighbourhood (aligned to the supersampling grid): much cheaper.
        margin = int(0.2 * obj_w)
        left = max(0, (bbox[0] - margin) // ss * ss)
        top = max(0, (bbox[1] - margin) // ss * ss)
        right = min(layer.width, -(-(bbox[2] + margin) // ss) * ss)
        bottom = min(layer.height, -(-(bbox[3] + margin) // ss) * ss)
        patch = layer.crop((left, top, right, bottom))
        centre = (x0 + obj_w / 2 - left, y0 + obj_h - top)
        patch = patch.rotate(tilt, resample=Image.Resampling.NEAREST, center=centre).reduce(ss)
        canvas.paste(patch, (left // ss, top // ss), patch)  # alpha-blend onto the opaque canvas

    _foreground(canvas, rng)
    return _camera(canvas, rng)


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: float) -> tuple[int, int, int]:
    factor = rng.uniform(1 - amount, 1 + amount)
    tint = rng.normal(0, amount * 40, 3).tolist()
    return tuple(min(255, max(0, int(c * factor + t))) for c, t in zip(colour, tint, strict=True))


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(min(255, max(0, int(c * factor))) for c in colour)


def _background(size: tuple[int, int], horizon: float, rng: np.random.Generator) -> Image.Image:
    width, height = size
    sky_top, sky_bottom = _SKIES[int(rng.integers(len(_SKIES)))]
    ground_near, ground_far = _GROUNDS[int(rng.integers(len(_GROUNDS)))]
    ys = np.linspace(0.0, 1.0, height)[:, None]
    h = horizon
    t_sky = np.clip(ys / h, 0, 1)
    t_ground = np.clip((ys - h) / max(1e-6, 1 - h), 0, 1)
    sky = np.array(sky_top) * (1 - t_sky) + np.array(sky_bottom) * t_sky
    ground = np.array(ground_far) * (1 - t_ground) + np.array(ground_near) * t_ground
    rows = np.where(ys < h, sky, ground) + rng.normal(0, 12, 3)  # (H, 3)
    # Low-frequency texture on the ground (grass tufts, patches): an upsampled random field.
    field = rng.normal(0, 1, (max(2, height // 16), max(2, width // 16)))
    field_img = Image.fromarray(((field - field.min()) / (np.ptp(field) + 1e-6) * 255).astype(np.uint8), "L")
    texture = np.asarray(field_img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)
    amplitude = (ys[:, 0] >= h) * (rng.uniform(10, 50) / 255)  # (H,): ground rows only
    texture *= amplitude.astype(np.float32)[:, None]
    texture -= (amplitude * 127.5).astype(np.float32)[:, None]
    array = rows.astype(np.float32)[:, None, :] + texture[:, :, None]  # one (H, W, 3) allocation
    np.clip(array, 0, 255, out=array)
    return Image.fromarray(array.astype(np.uint8), "RGB")


def _clutter(canvas: Image.Image, horizon: float, rng: np.random.Generator) -> None:
    """Scenery shared by both classes, so background never gives the class away."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    hy = horizon * height
    if rng.random() < 0.5:  # sun or moon
        r = rng.uniform(0.03, 0.08) * width
        cx, cy = rng.uniform(0, width), rng.uniform(0, hy * 0.7)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_jitter((250, 240, 200), rng, 0.05))
    for _ in range(int(rng.integers(0, 4))):  # clouds
        cx, cy = rng.uniform(0, width), rng.uniform(0, hy * 0.8)
        for _ in range(int(rng.integers(2, 5))):
            rx, ry = rng.uniform(0.03, 0.1) * width, rng.uniform(0.02, 0.05) * height
            dx, dy = rng.normal(0, rx), rng.normal(0, ry / 2)
            draw.ellipse(
                (cx + dx - rx, cy + dy - ry, cx + dx + rx, cy + dy + ry), fill=_jitter((240, 240, 245), rng, 0.05)
            )
    if rng.random() < 0.6:  # distant hills
        points = [(0, hy)]
        for x in np.linspace(0, width, 8):
            points.append((x, hy - rng.uniform(0, 0.12) * height))
        points.append((width, hy))
        draw.polygon(points, fill=_jitter((110, 130, 110), rng, 0.2))
    if rng.random() < 0.5:  # road with lane markings
        top, bottom = hy + rng.uniform(0.05, 0.3) * (height - hy), height * rng.uniform(0.8, 1.05)
        draw.rectangle((0, top, width, bottom), fill=_jitter((80, 80, 84), rng, 0.2))
        mid = (top + bottom) / 2
        dash, x = rng.uniform(0.05, 0.12) * width, rng.uniform(-0.1, 0) * width
        while x < width:
            draw.rectangle((x, mid - 1.5, x + dash, mid + 1.5), fill=(230, 230, 220))
            x += dash * 2
    for _ in range(int(rng.integers(0, 3))):  # houses
        w = rng.uniform(0.08, 0.2) * width
        h = w * rng.uniform(0.6, 1.0)
        x, base = rng.uniform(-0.05, 1) * width, hy + rng.uniform(0, 0.05) * height
        wall = _jitter((190, 170, 150), rng, 0.25)
        draw.rectangle((x, base - h, x + w, base), fill=wall)
        draw.polygon(
            [(x - 0.1 * w, base - h), (x + w / 2, base - 1.5 * h), (x + 1.1 * w, base - h)],
            fill=_jitter((140, 60, 50), rng, 0.3),
        )
        draw.rectangle(
            (x + 0.2 * w, base - 0.6 * h, x + 0.4 * w, base - 0.3 * h), fill=_jitter((70, 90, 120), rng, 0.2)
        )
    for _ in range(int(rng.integers(0, 5))):  # trees
        x = rng.uniform(0, width)
        base = hy + rng.uniform(-0.02, 0.25) * (height - hy)
        h = rng.uniform(0.15, 0.45) * height * (0.5 + (base - hy) / max(1, height - hy))
        trunk = _jitter((90, 65, 45), rng, 0.2)
        draw.rectangle((x - 0.04 * h, base - 0.6 * h, x + 0.04 * h, base), fill=trunk)
        leaf = _jitter((60, 110, 50), rng, 0.3)
        for _ in range(int(rng.integers(2, 5))):
            r = rng.uniform(0.18, 0.3) * h
            cx, cy = x + rng.normal(0, 0.12 * h), base - 0.65 * h + rng.normal(0, 0.1 * h)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_jitter(leaf, rng, 0.1))
    for _ in range(int(rng.integers(0, 5))):  # rocks: grey and brown blobs, elephant-coloured
        rx = rng.uniform(0.02, 0.09) * width
        ry = rx * rng.uniform(0.4, 0.8)
        cx, cy = rng.uniform(0, width), hy + rng.uniform(0.05, 1) * (height - hy)
        colour = _ELEPHANT_COLOURS[int(rng.integers(len(_ELEPHANT_COLOURS)))]
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=_jitter(colour, rng, 0.2))
    for _ in range(int(rng.integers(0, 4))):  # distractors: dark rings (wheel-like) and slabs (car-like)
        cx, cy = rng.uniform(0, width), rng.uniform(hy, height)
        r = rng.uniform(0.02, 0.06) * width
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(30, 30, 30))
            draw.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=_jitter((150, 150, 150), rng, 0.2))
        else:
            colour = _CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))]
            draw.rounded_rectangle(
                (cx - 2 * r, cy - r, cx + 2 * r, cy + r), radius=r / 3, fill=_jitter(colour, rng, 0.2)
            )


def _mapper(box: tuple[float, float, float, float, bool]) -> Callable[[float, float], tuple[float, float]]:
    """Unit-square coordinates of a subject (facing right) → layer pixels, mirrored when facing left."""
    x0, y0, w, h, facing_right = box

    def to_px(u: float, v: float) -> tuple[float, float]:
        return (x0 + (u if facing_right else 1 - u) * w, y0 + v * h)

    return to_px


def _ellipse(draw: ImageDraw.ImageDraw, to_px, cu, cv, ru, rv, fill) -> None:
    (ax, ay), (bx, by) = to_px(cu - ru, cv - rv), to_px(cu + ru, cv + rv)
    draw.ellipse((min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)), fill=fill)


def _rect(draw: ImageDraw.ImageDraw, to_px, u0, v0, u1, v1, fill, radius: float = 0.0) -> None:
    (ax, ay), (bx, by) = to_px(u0, v0), to_px(u1, v1)
    rect = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
    if radius > 0:
        draw.rounded_rectangle(rect, radius=radius, fill=fill)
    else:
        draw.rectangle(rect, fill=fill)


def _draw_elephant(draw: ImageDraw.ImageDraw, box, rng: np.random.Generator) -> None:
    to_px = _mapper(box)
    w_px, h_px = box[2], box[3]
    skin = _jitter(_ELEPHANT_COLOURS[int(rng.integers(len(_ELEPHANT_COLOURS)))], rng, 0.12)
    dark, light = _shade(skin, 0.78), _shade(skin, 1.12)
    leg_top, leg_len = 0.5, rng.uniform(0.38, 0.48)
    body_rx, body_ry = rng.uniform(0.27, 0.33), rng.uniform(0.2, 0.26)
    body_cu, body_cv = 0.42, leg_top - 0.05
    gait = rng.uniform(-0.05, 0.05, 4)
    # far legs (darker), then body, then near legs
    for i, u in enumerate((0.26, 0.54)):
        _rect(draw, to_px, u + gait[i], leg_top, u + gait[i] + 0.085, leg_top + leg_len, dark, radius=0.01 * w_px)
    _ellipse(draw, to_px, body_cu, body_cv, body_rx, body_ry, skin)
    _ellipse(draw, to_px, body_cu + 0.02, body_cv - 0.07, body_rx * 0.8, body_ry * 0.5, light)  # back highlight
    for i, u in enumerate((0.18, 0.6)):
        _rect(
            draw, to_px, u + gait[i + 2], leg_top, u + gait[i + 2] + 0.095, leg_top + leg_len, skin, radius=0.01 * w_px
        )
        _rect(draw, to_px, u + gait[i + 2], leg_top + leg_len - 0.03, u + gait[i + 2] + 0.095, leg_top + leg_len, dark)
    # tail
    tail_base = to_px(body_cu - body_rx + 0.01, body_cv - 0.05)
    tail_tip = to_px(body_cu - body_rx - 0.04, body_cv + rng.uniform(0.15, 0.3))
    draw.line([tail_base, tail_tip], fill=dark, width=max(1, int(0.012 * w_px)))
    # head, trunk, ear, tusk, eye
    head_r = rng.uniform(0.11, 0.15)
    head_u, head_v = body_cu + body_rx + head_r * 0.3, body_cv - body_ry * rng.uniform(0.3, 0.8)
    trunk_w = head_r * rng.uniform(0.45, 0.65)
    curl = rng.uniform(-0.15, 0.15)
    trunk_len = rng.uniform(0.45, 0.75)
    steps = 40
    for i in range(steps + 1):  # tapered trunk: circles along a curve
        t = i / steps
        u = head_u + head_r * 0.6 + 0.06 * math.sin(t * 2.2) + curl * t * t
        v = head_v + t * trunk_len
        r = trunk_w / 2 * (1 - 0.5 * t)
        _ellipse(draw, to_px, u, v, r * h_px / w_px, r, skin)
    _ellipse(draw, to_px, head_u, head_v, head_r * h_px / w_px * 1.1, head_r * 1.1, skin)
    if rng.random() < 0.7:
        tip, base = to_px(head_u + head_r * 1.1, head_v + 0.25), to_px(head_u + head_r * 0.5, head_v + 0.12)
        draw.line([base, tip], fill=_jitter((235, 225, 200), rng, 0.05), width=max(1, int(0.018 * w_px)))
    ear_colour = _shade(skin, rng.uniform(0.8, 0.95))
    _ellipse(
        draw,
        to_px,
        head_u - head_r * 0.6,
        head_v + 0.03,
        head_r * rng.uniform(0.6, 0.9),
        head_r * rng.uniform(1.1, 1.6),
        ear_colour,
    )
    eye = to_px(head_u + head_r * 0.35, head_v - head_r * 0.2)
    r = max(1.0, 0.008 * w_px)
    draw.ellipse((eye[0] - r, eye[1] - r, eye[0] + r, eye[1] + r), fill=(20, 20, 20))


def _draw_car(draw: ImageDraw.ImageDraw, box, rng: np.random.Generator) -> None:
    to_px = _mapper(box)
    w_px = box[2]
    paint = _jitter(_CAR_COLOURS[int(rng.integers(len(_CAR_COLOURS)))], rng, 0.12)
    dark = _shade(paint, 0.7)
    glass = _jitter((120, 150, 175), rng, 0.2)
    style = int(rng.integers(4))  # 0 sedan, 1 hatchback, 2 SUV/van, 3 pickup
    body_top = rng.uniform(0.42, 0.52)
    body_bottom = rng.uniform(0.78, 0.84)
    roof = {0: 0.12, 1: 0.1, 2: 0.02, 3: 0.1}[style] + rng.uniform(-0.04, 0.04)
    # cabin (drawn first; the body overlaps its lower edge)
    if style == 0:
        cabin = [(0.2, body_top), (0.34, roof), (0.64, roof), (0.8, body_top)]
    elif style == 1:
        cabin = [(0.08, body_top), (0.1, roof), (0.62, roof), (0.8, body_top)]
    elif style == 2:
        cabin = [(0.06, body_top), (0.07, roof), (0.7, roof), (0.84, body_top)]
    else:
        cabin = [(0.38, body_top), (0.42, roof), (0.66, roof), (0.8, body_top)]
    draw.polygon([to_px(u, v) for u, v in cabin], fill=paint)
    inset = 0.035
    (u0, _), (u1, _), (u2, _), (u3, _) = cabin
    window = [
        (u0 + inset * 1.5, body_top),
        (u1 + inset, roof + inset),
        (u2 - inset, roof + inset),
        (u3 - inset * 1.5, body_top),
    ]
    draw.polygon([to_px(u, v) for u, v in window], fill=glass)
    pillar = (window[1][0] + window[2][0]) / 2 + rng.uniform(-0.05, 0.05)
    _rect(draw, to_px, pillar - 0.015, roof, pillar + 0.015, body_top, paint)
    # body
    _rect(draw, to_px, 0.02, body_top, 0.98, body_bottom, paint, radius=0.04 * w_px)
    _rect(draw, to_px, 0.02, body_bottom - 0.06, 0.98, body_bottom, dark, radius=0.02 * w_px)  # sill / bumper shade
    if style == 3:  # pickup bed rail
        _rect(draw, to_px, 0.03, body_top - 0.04, 0.37, body_top, dark)
    door = to_px(pillar, body_top + 0.02), to_px(pillar, body_bottom - 0.07)
    draw.line(list(door), fill=dark, width=max(1, int(0.005 * w_px)))
    _rect(draw, to_px, pillar + 0.03, body_top + 0.06, pillar + 0.08, body_top + 0.08, dark)  # handle
    _rect(draw, to_px, 0.94, body_top + 0.04, 0.985, body_top + 0.1, _jitter((250, 240, 200), rng, 0.05))  # headlight
    _rect(draw, to_px, 0.015, body_top + 0.04, 0.05, body_top + 0.1, _jitter((200, 30, 30), rng, 0.1))  # tail light
    # wheels
    wheel_r = rng.uniform(0.09, 0.12)
    h_over_w = box[3] / box[2]
    rim = _jitter((170, 170, 175), rng, 0.15)
    for u in (rng.uniform(0.17, 0.24), rng.uniform(0.76, 0.83)):
        v = body_bottom - 0.02
        _ellipse(draw, to_px, u, v, wheel_r * 1.05, wheel_r * 1.05 / h_over_w, dark)  # wheel arch
        _ellipse(draw, to_px, u, v, wheel_r, wheel_r / h_over_w, (22, 22, 24))
        _ellipse(draw, to_px, u, v, wheel_r * 0.55, wheel_r * 0.55 / h_over_w, rim)
        _ellipse(draw, to_px, u, v, wheel_r * 0.15, wheel_r * 0.15 / h_over_w, (60, 60, 60))


def _foreground(canvas: Image.Image, rng: np.random.Generator) -> None:
    """Plants and posts in front of the subject: partial occlusion, for both classes."""
    width, height = canvas.size
    draw = ImageDraw.Draw(canvas)
    if rng.random() < 0.4:  # grass blades along the bottom
        colour = _jitter((70, 120, 50), rng, 0.3)
        for _ in range(int(rng.integers(10, 40))):
            x = rng.uniform(0, width)
            h = rng.uniform(0.05, 0.25) * height
            draw.line([(x, height), (x + rng.normal(0, 0.3 * h), height - h)], fill=_jitter(colour, rng, 0.1), width=2)
    if rng.random() < 0.25:  # a bush
        cx, cy = rng.uniform(0, width), rng.uniform(0.7, 1.0) * height
        colour = _jitter((50, 100, 45), rng, 0.3)
        for _ in range(int(rng.integers(3, 7))):
            r = rng.uniform(0.05, 0.12) * width
            dx, dy = rng.normal(0, r), rng.normal(0, r / 2)
            draw.ellipse((cx + dx - r, cy + dy - r, cx + dx + r, cy + dy + r), fill=_jitter(colour, rng, 0.1))
    if rng.random() < 0.15:  # a post or pole
        x = rng.uniform(0, width)
        w = rng.uniform(0.015, 0.04) * width
        draw.rectangle((x, rng.uniform(0, 0.5) * height, x + w, height), fill=_jitter((100, 90, 80), rng, 0.3))


@functools.cache
def _noise_bank() -> np.ndarray:
    """A fixed field of Gaussian noise; images take random windows of it (drawing fresh noise per
    image was the single most expensive step). Fixed seed: every run and platform gets the same."""
    return np.random.default_rng(20240613).standard_normal((_NOISE_BANK_SIDE, _NOISE_BANK_SIDE, 3), dtype=np.float32)


def _noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard-normal sensor noise of ``shape`` (H, W, 3): a random window of the bank, or fresh if larger."""
    height, width = shape[:2]
    side = _NOISE_BANK_SIDE
    if height > side or width > side:
        return rng.standard_normal(shape, dtype=np.float32)
    top, left = int(rng.integers(0, side - height + 1)), int(rng.integers(0, side - width + 1))
    window = _noise_bank()[top : top + height, left : left + width]
    return window[::-1] if rng.random() < 0.5 else window


def _camera(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Exposure, contrast, uneven light, defocus and sensor noise."""
    if rng.random() < 0.7:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.6)))
    array = np.asarray(image, dtype=np.float32)
    height, width = array.shape[:2]
    mean = float(array.mean())
    contrast = rng.uniform(0.6, 1.3)
    brightness = rng.uniform(0.6, 1.3)
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0, 0.35)
    # out = ((x - mean) * contrast + mean) * brightness * light + cast + noise, in as few passes as possible
    xs = np.linspace(-1, 1, width, dtype=np.float32) * np.float32(strength * np.cos(angle))
    ys = np.linspace(-1, 1, height, dtype=np.float32) * np.float32(strength * np.sin(angle))
    light = (1 + ys[:, None] + xs[None, :]) * np.float32(brightness)
    array *= np.float32(contrast)
    array += np.float32(mean * (1 - contrast))
    array *= light[:, :, None]
    array += _noise(array.shape, rng) * np.float32(rng.uniform(1, 12))
    array += (rng.normal(0, 8, 3) + 0.5).astype(np.float32)  # white-balance cast; +0.5 rounds below
    np.clip(array, 0, 255, out=array)
    return Image.fromarray(array.astype(np.uint8), "RGB")
