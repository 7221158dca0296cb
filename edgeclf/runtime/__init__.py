"""edgeclf's lightweight runtime: numpy, Pillow and one interpreter — never TensorFlow.

This package owns the contract every stage shares: the manifest (:mod:`edgeclf.runtime.manifest`),
the one image → tensor function (:mod:`edgeclf.runtime.preprocess`), the error types
(:mod:`edgeclf.runtime.errors`) and the interpreter backends (:mod:`edgeclf.runtime.backends`, imported
lazily). At module level it imports only the standard library, numpy and Pillow.
"""

from edgeclf.runtime.errors import (
    BackendUnavailableError,
    EdgeclfError,
    ImageDecodeError,
    InputShapeError,
    ManifestError,
)
from edgeclf.runtime.manifest import Artifact, InputSpec, Manifest, TensorInfo
from edgeclf.runtime.preprocess import IMAGE_SUFFIXES, preprocess

__all__ = [
    "IMAGE_SUFFIXES",
    "Artifact",
    "BackendUnavailableError",
    "EdgeclfError",
    "ImageDecodeError",
    "InputShapeError",
    "InputSpec",
    "Manifest",
    "ManifestError",
    "TensorInfo",
    "preprocess",
]

__version__ = "0.1.0"
