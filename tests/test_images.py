"""knn.images: decoding, conversions, limits and the stored JPEG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from knn.core import images
from knn.core.images import (
    MAX_PIXELS,
    ImageError,
    as_rgb,
    center_crop_resize,
    decode_jpeg,
    encode_jpeg,
    read_image,
    read_square,
    read_squares,
)
from knn.core.limits import STORED_IMAGE_SIZE


def _encode(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _gradient(h: int = 30, w: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 256], -1).astype(np.uint8)


# ------------------------------------------------------------------ as_rgb
def test_as_rgb_grey_2d_and_1_channel():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    for image in (grey, grey[:, :, None]):
        rgb = as_rgb(image)
        assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
        assert (rgb == grey[:, :, None]).all()


def test_as_rgb_rgba_composites_over_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque: unchanged
    rgba[0, 1] = (0, 0, 0, 0)  # transparent black garbage: white
    rgba[1, 0] = (0, 0, 0, 128)  # half: mid grey
    rgb = as_rgb(rgba)
    assert rgb.shape == (2, 2, 3)
    assert rgb[0, 0].tolist() == [10, 20, 30]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert abs(int(rgb[1, 0, 0]) - 127) <= 1


def test_as_rgb_rgb_passes_through():
    rgb = _gradient()
    assert as_rgb(rgb) is rgb


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((4, 4, 3), np.float32), "float"),
        (np.zeros((4, 4, 3), np.uint16), "uint8"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4,), np.uint8), "shape"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((4, 4, 5), np.uint8), "channels"),
        ([[1, 2], [3, 4]], "NumPy"),
    ],
)
def test_as_rgb_refuses_with_reason(bad, words):
    with pytest.raises(ValueError, match=words):
        as_rgb(bad)


# ------------------------------------------------------------------ read_image
def test_read_image_from_bytes_path_and_file(tmp_path: Path):
    rgb = _gradient()
    data = _encode(rgb)
    path = tmp_path / "g.png"
    path.write_bytes(data)
    with path.open("rb") as file:
        for source in (data, bytearray(data), path, str(path), io.BytesIO(data), file):
            out = read_image(source)
            assert out.dtype == np.uint8 and (out == rgb).all()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_read_image_converts_modes_to_rgb(mode):
    base = Image.fromarray(_gradient())
    if mode == "I;16":
        image = Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    else:
        image = base.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    out = read_image(buffer.getvalue())
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8
    if mode == "I;16":  # 16-bit scaled down, not clipped at 255
        assert out.max() > 200 and out.min() < 10


def test_read_image_applies_exif_orientation():
    # A 2x wide image stored with orientation 6 ("rotate 90° clockwise to view") comes out tall.
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6
    out = read_image(_encode(wide, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape[:2] == (40, 20)
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # left half became the top half


@pytest.mark.parametrize(
    "data, words",
    [
        (b"this is text, not a picture", "not an image PIL can read"),
        (b"", "not an image"),
    ],
)
def test_read_image_non_image(data, words):
    with pytest.raises(ImageError, match=words):
        read_image(data)


def test_read_image_named_file_in_message(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageError, match="notes.txt is not an image"):
        read_image(path)
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_read_image_truncated():
    data = _encode(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8), "JPEG")
    with pytest.raises(ImageError, match="truncated or damaged"):
        read_image(data[: len(data) // 2])


def test_read_image_over_max_pixels_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    with pytest.raises(ImageError, match=r"is 20×10 pixels, .* the limit is 100 pixels"):
        read_image(_encode(np.zeros((10, 20, 3), np.uint8)))
    assert read_image(_encode(np.zeros((10, 10, 3), np.uint8))).shape == (10, 10, 3)


def test_read_image_huge_header_is_refused_without_decoding():
    # A PNG header declaring 100000×100000 pixels (10 gigapixels) with almost no data: a bomb.
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(ImageError, match="too large|pixels"):
        read_image(png)
    assert MAX_PIXELS == 25_000_000


def test_decoded_bytes_are_limited_by_the_pixel_format(monkeypatch):
    """Four bytes a pixel for RGBA, one for grey: the same size can be refused in one, read in the other."""
    from knn.core import limits

    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 300 * 200 * 2)
    rgba, grey = Image.new("RGBA", (300, 200), (0, 0, 0, 0)), Image.new("L", (300, 200))
    with pytest.raises(ImageError, match="MB decoded"):
        read_image(_save(rgba, "PNG"))
    assert read_image(_save(grey, "PNG")).shape == (200, 300, 3)
    assert limits.MAX_DECODED_BYTES >= 25_000_000 * 4  # a 25-megapixel RGBA photo fits


def test_a_large_jpeg_is_decoded_reduced_for_the_model():
    """A 6000×4000 photo needed at 224: libjpeg decodes it at 1/8 scale, the square is the same."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    photo = np.asarray(Image.fromarray(small).resize((6000, 4000), Image.Resampling.BILINEAR))
    data = _save(Image.fromarray(photo), "JPEG")
    reduced = read_image(data, min_side=448)
    assert 448 <= min(reduced.shape[:2]) < 2 * 448 * 2
    square = read_square(data, 224)
    assert square.shape == (224, 224, 3)
    full = center_crop_resize(read_image(data), 224)
    assert np.abs(square.astype(int) - full).mean() < 3  # the same picture, within rounding
    model, stored = read_squares(data, 224, STORED_IMAGE_SIZE)  # an upload: one decoding for both
    np.testing.assert_array_equal(model, square)  # the model sees what read_square gives it
    assert stored.shape == (STORED_IMAGE_SIZE, STORED_IMAGE_SIZE, 3)
    assert np.abs(center_crop_resize(stored, 224).astype(int) - full).mean() < 3  # the same crop


def test_read_square_takes_any_format_reduced_and_upright():
    rgba = np.zeros((900, 1200, 4), np.uint8)
    rgba[:, :600] = (255, 0, 0, 255)  # left half opaque red, right half transparent (white)
    square = read_square(_save(Image.fromarray(rgba), "PNG"), 100)
    assert square.shape == (100, 100, 3)
    assert tuple(square[50, 10]) == (255, 0, 0) and tuple(square[50, 90]) == (255, 255, 255)


def _save(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# ------------------------------------------------------------------ crop, JPEG
@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 60), size=st.integers(1, 40))
def test_center_crop_resize_shape(h, w, size):
    out = center_crop_resize(np.zeros((h, w, 3), np.uint8), size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8


def test_center_crop_takes_the_middle():
    image = np.zeros((10, 30, 3), np.uint8)
    image[:, 10:20] = 200  # the centre square
    assert (center_crop_resize(image, 10) == 200).all()
    with pytest.raises(ValueError, match="size"):
        center_crop_resize(image, 0)


def test_encode_decode_jpeg_round_trip():
    rgb = _gradient(300, 400)
    data = encode_jpeg(rgb)  # at the size a project stores
    assert data[:2] == b"\xff\xd8"
    back = decode_jpeg(data)
    assert back.shape == (STORED_IMAGE_SIZE, STORED_IMAGE_SIZE, 3)
    expected = center_crop_resize(rgb, STORED_IMAGE_SIZE).astype(int)
    assert np.abs(back.astype(int) - expected).mean() < 4  # lossy, but close
    assert decode_jpeg(encode_jpeg(rgb, size=64, quality=50)).shape == (64, 64, 3)
    with pytest.raises(ImageError):
        decode_jpeg(b"")
    with pytest.raises(ImageError):
        decode_jpeg(b"\xff\xd8garbage")


def test_real_photo(rps_dir: Path):
    path = next((rps_dir / "rock").iterdir())
    image = read_image(path)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    assert len(encode_jpeg(image)) < 60_000
