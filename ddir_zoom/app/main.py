"""Starting the application."""

from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication

from ddir_zoom.app.settings import Settings
from ddir_zoom.app.system import platform_problem
from ddir_zoom.app.theme import apply_theme
from ddir_zoom.app.window import MainWindow, app_icon
from ddir_zoom.resources import sample_photo
from ddir_zoom.threads import configure


def run_viewer(image: str | None = None, self_test: bool = False,
               started: float | None = None, threads: int = 0) -> int:
    """Open the viewer on `image` (the bundled sample when None) and run until it closes.

    self_test: with throw-away settings, show DDIR (or the first model available), wait until
    the first frame is fully refined, print how long that took and exit with 0; exit with 1 if
    the photo does not open or nothing is refined within five minutes. Times count from
    `started` (time.perf_counter() when the program began), or from here. threads: CPU
    threads for rendering (0: the Threads setting, else `threads.free_cores()`).
    """
    started = time.perf_counter() if started is None else started
    problem = None if QApplication.instance() else platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("ddir-zoom")
    app.setOrganizationName("ddir-zoom")
    app.setWindowIcon(app_icon())
    folder = tempfile.TemporaryDirectory() if self_test else None
    settings = Settings(QSettings(str(Path(folder.name) / "settings.ini"),
                                  QSettings.Format.IniFormat)) if folder else Settings()
    apply_theme(app, settings.theme)
    try:
        saved = int(settings.threads)
    except ValueError:
        saved = 0
    configure(threads or saved)
    window = MainWindow(settings)
    window.show()
    quit_on_signals(app, window)
    window.open_path(image or sample_photo())
    if self_test:
        _watch_self_test(app, window, started)
    code = app.exec()
    if folder is not None:
        folder.cleanup()
    return code


def quit_on_signals(app: QApplication, window: MainWindow) -> QTimer:
    """Ctrl+C, SIGTERM and SIGHUP close the window as its close button does: a running export
    is cancelled and its temporary files removed, the settings saved. Python runs signal
    handlers only between bytecodes, so a timer lets it look while Qt's event loop waits."""
    def handler(signum, frame) -> None:
        window.close()
        app.quit()

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(200)
    return timer


def _watch_self_test(app: QApplication, window: MainWindow, start: float) -> None:
    state = {"method": None, "first_frame": None, "first_pass": None}

    def check() -> None:
        elapsed = time.perf_counter() - start
        if state["first_frame"] is None and window.viewer.layers:
            state["first_frame"] = elapsed
        if window.error is not None and window.engine is None:
            print(f"self-test failed: {window.error}", flush=True)
            app.exit(1)
            return
        if window.engine is not None and state["method"] is None:
            models = [m for m in window.engine.methods if m != "bicubic"]
            state["method"] = "DDIR" if "DDIR" in models else (models[0] if models else
                                                                "bicubic")
            window.set_layout("single")
            window.viewer.set_method(0, state["method"])
            return
        layers = list(window.viewer.layers.values())
        shown = bool(state["method"] and layers and layers[0].method == state["method"])
        if shown and state["first_pass"] is None and layers[0].to_refine and \
                layers[0].first_pass == layers[0].to_refine:
            state["first_pass"] = elapsed
        if shown and layers[0].total and layers[0].done == layers[0].total:
            h, w = window.engine.size
            first_pass = (f"sharp from its first pass {state['first_pass']:.1f} s after "
                          "start, " if state["first_pass"] is not None else "")
            print(f"self-test passed: opened {window.photo_name} ({w} x {h}); first frame "
                  f"{state['first_frame']:.1f} s after start; a "
                  f"{layers[0].view.size[1]} x {layers[0].view.size[0]} frame at "
                  f"x{layers[0].view.scale:.2f}: {first_pass}refined with "
                  f"{state['method']} on {window.device_label.text()} {elapsed:.1f} s after "
                  "start", flush=True)
            app.exit(0)
        elif elapsed > 300:
            print("self-test failed: no refined frame within five minutes", flush=True)
            app.exit(1)

    timer = QTimer(window)
    timer.timeout.connect(check)
    timer.start(100)
