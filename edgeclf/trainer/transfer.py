"""Transfer learning on a frozen pretrained backbone, the way it fits a 2-core machine.

Each decoded image goes through the frozen backbone once (plus once mirrored left-right, when the
preset asks for it and augmentation is on); the new head (dropout + one Dense layer) is then fitted
on those cached features, which takes seconds instead of minutes. The head's layers are the full
model's own layer objects, so after fitting, the full model (uint8 images in, scores out) is ready
to save — exporting it needs nothing special.

``--fine-tune`` then trains the last blocks of the backbone on the images themselves, with every
BatchNormalization layer frozen (its moving statistics would otherwise drift on a few hundred
photos) and a small learning rate (1e-5).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeclf.runtime.progress import track
from edgeclf.trainer.efficientnet_lite import FEATURES_LAYER

HEAD_LAYERS = ("dropout", "scores")
_BLOCK = re.compile(r"^block(\d+)_")


def uses_cached_features(preset: Any, weights: str | None) -> bool:
    """True when ``preset`` fits its head on cached features, i.e. it has pretrained weights to freeze."""
    from edgeclf.trainer.presets import normalise_weights

    return bool(getattr(preset, "transfer", False)) and normalise_weights(weights) is not None


@dataclass
class CachedFeatures:
    """Backbone features of each split (``train`` may hold mirrored copies too) and how long they took."""

    features: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    seconds: dict[str, float]


def compute_features(
    model: Any, images: dict[str, np.ndarray], targets: dict[str, np.ndarray], *, flip: bool, batch_size: int = 32
) -> CachedFeatures:
    """Run the frozen backbone of ``model`` once over each split's images (``flip``: train mirrored too)."""
    import keras

    extractor = keras.Model(model.inputs, model.get_layer(FEATURES_LAYER).output, name="features")
    out = CachedFeatures({}, {}, {})
    for split, batch in images.items():
        start = time.perf_counter()
        mirrored = flip and split == "train"
        with track(f"features of {split} photos", len(batch) * (2 if mirrored else 1)) as advance:
            features = _features(extractor, batch, batch_size, advance)
            split_targets = targets[split]
            if mirrored:
                flipped = np.ascontiguousarray(batch[:, :, ::-1])
                features = np.concatenate([features, _features(extractor, flipped, batch_size, advance)])
                split_targets = np.concatenate([split_targets, split_targets])
        out.features[split] = features.astype(np.float32)
        out.targets[split] = split_targets
        out.seconds[split] = round(time.perf_counter() - start, 2)
    return out


def _features(extractor: Any, images: np.ndarray, batch_size: int, advance: Callable[[int], None]) -> np.ndarray:
    """The extractor's outputs batch by batch (what ``predict`` does), reporting each batch's progress."""
    parts = []
    for i in range(0, len(images), batch_size):
        parts.append(np.asarray(extractor.predict_on_batch(images[i : i + batch_size])))
        advance(len(parts[-1]))
    return np.concatenate(parts)


def head_model(model: Any) -> Any:
    """A model from the pooled features to the scores, sharing ``model``'s head layers (and weights)."""
    import keras

    width = int(model.get_layer(FEATURES_LAYER).output.shape[-1])
    inputs = keras.Input(shape=(width,), name="features")
    x = inputs
    names = {layer.name for layer in model.layers}
    for name in HEAD_LAYERS:
        if name in names:
            x = model.get_layer(name)(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")


def unfreeze_last_blocks(model: Any, blocks: int) -> list[str]:
    """Make only the last ``blocks`` blocks' convolutions, the head conv and the new head trainable.

    Every BatchNormalization layer stays frozen (Keras 3 then also runs it in inference mode).
    Returns the names of the trainable layers.
    """
    import keras

    indices = sorted({int(m.group(1)) for layer in model.layers if (m := _BLOCK.match(layer.name))})
    chosen = set(indices[-blocks:]) if blocks > 0 else set()
    model.trainable = True
    trainable = []
    for layer in model.layers:
        match = _BLOCK.match(layer.name)
        in_scope = (match is not None and int(match.group(1)) in chosen) or layer.name in ("head_conv", *HEAD_LAYERS)
        layer.trainable = in_scope and not isinstance(layer, keras.layers.BatchNormalization)
        if layer.trainable and layer.weights:
            trainable.append(layer.name)
    return trainable
