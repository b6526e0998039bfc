"""Image input handling: decode, normalise to RGB uint8, crop, and store examples as JPEG.

Everything that reaches the embedder or the project file goes through here, so the rules live in
one place: any image PIL reads is accepted (EXIF rotation applied, grey / palette / RGBA / 16-bit
converted to 8-bit RGB); an image whose decoded pixels would exceed `MAX_PIXELS` or
`MAX_DECODED_BYTES` (knn.core.limits) is refused from its header, before any pixel is decoded; and
failures raise `ImageError` with a message a user can act on.

`read_square` is what uploads and folders use: the model only needs the centre square at its
input size, so a JPEG is decoded at a reduced scale (libjpeg's draft mode) and other formats are
reduced right after decoding, before any conversion copies them.

Examples:

```python
rgb = read_image("photo.jpg")            # HxWx3 uint8, upright
crop = read_square("photo.jpg", 224)     # 224x224x3: the centre square, as the model sees it
jpeg = encode_jpeg(rgb)                  # what a project stores: the centre square at 320 px
thumb = decode_jpeg(jpeg)
```
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from .limits import MAX_DECODED_BYTES, MAX_PIXELS, MAX_STORED_JPEG_BYTES, STORED_IMAGE_SIZE

__all__ = [
    "MAX_PIXELS",
    "ImageError",
    "as_rgb",
    "read_image",
    "read_square",
    "read_squares",
    "augmented_views",
    "center_crop_resize",
    "encode_jpeg",
    "decode_jpeg",
]

ROWS_PER_STEP = 256
"""Rows composited at a time: converting a large transparent image never holds a wide copy of it."""

ImageSource = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


class ImageError(ValueError):
    """An input that is not a usable image; the message is meant for the user."""


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Return `image` as a C-contiguous HxWx3 uint8 array.

    Args:
        image: uint8 array, HxW or HxWx1 (grey), HxWx2 (grey + alpha), HxWx3 (RGB) or HxWx4 (RGBA).
            Transparent pixels are composited over white, which is what a viewer shows.

    Returns:
        The RGB image; the input itself when it already is contiguous HxWx3 uint8.

    Raises:
        ImageError (a ValueError): not an array, empty, wrong number of dimensions or channels, or
            not uint8 (float images are refused rather than guessed at: 0..1 and 0..255 both occur).
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected an image as a NumPy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        if image.dtype.kind == "f":
            raise ImageError(
                f"image has dtype {image.dtype}; float images are not accepted because their range "
                "(0..1 or 0..255) is ambiguous: convert to uint8 0..255 first"
            )
        raise ImageError(f"image has dtype {image.dtype}; expected uint8 (0..255)")
    if image.ndim not in (2, 3):
        raise ImageError(f"image has shape {image.shape}; expected HxW (grey) or HxWxC")
    if image.size == 0:
        raise ImageError(f"image is empty (shape {image.shape})")
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageError(f"image has {channels} channels; expected 1 (grey), 2, 3 (RGB) or 4 (RGBA)")
    if channels in (2, 4):  # composite over white: transparent pixels often hold black garbage
        out = np.empty((*image.shape[:2], channels - 1), np.uint8)
        for top in range(0, image.shape[0], ROWS_PER_STEP):
            rows = image[top : top + ROWS_PER_STEP]
            alpha = rows[:, :, -1:].astype(np.uint16)
            out[top : top + ROWS_PER_STEP] = (rows[:, :, :-1] * alpha + 255 * (255 - alpha) + 127) // 255
        image = out
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def _describe(source: object) -> str:
    """How to name `source` in an error message."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    name = getattr(source, "name", None)  # open files and Streamlit's UploadedFile have one
    if isinstance(name, str) and name:
        return Path(name).name
    return "the image data"


def _open(source: ImageSource, min_side: int | None = None) -> tuple[Image.Image, str]:
    """The image, header parsed and nothing decoded; a JPEG set to decode at the smallest scale
    whose shorter side is still at least `min_side`. Its decoded size is checked here."""
    what = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif not isinstance(source, (str, os.PathLike)) and not hasattr(source, "read"):
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    try:
        # Image.open only parses the header. PIL's own bomb check runs there (above
        # 2 × Image.MAX_IMAGE_PIXELS); ours, lower, is checked below. PIL's global limit and the
        # (process-wide, not thread-safe) warning filters are left alone.
        image = Image.open(source)
        if min_side and image.format == "JPEG":
            width, height = image.size
            scale = max(1, min(width, height) // min_side)
            image.draft("RGB", (max(1, width // scale), max(1, height // scale)))
    except Image.DecompressionBombError:
        raise ImageError(f"{what} is too large to open safely (limit {MAX_PIXELS:,} pixels)") from None
    except FileNotFoundError:
        raise ImageError(f"{what}: no such file") from None
    except Exception as exc:  # PIL's plug-ins raise many kinds for a damaged header
        raise ImageError(f"{what} is not an image PIL can read ({exc})") from None
    width, height = image.size
    decoded = width * height * _bytes_per_pixel(image.mode)
    if width * height > MAX_PIXELS or decoded > MAX_DECODED_BYTES:
        image.close()
        raise ImageError(
            f"{what} is {width}×{height} pixels, {decoded / 1024**2:,.0f} MB decoded; the limit is "
            f"{MAX_PIXELS:,} pixels ({MAX_PIXELS / 1e6:g} megapixels) and {MAX_DECODED_BYTES / 1024**2:.0f} MB "
            "decoded: scale it down first"
        )
    return image, what


def _bytes_per_pixel(mode: str) -> int:
    """What PIL holds per decoded pixel: one byte for 1/L/P, two for 16-bit grey, four otherwise
    (it stores RGB and every other multi-band mode in 32 bits)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode.startswith("I;16"):  # 16-bit grey: PIL's convert("RGB") clips instead of scaling
        grey = np.asarray(image, dtype=np.uint16)
        return as_rgb((grey >> 8).astype(np.uint8))
    if image.mode in ("I", "F"):  # 32-bit grey, rare (some TIFFs): scale the actual range to 0..255
        grey = np.asarray(image, dtype=np.float64)
        lo, hi = float(np.nanmin(grey)), float(np.nanmax(grey))
        scaled = (grey - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(grey)
        return as_rgb(np.nan_to_num(scaled).round().astype(np.uint8))
    if image.mode in ("RGB", "RGBA", "L", "LA"):  # as_rgb takes these as they are: no converted copy
        return as_rgb(np.asarray(image))
    has_alpha = image.mode in ("PA", "La", "RGBa") or "transparency" in image.info
    return as_rgb(np.asarray(image.convert("RGBA" if has_alpha else "RGB")))


def read_image(data: ImageSource, min_side: int | None = None) -> np.ndarray:
    """Decode an image file to an upright HxWx3 uint8 RGB array.

    Args:
        data: encoded bytes, a path, or a binary file object (read from its current position),
            e.g. Streamlit's `UploadedFile`. Any format PIL reads; for animations, the first frame.
        min_side: when given, the image may come back reduced, its shorter side no less than this
            (a 4000×3000 photo needed at 224 px comes back about 300 px tall, at a fraction of the
            memory and time).

    Returns:
        The image, EXIF orientation applied (phone photos are stored sideways with a rotation tag).

    Raises:
        ImageError: not an image, truncated or damaged, or larger than the limits
            (`MAX_PIXELS`, `MAX_DECODED_BYTES`).
    """
    image, what = _open(data, min_side)
    try:
        with image:
            image.load()
            reduced = _reduced(image, min_side)
            upright = ImageOps.exif_transpose(reduced) or reduced
            return _to_rgb_array(upright)
    except ImageError:
        raise
    except Exception as exc:  # a damaged image fails in the decoder with many kinds of error
        raise ImageError(f"{what} is truncated or damaged and cannot be decoded ({exc})") from None


def read_square(data: ImageSource, size: int) -> np.ndarray:
    """Decode an image file to its upright centre square at `size`×`size`, RGB uint8: what the
    model sees of an uploaded photo. Raises ImageError as `read_image` does."""
    return center_crop_resize(read_image(data, min_side=2 * size), size)


def read_squares(data: ImageSource, *sizes: int) -> list[np.ndarray]:
    """The centre square at each of `sizes` from one decoding: an upload's model input and the
    square a project stores (`STORED_IMAGE_SIZE`) are the same crop of the same pixels. Decoded as
    `read_square` decodes for the smallest size (a 24-megapixel JPEG at 1/8 scale), so the model's
    input is the same as from `read_square`, and never below the largest size."""
    image = read_image(data, min_side=max(2 * min(sizes), max(sizes)))
    return [center_crop_resize(image, size) for size in sizes]


def _reduced(image: Image.Image, min_side: int | None) -> Image.Image:
    """`image` shrunk by a whole factor (box filter) keeping its shorter side >= `min_side`."""
    if not min_side:
        return image
    factor = min(image.size) // min_side
    if factor < 2 or image.mode not in ("L", "LA", "RGB", "RGBA", "La", "RGBa", "P", "I;16", "I", "F"):
        return image
    if image.mode == "P":  # palette indices cannot be averaged
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    return image.reduce(factor)


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Crop the centre square of `image` and resize it to `size`×`size` (bilinear).

    Args:
        image: any image `as_rgb` accepts.
        size: output side in pixels, >= 1.

    Returns:
        uint8 array of shape (size, size, 3).
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    resized = Image.fromarray(square).resize((int(size), int(size)), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


AUGMENT_CROP = 0.85
"""The side of each crop an augmented example stores, as a fraction of its square."""


def augmented_views(square: np.ndarray) -> list[np.ndarray]:
    """The 11 views an augmented example stores beside itself: its mirror, five crops of
    `AUGMENT_CROP` of its side (the four corners and the centre, resized back) and their mirrors.
    So an object a little off-centre, nearer, or seen from the other side still finds it."""
    rgb = as_rgb(square)
    size = rgb.shape[0]
    side = max(1, round(size * AUGMENT_CROP))
    far = size - side
    crops = [
        rgb[top : top + side, left : left + side]
        for top, left in ((0, 0), (0, far), (far, 0), (far, far), (far // 2, far // 2))
    ]
    resized = [center_crop_resize(np.ascontiguousarray(c), size) for c in crops]
    return [np.ascontiguousarray(rgb[:, ::-1])] + [v for c in resized for v in (c, np.ascontiguousarray(c[:, ::-1]))]


def encode_jpeg(image: np.ndarray, size: int = STORED_IMAGE_SIZE, quality: int = 90) -> bytes:
    """Centre-crop and resize `image` to `size`, then encode it as JPEG of at most
    `MAX_STORED_JPEG_BYTES` (a busy picture is encoded again at lower qualities until it fits).

    This is what a project stores for each example: enough to draw thumbnails and to re-embed the
    example after a switch of backbone or input size, ~28 kB at 320 px (`STORED_IMAGE_SIZE`).

    Args:
        image: any image `as_rgb` accepts.
        size: side of the stored square in pixels.
        quality: JPEG quality to start from, 1..95.

    Returns:
        The JPEG bytes.
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an integer in 1..95, got {quality!r}")
    square = Image.fromarray(center_crop_resize(image, size))
    for q in (int(quality), *range(min(int(quality), 80) - 10, 0, -10)):
        buffer = io.BytesIO()
        square.save(buffer, format="JPEG", quality=max(1, q))
        if buffer.tell() <= MAX_STORED_JPEG_BYTES:
            return buffer.getvalue()
    raise ImageError(f"a {size}×{size} image does not fit in {MAX_STORED_JPEG_BYTES // 1024} kB as JPEG")


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode JPEG (or any image) bytes, e.g. a stored example, to HxWx3 uint8 RGB.

    Raises:
        ImageError: the bytes are not a readable image.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"expected JPEG bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ImageError("the stored image is empty")
    return read_image(data)
