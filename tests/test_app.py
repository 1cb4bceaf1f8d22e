"""The window opens the sample photo, and shows a bad file's reason instead of crashing."""

from ddir_zoom.app.window import MainWindow
from ddir_zoom.resources import sample_photo


def test_window_shows_the_sample(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.open_photo(sample_photo())
    qtbot.waitUntil(lambda: window.photo is not None, timeout=10_000)
    assert (window.photo.width, window.photo.height) == (600, 400)
    assert not window.view.pixmap().isNull()
    assert "coffee.png" in window.windowTitle()


def test_bad_file_shows_the_reason(qtbot, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.open_photo(bad)
    qtbot.waitUntil(lambda: window.error is not None, timeout=10_000)
    assert "broken.jpg" in window.error
    assert "broken.jpg" in window.view.text()
