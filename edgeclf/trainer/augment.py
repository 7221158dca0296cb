"""Training-time augmentation, as Keras 3 preprocessing layers.

The seed trained with ``ImageDataGenerator(rotation_range=40, width_shift_range=0.2,
height_shift_range=0.2, shear_range=0.2, zoom_range=0.2, horizontal_flip=True,
fill_mode="nearest")``. Keras 3 has a layer for each of those options; :data:`SEED_AUGMENT`
maps them one to one. An :class:`AugmentSpec` is a plain frozen record (cheap to import, saved in
the run's config); :meth:`AugmentSpec.build` makes the layer, importing Keras only then.

The layer takes a batch of uint8 or float images in 0..255 and returns float32 in 0..255: the
model's own in-graph rescaling is applied afterwards, exactly as at inference time. It is applied
in the ``tf.data`` pipeline, never saved inside the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgeclf.runtime.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import keras

FILL_MODES = ("nearest", "reflect", "wrap", "constant")


@dataclass(frozen=True)
class AugmentSpec:
    """Strength of each random transform; 0 (or False) switches a transform off.

    Attributes:
        rotation_degrees: rotate by up to ± this many degrees.
        width_shift / height_shift: translate by up to ± this fraction of the width / height.
        shear: shear intensity (the x-shear factor; ``ImageDataGenerator``'s 0.2 of the seed).
        zoom: zoom in or out by up to ± this fraction, width and height independently as
            ``ImageDataGenerator`` did.
        horizontal_flip: mirror left-right half of the time.
        brightness / contrast: random brightness shift (fraction of 255) / contrast factor.
        fill_mode: how pixels outside the image are filled ("nearest" as in the seed).
    """

    rotation_degrees: float = 0.0
    width_shift: float = 0.0
    height_shift: float = 0.0
    shear: float = 0.0
    zoom: float = 0.0
    horizontal_flip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    fill_mode: str = "nearest"

    def __post_init__(self) -> None:
        if self.fill_mode not in FILL_MODES:
            raise ConfigError(f"unknown fill_mode {self.fill_mode!r}; known: {', '.join(FILL_MODES)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (for the run's config)."""
        return dataclasses.asdict(self)

    def scaled(self, factor: float) -> AugmentSpec:
        """The same transforms with every continuous strength multiplied by ``factor``."""
        return dataclasses.replace(
            self,
            rotation_degrees=self.rotation_degrees * factor,
            width_shift=self.width_shift * factor,
            height_shift=self.height_shift * factor,
            shear=self.shear * factor,
            zoom=self.zoom * factor,
            brightness=self.brightness * factor,
            contrast=self.contrast * factor,
        )

    def build(self, seed: int = 0) -> keras.Sequential:
        """The augmentation layer: uint8/float 0..255 batch in, float32 0..255 batch out.

        Each random layer gets its own seed derived from ``seed`` so a run is reproducible.
        Random layers are active when called with ``training=True`` (their default when called
        directly, e.g. in ``dataset.map(lambda x, y: (aug(x, training=True), y))``).
        """
        import keras

        layers: list[keras.layers.Layer] = [
            # Rescaling(1.0) is the graph-safe cast: uint8 -> float32, values unchanged.
            keras.layers.Rescaling(1.0, name="to_float32"),
        ]
        seeds = iter(range(seed * 16, seed * 16 + 16))
        if self.horizontal_flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=next(seeds), name="flip"))
        if self.rotation_degrees:
            layers.append(
                keras.layers.RandomRotation(
                    self.rotation_degrees / 360.0, fill_mode=self.fill_mode, seed=next(seeds), name="rotation"
                )
            )
        if self.width_shift or self.height_shift:
            layers.append(
                keras.layers.RandomTranslation(
                    self.height_shift, self.width_shift, fill_mode=self.fill_mode, seed=next(seeds), name="shift"
                )
            )
        if self.shear:
            layers.append(
                keras.layers.RandomShear(
                    x_factor=self.shear, y_factor=0.0, fill_mode=self.fill_mode, seed=next(seeds), name="shear"
                )
            )
        if self.zoom:
            layers.append(
                keras.layers.RandomZoom(
                    height_factor=self.zoom,
                    width_factor=self.zoom,
                    fill_mode=self.fill_mode,
                    seed=next(seeds),
                    name="zoom",
                )
            )
        if self.brightness:
            layers.append(
                keras.layers.RandomBrightness(
                    self.brightness, value_range=(0, 255), seed=next(seeds), name="brightness"
                )
            )
        if self.contrast:
            layers.append(
                keras.layers.RandomContrast(self.contrast, value_range=(0, 255), seed=next(seeds), name="contrast")
            )
        return keras.Sequential(layers, name="augmentation")


# The seed's ImageDataGenerator options, one layer each.
SEED_AUGMENT = AugmentSpec(
    rotation_degrees=40.0,
    width_shift=0.2,
    height_shift=0.2,
    shear=0.2,
    zoom=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)

# No augmentation at all (still casts to float32).
NO_AUGMENT = AugmentSpec()
