"""Photographers' files: HEIC / AVIF from phones and camera RAW, opened like any photo.

Every file is made here: HEIC with pillow-heif, AVIF with Pillow, and a DNG written with
tifffile from a synthetic Bayer mosaic whose white balance, orientation and size are known.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageCms

from ddir_zoom.cli import main as cli
from ddir_zoom.engine import Engine
from ddir_zoom.engine.export import export_region
from ddir_zoom.imaging import ImageLoadError, load_photo
from ddir_zoom.imaging import io as photo_io
from ddir_zoom.imaging import raw as raw_module

pillow_heif = pytest.importorskip("pillow_heif")
tifffile = pytest.importorskip("tifffile")
pytest.importorskip("rawpy")

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15 Pro"
    return exif.tobytes()


def _picture(h=48, w=64) -> np.ndarray:
    """Smooth colours with a bright marker block in the top-left corner."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x / w, y / h, 0.5 + 0 * x], -1) * 0.6 + 0.2
    rgb[:8, :12] = (1.0, 1.0, 0.0)
    return (rgb * 255).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_phone_photos_keep_orientation_exif_and_profile(tmp_path, suffix):
    pixels = _picture()
    path = tmp_path / f"phone{suffix}"
    Image.fromarray(pixels).save(path, exif=_exif(6), icc_profile=SRGB, quality=95)
    photo = load_photo(path)
    assert photo.rgb.shape == (64, 48, 3)  # orientation 6: turned 90 degrees clockwise
    # The marker of the top-left corner is now at the top right.
    assert photo.rgb[:10, -6:].mean(axis=(0, 1))[2] < 0.25
    assert photo.rgb[-10:, :6].mean(axis=(0, 1))[2] > 0.3
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[0x010F] == "Apple" and exif.get(0x0112, 1) == 1
    assert photo.icc_profile == SRGB


def test_ten_bit_heic_keeps_its_depth(tmp_path):
    y, x = np.mgrid[0:64, 0:128]
    ramp = np.stack([x * 8, y * 16, 1023 - x * 8], -1).clip(0, 1023)  # 128 and 64 steps
    levels = ramp.astype(np.uint16)
    heif = pillow_heif.from_bytes(mode="RGB;16", size=(128, 64), data=(levels << 6).tobytes())
    path = tmp_path / "ten.heic"
    heif.save(path, quality=-1, chroma=444)  # lossless luma and chroma
    photo = load_photo(path)
    assert photo.bit_depth == 16
    decoded = photo.rgb * 1023
    # 8 bits would round to multiples of 1023/255 = 4.01 levels; 10 bits keep single levels.
    assert np.abs(decoded - levels).mean() < 1.0


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_export_to_heic_and_avif(tmp_path, suffix):
    source = tmp_path / "in.png"
    Image.fromarray(_picture()).save(source)
    engine = Engine.open(source, device="cpu")
    out = export_region(engine, tmp_path / f"out{suffix}", "bicubic", scale=2, quality=90)
    again = load_photo(out)
    assert again.rgb.shape == (96, 128, 3)
    assert np.abs(again.rgb - engine.render_region("bicubic", 2.0, (0, 0), (96, 128))).mean() \
        < 0.03


@pytest.mark.parametrize("suffix, content", [(".heic", b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40),
                                             (".dng", b"II*\x00" + b"\x00" * 60),
                                             (".nef", b"not a raw file at all")])
def test_corrupt_files_are_named(tmp_path, suffix, content):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError) as caught:
        load_photo(path)
    assert str(path) in str(caught.value)


def test_missing_packages_are_named(tmp_path, monkeypatch):
    path = tmp_path / "phone.heic"
    Image.fromarray(_picture()).save(path)
    monkeypatch.setattr(photo_io, "pillow_heif", None)
    assert "pillow-heif" in photo_io._why_unidentified(path)

    def no_rawpy():
        raise raw_module.RawError("camera RAW files need the rawpy package (pip install rawpy)")

    monkeypatch.setattr(raw_module, "_rawpy", no_rawpy)
    with pytest.raises(ImageLoadError, match="rawpy"):
        load_photo(tmp_path / "x.nef") if (tmp_path / "x.nef").write_bytes(b"x") else None


# --- camera RAW ---------------------------------------------------------------------------------

def write_dng(path, orientation=6, neutral=(0.5, 1.0, 0.7), h=64, w=96, declared=None):
    """A DNG of a scene whose left half is neutral grey (linear 0.25) and right half red, seen
    by a camera whose raw response per channel is `neutral`; the file declares that as its
    AsShotNeutral (or `declared`, to test that the file's white balance is the one used)."""
    scene = np.zeros((h, w, 3))
    scene[:, : w // 2] = 0.25
    scene[:, w // 2:] = (0.4, 0.05, 0.03)
    cam = scene * np.asarray(neutral)
    bayer = np.empty((h, w))
    bayer[0::2, 0::2] = cam[0::2, 0::2, 0]
    bayer[0::2, 1::2] = cam[0::2, 1::2, 1]
    bayer[1::2, 0::2] = cam[1::2, 0::2, 1]
    bayer[1::2, 1::2] = cam[1::2, 1::2, 2]
    white = 4095
    # ColorMatrix1 (XYZ to camera): linear sRGB scaled by the camera's per-channel response.
    xyz_to_srgb = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415],
                            [0.0557, -0.2040, 1.0570]])
    colour_matrix = (np.asarray(neutral)[:, None] * xyz_to_srgb).ravel()

    def rationals(values):
        return [v for x in values for v in (round(x * 10000), 10000)]

    tifffile.imwrite(path, np.round(bayer * white).astype(np.uint16), photometric=32803,
                     extratags=[
                         (33421, "H", 2, (2, 2), False),  # CFARepeatPatternDim
                         (33422, "B", 4, (0, 1, 1, 2), False),  # CFAPattern: RGGB
                         (50706, "B", 4, (1, 4, 0, 0), False),  # DNGVersion
                         (50708, "s", 0, "ddir-zoom test camera", False),
                         (50717, "I", 1, white, False),  # WhiteLevel
                         (50714, "H", 1, 0, False),  # BlackLevel
                         (50721, "2i", 9, rationals(colour_matrix), False),
                         (50778, "H", 1, 21, False),  # CalibrationIlluminant1: D65
                         (50728, "2I", 3, rationals(declared or neutral), False),
                         (274, "H", 1, orientation, False),
                         (271, "s", 0, "TestMake", False), (272, "s", 0, "TestModel", False)])
    return path


def test_raw_is_developed_with_white_balance_orientation_and_size(tmp_path):
    photo = load_photo(write_dng(tmp_path / "shot.dng"))
    assert photo.rgb.shape == (96, 64, 3)  # 64 x 96 sensor, orientation 6: turned clockwise
    assert photo.bit_depth == 16 and photo.format == "RAW"
    grey = photo.rgb[8:40, 8:56].reshape(-1, 3).mean(0)  # the grey half, now on top
    assert np.abs(grey - grey.mean()).max() < 0.01  # the camera's white balance made it neutral
    red = photo.rgb[60:90, 8:56].reshape(-1, 3).mean(0)
    # The scene's colours come back, up to LibRaw's one exposure factor for all channels.
    expected = raw_module.srgb_curve(np.array([[0.25, 0.25, 0.25], [0.4, 0.05, 0.03]]))
    linear = np.where(np.array([grey, red]) <= 0.04045, np.array([grey, red]) / 12.92,
                      ((np.array([grey, red]) + 0.055) / 1.055) ** 2.4)
    exposure = linear[0, 1] / 0.25
    developed = raw_module.srgb_curve(linear / exposure)
    np.testing.assert_allclose(developed, expected, atol=0.02)
    exif = Image.Exif()
    exif.load(photo.exif)
    assert (exif[0x010F], exif[0x0110], exif[0x0112]) == ("TestMake", "TestModel", 1)


def test_the_files_own_white_balance_and_orientation_are_used(tmp_path):
    upright = load_photo(write_dng(tmp_path / "a.dng", orientation=1))
    assert upright.rgb.shape == (64, 96, 3)
    # The same raw data, but the file says the camera saw grey as equal channels: developed
    # with that white balance, the grey half comes out tinted (green-heavy, as the raw is).
    tinted = load_photo(write_dng(tmp_path / "b.dng", orientation=1, declared=(1.0, 1.0, 1.0)))
    grey = tinted.rgb[8:56, 8:40].reshape(-1, 3).mean(0)
    assert grey[1] > grey[0] + 0.05 and grey[1] > grey[2] + 0.03


def test_command_line_takes_heic_and_raw(tmp_path):
    heic = tmp_path / "phone.heic"
    Image.fromarray(_picture()).save(heic, quality=95)
    dng = write_dng(tmp_path / "shot.dng")
    assert cli(["upscale", str(heic), str(dng), "--scale", "2", "--method", "bicubic",
                "-o", str(tmp_path / "out"), "--format", "avif", "--quiet"]) == 0
    assert load_photo(tmp_path / "out" / "phone_x2.avif").rgb.shape == (96, 128, 3)
    assert load_photo(tmp_path / "out" / "shot_x2.avif").rgb.shape == (192, 128, 3)


def test_viewer_shows_the_embedded_preview_then_the_developed_raw(qtbot, tmp_path, monkeypatch):
    """The preview (half the size here, as embedded JPEGs often are) is on screen while the
    RAW develops; the developed image then takes its place at the same spot and zoom."""
    import threading

    from PySide6.QtCore import QSettings

    from ddir_zoom.app import opening as opening_module
    from ddir_zoom.app import window as window_module
    from ddir_zoom.app.settings import Settings

    dng = write_dng(tmp_path / "shot.dng", orientation=1)
    developed = raw_module.develop(dng)
    release = threading.Event()

    def slow_develop(path):
        release.wait(30)
        return developed

    monkeypatch.setattr(raw_module, "develop", slow_develop)
    monkeypatch.setattr(photo_io, "develop", slow_develop)
    preview = (developed[::2, ::2] * 255).astype(np.uint8)
    monkeypatch.setattr(opening_module, "raw_preview", lambda path: preview)
    win = window_module.MainWindow(Settings(QSettings(str(tmp_path / "s.ini"),
                                                      QSettings.Format.IniFormat)))
    qtbot.addWidget(win)
    win.show()
    win.open_path(dng)
    qtbot.waitUntil(lambda: win.showing_preview, timeout=20_000)
    assert win.engine.size == (32, 48) and "preview" in win.photo_name
    win.resize(700, 500)
    win.viewer.zoom_to(30.0)  # the preview is larger than the pane now
    win.viewer.center_on(12.0, 20.0)
    before = win.viewer.center
    release.set()
    qtbot.waitUntil(lambda: not win.loading and win.photo_name == "shot.dng", timeout=20_000)
    assert win.engine.size == (64, 96)
    assert win.viewer.scale == pytest.approx(15.0)  # the same size on screen
    assert win.viewer.center == pytest.approx((2 * before[0], 2 * before[1]), abs=0.01)
    win.close()


def test_folder_browsing_includes_phone_and_raw_files(tmp_path):
    from ddir_zoom.app.folder import PhotoFolder

    for name in ("a.jpg", "b.heic", "c.avif", "d.dng", "e.NEF", "f.txt"):
        (tmp_path / name).write_bytes(b"x")
    names = [p.name for p in PhotoFolder(tmp_path / "a.jpg").files]
    assert names == ["a.jpg", "b.heic", "c.avif", "d.dng", "e.NEF"]
