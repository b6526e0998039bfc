"""What the model sees of a camera frame, and the caption written on the frame sent back.

Both work on the camera's yuv420p frames directly (PyAV's libswscale for the model's input, the
banner written into the Y, U and V planes for the caption), so no frame is converted to RGB and
back on the video path (docs/performance.md has the measurements).
"""

from __future__ import annotations

import math
from functools import lru_cache

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.classifier import Prediction

Colour = tuple[int, int, int]
Caption = tuple[str, "float | None", Colour]
"""What to write on a frame: text, the confidence bar's fraction (None: no bar) and colour."""

STARTING: Caption = ("starting…", None, (255, 200, 0))
SWITCHING: Caption = ("switching backbone…", None, (255, 200, 0))
LOADING: Caption = ("model loading…", None, (255, 200, 0))
FAILED_COLOUR: Colour = (255, 80, 80)


def model_input(frame: av.VideoFrame, size: int) -> np.ndarray:
    """The frame's centre square at size×size, RGB uint8: what the model sees and Add stores.

    Scaled by PyAV (libswscale, bilinear) straight from the camera's YUV to RGB at the model's
    size, then the centre columns (or rows) are cut. The result is a fresh array (the frame's
    pixels are not shared).
    """
    width, height = frame.width, frame.height
    scale = size / min(width, height)
    out_w, out_h = max(size, round(width * scale)), max(size, round(height * scale))
    rgb = frame.reformat(width=out_w, height=out_h, format="rgb24").to_ndarray()
    left, top = (out_w - size) // 2, (out_h - size) // 2
    return np.ascontiguousarray(rgb[top : top + size, left : left + size])


def caption(prediction: Prediction) -> Caption:
    """What to write on a frame for this prediction."""
    if not any(prediction.confidences.values()) and math.isnan(prediction.similarity):
        return "no examples yet: add some", None, (255, 200, 0)
    if prediction.label is None:
        return f"unknown (similarity {prediction.similarity:.2f})", None, (255, 120, 80)
    confidence = prediction.confidences.get(prediction.label, 0.0)
    return f"{prediction.label}  {confidence:.0%}", confidence, (80, 220, 120)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def overlay(
    frame: av.VideoFrame,
    text: str,
    fraction: float | None,
    colour: tuple[int, int, int],
    mirror: bool,
    half: bool = False,
) -> av.VideoFrame:
    """The frame with a caption banner across its top (and a confidence bar), as a new yuv420p frame
    (at half width and height with `half`: knn.live.answer_size).

    The camera's frames arrive as yuv420p and aiortc encodes yuv420p, so each plane of a new frame
    gets the camera's rows under the banner and the rows of a cached, pre-converted image of the
    banner above: one copy of the picture, no conversion (`to_ndarray`/`from_ndarray` made three).
    Most answered frames are captioned on the event loop, so this is paid there per frame.
    """
    if frame.width % 2 or frame.height % 2:  # 4:2:0 planes need even sizes; cameras give them, but be safe
        return _draw(frame.to_ndarray(format="rgb24"), text, fraction, colour, mirror)
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    step = 2 if half else 1  # every other pixel and row: a quarter of the copying, no scaler
    width, height = frame.width // (2 * step) * 2, frame.height // (2 * step) * 2
    out = av.VideoFrame(width, height, "yuv420p")
    banner = _banner(text, None if fraction is None else round(fraction * 100), colour, width, _band(height))
    for source, target, band in zip(frame.planes, out.planes, banner, strict=True):
        rows = _rows(target)
        picture = _rows(source)[: rows.shape[0] * step : step, : rows.shape[1] * step : step]
        below = picture[len(band) :]
        rows[len(band) :] = below[:, ::-1] if mirror else below  # mirror the picture, not the banner
        rows[: len(band)] = band
    return out


def _rows(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A plane's pixels as a (height, width) array over its buffer (rows may be padded)."""
    flat = np.frombuffer(memoryview(plane), np.uint8, count=plane.line_size * plane.height)
    return flat.reshape(plane.height, plane.line_size)[:, : plane.width]


def _yuv_views(planes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable views of the Y, U and V planes in a yuv420p `to_ndarray()` array (even sizes)."""
    flat = planes.reshape(-1)
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
    )


def _band(height: int) -> int:
    """The caption banner's height in pixels (even, for 4:2:0 chroma)."""
    band = max(24, height // 12)
    return band + band % 2


@lru_cache(maxsize=64)
def _banner(
    text: str, percent: int | None, colour: tuple[int, int, int], width: int, band: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The banner's Y, U and V planes (read-only), drawn once per caption and frame width."""
    image = Image.new("RGB", (width, band), (24, 24, 24))
    ImageDraw.Draw(image).text((8, band // 8), text, font=_font(int(band * 0.6)), fill=colour)
    if percent:
        ImageDraw.Draw(image).rectangle(
            (0, band - 4, round(width * max(0, min(100, percent)) / 100) - 1, band - 1), fill=colour
        )
    y, u, v = _yuv_views(av.VideoFrame.from_image(image).reformat(format="yuv420p").to_ndarray(), width, band)
    for plane in (y, u, v):
        plane.flags.writeable = False
    return y, u, v


def _draw(
    rgb: np.ndarray,
    text: str,
    fraction: float | None,
    colour: tuple[int, int, int],
    mirror: bool,
) -> av.VideoFrame:
    """Write `text` on a darkened band at the top of the frame, with a confidence bar under it."""
    # A copy: the pixels may be the incoming frame's own buffer. Mirror the picture, not the text.
    out = np.array(rgb[:, ::-1] if mirror else rgb)
    height, width = out.shape[:2]
    band = max(24, height // 12)
    top = out[:band]
    np.right_shift(top, 1, out=top)  # darken in place: readable text on any background
    image = Image.fromarray(top)
    ImageDraw.Draw(image).text((8, band // 8), text, font=_font(int(band * 0.6)), fill=colour)
    out[:band] = np.asarray(image)
    if fraction is not None:
        out[band - 4 : band, : int(width * max(0.0, min(1.0, fraction)))] = colour
    return av.VideoFrame.from_ndarray(out, format="rgb24")
