"""Decoding user image files: every mode to 8-bit RGB, square crops, and refusals with a reason."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from histosynth.data.image_decode import UnreadableImageError, read_image_rgb


def png_bytes(width: int, height: int, bit_depth: int, idat: bytes) -> bytes:
    """An RGB PNG written chunk by chunk, for what PIL will not write (48-bit, lying headers)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A few dozen bytes on disk that claim a width x height RGB image."""
    path.write_bytes(png_bytes(width, height, bit_depth=8, idat=zlib.compress(b"")))
    return path


def test_grayscale_and_one_bit_images_become_three_equal_channels(tmp_path):
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    rgb = read_image_rgb(tmp_path / "gray.png", 16)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert all((rgb[..., c] == gray).all() for c in range(3))

    Image.fromarray(gray >= 128).convert("1").save(tmp_path / "bits.bmp")
    bits = read_image_rgb(tmp_path / "bits.bmp", 16)
    assert set(np.unique(bits)) == {0, 255}
    assert ((bits[..., 0] == 255) == (gray >= 128)).all()


def test_sixteen_bit_images_are_scaled_to_eight_bits(tmp_path):
    wide = np.array([[0, 257, 32896, 65535]] * 4, dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")  # really stored as 16 bit
    rgb = read_image_rgb(tmp_path / "deep.png", 4)
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]


def test_sixteen_bit_rgb_png_keeps_its_colours(tmp_path):
    wide = np.array([[[65535, 0, 0], [0, 32896, 0]], [[0, 0, 257], [65535, 65535, 65535]]], dtype=">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in wide)  # filter byte 0, then the row
    path = tmp_path / "rgb48.png"
    path.write_bytes(png_bytes(2, 2, bit_depth=16, idat=zlib.compress(raw)))
    assert read_image_rgb(path, 2).tolist() == [[[255, 0, 0], [0, 128, 0]], [[0, 0, 1], [255, 255, 255]]]


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish everywhere
    rgba[:, :4, 3] = 0  # left half fully transparent
    rgba[:, 4:, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    rgb = read_image_rgb(tmp_path / "alpha.png", 8)
    assert (rgb[:, :4] == 255).all()
    assert (rgb[:, 4:] == (200, 0, 0)).all()


def test_palette_images_with_and_without_a_transparent_colour(tmp_path):
    pal = Image.new("P", (8, 8))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0] * 32 + [1] * 32)
    pal.save(tmp_path / "pal.png")
    rgb = read_image_rgb(tmp_path / "pal.png", 8)
    assert (rgb[:4] == (255, 0, 0)).all() and (rgb[4:] == (0, 0, 255)).all()

    pal.save(tmp_path / "pal_transparent.png", transparency=1)
    rgb = read_image_rgb(tmp_path / "pal_transparent.png", 8)
    assert (rgb[:4] == (255, 0, 0)).all() and (rgb[4:] == 255).all()


def test_cmyk_is_converted_to_rgb(tmp_path):
    cmyk = np.zeros((8, 8, 4), np.uint8)
    cmyk[:4, :, 1:3] = 255  # magenta + yellow = red; bottom half no ink = white
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "print.tif")
    rgb = read_image_rgb(tmp_path / "print.tif", 8)
    assert (rgb[:4] == (255, 0, 0)).all() and (rgb[4:] == 255).all()


def test_non_square_images_are_centre_cropped_not_squashed(tmp_path):
    wide = np.full((40, 80, 3), 128, np.uint8)
    wide[:, :20] = (0, 255, 0)
    wide[:, 60:] = (0, 255, 0)  # the side strips fall outside the centred square
    Image.fromarray(wide).save(tmp_path / "wide.png")
    rgb = read_image_rgb(tmp_path / "wide.png", 20)
    assert rgb.shape == (20, 20, 3)
    assert np.abs(rgb.astype(int) - 128).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((40, 40, 3), np.uint8)
    img[:20] = (255, 0, 0)  # top red, bottom blue as stored
    img[20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(img).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    rgb = read_image_rgb(tmp_path / "phone.jpg", 40).astype(int)
    right, left = rgb[:, 25:].mean(axis=(0, 1)), rgb[:, :15].mean(axis=(0, 1))
    assert right[0] > 200 > right[2] and left[2] > 200 > left[0]


def test_multi_page_tiff_gives_its_first_page(tmp_path):
    first = Image.new("RGB", (8, 8), (10, 20, 30))
    first.save(tmp_path / "stack.tif", save_all=True, append_images=[Image.new("RGB", (8, 8), (200, 0, 0))])
    assert (read_image_rgb(tmp_path / "stack.tif", 8) == (10, 20, 30)).all()


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.png", b"", "not a readable image"),
        ("notes.png", b"these are my notes, not an image\n", "not a readable image"),
        ("truncated.png", None, "not a readable image"),
    ],
)
def test_unreadable_files_are_refused_with_the_file_named(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is None:
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=reason) as err:
        read_image_rgb(path, 32)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("side", [10_000, 20_000])  # PIL warns above 89 Mpx and raises above twice that
def test_decompression_bombs_are_refused_before_decoding(tmp_path, side):
    path = header_only_png(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 100
    with pytest.raises(UnreadableImageError, match="decompression-bomb limit"):
        read_image_rgb(path, 32)


def test_float_images_are_refused_with_a_reason(tmp_path):
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "float.tif")
    with pytest.raises(UnreadableImageError, match="32-bit float images are not supported"):
        read_image_rgb(tmp_path / "float.tif", 8)
