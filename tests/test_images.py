import io

import numpy as np
import pytest
from PIL import Image

from faceheal.errors import UnreadableImage
from faceheal.images import Picture, from_float_rgb, read_image, to_float_rgb, to_rgb8, write_image
from tests.conftest import write_png


@pytest.mark.parametrize("shape,dtype", [((20, 30), np.uint8), ((20, 30), np.uint16), ((20, 30, 3), np.uint8),
                                         ((20, 30, 3), np.uint16), ((20, 30, 4), np.uint8), ((20, 30, 4), np.uint16)])
def test_png_round_trip_keeps_depth_and_mode(tmp_path, shape, dtype):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    p = write_png(tmp_path / "a.png", arr)
    pic = read_image(p)
    assert pic.pixels.dtype == dtype and pic.pixels.shape == shape
    np.testing.assert_array_equal(pic.pixels, arr)
    write_image(tmp_path / "b.png", pic, pic.pixels)
    back = read_image(tmp_path / "b.png")
    np.testing.assert_array_equal(back.pixels, arr)


def test_16bit_rgb_tiff_round_trip(tmp_path):
    import tifffile

    arr = np.random.default_rng(1).integers(0, 65535, (16, 24, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", arr, photometric="rgb")
    pic = read_image(tmp_path / "a.tif")
    assert pic.pixels.dtype == np.uint16
    np.testing.assert_array_equal(pic.pixels, arr)
    write_image(tmp_path / "b.tif", pic, pic.pixels)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "b.tif"), arr)


def test_a_tiff_is_decoded_once_and_a_truncated_one_is_named(tmp_path, monkeypatch):
    import tifffile
    from PIL import TiffImagePlugin

    arr = np.random.default_rng(2).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", arr, photometric="rgb", compression="zlib")

    def no_second_decode(self):
        raise AssertionError("Pillow decoded a TIFF that tifffile reads")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "load", no_second_decode)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif").pixels, arr)
    monkeypatch.undo()
    data = (tmp_path / "a.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:len(data) // 2])
    with pytest.raises(UnreadableImage, match="corrupt TIFF data"):
        read_image(tmp_path / "cut.tif")


def test_bad_files_raise_one_clear_reason(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    for name, reason in [("empty.jpg", "empty file"), ("text.png", "not an image"), ("cut.jpg", "truncated"),
                         ("missing.png", "No such file")]:
        with pytest.raises(UnreadableImage, match=reason):
            read_image(tmp_path / name)


def test_gray_stays_gray_and_only_selected_pixels_change():
    gray = np.full((4, 4), 100, np.uint8)
    rgb = to_float_rgb(gray)
    assert rgb.shape == (4, 4, 3)
    rgb[0, 0] = [1.0, 1.0, 1.0]
    where = np.zeros((4, 4), bool)
    where[0, 0] = True
    out = from_float_rgb(rgb, gray, where)
    assert out.shape == (4, 4) and out[0, 0] == 255 and (out[1:] == 100).all()


def test_exif_orientation_display_and_store_are_inverse(tmp_path):
    arr = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=100)
    pic = read_image(tmp_path / "o.jpg")
    assert pic.orientation == 6
    assert pic.display().shape == (4, 6, 3)
    np.testing.assert_array_equal(pic.store(pic.display()), pic.pixels)
    for o in range(2, 9):
        p = Picture(arr, "PNG", orientation=o)
        np.testing.assert_array_equal(p.store(p.display()), arr)


def test_to_rgb8_is_exact_rounding_in_integer_arithmetic():
    """The detector's 8-bit view: round(v * 255 / max) for 8/16-bit gray, gray+alpha, RGB(A), with no
    float copy of the photo (it runs in row blocks)."""
    rng = np.random.default_rng(0)
    for arr in (rng.integers(0, 256, (50, 40, 3), dtype=np.uint8), rng.integers(0, 65536, (37, 21), dtype=np.uint16),
                rng.integers(0, 65536, (3000, 7, 4), dtype=np.uint16), rng.integers(0, 256, (20, 9, 2), dtype=np.uint8)):
        colour = arr[..., None] if arr.ndim == 2 else arr
        colour = colour[..., :1] if colour.shape[2] in (1, 2) else colour[..., :3]
        scale = 65535 if arr.dtype == np.uint16 else 255
        expected = np.floor(colour.astype(np.float64) * 255 / scale + 0.5).astype(np.uint8)
        out = to_rgb8(arr, rows=16)
        assert out.shape == arr.shape[:2] + (3,) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, np.broadcast_to(expected, out.shape))
