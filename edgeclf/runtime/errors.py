"""The one error hierarchy of edgeclf.

Every error a user can cause (a bad file, a bad folder, a missing package, a model that does not
match its manifest) is an :class:`EdgeclfError`. The command line catches this base class in one
place and prints ``str(error)`` as a single line on stderr with exit code 1, so each message must
say what was wrong *and* what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class EdgeclfError(Exception):
    """Base class of every domain error; its message is shown to the user as one line."""


class ImageDecodeError(EdgeclfError):
    """An image file (or frame) could not be turned into a model input."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        where = self.path if self.path is not None else "<image>"
        super().__init__(f"{where}: {reason}")


class ManifestError(EdgeclfError):
    """A manifest is missing, unreadable, or does not match the files beside it."""


class ModelLoadError(EdgeclfError):
    """A model file cannot be loaded by the chosen interpreter (corrupt, or uses ops it lacks)."""


class InputShapeError(EdgeclfError):
    """A tensor or frame does not have the shape or dtype the model expects."""

    def __init__(self, what: str, expected: object, actual: object) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: expected {expected}, got {actual}")


class BackendUnavailableError(EdgeclfError):
    """An optional package (an interpreter, TensorFlow, OpenCV…) is not installed."""

    def __init__(self, what: str, install: str) -> None:
        self.install = install
        super().__init__(f"{what} is not installed: {install}")


class DatasetError(EdgeclfError):
    """A data folder cannot be used for training, evaluation or calibration."""


class ExportError(EdgeclfError):
    """A model could not be converted, or a converted file failed its checks."""


class CameraError(EdgeclfError):
    """A camera or video source could not be opened or stopped delivering frames."""


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of a (often multi-line) library error, or the error's type name.

    TensorFlow, Keras and the interpreters put a stack of context under their first line; one
    line is what a user-facing message quotes. A string (an error's text from a subprocess) works
    too; an empty one gives ``""``.
    """
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__ if isinstance(error, BaseException) else ""


def missing_extra(what: str, extra: str) -> BackendUnavailableError:
    """Error for a feature that needs one of edgeclf's extras (``train``, ``edge``, ``camera``…)."""
    return BackendUnavailableError(what, f"pip install 'edgeclf[{extra}]'")


class SelfCheckError(EdgeclfError):
    """A model file no longer reproduces the outputs recorded for it at export (``edgeclf verify``)."""


class ConfigError(EdgeclfError):
    """An option or a config value is out of range, of the wrong kind, or names nothing known."""


def option_error(option: str, expected: object, actual: object) -> ConfigError:
    """``ConfigError("--top-k: expected at least 1, got 0")``: an option value out of range."""
    return ConfigError(f"{option}: expected {expected}, got {actual}")


class UnknownNameError(ConfigError):
    """A name looked up in a registry (preset, export format, backend, target) is not registered."""

    def __init__(self, kind: str, name: object, known: tuple[str, ...]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known) or '(none registered)'}")
