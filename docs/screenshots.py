"""Screenshots of the viewer for the README: single view, side by side and A/B wipe at x1, x2.7
and x6 on the bundled sample, each taken once every visible tile is refined.

    apt-get install xvfb
    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots.py docs/screenshots

(QT_QPA_PLATFORM=offscreen works too: the window is rendered the same way.)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from ddir_zoom.app.settings import Settings
from ddir_zoom.app.theme import apply_theme
from ddir_zoom.app.window import MainWindow
from ddir_zoom.resources import sample_photo

SHOTS = [("single", ["DDIR"]), ("side3", ["DDIR", "LIIF", "bicubic"]),
         ("wipe", ["DDIR", "bicubic"])]
SCALES = [1.0, 2.7, 6.0]


def wait(app: QApplication, condition, timeout: float = 300.0) -> None:
    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise TimeoutError("the viewer did not finish in time")
        app.processEvents()
        time.sleep(0.02)


def main(folder: str) -> int:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as settings_folder:
        settings = Settings(QSettings(str(Path(settings_folder) / "s.ini"),
                                      QSettings.Format.IniFormat))
        apply_theme(app, "dark")
        window = MainWindow(settings)
        window.resize(1280, 800)
        window.show()
        window.open_path(sample_photo())
        wait(app, lambda: window.engine is not None and not window.loading)
        for mode, methods in SHOTS:
            window.set_layout(mode)
            for slot, method in enumerate(methods):
                window.viewer.set_method(slot, method)
            for scale in SCALES:
                # The spoon and the rim of the cup: detail at every scale.
                window.viewer.center = (230.0, 330.0)
                window.viewer.zoom_to(scale)
                wait(app, lambda: window.viewer.layers and all(
                    layer.view is not None and layer.view.scale == window.viewer.scale
                    and layer.done == layer.total for layer in window.viewer.layers.values()))
                app.processEvents()
                path = out / f"{mode}_x{scale:g}.png"
                window.grab().save(str(path))
                print(path, flush=True)
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
