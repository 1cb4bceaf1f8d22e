"""The viewer, driven as a user would (offscreen): open, zoom, compare, wipe, export, errors,
and a GUI thread that never waits on the models."""

import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt, QTimer
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from ddir_zoom.app import opening as opening_module
from ddir_zoom.app.export_dialog import ExportSettings
from ddir_zoom.app.opening import photo_from_qimage
from ddir_zoom.app.settings import Settings
from ddir_zoom.app.window import MainWindow
from ddir_zoom.engine.export import export_region
from ddir_zoom.imaging import load_photo
from ddir_zoom.models import make_model, make_preset
from ddir_zoom.resources import sample_photo

TINY = {"encoder": {"n_resblocks": 1, "n_feats": 8}, "hidden": [16]}


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    """A main window with its own settings file and small random DDIR and LIIF models."""
    real_load = opening_module.load_engine

    def load_with_models(source, device, models, precision="float32"):
        engine, warnings = real_load(source, "cpu", {}, precision)
        for name in ("DDIR", "LIIF"):
            torch.manual_seed(0)
            engine.add_model(name, make_model({"model": name.lower(), **TINY}))
        return engine, warnings

    monkeypatch.setattr(opening_module, "load_engine", load_with_models)
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.resize(900, 600)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()


def open_sample(qtbot, win):
    win.open_path(sample_photo())
    qtbot.waitUntil(lambda: win.engine is not None and not win.loading, timeout=20_000)


def wait_refined(qtbot, win, timeout=60_000):
    def refined():
        layers = win.viewer.layers.values()
        return layers and all(layer.done == layer.total for layer in layers)
    qtbot.waitUntil(refined, timeout=timeout)


def test_opens_the_sample_fitted(qtbot, window):
    open_sample(qtbot, window)
    assert window.engine.size == (400, 600)
    assert "coffee.png" in window.windowTitle()
    assert window.viewer.scale == pytest.approx(window.viewer.fit_scale())
    assert {"DDIR", "LIIF", "bicubic"} <= set(window.engine.methods)
    wait_refined(qtbot, window)


def test_slider_changes_the_scale_and_a_refined_frame_arrives(qtbot, window):
    open_sample(qtbot, window)
    window.viewer.set_method(0, "DDIR")
    wait_refined(qtbot, window)
    before = window.viewer.scale
    window.slider.setValue(window.slider.value() + 300)
    assert window.viewer.scale > before
    assert window.spin.value() == pytest.approx(window.viewer.scale, abs=1e-3)
    qtbot.waitUntil(lambda: window.viewer.layers and
                    window.viewer.layers[0].view.scale == pytest.approx(window.viewer.scale),
                    timeout=5000)
    layer = window.viewer.layers[0]
    assert layer.total > 0
    wait_refined(qtbot, window)
    # the refined picture is DDIR's render of the view, pixel for pixel
    view = layer.view
    y0, x0, y1, x1 = window.engine.source.photo_rect(view)
    expected = window.engine.render_region("DDIR", view.scale,
                                           (view.origin[0] + y0, view.origin[1] + x0),
                                           (y1 - y0, x1 - x0))
    got = layer.canvas[y0:y1, x0:x1].astype(int)
    assert np.abs(got - np.round(expected * 255)).max() <= 1


def test_spin_box_takes_an_exact_factor(qtbot, window):
    open_sample(qtbot, window)
    window.spin.setValue(2.718)
    assert window.viewer.scale == pytest.approx(2.718)


def test_wheel_zoom_keeps_the_image_point_under_the_cursor(qtbot, window):
    open_sample(qtbot, window)
    pane = window.viewer.panes[0]
    position = QPointF(pane.width() * 0.3, pane.height() * 0.6)
    device = pane.to_device(position)
    before = window.viewer.view_for(pane).screen_to_image(device.x(), device.y())
    pane.zoomRequested.emit(1.2 ** 3, device)  # what three wheel notches emit
    after = window.viewer.view_for(pane).screen_to_image(device.x(), device.y())
    assert window.viewer.scale > 1.5 * window.viewer.fit_scale()
    assert np.allclose(before, after, atol=1.0 / window.viewer.scale)


def test_real_wheel_event_zooms_around_the_cursor(qtbot, window):
    open_sample(qtbot, window)
    pane = window.viewer.panes[0]
    point = QPoint(pane.width() // 4, pane.height() // 3)
    device = pane.to_device(QPointF(point))
    before = window.viewer.view_for(pane).screen_to_image(device.x(), device.y())
    from PySide6.QtGui import QWheelEvent

    event = QWheelEvent(QPointF(point), QPointF(pane.mapToGlobal(point)), QPoint(0, 0),
                        QPoint(0, 240), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(pane, event)
    after = window.viewer.view_for(pane).screen_to_image(device.x(), device.y())
    assert window.viewer.scale == pytest.approx(window.viewer.fit_scale() * 1.44, rel=1e-3)
    assert np.allclose(before, after, atol=1.0 / window.viewer.scale)


def test_drag_pans(qtbot, window):
    open_sample(qtbot, window)
    window.viewer.zoom_to(4.0)
    centre = window.viewer.center
    pane = window.viewer.panes[0]
    qtbot.mousePress(pane, Qt.MouseButton.LeftButton, pos=QPoint(200, 200))
    qtbot.mouseMove(pane, QPoint(160, 180))
    qtbot.mouseRelease(pane, Qt.MouseButton.LeftButton, pos=QPoint(160, 180))
    ratio = pane.devicePixelRatioF()
    assert window.viewer.center[1] == pytest.approx(centre[1] + 40 * ratio / 4.0)
    assert window.viewer.center[0] == pytest.approx(centre[0] + 20 * ratio / 4.0)


def test_compare_panes_stay_in_sync(qtbot, window):
    open_sample(qtbot, window)
    window.set_layout("side3")
    window.viewer.set_method(0, "DDIR")
    window.viewer.set_method(1, "LIIF")
    window.viewer.set_method(2, "bicubic")
    window.viewer.zoom_to(3.3)
    window.viewer.pan(37, -12)
    qtbot.waitUntil(lambda: len(window.viewer.layers) == 3, timeout=5000)
    wait_refined(qtbot, window)
    panes = window.viewer.active_panes()
    assert len(panes) == 3 and all(p.isVisible() for p in panes)
    centres = [window.viewer.view_for(p).center for p in panes]
    scales = {layer.view.scale for layer in window.viewer.layers.values()}
    assert scales == {3.3}
    for c in centres:  # the same image point at every pane's centre (within half a pixel)
        assert np.allclose(c, centres[0], atol=0.5 / 3.3)
    labels = [layer.label for layer in window.viewer.layers.values()]
    assert labels == ["DDIR", "LIIF", "Bicubic"]


def test_wipe_divider_moves_and_flip_swaps(qtbot, window):
    open_sample(qtbot, window)
    window.set_layout("wipe")
    window.viewer.set_method(0, "DDIR")
    window.viewer.set_method(1, "bicubic")
    qtbot.waitUntil(lambda: len(window.viewer.layers) == 2, timeout=5000)
    pane = window.viewer.panes[0]
    assert pane.wipe and pane.divider == 0.5
    middle = QPoint(pane.width() // 2, pane.height() // 2)
    target = QPoint(pane.width() // 5, pane.height() // 2)
    qtbot.mousePress(pane, Qt.MouseButton.LeftButton, pos=middle)
    qtbot.mouseMove(pane, target)
    qtbot.mouseRelease(pane, Qt.MouseButton.LeftButton, pos=target)
    assert pane.divider == pytest.approx(0.2, abs=0.01)
    window.flip_action.trigger()
    qtbot.waitUntil(lambda: [layer.label for layer in window.viewer.layers.values()]
                    == ["Bicubic", "DDIR"], timeout=5000)
    # the A and B boxes and the saved settings follow the flip
    assert [box.currentData() for box, _ in window.method_boxes[:2]] == ["bicubic", "DDIR"]
    assert window.settings.methods[:2] == ["bicubic", "DDIR"]


def test_region_selection_and_export_write_the_engines_pixels(qtbot, window, tmp_path):
    open_sample(qtbot, window)
    window.viewer.zoom_to(2.5)
    pane = window.viewer.panes[0]
    qtbot.mousePress(pane, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     QPoint(100, 80))
    qtbot.mouseMove(pane, QPoint(300, 200))
    qtbot.mouseRelease(pane, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                       QPoint(300, 200))
    region = window.viewer.selection
    assert region is not None and region[2] > 10 and region[3] > 10
    assert window.export_action.isEnabled()
    target = tmp_path / "crop.png"
    job = window.start_export(ExportSettings(target, "DDIR", region, 2.5, None, True, 95))
    qtbot.waitUntil(lambda: window.export_job is None, timeout=60_000)
    assert target.exists()
    direct = tmp_path / "direct.png"
    export_region(window.engine, direct, "DDIR", rect=region, scale=2.5)
    np.testing.assert_array_equal(load_photo(target).rgb, load_photo(direct).rgb)
    assert job is not None


def test_export_cancel_leaves_nothing(qtbot, window, tmp_path):
    open_sample(qtbot, window)
    folder = tmp_path / "out"
    folder.mkdir()
    job = window.start_export(ExportSettings(folder / "big.jpg", "DDIR", (0, 0, 400, 600), 8.0,
                                             None, True, 90))
    progress = []
    job.progressed.connect(lambda done, total: progress.append(done))
    qtbot.waitUntil(lambda: len(progress) >= 2, timeout=30_000)
    job.cancel()
    qtbot.waitUntil(lambda: window.export_job is None, timeout=60_000)
    assert list(folder.iterdir()) == []  # no file, no partial file, no pixel buffer
    assert "cancelled" in window.statusBar().currentMessage()


def test_bad_file_shows_an_error_and_keeps_the_photo(qtbot, window, tmp_path):
    open_sample(qtbot, window)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    window.open_path(bad)
    qtbot.waitUntil(lambda: window.error is not None, timeout=10_000)
    assert "broken.jpg" in window.error and window.banner.isVisible()
    assert "broken.jpg" in window.banner.text()
    assert window.engine.size == (400, 600)  # the photo on screen stays
    window.open_path(tmp_path / "missing.png")
    qtbot.waitUntil(lambda: "missing.png" in (window.error or ""), timeout=10_000)


def test_paste_from_clipboard(qtbot, window):
    image = QImage(64, 48, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.darkCyan)
    QApplication.clipboard().setImage(image)
    window.paste()
    qtbot.waitUntil(lambda: window.engine is not None and window.engine.size == (48, 64),
                    timeout=10_000)
    assert "Pasted" in window.windowTitle()
    photo = photo_from_qimage(image)
    assert photo.rgb.shape == (48, 64, 3) and photo.alpha is None


def test_settings_persist(qtbot, window, tmp_path):
    open_sample(qtbot, window)
    window.set_layout("side2")
    window.method_boxes[1][0].setCurrentIndex(window.method_boxes[1][0].findData("LIIF"))
    window._method_chosen(1)
    window.close()
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert settings.layout == "side2"
    assert settings.methods[1] == "LIIF"
    assert str(sample_photo().resolve()) in settings.recent
    assert settings.last_folder == str(sample_photo().resolve().parent)


def test_fast_decoding_reopens_the_photo_and_persists(qtbot, window, tmp_path, monkeypatch):
    """The Device menu's bfloat16 item reopens the photo with an engine decoding in bfloat16
    and is remembered; where bfloat16 is not native it is disabled."""
    from ddir_zoom.app import window as window_module
    monkeypatch.setattr(window_module, "native_bfloat16", lambda device: True)
    monkeypatch.setattr("ddir_zoom.engine.engine.resolve_precision",
                        lambda precision, device: (precision, None))
    open_sample(qtbot, window)
    assert window.engine.precision == "float32"
    window.set_device("cpu")
    qtbot.waitUntil(lambda: window.engine is not None and not window.loading, timeout=20_000)
    assert window.fast_decoding_action.isEnabled()
    window.fast_decoding_action.setChecked(True)
    qtbot.waitUntil(lambda: window.engine is not None and not window.loading
                    and window.engine.precision == "bfloat16", timeout=20_000)
    assert window.engine.methods["DDIR"].model.precision == "bfloat16"
    monkeypatch.setattr(window_module, "native_bfloat16", lambda device: False)
    window.set_device("cpu")
    assert not window.fast_decoding_action.isEnabled()
    qtbot.waitUntil(lambda: window.engine is not None and not window.loading, timeout=20_000)
    window.close()
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert settings.precision == "bfloat16"


def test_gui_thread_never_waits_for_a_refine(qtbot, window):
    """A 16 ms timer keeps ticking on time while the models refine a large view."""
    open_sample(qtbot, window)
    for name in ("ddir", "liif"):  # full-size compact models: a refine that takes a while
        torch.manual_seed(0)
        window.engine.add_model(f"{name}-compact", make_preset(name, "compact"))
    window.set_layout("side2")
    window.viewer.set_method(0, "ddir-compact")
    window.viewer.set_method(1, "liif-compact")
    window.viewer.zoom_to(8.0)
    qtbot.waitUntil(lambda: window.viewer.layers and any(
        layer.refining for layer in window.viewer.layers.values()), timeout=5000)
    ticks, tiles = [], []
    window.viewer.bridge.tileReady.connect(lambda update: tiles.append(time.perf_counter()))
    timer = QTimer()
    timer.setInterval(16)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    start = time.perf_counter()
    timer.start()
    qtbot.wait(1500)
    timer.stop()
    # The worker was busy for a good part of it: refining before the window opened (waited for
    # above) and still delivering tiles half a second in (a fast CPU finishes the view in about
    # one second, a slow one keeps refining throughout; each tile takes tens of ms, so a GUI
    # thread that waited on one would miss a tick by more than the bound below).
    busy = tiles[-1] - start if tiles else 0.0
    assert busy > 0.5, f"the refine ended {busy:.2f} s in"
    gaps = np.diff(ticks) * 1000
    assert len(ticks) > 40
    assert gaps.max() < 16 + 50, f"a tick came {gaps.max():.0f} ms after the last"


def test_load_model_adds_a_method_and_refuses_a_bad_file(qtbot, window, tmp_path):
    from ddir_zoom.models import save_checkpoint

    open_sample(qtbot, window)
    torch.manual_seed(1)
    path = save_checkpoint(make_model({"model": "ddir", **TINY}), tmp_path / "mine.safetensors")
    assert window.load_model(path)
    assert "mine" in window.engine.methods
    assert window.method_boxes[0][0].findData("mine") >= 0
    assert str(path) in window.settings.models
    window.viewer.set_method(0, "mine")
    wait_refined(qtbot, window)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nonsense")
    assert not window.load_model(bad)
    assert "bad.safetensors" in window.error
