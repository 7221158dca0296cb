"""The one image → model-input function of edgeclf.

Training data, calibration data, export validation, the runtime on the Pi and the benchmarks all
call :func:`preprocess`, so training and deployment cannot disagree on decoding, colour order,
orientation, the resize filter or how another aspect ratio is fitted (squash, centre crop or
letterbox, the spec's ``resize``). Rescaling to the network's range is *not* done here: it lives
inside every model's graph, and every artifact takes 0–255 uint8 RGB.

Traps closed here (measured; see ``docs/stack.md``): EXIF orientation (Pillow does not apply it by
itself), BGR frames from OpenCV and picamera2, RGBA / palette / CMYK / 16-bit / grayscale images,
a resize filter that differs between training and inference, decompression bombs.
"""

from __future__ import annotations

import errno
import io
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

from edgeclf.runtime.errors import ImageDecodeError, InputShapeError
from edgeclf.runtime.manifest import InputSpec

# Every suffix the toolkit reads as an image, lower case. Folder scans use this one list.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

# JPEG draft decoding keeps at least this multiple of the model size, so the final resize still
# antialiases: on a textured 2400×1800 JPEG resized to 224×224 (bilinear) the mean absolute
# difference to a full decode fell from 1.84 (draft at 1×) to 0.62 (2×) at the same speed.
DRAFT_OVERSAMPLING = 2

# Images with more pixels are refused (``--max-megapixels`` raises it). 40 MP covers 12 MP phones and
# Pi cameras and 24-36 MP cameras; decoding an 8000x5000 RGB PNG and resizing it to 224x224 peaked
# at 340 MB RSS here — what a Raspberry Pi with a few hundred MB to spare can afford. Pillow's own
# bomb limit (89.5 MP) let a 1x89,000,000 PNG of 345 KB take 2.5 GB and 10 s.
DEFAULT_MAX_PIXELS = 40_000_000

# Images with a longer side are refused too, whatever their pixel count: Pillow keeps a pointer and
# does work per row, so a 1x24,000,000 greyscale PNG (24 MP, 47 kB) took 2 GB and 15 s. The widest
# panoramas people classify are well under this.
MAX_IMAGE_SIDE = 20_000

# Channel orders a numpy frame may arrive in. picamera2's "RGB888" and OpenCV both give BGR;
# picamera2's default "XRGB8888" gives 4 channels in B, G, R, X byte order.
FRAME_ORDERS = ("RGB", "BGR", "RGBA", "BGRA", "RGBX", "BGRX", "GRAY")

_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

# The bars of the "letterbox" resize mode: mid-grey 127, which every model's in-graph rescaling maps
# to (almost) zero — exactly 0 for EfficientNet-Lite's (x - 127) / 128, -0.004 for MobileNet's
# x / 127.5 - 1 — so the padding adds as little signal to the first convolution as a pixel can.
LETTERBOX_FILL = (127, 127, 127)

# Background for transparent pixels: white, as a transparent PNG looks in a browser.
_ALPHA_BACKGROUND = (255, 255, 255)

ImageSource = str | Path | bytes | Image.Image | np.ndarray

# We apply our own pixel limit (``max_pixels``) with a message that says what to do; Pillow's warning
# would only be noise. A process-wide filter, because ``warnings.catch_warnings`` is not thread-safe
# and images are decoded in thread pools.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# A truncated file must fail, never decode as a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def preprocess(
    source: ImageSource,
    spec: InputSpec,
    *,
    color_order: str = "RGB",
    draft: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Turn an image file, encoded bytes, PIL image or camera frame into one model input.

    Args:
        source: a path, the encoded bytes of a file, a ``PIL.Image`` or a ``H×W×C`` uint8 frame.
        spec: the model's :class:`InputSpec` (size, resize filter and resize mode).
        color_order: channel order of a numpy ``source`` (one of :data:`FRAME_ORDERS`); ignored
            for files, which Pillow always decodes to RGB.
        draft: let Pillow decode large JPEGs at a reduced DCT scale (still at least twice the
            model size, see :data:`DRAFT_OVERSAMPLING`) — much faster for multi-megapixel photos,
            and within a mean absolute difference of about 1/255 of the full decode. Deterministic,
            so training and inference that both go through here get the same pixels. Ignored for
            the ``nearest`` filter, whose point samples would differ from a full decode.
        max_pixels: refuse images with more pixels than this (decompression-bomb guard).

    Returns:
        ``uint8`` array of shape ``(spec.height, spec.width, 3)``, RGB, C-contiguous.

    Raises:
        ImageDecodeError: the source is empty, not an image, truncated, corrupt or too large.
        InputShapeError: a numpy frame has an unsupported shape, dtype or channel order.
    """
    # Draft decoding averages 8×8 DCT blocks; "nearest" point-samples, so the two disagree strongly
    # (mean |diff| ≈ 10/255 measured on a textured 2400×1800 JPEG): keep the full decode there.
    use_draft = draft and spec.resize_filter != "nearest"
    draft_size = (spec.width * DRAFT_OVERSAMPLING, spec.height * DRAFT_OVERSAMPLING) if use_draft else None
    image = load_image(source, color_order=color_order, draft_size=draft_size, max_pixels=max_pixels)
    return resize_image(image, spec)


def resize_image(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """Fit an RGB image to the model size the spec's way and with its filter; return a uint8 array.

    ``squash`` stretches the whole image to the model's aspect ratio; ``crop`` keeps the centre
    region of the model's aspect ratio and drops the rest; ``letterbox`` keeps the whole image at
    its own aspect ratio, centred, with bars of :data:`LETTERBOX_FILL` on the short sides.
    """
    resample = _FILTERS[spec.resize_filter]
    if spec.resize == "crop":
        box = centre_crop_box(image.size, spec.size)
        if box != (0, 0, *image.size) or image.size != spec.size:
            image = image.resize(spec.size, resample, box=box)
    elif spec.resize == "letterbox":
        inner = letterbox_size(image.size, spec.size)
        if image.size != spec.size:
            fitted = image.resize(inner, resample) if image.size != inner else image
            image = Image.new("RGB", spec.size, LETTERBOX_FILL)
            image.paste(fitted, ((spec.width - inner[0]) // 2, (spec.height - inner[1]) // 2))
    elif image.size != spec.size:
        image = image.resize(spec.size, resample)
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def centre_crop_box(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred ``(left, top, right, bottom)`` box of ``size`` with ``target``'s aspect ratio.

    Whole pixels, so the kept region is the same whatever the resize filter; the image's own size
    when the aspect ratios already agree to within a pixel.
    """
    width, height = size
    target_width, target_height = target
    if width * target_height > height * target_width:  # wider than the target: trim left and right
        kept = max(1, round(height * target_width / target_height))
        left = (width - kept) // 2
        return (left, 0, left + kept, height)
    kept = max(1, round(width * target_height / target_width))  # taller: trim top and bottom
    top = (height - kept) // 2
    return (0, top, width, top + kept)


def letterbox_size(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of an image of ``size`` scaled to fit inside ``target``, aspect kept."""
    width, height = size
    target_width, target_height = target
    scale = min(target_width / width, target_height / height)
    return (
        min(target_width, max(1, round(width * scale))),
        min(target_height, max(1, round(height * scale))),
    )


def load_image(
    source: ImageSource,
    *,
    color_order: str = "RGB",
    draft_size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode ``source`` to an upright RGB ``PIL.Image`` (no resize). See :func:`preprocess`."""
    if isinstance(source, np.ndarray):
        return _frame_to_image(source, color_order)
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", None) or None
        try:
            source.load()  # an image from Image.open() decodes lazily: a truncated file fails here
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageDecodeError(name, f"corrupt or truncated image ({error})") from None
        return _to_rgb(ImageOps.exif_transpose(source) or source, name)
    path = None if isinstance(source, (bytes, bytearray)) else Path(source)
    try:
        if path is not None:
            info = path.stat()
            if stat.S_ISDIR(info.st_mode):
                raise ImageDecodeError(path, "is a folder, not an image file")
            if not stat.S_ISREG(info.st_mode):
                # Opening a FIFO would block until someone writes to it; a device may never end.
                raise ImageDecodeError(path, f"not a regular file (a {_file_kind(info.st_mode)}); pass image files")
            if info.st_size == 0:
                raise ImageDecodeError(path, "empty file (0 bytes)")
            stream: io.IOBase | Path = path
        else:
            if len(source) == 0:
                raise ImageDecodeError(None, "empty image data (0 bytes)")
            stream = io.BytesIO(source)
        with Image.open(stream) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    path,
                    f"image is {width}x{height} ({width * height / 1e6:.0f} MP), above the {max_pixels / 1e6:g} MP "
                    "limit for decompression bombs; downscale it first, or raise the limit (--max-megapixels)",
                )
            if max(width, height) > MAX_IMAGE_SIDE:
                raise ImageDecodeError(
                    path, f"image is {width}x{height}, a side above {MAX_IMAGE_SIDE} pixels; crop or downscale it"
                )
            if draft_size is not None and image.format == "JPEG":
                _draft(image, draft_size)
            image.load()  # decode now, inside the try: truncation surfaces here
            return _to_rgb(ImageOps.exif_transpose(image) or image, path)
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(path, "no such file") from None
    except PermissionError:
        raise ImageDecodeError(path, "permission denied") from None
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(path, "not an image (Pillow cannot identify this file)") from None
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(path, f"refused as a decompression bomb ({error}); downscale it first") from None
    except OSError as error:
        if error.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
            raise ImageDecodeError(path, f"cannot open ({error.strerror})") from None
        raise ImageDecodeError(path, f"corrupt or truncated image ({error})") from None
    except (SyntaxError, ValueError, EOFError, MemoryError, struct.error, IndexError, TypeError) as error:
        # Pillow's plugins raise these on malformed headers (struct.error on a short TIFF tag, …).
        raise ImageDecodeError(path, f"corrupt or truncated image ({type(error).__name__}: {error})") from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"))
    return next((name for test, name in kinds if test(mode)), "block device or special file")


def _draft(image: Image.Image, size: tuple[int, int]) -> None:
    """Ask the JPEG decoder for a reduced scale that is still at least ``size`` after rotation."""
    orientation = image.getexif().get(0x0112, 1)
    width, height = size
    if orientation in (5, 6, 7, 8):  # rotated by 90°: the stored image is transposed
        width, height = height, width
    image.draft("RGB", (width, height))


def _to_rgb(image: Image.Image, path: Path | None) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; alpha is composited on white."""
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # animated GIF/WebP: the first frame
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit int) grey: scale to 8 bits rather than clipping at 255.
        # uint32 for 16-bit (4 bytes a pixel, in place), not int64: a 40 MP image stays ~300 MB.
        wide = np.uint32 if mode.startswith("I;16") else np.int64
        array = np.array(image, dtype=wide)
        peak = 65535 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255
        np.clip(array, 0, peak, out=array)
        array *= 255
        array //= peak
        array = array.astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float32)
        high = 1.0 if float(array.max(initial=0.0)) <= 1.0 else 255.0
        array = np.clip(np.rint(array * (255.0 / high)), 0, 255).astype(np.uint8)
        return Image.fromarray(array, "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        # Paste through the alpha band onto an RGB background: 2 image-sized buffers instead of the
        # 4 of alpha_composite + convert (a 40 MP RGBA PNG peaked at 950 MB that way).
        background = Image.new("RGB", rgba.size, _ALPHA_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ImageDecodeError(path, f"unsupported image mode {mode!r} ({error})") from None


def _frame_to_image(frame: np.ndarray, color_order: str) -> Image.Image:
    """Turn a camera frame in a declared channel order into an RGB PIL image."""
    if color_order not in FRAME_ORDERS:
        raise InputShapeError("frame channel order", " or ".join(FRAME_ORDERS), color_order)
    if frame.dtype != np.uint8:
        raise InputShapeError("frame dtype", "uint8", str(frame.dtype))
    if frame.ndim == 2 or color_order == "GRAY":
        if frame.ndim == 3 and frame.shape[2] == 1:
            frame = frame[:, :, 0]
        if frame.ndim != 2:
            raise InputShapeError("grayscale frame shape", "(H, W) or (H, W, 1)", frame.shape)
        return Image.fromarray(np.ascontiguousarray(frame), "L").convert("RGB")
    expected_channels = 3 if color_order in ("RGB", "BGR") else 4
    if frame.ndim != 3 or frame.shape[2] != expected_channels:
        raise InputShapeError(f"{color_order} frame shape", f"(H, W, {expected_channels})", frame.shape)
    if color_order in ("BGR", "BGRX") and frame.flags.c_contiguous:
        # Pillow's raw unpacker swaps the channels while copying: ~6x faster than a numpy reversed
        # copy for a 720p frame, same pixels (what OpenCV and picamera2 hand over every frame).
        height, width = frame.shape[:2]
        return Image.frombuffer("RGB", (width, height), frame, "raw", color_order, 0, 1).copy()
    rgb = frame[:, :, 2::-1] if color_order.startswith("BGR") else frame[:, :, :3]
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")
