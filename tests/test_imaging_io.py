"""Loading and saving photos: formats, modes, orientation, metadata, and every refusal."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from ddir_zoom.imaging import ImageLoadError, ImageSaveError, load_photo, save_photo
from ddir_zoom.imaging import io as imaging_io
from tests.conftest import write_png16, write_tiff16


def _rgb8(rng, h=23, w=31):
    return (rng.random((h, w, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".webp"])
def test_lossless_formats_load_exactly(tmp_path, rng, suffix):
    pixels = _rgb8(rng)
    path = tmp_path / f"img{suffix}"
    options = {"lossless": True} if suffix == ".webp" else {}
    Image.fromarray(pixels).save(path, **options)
    photo = load_photo(path)
    assert photo.rgb.dtype == np.float32 and photo.rgb.shape == (23, 31, 3)
    np.testing.assert_array_equal(np.round(photo.rgb * 255).astype(np.uint8), pixels)
    assert photo.alpha is None and photo.bit_depth == 8


def test_jpeg_loads_close(tmp_path, rng):
    pixels = np.full((16, 16, 3), (200, 100, 50), np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=98)
    photo = load_photo(tmp_path / "a.jpg")
    assert np.abs(photo.rgb * 255 - pixels).max() < 4
    assert photo.format == "JPEG"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow(tmp_path, rng, orientation):
    pixels = _rgb8(rng, 5, 8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"  # Make: must survive
    image.save(tmp_path / "o.png", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    photo = load_photo(tmp_path / "o.png")
    np.testing.assert_array_equal(np.round(photo.rgb * 255).astype(np.uint8), expected)
    saved_exif = Image.Exif()
    saved_exif.load(photo.exif)
    assert saved_exif.get(0x0112, 1) == 1
    assert saved_exif[0x010F] == "TestCam"


def test_grayscale_palette_and_bilevel(tmp_path, rng):
    gray = _rgb8(rng)[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    photo = load_photo(tmp_path / "g.png")
    for c in range(3):
        np.testing.assert_array_equal(np.round(photo.rgb[..., c] * 255), gray)

    palette = Image.fromarray(_rgb8(rng)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.save(tmp_path / "p.png")
    expected = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(np.round(load_photo(tmp_path / "p.png").rgb * 255), expected)

    Image.fromarray(gray > 128).save(tmp_path / "b.png")
    assert set(np.unique(load_photo(tmp_path / "b.png").rgb)) <= {0.0, 1.0}


def test_palette_transparency_becomes_alpha(tmp_path):
    image = Image.new("P", (4, 3))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    image.save(tmp_path / "t.png", transparency=0)
    photo = load_photo(tmp_path / "t.png")
    assert photo.alpha is not None
    assert photo.alpha[1, 1] == 1.0 and photo.alpha[0, 0] == 0.0
    np.testing.assert_allclose(photo.rgb[1, 1], [0, 1, 0])


def test_rgba_alpha_kept_apart(tmp_path, rng):
    pixels = (rng.random((7, 9, 4)) * 255).astype(np.uint8)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    photo = load_photo(tmp_path / "a.png")
    np.testing.assert_array_equal(np.round(photo.rgb * 255), pixels[..., :3])
    np.testing.assert_array_equal(np.round(photo.alpha * 255), pixels[..., 3])


def test_cmyk_converted_to_rgb(tmp_path):
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    photo = load_photo(tmp_path / "c.jpg")
    assert photo.rgb.shape == (4, 6, 3)
    r, g, b = photo.rgb[2, 3]
    assert r > 0.9 and g < 0.1 and b < 0.1  # pure cyan-free, magenta+yellow: red
    assert photo.icc_profile is None


def test_16bit_gray_keeps_precision(tmp_path, rng):
    values = (rng.random((6, 7)) * 65535).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    photo = load_photo(tmp_path / "g16.png")
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(np.round(photo.rgb[..., 1] * 65535).astype(np.uint16), values)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_color_png_keeps_all_16_bits(tmp_path, rng, channels):
    values = (rng.random((9, 11, channels)) * 65535).astype(np.uint16)
    write_png16(tmp_path / "c16.png", values)
    photo = load_photo(tmp_path / "c16.png")
    assert photo.bit_depth == 16
    got = np.round(photo.rgb * 65535).astype(np.uint16)
    np.testing.assert_array_equal(got, values[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(np.round(photo.alpha * 65535).astype(np.uint16),
                                      values[..., 3])


def test_16bit_color_tiff_keeps_all_16_bits(tmp_path, rng):
    values = (rng.random((5, 6, 3)) * 65535).astype(np.uint16)
    write_tiff16(tmp_path / "c16.tif", values)
    photo = load_photo(tmp_path / "c16.tif")
    np.testing.assert_array_equal(np.round(photo.rgb * 65535).astype(np.uint16), values)


def test_icc_profile_kept(tmp_path, rng):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_rgb8(rng)).save(tmp_path / "i.png", icc_profile=icc)
    assert load_photo(tmp_path / "i.png").icc_profile == icc


# --- refusals --------------------------------------------------------------------------------

def _message(path, **kwargs) -> str:
    with pytest.raises(ImageLoadError) as info:
        load_photo(path, **kwargs)
    message = str(info.value)
    assert str(path) in message  # every message names the file
    return message


def test_missing_file_and_folder(tmp_path):
    assert "no such file" in _message(tmp_path / "nope.png")
    assert "folder" in _message(tmp_path)


def test_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    assert "not an image" in _message(tmp_path / "notes.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in _message(tmp_path / "empty.jpg")


def test_unsupported_format_named(tmp_path, rng):
    Image.fromarray(_rgb8(rng)).save(tmp_path / "a.gif")
    message = _message(tmp_path / "a.gif")
    assert "GIF" in message and "PNG" in message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "BMP"])
def test_truncated_files_refused(tmp_path, rng, fmt):
    buffer = io.BytesIO()
    Image.fromarray(_rgb8(rng, 64, 64)).save(buffer, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    message = _message(path)
    assert "truncated" in message or "corrupt" in message or "damaged" in message


def test_zero_size_refused(tmp_path, rng):
    buffer = io.BytesIO()
    Image.fromarray(_rgb8(rng, 4, 4)).save(buffer, "BMP")
    data = bytearray(buffer.getvalue())
    data[18:22] = (0).to_bytes(4, "little")
    (tmp_path / "zero.bmp").write_bytes(bytes(data))
    assert "zero size" in _message(tmp_path / "zero.bmp")


def test_pixel_limit_checked_before_decoding(tmp_path, rng, monkeypatch):
    Image.fromarray(_rgb8(rng, 40, 50)).save(tmp_path / "big.png")
    decoded = []
    monkeypatch.setattr(imaging_io, "_decode", lambda image: decoded.append(1))
    message = _message(tmp_path / "big.png", max_pixels=1999)
    assert "too large" in message and "50x40" in message
    assert not decoded


# --- saving ----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp", ".jpg"])
def test_save_round_trip(tmp_path, rng, suffix):
    lossy = suffix in (".jpg", ".webp")
    if lossy:  # a smooth picture: lossy codecs discard noise by design
        y, x = np.mgrid[0:12, 0:10] / 12.0
        rgb = np.stack([y, x, (x + y) / 2], -1).astype(np.float32)
    else:
        rgb = rng.random((12, 10, 3)).astype(np.float32)
    alpha = rng.random((12, 10)).astype(np.float32)
    path = save_photo(tmp_path / f"out{suffix}", rgb, alpha, quality=100)
    back = load_photo(path)
    error = np.abs(back.rgb - rgb)
    if lossy:
        assert error.mean() < 0.015 and error.max() < 0.1
    else:
        assert error.max() <= 0.5 / 255 + 1e-6
    if suffix == ".jpg":
        assert back.alpha is None
    else:
        assert np.abs(back.alpha - alpha).max() <= (0.02 if lossy else 0.5 / 255 + 1e-6)
    assert not list(tmp_path.glob("*.part"))


def test_save_keeps_metadata(tmp_path, rng):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    for suffix in (".jpg", ".png", ".tif", ".webp"):
        path = save_photo(tmp_path / f"m{suffix}", rng.random((8, 8, 3)), exif=exif.tobytes(),
                          icc_profile=icc)
        back = load_photo(path)
        assert back.icc_profile == icc, suffix
        loaded = Image.Exif()
        loaded.load(back.exif)
        assert loaded[0x010F] == "TestCam", suffix


def test_failed_save_leaves_old_file_and_no_partial(tmp_path, rng, monkeypatch):
    target = tmp_path / "keep.png"
    target.write_bytes(b"original")

    def explode(self, fp, *args, **kwargs):
        fp.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", explode)
    with pytest.raises(ImageSaveError, match="disk full"):
        save_photo(target, rng.random((4, 4, 3)))
    assert target.read_bytes() == b"original"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]


def test_save_refusals(tmp_path, rng):
    rgb = rng.random((4, 4, 3))
    with pytest.raises(ImageSaveError, match="does not exist"):
        save_photo(tmp_path / "no" / "such" / "dir.png", rgb)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageSaveError):
        save_photo(tmp_path / "file" / "a.png", rgb)
    with pytest.raises(ImageSaveError, match="unknown file type"):
        save_photo(tmp_path / "a.xyz", rgb)
    with pytest.raises(ImageSaveError, match="expected"):
        save_photo(tmp_path / "a.png", rng.random((4, 4)))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder(tmp_path, rng):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(ImageSaveError, match="cannot write"):
            save_photo(folder / "a.png", rng.random((4, 4, 3)))
    finally:
        folder.chmod(0o700)


def test_saved_file_gets_normal_permissions(tmp_path, rng):
    path = save_photo(tmp_path / "p.png", rng.random((4, 4, 3)))
    umask = os.umask(0)
    os.umask(umask)
    assert Path(path).stat().st_mode & 0o777 == 0o666 & ~umask


def test_text_results_are_written_whole_or_not_at_all(tmp_path, request):
    """Result JSONs and model cards: a failed rewrite keeps the previous file and no temporary."""
    path = tmp_path / "quality.json"
    imaging_io.write_text_atomic(path, '{"rows": 1}')
    assert path.read_text() == '{"rows": 1}'

    with pytest.raises(UnicodeEncodeError):  # unencodable text: refused before the file is touched
        imaging_io.write_text_atomic(path, "\ud800")

    request.getfixturevalue("full_disk")
    with pytest.raises(ImageSaveError, match="No space left"):
        imaging_io.write_text_atomic(path, '{"rows": 2, "long": "' + "x" * 100_000 + '"}')
    assert path.read_text() == '{"rows": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["quality.json"]
