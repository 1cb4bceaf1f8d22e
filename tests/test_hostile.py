"""Hostile inputs: model files written to exhaust memory or time, or to crash the loader.

Every file is generated here. A model file is data: its header may declare any architecture, so
the config is bounded and every tensor is checked against the architecture (built on the meta
device, without memory) before anything real is allocated.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ddir_zoom.models import CheckpointError, load_checkpoint, make_preset, save_checkpoint
from ddir_zoom.models import checkpoint as checkpoint_module

SMALL = {"encoder": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]}


def _model_file(path: Path, config, tensors=None) -> Path:
    """A ddir-zoom model file with any header and, by default, one tiny tensor."""
    tensors = tensors if tensors is not None else {"x": torch.zeros(2)}
    save_file(tensors, str(path), metadata={
        "format": "ddir-zoom", "format_version": "1",
        "config": config if isinstance(config, str) else json.dumps(config), "info": "{}"})
    return path


@pytest.mark.parametrize("config, message", [
    ({"model": "ddir", "encoder": {"n_feats": 8}, "hidden": [200000, 5000]}, "hidden width"),
    ({"model": "ddir", "encoder": {"n_resblocks": 200000}, "hidden": [16]}, "n_resblocks"),
    ({"model": "liif", "encoder": {"n_feats": 200000}, "hidden": [16]}, "n_feats"),
    ({"model": "liif", "encoder": {"n_feats": 8}, "hidden": [16] * 1000}, "layers"),
    ({"model": "liif", "encoder": {"res_scale": float("nan")}, "hidden": [16]}, "res_scale"),
    ({"model": "liif", "encoder": {"res_scale": "abc"}, "hidden": [16]}, "res_scale"),
    ({"model": "liif", "encoder": {"n_feats": True}, "hidden": [16]}, "n_feats"),
    ({"model": "liif", "encoder": {}, "hidden": [16.5]}, "hidden width"),
    ({"model": ["ddir"], "encoder": {}, "hidden": [16]}, "unknown model"),
    ([1, 2, 3], "config is a dict"),
])
def test_unbounded_or_malformed_configs_are_refused_at_once(tmp_path, config, message):
    path = _model_file(tmp_path / "evil.safetensors", config)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert time.perf_counter() - started < 5.0
    assert str(path) in str(caught.value)


def test_shapes_are_checked_before_the_model_is_built(tmp_path, monkeypatch):
    """A header within bounds but tensors that do not fit it: refused from the header alone,
    no real model allocated (16 layers of 2048 would be a quarter of a gigabyte)."""
    config = {"model": "liif", "encoder": {"n_resblocks": 1, "n_feats": 8},
              "hidden": [2048] * 16}
    tensors = {k: torch.zeros(1) for k in make_preset("liif", "compact").state_dict()}
    built = []
    real = checkpoint_module.make_model

    def counting(cfg):
        model = real(cfg)
        built.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(checkpoint_module, "make_model", counting)
    path = _model_file(tmp_path / "mismatch.safetensors", config, tensors)
    with pytest.raises(CheckpointError, match=r"do not match|has shape"):
        load_checkpoint(path)
    assert built == ["meta"]


def test_non_float_tensors_are_refused(tmp_path):
    model = make_preset("liif", "compact")
    model.load_state_dict(make_preset("liif", "compact").state_dict())
    tensors = {k: v.to(torch.int32) for k, v in model.state_dict().items()}
    path = _model_file(tmp_path / "ints.safetensors", model.config, tensors)
    with pytest.raises(CheckpointError, match="dtype"):
        load_checkpoint(path)


def test_nan_weights_are_refused(tmp_path):
    model = make_preset("liif", "compact")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    path = save_checkpoint(model, tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(path)


def test_pickle_payload_never_runs(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "ran",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not (tmp_path / "ran").exists()


def test_a_folder_is_not_called_missing(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_saved_model_files_are_readable_by_others(tmp_path):
    path = save_checkpoint(make_preset("liif", "compact"), tmp_path / "m.safetensors")
    assert path.stat().st_mode & 0o044 == 0o044


# --- photos, exports and the command line -------------------------------------------------------

import errno  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageCms  # noqa: E402

from ddir_zoom.cli import main as cli  # noqa: E402
from ddir_zoom.engine import Engine  # noqa: E402
from ddir_zoom.engine import export as export_module  # noqa: E402
from ddir_zoom.engine.export import export_region  # noqa: E402
from ddir_zoom.imaging import ImageLoadError, ImageSaveError, load_photo  # noqa: E402


@pytest.fixture
def photo(tmp_path) -> Path:
    y, x = np.mgrid[0:40, 0:60] / 7.0
    rgb = np.stack([np.sin(x + y), np.cos(2 * x), np.sin(3 * y)], -1) * 0.4 + 0.5
    path = tmp_path / "photo.png"
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_png_with_a_bad_idat_checksum_is_refused(tmp_path, photo):
    data = bytearray(photo.read_bytes())
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4 + length // 2] ^= 0x55  # one byte of the compressed pixels
    bad = tmp_path / "bad.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="IDAT"):
        load_photo(bad)


def test_unreadable_folder_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "exists", denied)  # as stat() in a folder we may not enter
    with pytest.raises(ImageLoadError, match="permission denied"):
        load_photo(tmp_path / "locked" / "photo.jpg")


def test_full_disk_is_reported_before_rendering(tmp_path, photo, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module.os, "posix_fallocate", no_space)
    engine = Engine.open(photo, device="cpu")
    rendered = []
    with pytest.raises(ImageSaveError, match="no space left"):
        export_region(engine, tmp_path / "out.jpg", "bicubic", scale=4,
                      progress=lambda done, total: rendered.append(done))
    assert not rendered and _leftovers(tmp_path) == []
    assert not (tmp_path / "out.jpg").exists()


def _tiny_disk(tmp_path: Path, size: str) -> Path:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    return mount


@pytest.mark.parametrize("suffix", [".jpg", ".tif", ".webp", ".png"])
def test_a_really_full_disk(tmp_path, photo, suffix):
    """A 200 KB disk: the export fails with a message and leaves the disk as it was."""
    disk = _tiny_disk(tmp_path, "200k")
    try:
        engine = Engine.open(photo, device="cpu")
        with pytest.raises(ImageSaveError, match=r"no space left|could not be written"):
            export_region(engine, disk / f"out{suffix}", "bicubic", scale=20)
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signals_leave_no_temporary_files(tmp_path, photo, signum):
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "ddir_zoom", "upscale", str(photo), "--method", "bicubic",
               "--size", "9000x6000", "-o", str(out / "big.jpg"), "--quiet"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _leftovers(out) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert _leftovers(out), "the export never started writing"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_a_file_created_meanwhile_is_never_replaced(tmp_path, photo):
    target = tmp_path / "out.png"
    engine = Engine.open(photo, device="cpu")

    def someone_else_writes(done, total):
        if done == 1:
            target.write_bytes(b"the other program's file")

    with pytest.raises(ImageSaveError, match="another program"):
        export_region(engine, target, "bicubic", scale=3, overwrite=False,
                      progress=someone_else_writes)
    assert target.read_bytes() == b"the other program's file"
    assert _leftovers(tmp_path) == []


def test_oversize_exif_is_left_out_of_a_jpeg_with_a_warning(tmp_path, photo):
    engine = Engine.open(photo, device="cpu")
    exif = Image.Exif()
    exif[0x010E] = "x" * 70_000  # ImageDescription
    engine.photo.exif = exif.tobytes()
    warned = []
    out = export_region(engine, tmp_path / "out.jpg", "bicubic", scale=2, warn=warned.append)
    assert len(warned) == 1 and "EXIF" in warned[0] and str(out) in warned[0]
    assert load_photo(out).rgb.shape == (80, 120, 3)
    out = export_region(engine, tmp_path / "out.tif", "bicubic", scale=2, warn=warned.append)
    assert len(warned) == 1  # TIFF holds it
    assert len(load_photo(out).exif or b"") > 70_000


def test_oversize_or_damaged_colour_profiles_are_left_out(tmp_path, photo):
    engine = Engine.open(photo, device="cpu")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for profile, word in ((srgb + b"\0" * (2 << 20), "too large"), (b"garbage" * 50, "damaged")):
        engine.photo.icc_profile = profile
        warned = []
        out = export_region(engine, tmp_path / "out.png", "bicubic", scale=2,
                            warn=warned.append)
        assert len(warned) == 1 and word in warned[0]
        assert load_photo(out).icc_profile is None
    engine.photo.icc_profile = srgb
    out = export_region(engine, tmp_path / "ok.png", "bicubic", scale=2, warn=warned.append)
    assert load_photo(out).icc_profile == srgb


@pytest.mark.parametrize("extra, message", [
    (["--crop", "nan,nan,10,10"], "finite"),
    (["--scale", "nan"], "scale"),
    (["--size", "2000000x10"], "at most"),
])
def test_bad_numbers_are_refused_by_the_parser(tmp_path, photo, capsys, extra, message):
    args = ["upscale", str(photo), "-o", str(tmp_path / "o.png"), "--method", "bicubic"]
    if "--scale" not in extra and "--size" not in extra:
        args += ["--scale", "2"]
    with pytest.raises(SystemExit) as caught:
        cli(args + extra)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_a_gigantic_output_needs_force(tmp_path, photo, capsys):
    code = cli(["upscale", str(photo), "--size", "100000x100000", "--method", "bicubic",
                "-o", str(tmp_path / "huge.png"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "10,000 megapixels" in err and "--force" in err
    assert list(tmp_path.iterdir()) == [photo]


def test_crops_are_reported_as_given_and_clipped_with_a_warning(tmp_path, photo, capsys):
    code = cli(["upscale", str(photo), "--scale", "2", "--crop", "700,500,100,100",
                "--method", "bicubic", "-o", str(tmp_path / "a.png"), "--quiet"])
    assert code == 1 and "700,500,100,100 (X,Y,W,H)" in capsys.readouterr().err
    code = cli(["upscale", str(photo), "--scale", "2", "--crop", "-10,-10,30,30",
                "--method", "bicubic", "-o", str(tmp_path / "b.png"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and "using 0,0,20,20" in err
    assert load_photo(tmp_path / "b.png").rgb.shape == (40, 40, 3)


@pytest.mark.parametrize("case", ["folder_under_a_file", "file_as_folder", "meta_device"])
def test_command_line_mistakes_are_messages(tmp_path, photo, capsys, case):
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"x")
    args = {"folder_under_a_file": [str(photo), str(photo), "-o", str(existing / "sub/")],
            "file_as_folder": [str(photo), str(photo), "-o", str(existing)],
            "meta_device": [str(photo), "-o", str(tmp_path / "o.png"), "--device", "meta"],
            }[case]
    code = cli(["upscale", *args, "--scale", "2", "--method", "bicubic", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err


def test_failure_lines_name_the_file_once(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg")
    assert cli(["upscale", str(bad), "--scale", "2", "--method", "bicubic",
                "-o", str(tmp_path / "o.png"), "--quiet"]) == 1
    line = capsys.readouterr().err.splitlines()[0]
    assert line.count(str(bad)) == 1, line


def test_written_files_reopen_or_are_not_kept(tmp_path, photo, monkeypatch):
    engine = Engine.open(photo, device="cpu")

    def broken_save(self, handle, format=None, **params):  # a writer that produces garbage
        handle.write(zlib.compress(b"not an image"))

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageSaveError, match="does not read back"):
        export_region(engine, tmp_path / "out.jpg", "bicubic", scale=2)
    assert list(p.name for p in tmp_path.iterdir()) == ["photo.png"]
    _ = os  # imported for the module's helpers


VIEWER_EXPORTING = """
import sys
from pathlib import Path
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from ddir_zoom.app.export_dialog import ExportSettings
from ddir_zoom.app.main import quit_on_signals
from ddir_zoom.app.settings import Settings
from ddir_zoom.app.window import MainWindow
from ddir_zoom.resources import sample_photo

folder = Path(sys.argv[1])
app = QApplication([])
window = MainWindow(Settings(QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)))
window.show()
quit_on_signals(app, window)
window.open_path(sample_photo())

def start():
    if window.engine is None or window.loading:
        QTimer.singleShot(50, start)
        return
    job = window.start_export(ExportSettings(folder / "out" / "big.jpg", "bicubic",
                                             (0, 0, 400, 600), 14.0, None, True, 90))
    job.progressed.connect(lambda done, total: print("progress", flush=True) if done == 1
                           else None)

QTimer.singleShot(0, start)
sys.exit(app.exec())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_viewer_signals_cancel_the_export_and_leave_nothing(tmp_path, signum):
    (tmp_path / "out").mkdir()
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    process = subprocess.Popen([sys.executable, "-c", VIEWER_EXPORTING, str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    assert line.strip() == "progress", process.stderr.read() if process.poll() else line
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err
    assert list((tmp_path / "out").iterdir()) == []


def test_help_mentions_upscale_and_fits_a_terminal(capsys):
    for args in (["--help"], ["upscale", "--help"]):
        with pytest.raises(SystemExit):
            cli(args)
        out = capsys.readouterr().out
        assert max(len(line) for line in out.splitlines()) <= 80, out
    with pytest.raises(SystemExit):
        cli(["--help"])
    assert "ddir-zoom upscale" in capsys.readouterr().out


def _camera_exif() -> bytes:
    """EXIF as a camera writes it: main tags plus Exif and GPS sub-directories."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS R5", 1  # make, model, orientation
    exif[0x8769] = {0x829A: 0.004, 0x9003: "2026:11:23 10:00:00", 0x927C: b"\0" * 64}
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}
    return exif.tobytes()


def test_a_camera_photo_exports_to_tiff_without_libtiff_noise(tmp_path, photo, capfd):
    """libtiff cannot write EXIF sub-directories into a compressed TIFF: it printed an error
    on stderr (C level) and Pillow raised after the whole render. They are left out, with a
    warning; the main tags are kept."""
    engine = Engine.open(photo, device="cpu")
    engine.photo.exif = _camera_exif()
    warned = []
    out = export_region(engine, tmp_path / "out.tif", "bicubic", scale=2, warn=warned.append)
    assert len(warned) == 1 and "Exif and GPS" in warned[0] and str(out) in warned[0]
    assert capfd.readouterr().err == ""  # nothing from libtiff on file descriptor 2
    with Image.open(out) as image:
        assert image.getexif()[0x010F] == "Canon" and 0x8769 not in image.getexif()
    out = export_region(engine, tmp_path / "out.png", "bicubic", scale=2, warn=warned.append)
    assert len(warned) == 1  # PNG keeps every directory
    with Image.open(out) as image:
        assert image.getexif().get_ifd(0x8825)[1] == "N"


def test_pillow_warnings_do_not_reach_the_user(tmp_path, photo, capfd):
    """A JPEG whose EXIF is cut short makes Pillow warn ('Corrupt EXIF data'): the photo opens,
    and nothing is printed."""
    bad = tmp_path / "bad_exif.jpg"
    Image.open(photo).save(bad, exif=_camera_exif()[:40])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        assert load_photo(bad).rgb.shape == (40, 60, 3)
    assert capfd.readouterr().err == ""


def test_permission_messages_name_the_output_not_the_temporary_file(tmp_path, photo,
                                                                   monkeypatch):
    engine = Engine.open(photo, device="cpu")
    real_replace = os.replace

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(src))

    monkeypatch.setattr(os, "replace", denied)
    target = tmp_path / "out.png"
    with pytest.raises(ImageSaveError) as caught:
        export_region(engine, target, "bicubic", scale=2, overwrite=True)
    message = str(caught.value)
    assert str(target) in message and "Permission denied" in message
    assert ".part" not in message and message.count(str(tmp_path)) == 1
    monkeypatch.setattr(os, "replace", real_replace)
    assert _leftovers(tmp_path) == []
