"""The viewer as photographers expect it (issue 11): each defect a new user found, and the
viewer basics of qView, nomacs and Photoshop. Offscreen, driven through the window's actions,
keys and mouse as a user would."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor

from ddir_zoom.app import system
from ddir_zoom.app.export_dialog import ExportDialog, export_folder
from ddir_zoom.app.folder import PhotoFolder, natural_key
from ddir_zoom.app.info import exif_summary
from ddir_zoom.resources import resources_dir, sample_photo
from tests.test_viewer import open_sample, window  # noqa: F401 - the fixture


def pane_of(win):
    return win.viewer.active_panes()[0]


def visible(win):
    return win.viewer.visible_region()


# --- defects ------------------------------------------------------------------------------------

def test_missing_xcb_libraries_are_named_in_plain_words(monkeypatch):
    monkeypatch.setattr(system, "_loadable", lambda soname: "icccm" not in soname)
    env = {"DISPLAY": ":0"}
    message = system.platform_problem(env)
    assert "libxcb-icccm.so.4" in message and "apt-get install libxcb-icccm4" in message
    assert "dnf install xcb-util-wm" in message
    assert system.platform_problem({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}) is None
    assert system.platform_problem({"WAYLAND_DISPLAY": "wayland-0"}) is None
    monkeypatch.setattr(system, "_loadable", lambda soname: True)
    assert system.platform_problem(env) is None


def test_panning_never_loses_the_photo(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    window.viewer.fit()
    before = window.viewer.center
    window.viewer.pan(1200, 0)  # at fit: nothing to pan
    assert window.viewer.center == before
    window.viewer.zoom_to(4.0)
    for _ in range(20):
        window.viewer.pan(-900, -900)  # toward the bottom-right corner, far past it
    y, x, h, w = visible(window)
    ph, pw = pane_of(window).device_size()
    H, W = window.engine.size  # noqa: N806
    assert abs(h - ph / 4) < 1 and abs(w - pw / 4) < 1  # the view is all photo
    assert abs(y + h - H) < 0.5 and abs(x + w - W) < 0.5  # at the corner, not past it
    qtbot.keyClick(pane_of(window), Qt.Key.Key_Down)
    assert visible(window) == (y, x, h, w)


def test_a_photo_smaller_than_the_view_is_centred(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    window.viewer.zoom_to(3.0)
    window.viewer.pan(-400, -300)
    window.viewer.zoom_to(0.1)
    assert window.viewer.center == (window.engine.size[0] / 2, window.engine.size[1] / 2)


def test_fit_is_kept_when_the_window_is_resized(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    window.fit_action.trigger()
    window.resize(1200, 900)
    qtbot.waitUntil(lambda: abs(window.viewer.scale - window.viewer.fit_scale()) < 1e-9)
    window.zoom_in_action.trigger()  # a zoom leaves fit mode
    scale = window.viewer.scale
    window.resize(800, 500)
    qtbot.wait(50)
    assert window.viewer.scale == scale


def test_transparent_photo_shows_a_checkerboard(qtbot, window, tmp_path):  # noqa: F811
    rgba = np.zeros((120, 160, 4), np.uint8)
    rgba[..., 0] = 255  # red under the transparent half: must not show
    rgba[:, :80, 3] = 255
    path = tmp_path / "transparent.png"
    Image.fromarray(rgba, "RGBA").save(path)
    window.open_path(path)
    qtbot.waitUntil(lambda: window.engine is not None and not window.loading, timeout=20_000)
    window.viewer.zoom_to(2.0)
    window.viewer.render()
    pane = pane_of(window)
    assert all(layer.has_alpha for layer in pane.layers)
    image = pane.grab().toImage()
    view = window.viewer.view_for(pane)
    u, v = view.image_to_screen(60, 140)  # a transparent pixel
    colour = QColor(image.pixel(int(u / pane.devicePixelRatioF()),
                                int(v / pane.devicePixelRatioF())))
    assert colour.red() == colour.green() == colour.blue() in (153, 204)
    u, v = view.image_to_screen(60, 20)  # an opaque one stays red
    colour = QColor(image.pixel(int(u), int(v)))
    assert colour.red() > 200 and colour.green() < 50


def test_zoom_box_gives_the_keyboard_back_and_esc_reverts(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    box = window.spin
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "6")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert window.viewer.scale == pytest.approx(6.0)
    assert not box.hasFocus()
    qtbot.keyClick(pane_of(window), Qt.Key.Key_1)  # the 100% shortcut, not the box
    assert window.viewer.scale == pytest.approx(1.0)
    window.viewer.selection = (0.0, 0.0, 10.0, 10.0)
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, "7")
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    assert box.value() == pytest.approx(1.0) and window.viewer.scale == pytest.approx(1.0)
    assert window.viewer.selection is not None  # Esc belonged to the box


def test_status_coordinates_follow_a_keyboard_zoom(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    pane = pane_of(window)
    qtbot.mouseMove(pane, QPoint(100, 100))
    qtbot.waitUntil(lambda: window.cursor_label.text() != "")
    before = window.cursor_label.text()
    window.zoom_in_action.trigger()
    assert window.cursor_label.text() not in ("", before)


def test_export_selection_needs_a_selection(qtbot, window, monkeypatch):  # noqa: F811
    opened = []
    monkeypatch.setattr(ExportDialog, "exec", lambda self: opened.append(self) or 0)
    open_sample(qtbot, window)
    assert not window.export_action.isEnabled()
    window.export(selection=True)  # Ctrl+E with nothing selected
    assert opened == [] and "Select a region" in window.statusBar().currentMessage()
    window.viewer.selection = (10.0, 10.0, 50.0, 75.0)
    window.viewer.selectionChanged.emit()
    assert window.export_action.isEnabled()
    window.clear_selection_action.trigger()
    assert not window.export_action.isEnabled()


def test_selection_snaps_to_photo_pixels_and_exports_exactly(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    window.viewer.zoom_to(4.0)
    pane = pane_of(window)
    qtbot.mousePress(pane, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     QPoint(101, 97))
    qtbot.mouseMove(pane, QPoint(403, 299))
    qtbot.mouseRelease(pane, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                       QPoint(403, 299))
    y, x, h, w = window.viewer.selection
    assert all(float(v).is_integer() for v in (y, x, h, w))
    dialog = ExportDialog(window, window.engine, window.viewer.selection, 4.0, "DDIR",
                          str(Path.home()), "coffee")
    assert dialog.result_size.text().startswith(f"{int(w * 4)} x {int(h * 4)} pixels")


def test_export_dialog_names_fields_and_folder(qtbot, window, tmp_path):  # noqa: F811
    open_sample(qtbot, window)
    dialog = ExportDialog(window, window.engine, (0.0, 0.0, 50.0, 75.0), 2.0, "DDIR",
                          str(tmp_path), "coffee")
    assert Path(dialog.path.text()).name == "coffee_x2.00.png"
    assert not dialog.quality.isEnabled()  # PNG is lossless
    dialog.by_size.setChecked(True)
    dialog.width.setValue(300)
    assert Path(dialog.path.text()).name == "coffee_300x200.png"
    dialog.format.setCurrentText("JPEG")
    assert dialog.quality.isEnabled() and dialog.path.text().endswith("coffee_300x200.jpg")
    dialog.path.setText(str(tmp_path / "mine.jpg"))
    dialog.width.setValue(400)
    assert Path(dialog.path.text()).name == "mine.jpg"  # the user's name is kept
    assert export_folder(str(sample_photo().parent)) != str(sample_photo().parent)
    assert resources_dir() not in Path(export_folder(str(sample_photo().parent))).parents
    assert export_folder(str(tmp_path)) == str(tmp_path)


def test_empty_and_loading_states(qtbot, window):  # noqa: F811
    assert not window.slider.isEnabled() and not window.spin.isEnabled()
    assert all(not box.isEnabled() for box, _ in window.method_boxes)
    assert window.spin.text().strip() == ""
    assert "No photo open" in pane_of(window).placeholder
    window.open_path(sample_photo())
    assert "Opening coffee.png" in pane_of(window).placeholder
    qtbot.waitUntil(lambda: window.engine is not None and not window.loading, timeout=20_000)
    assert window.slider.isEnabled() and window.spin.text().strip() != ""


def test_help_controls_is_a_table_and_errors_do_not_move_the_image(qtbot, window,  # noqa: F811
                                                                    monkeypatch):
    shown = []
    monkeypatch.setattr("PySide6.QtWidgets.QMessageBox.exec",
                        lambda self: shown.append(self.text()) or 0)
    window._show_controls()
    assert "<table" in shown[0] and "F11" in shown[0]
    open_sample(qtbot, window)
    before = window.viewer.geometry()
    window.show_error("Something went wrong")
    assert window.banner.isVisible() and window.viewer.geometry() == before


def test_toolbar_overflow_chevron_has_a_visible_icon(window):  # noqa: F811
    from PySide6.QtWidgets import QToolButton
    chevron = window.toolbar.findChild(QToolButton, "qt_toolbar_ext_button")
    assert chevron is not None and not chevron.icon().isNull()


# --- basics -------------------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path) -> list[Path]:
    paths = []
    for i, name in enumerate(["img1.png", "img2.png", "img10.png"]):
        rgb = np.full((60, 80, 3), 40 * (i + 1), np.uint8)
        path = tmp_path / name
        Image.fromarray(rgb).save(path)
        paths.append(path)
    (tmp_path / "notes.txt").write_text("not a photo")
    return paths


def _wait_open(qtbot, win, name):
    qtbot.waitUntil(lambda: not win.loading and win.photo_name == name, timeout=20_000)


def test_folder_order_is_natural(folder):
    assert [p.name for p in PhotoFolder(folder[1]).files] == ["img1.png", "img2.png", "img10.png"]
    assert sorted(["b10", "b9", "A1"], key=lambda n: natural_key(Path(n))) == ["A1", "b9", "b10"]


def test_next_previous_first_last(qtbot, window, folder):  # noqa: F811
    window.open_path(folder[1])
    _wait_open(qtbot, window, "img2.png")
    window.next_action.trigger()
    _wait_open(qtbot, window, "img10.png")
    window.next_action.trigger()  # past the end: stays, says so
    assert "No more photos" in window.statusBar().currentMessage()
    window.first_action.trigger()
    _wait_open(qtbot, window, "img1.png")
    window.last_action.trigger()
    _wait_open(qtbot, window, "img10.png")
    qtbot.keyClick(pane_of(window), Qt.Key.Key_Left)  # at fit, the arrows step through photos
    _wait_open(qtbot, window, "img2.png")
    window.previous_action.trigger()
    _wait_open(qtbot, window, "img1.png")


def test_the_next_photo_is_prefetched(qtbot, window, folder):  # noqa: F811
    window.open_path(folder[0])
    _wait_open(qtbot, window, "img1.png")
    qtbot.waitUntil(lambda: folder[1] in window.folder.prefetched, timeout=20_000)
    prefetched = window.folder.prefetched[folder[1]]
    window.next_action.trigger()
    _wait_open(qtbot, window, "img2.png")
    assert window.engine.photo is prefetched


def test_zoom_to_selection_fit_width_and_fill(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    ph, pw = pane_of(window).device_size()
    H, W = window.engine.size  # noqa: N806
    window.fit_width_action.trigger()
    assert window.viewer.scale == pytest.approx(pw / W)
    window.fill_action.trigger()
    assert window.viewer.scale == pytest.approx(max(ph / H, pw / W))
    window.viewer.selection = (100.0, 200.0, 40.0, 60.0)
    window.viewer.selectionChanged.emit()
    window.zoom_selection_action.trigger()
    y, x, h, w = visible(window)
    assert window.viewer.scale == pytest.approx(min(ph / 40, pw / 60))
    assert y <= 100.5 and x <= 200.5 and y + h >= 139.5 and x + w >= 259.5


def test_full_screen_toggles(qtbot, window):  # noqa: F811
    window.full_screen_action.trigger()
    qtbot.waitUntil(window.isFullScreen)
    window.full_screen_action.trigger()
    qtbot.waitUntil(lambda: not window.isFullScreen())


def test_holding_space_flashes_the_original(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    window.viewer.set_method(0, "DDIR")
    window.viewer.render()
    assert pane_of(window).layers[0].method == "DDIR"
    qtbot.keyPress(pane_of(window), Qt.Key.Key_Space)
    window.viewer.render()
    assert pane_of(window).layers[0].method == "bicubic"
    assert "original" in pane_of(window).layers[0].label
    qtbot.keyRelease(pane_of(window), Qt.Key.Key_Space)
    window.viewer.render()
    assert pane_of(window).layers[0].method == "DDIR"


def test_navigator_shows_where_you_are_and_moves_the_view(qtbot, window):  # noqa: F811
    open_sample(qtbot, window)
    nav = window.viewer.navigator
    window.viewer.render()
    assert not nav.isVisible()  # at fit the whole photo is in view
    window.viewer.zoom_to(6.0)
    window.viewer.render()
    assert nav.isVisible()
    H, W = window.engine.size  # noqa: N806
    target = QPointF(nav.width() * 0.25, nav.height() * 0.75)
    qtbot.mouseClick(nav, Qt.MouseButton.LeftButton, pos=target.toPoint())
    cy, cx = window.viewer.center
    assert math.isclose(cy, 0.75 * H, abs_tol=H / nav.height() + 1)
    assert math.isclose(cx, 0.25 * W, abs_tol=W / nav.width() + 1)


def test_info_panel_shows_camera_and_lens(qtbot, window, tmp_path):  # noqa: F811
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R5"
    sub = exif.get_ifd(0x8769)
    sub[0xA434] = "RF 24-105mm F4 L IS USM"
    sub[0x829A] = 0.004
    sub[0x829D] = 8.0
    sub[0x8827] = 200
    path = tmp_path / "camera.jpg"
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(path, exif=exif.tobytes())
    assert exif_summary(exif.tobytes())["Lens"] == "RF 24-105mm F4 L IS USM"
    window.open_path(path)
    _wait_open(qtbot, window, "camera.jpg")
    window.info_action.trigger()
    qtbot.waitUntil(lambda: window.info_panel.values.get("Camera") == "Canon EOS R5")
    values = window.info_panel.values
    assert values["Exposure"].startswith("1/250 s, f/8, ISO 200")
    assert values["Size"].startswith("80 x 60") and "Device" in values
    window.zoom_in_action.trigger()
    assert values is not window.info_panel.values  # follows the zoom
    assert window.info_panel.values["Zoom"].startswith(f"{window.viewer.scale:.3f}")


def test_the_viewer_loads_a_model_with_its_first_pass(tmp_path):
    """The bundled DDIR comes with its student as first pass; a first pass that cannot be read
    is a warning, and the model works without it."""
    import torch

    from ddir_zoom.app.opening import load_engine
    from ddir_zoom.imaging import Photo
    from ddir_zoom.models import make_model, save_checkpoint

    torch.manual_seed(0)
    tiny = {"encoder": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]}
    slow, fast = tmp_path / "slow.safetensors", tmp_path / "fast.safetensors"
    save_checkpoint(make_model({"model": "ddir", **tiny}), slow, {})
    save_checkpoint(make_model({"model": "ddir", **tiny}), fast, {})
    photo = Photo(rgb=np.full((20, 30, 3), 0.5, np.float32))
    engine, warnings = load_engine(photo, "cpu", {"DDIR": (slow, fast), "other": slow})
    assert warnings == [] and list(engine.methods) == ["bicubic", "DDIR", "other"]
    assert engine.first_pass("DDIR") == "DDIR (first pass)" and engine.first_pass("other") is None
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a model file")
    engine, warnings = load_engine(photo, "cpu", {"DDIR": (slow, broken)})
    assert len(warnings) == 1 and "first pass" in warnings[0]
    assert "DDIR" in engine.methods and engine.first_pass("DDIR") is None
    from ddir_zoom.resources import bundled_first_pass

    assert bundled_first_pass("ddir").name == "ddir_student.safetensors"  # shipped
    assert bundled_first_pass("liif") is None
