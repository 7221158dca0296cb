"""Write augmented versions of one image, to see what a preset's augmentation does to the photos.

The seed article did this with ``ImageDataGenerator.flow(..., save_to_dir="preview")``. Here the
image goes through the one preprocessing function at the model's input size (what training sees),
then through the preset's own augmentation layer — the same one the training pipeline applies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from edgeclf.kerasio import import_keras
from edgeclf.runtime.errors import EdgeclfError
from edgeclf.runtime.fileio import atomic_path
from edgeclf.runtime.preprocess import preprocess


def write_augment_preview(
    image: str | Path,
    out: str | Path,
    *,
    count: int = 20,
    preset: str = "default",
    image_size: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write ``count`` augmented versions of ``image`` (plus the un-augmented input) into ``out``.

    Args:
        image: an image file.
        out: destination folder (created).
        count: number of augmented versions.
        preset: whose augmentation to apply.
        image_size: square side (default: the preset's input size).
        seed: augmentation seed; the same seed writes the same images.

    Returns:
        The written files: ``<stem>_input.png`` first, then ``<stem>_aug_NN.png``.

    Raises:
        ImageDecodeError: the image cannot be read.
        EdgeclfError: unknown preset or a bad count.
        BackendUnavailableError: TensorFlow is not installed.
    """
    from edgeclf.trainer.presets import get_preset

    if count < 1:
        raise EdgeclfError(f"-n must be at least 1, got {count}")
    recipe = get_preset(preset)
    side = int(image_size or recipe.image_size)
    spec = recipe.input_spec(side)
    pixels = preprocess(image, spec)
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    layer = recipe.augmentation(seed)
    batch = np.repeat(pixels[None].astype(np.float32), count, axis=0)
    augmented = keras.ops.convert_to_numpy(layer(batch, training=True))
    augmented = np.clip(np.rint(augmented), 0, 255).astype(np.uint8)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(image).stem
    written = [_save(pixels, out / f"{stem}_input.png")]
    width = max(2, len(str(count - 1)))
    for i, array in enumerate(augmented):
        written.append(_save(array, out / f"{stem}_aug_{i:0{width}d}.png"))
    return written


def _save(array: np.ndarray, target: Path) -> Path:
    with atomic_path(target) as tmp:
        Image.fromarray(array, "RGB").save(tmp, format="PNG")
    return target
