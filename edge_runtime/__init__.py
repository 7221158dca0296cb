"""edgeclf's lightweight runtime: numpy, Pillow and one interpreter — never TensorFlow.

This package owns the contract every stage shares: the manifest (:mod:`edge_runtime.manifest`),
the one image → tensor function (:mod:`edge_runtime.preprocess`), the error types
(:mod:`edge_runtime.errors`) and the interpreter backends (:mod:`edge_runtime.backends`, imported
lazily). At module level it imports only the standard library, numpy and Pillow.
"""

from edge_runtime.errors import (
    BackendUnavailableError,
    EdgeclfError,
    ImageDecodeError,
    InputShapeError,
    ManifestError,
)
from edge_runtime.manifest import Artifact, InputSpec, Manifest, TensorInfo
from edge_runtime.preprocess import IMAGE_SUFFIXES, preprocess

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
