"""The main window: opening photos, the zoom controls, comparison layouts, export, settings.

Opening (file dialog, drag and drop, command line, recent files, paste) decodes the photo and
prepares the engine off the GUI thread; a bad file shows its reason in the window and the photo
on screen stays.
"""

from __future__ import annotations

import math
from pathlib import Path

import qtawesome as qta
import torch
from PySide6.QtCore import QSignalBlocker, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QProgressDialog,
    QSlider,
    QToolBar,
    QToolButton,
)

from ddir_zoom import __version__
from ddir_zoom.app.export_dialog import ExportDialog, ExportJob, export_folder
from ddir_zoom.app.folder import PhotoFolder
from ddir_zoom.app.info import InfoPanel, photo_info
from ddir_zoom.app.opening import PhotoOpening
from ddir_zoom.app.settings import Settings
from ddir_zoom.app.theme import THEMES, apply_theme
from ddir_zoom.app.viewer import MODE_NAMES, MODES, Viewer, display_name
from ddir_zoom.app.widgets import ZoomBox
from ddir_zoom.engine import Engine
from ddir_zoom.engine.view import MAX_SCALE
from ddir_zoom.imaging.io import READ_FORMATS
from ddir_zoom.models import CheckpointError, describe, pick_device
from ddir_zoom.models.precision import native_bfloat16
from ddir_zoom.resources import resource

SLIDER_STEPS = 1000


def app_icon() -> QIcon:
    return QIcon(str(resource("icons", "ddir-zoom.svg")))


class MainWindow(PhotoOpening, QMainWindow):
    """The main window: its actions, toolbar, menus and status bar, and what they do; opening
    photos is `PhotoOpening`'s job."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.setWindowTitle("ddir-zoom")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.engine: Engine | None = None
        self.photo_name = ""
        self.error: str | None = None
        self.loading = False
        self.export_job: ExportJob | None = None

        self.photo_path: Path | None = None
        self.folder: PhotoFolder | None = None
        self._step = 1  # direction of travel through the folder, for the prefetch

        self.viewer = Viewer()
        self.viewer.methods = list(self.settings.methods)[:3] + ["bicubic"] * (
            3 - len(self.settings.methods[:3]))
        self.setCentralWidget(self.viewer)
        # Over the image, not above it: an error must not push the picture down.
        self.banner = QLabel(self.viewer)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: rgba(138, 42, 42, 235); color: white; "
                                  "padding: 6px;")
        self.banner.hide()
        self.info_panel = InfoPanel(self)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.info_panel)
        self.info_panel.hide()

        self._make_actions()
        self._make_toolbar()
        self._make_menus()
        self._make_statusbar()
        self.viewer.viewChanged.connect(self._view_changed)
        self.viewer.progressChanged.connect(self._progress)
        self.viewer.cursorMoved.connect(self._cursor)
        self.viewer.selectionChanged.connect(self._selection_changed)
        self.viewer.errorRaised.connect(self.show_error)
        self.viewer.methodsChanged.connect(self._methods_changed)
        self.viewer.stepRequested.connect(self.step_photo)
        self.info_panel.visibilityChanged.connect(lambda visible: self._update_info())
        self.set_layout(self.settings.layout if self.settings.layout in MODES else "single")
        geometry = self.settings.geometry
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 860)
        self._set_photo_controls(False)

    # --- building the window -----------------------------------------------------------------
    def _action(self, text: str, slot, shortcut=None, icon: str | None = None,
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        if icon:
            action.setIcon(qta.icon(icon, color_active="white"))
        if shortcut is not None:
            shortcuts = shortcut if isinstance(shortcut, list) else [shortcut]
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work without the menu bar too
        return action

    def _make_actions(self) -> None:
        a = self._action
        self.open_action = a("&Open...", self.open_dialog, QKeySequence.StandardKey.Open,
                             "fa6s.folder-open")
        self.paste_action = a("&Paste image", self.paste, QKeySequence.StandardKey.Paste,
                              "fa6s.paste")
        self.model_action = a("Load &model...", self.load_model_dialog, None, "fa6s.brain")
        self.export_action = a("&Export selection...", lambda: self.export(selection=True),
                               "Ctrl+E", "fa6s.file-export")
        self.export_view_action = a("Export &view...", lambda: self.export(selection=False),
                                    "Ctrl+Shift+E", "fa6s.download")
        self.clear_selection_action = a("Clear selection", lambda: self.viewer.clear_selection(),
                                        "Esc", "fa6s.rectangle-xmark")
        self.quit_action = a("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.fit_action = a("&Fit", lambda: self.viewer.fit(), "0", "fa6s.expand")
        self.fit_width_action = a("Fit &width", lambda: self.viewer.fit("width"), "Ctrl+0")
        self.fill_action = a("F&ill", lambda: self.viewer.fit("fill"), "Shift+0")
        self.zoom_selection_action = a("Zoom to &selection", self.viewer.zoom_to_selection, "Z",
                                       "fa6s.crop-simple")
        self.full_screen_action = a("F&ull screen", self.toggle_full_screen, "F11",
                                    "fa6s.maximize", checkable=True)
        self.info_action = self.info_panel.toggleViewAction()
        self.info_action.setShortcut(QKeySequence("I"))
        self.info_action.setIcon(qta.icon("fa6s.circle-info", color_active="white"))
        self.addAction(self.info_action)
        self.next_action = a("&Next photo", lambda: self.step_photo(1), "PgDown",
                             "fa6s.chevron-right")
        self.previous_action = a("P&revious photo", lambda: self.step_photo(-1), "PgUp",
                                 "fa6s.chevron-left")
        self.first_action = a("First photo", lambda: self.step_photo(-10**9), "Home")
        self.last_action = a("Last photo", lambda: self.step_photo(10**9), "End")
        self.zoom_actions = [a(f"{p}%", lambda checked=False, p=p: self.viewer.zoom_to(p / 100),
                               str(p // 100), None) for p in (100, 200, 400)]
        self.zoom_in_action = a("Zoom &in", lambda: self.viewer.zoom_by(1.25), ["+", "="],
                                "fa6s.magnifying-glass-plus")
        self.zoom_out_action = a("Zoom &out", lambda: self.viewer.zoom_by(0.8), "-",
                                 "fa6s.magnifying-glass-minus")
        self.flip_action = a("&Flip A and B", self.viewer.flip, "F", "fa6s.right-left")
        icons = {"single": "fa6s.square", "side2": "fa6s.table-columns",
                 "side3": "fa6s.table-cells", "wipe": "fa6s.arrows-left-right"}
        keys = {"single": "Ctrl+1", "side2": "Ctrl+2", "side3": "Ctrl+3", "wipe": "W"}
        self.layout_group = QActionGroup(self)
        self.layout_actions = {}
        for mode, name in MODE_NAMES.items():
            action = a(name, lambda checked=False, m=mode: self.set_layout(m), keys[mode],
                       icons[mode], checkable=True)
            self.layout_group.addAction(action)
            self.layout_actions[mode] = action

    def _make_toolbar(self) -> None:
        bar = QToolBar("Main")
        bar.setObjectName("main-toolbar")
        bar.setMovable(False)
        self.addToolBar(bar)
        for action in (self.open_action, self.previous_action, self.next_action,
                       self.paste_action, self.export_action):
            bar.addAction(action)
        bar.addSeparator()
        for action in self.layout_actions.values():
            bar.addAction(action)
        self.method_boxes = []
        self.method_labels = []
        for slot, letter in enumerate("ABC"):
            label = QLabel(f" {letter} ")
            box = QComboBox()
            box.setMinimumContentsLength(10)
            box.activated.connect(lambda index, s=slot: self._method_chosen(s))
            self.method_labels.append(bar.addWidget(label))
            self.method_boxes.append((box, bar.addWidget(box)))
        bar.addAction(self.flip_action)
        bar.addSeparator()
        bar.addAction(self.zoom_out_action)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setMinimumWidth(220)
        self.slider.setToolTip("Zoom (logarithmic, from fit to 32x)")
        self.slider.valueChanged.connect(self._slider_moved)
        bar.addWidget(self.slider)
        bar.addAction(self.zoom_in_action)
        self.spin = ZoomBox()
        self.spin.setRange(0.05, MAX_SCALE)
        self.spin.setDecimals(3)
        self.spin.setSingleStep(0.1)
        self.spin.setSuffix(" x")
        self.spin.setKeyboardTracking(False)
        self.spin.valueChanged.connect(lambda value: self.viewer.zoom_to(value))
        self.spin.done.connect(self._focus_image)
        self.spin.reverted.connect(lambda: (self._view_changed(), self._focus_image()))
        bar.addWidget(self.spin)
        bar.addAction(self.fit_action)
        for action in self.zoom_actions:
            bar.addAction(action)
        bar.addAction(self.info_action)
        # Qt's overflow chevron is drawn dark on dark in our dark theme.
        chevron = bar.findChild(QToolButton, "qt_toolbar_ext_button")
        if chevron is not None:
            chevron.setIcon(qta.icon("fa6s.angles-right", color="#dddddd"))
        self.toolbar = bar
        self._refresh_methods()

    def _make_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.open_action)
        self.recent_menu = menu.addMenu(qta.icon("fa6s.clock-rotate-left"), "Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        menu.addAction(self.paste_action)
        menu.addAction(self.model_action)
        menu.addSeparator()
        menu.addAction(self.export_action)
        menu.addAction(self.export_view_action)
        menu.addAction(self.clear_selection_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)

        menu = self.menuBar().addMenu("&View")
        for action in (self.fit_action, self.fit_width_action, self.fill_action,
                       *self.zoom_actions, self.zoom_in_action, self.zoom_out_action,
                       self.zoom_selection_action):
            menu.addAction(action)
        menu.addSeparator()
        for action in (self.next_action, self.previous_action, self.first_action,
                       self.last_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.full_screen_action)
        menu.addAction(self.info_action)
        menu.addSeparator()
        for action in self.layout_actions.values():
            menu.addAction(action)
        menu.addAction(self.flip_action)
        menu.addSeparator()
        theme_menu = menu.addMenu(qta.icon("fa6s.circle-half-stroke"), "&Theme")
        group = QActionGroup(self)
        for theme in THEMES:
            action = theme_menu.addAction(theme.capitalize())
            action.setCheckable(True)
            action.setChecked(theme == self.settings.theme)
            action.triggered.connect(lambda checked=False, t=theme: self.set_theme(t))
            group.addAction(action)

        menu = self.menuBar().addMenu("&Device")
        group = QActionGroup(self)
        available = {"auto": True, "cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": torch.backends.mps.is_available()}
        for device, ok in available.items():
            action = menu.addAction({"auto": "Automatic", "cpu": "CPU", "cuda": "CUDA GPU",
                                     "mps": "Apple GPU (MPS)"}[device])
            action.setCheckable(True)
            action.setEnabled(ok)
            action.setChecked(device == self.settings.device)
            action.triggered.connect(lambda checked=False, d=device: self.set_device(d))
            group.addAction(action)
        menu.addSeparator()
        self.fast_decoding_action = menu.addAction("&Fast decoding (bfloat16)")
        self.fast_decoding_action.setCheckable(True)
        self.fast_decoding_action.setToolTip(
            "Decode the models' hidden layers in bfloat16: about twice as fast where the "
            "processor multiplies bfloat16 natively, at most a level of 255 from exact")
        self.fast_decoding_action.setChecked(self.settings.precision == "bfloat16")
        self.fast_decoding_action.setEnabled(self._bfloat16_native(self.settings.device))
        self.fast_decoding_action.toggled.connect(self.set_fast_decoding)

        menu = self.menuBar().addMenu("&Help")
        menu.addAction("&Controls", self._show_controls)
        menu.addAction("&About ddir-zoom", self._about)

    def _make_statusbar(self) -> None:
        status = self.statusBar()
        self.zoom_label = QLabel()
        self.cursor_label = QLabel()
        self.device_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(140)
        self.progress.setMaximumHeight(14)
        self.progress.setTextVisible(False)
        self.progress.hide()
        for widget in (self.cursor_label, self.zoom_label, self.device_label, self.progress):
            status.addPermanentWidget(widget)

    viewer_placeholder = "No photo open: Open (Ctrl+O), paste (Ctrl+V) or drop one here"
    def _set_photo_controls(self, enabled: bool) -> None:
        """With no photo, the controls that act on one are disabled and the method boxes
        and zoom box empty, rather than showing placeholders."""
        for action in (self.export_view_action, self.fit_action, self.fit_width_action,
                       self.fill_action, self.zoom_in_action, self.zoom_out_action,
                       self.zoom_selection_action, *self.zoom_actions, self.next_action,
                       self.previous_action, self.first_action, self.last_action):
            action.setEnabled(enabled)
        for widget in (self.slider, self.spin, *(box for box, _ in self.method_boxes)):
            widget.setEnabled(enabled)
        self.spin.setSpecialValueText("" if enabled else " ")
        if not enabled:
            with QSignalBlocker(self.spin):
                self.spin.setValue(self.spin.minimum())  # shows the special text: blank
        self._selection_changed()

    def _focus_image(self) -> None:
        self.viewer.active_panes()[0].setFocus()

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.full_screen_action.setChecked(self.isFullScreen())

    def _update_info(self) -> None:
        if self.engine is None or not self.info_panel.isVisible():
            return
        shown = MODES[self.viewer.mode]
        self.info_panel.show_values(photo_info(
            self.engine, self.photo_name, self.photo_path, self.viewer.scale,
            [display_name(m) for m in self.viewer.methods[:shown]], describe(self.engine.device)))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place_banner()

    def _place_banner(self) -> None:
        self.banner.setFixedWidth(self.viewer.width())
        self.banner.adjustSize()
        self.banner.move(0, 0)
        self.banner.raise_()

    def _show_engine(self, engine: Engine, name: str, keep_view: bool = False) -> None:
        """Show an opened photo: fitted, or (keep_view) at the same place and relative zoom as
        the photo before it (a RAW's developed image replacing its preview)."""
        if self.engine is not None:
            self.viewer.close_engine()
        self.engine = engine
        self.photo_name = name
        self.showing_preview = False
        self.error = None
        self.banner.hide()
        self.viewer.set_engine(engine, self.viewer.methods, keep_view=keep_view)
        self._refresh_methods()
        h, w = engine.size
        self.setWindowTitle(f"{name} ({w} x {h}) - ddir-zoom")
        self.device_label.setText(describe(engine.device))
        self._set_photo_controls(True)
        self._view_changed()

    def show_error(self, message: str) -> None:
        """Shown in the window (a banner over the viewer) and the status bar."""
        self.error = message
        self.banner.setText(message)
        self.banner.show()
        self._place_banner()
        self.statusBar().showMessage(message, 10000)
        # With the banner as context: the timer dies with the window.
        QTimer.singleShot(12000, self.banner, self._hide_banner_if(message))

    def _hide_banner_if(self, message: str):
        def hide() -> None:
            if self.banner.text() == message:
                self.banner.hide()
        return hide

    def load_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", self.settings.last_folder,
                                              "Model files (*.safetensors)")
        if path:
            self.load_model(path)

    def load_model(self, path: str | Path) -> bool:
        """Offer a model file as a method (now, and with every photo opened later)."""
        path = Path(path)
        name = path.stem
        if self.engine is not None:
            try:
                self.engine.add_model(name, path)
            except (CheckpointError, OSError, RuntimeError) as exc:
                self.show_error(str(exc))
                return False
            self.viewer.bridge.renderer.forget(name)
        self.settings.models = [p for p in self.settings.models if Path(p) != path] + [str(path)]
        self._refresh_methods()
        return True

    # --- zoom controls -----------------------------------------------------------------------
    def _scale_range(self) -> tuple[float, float]:
        return min(self.viewer.fit_scale(), 1.0), MAX_SCALE

    def _slider_moved(self, value: int) -> None:
        low, high = self._scale_range()
        self.viewer.zoom_to(low * (high / low) ** (value / SLIDER_STEPS))

    def _view_changed(self) -> None:
        if self.engine is None:
            return  # the zoom controls stay blank until there is a photo
        scale = self.viewer.scale
        low, high = self._scale_range()
        position = round(SLIDER_STEPS * math.log(scale / low) / math.log(high / low)) \
            if scale > low else 0
        with QSignalBlocker(self.slider), QSignalBlocker(self.spin):
            self.slider.setValue(max(0, min(SLIDER_STEPS, position)))
            self.spin.setValue(scale)
        self.zoom_label.setText(f"{scale * 100:.1f}%")
        self._update_info()

    def _progress(self, done: int, total: int) -> None:
        if total == 0 or done >= total:
            self.progress.hide()
            return
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setToolTip(f"Refining: {done} of {total} tiles")
        self.progress.show()

    def _cursor(self, y: float, x: float) -> None:
        self.cursor_label.setText("" if math.isnan(y) else f"x {x:.1f}  y {y:.1f}")

    # --- comparing ---------------------------------------------------------------------------
    def set_layout(self, mode: str) -> None:
        self.viewer.set_mode(mode)
        self.layout_actions[mode].setChecked(True)
        shown = MODES[mode]
        for slot, (label, (_, box_action)) in enumerate(zip(self.method_labels,
                                                            self.method_boxes, strict=True)):
            label.setVisible(slot < shown and shown > 1)
            box_action.setVisible(slot < shown)
        self.flip_action.setEnabled(shown > 1)
        self.settings.layout = mode

    def _refresh_methods(self) -> None:
        names = list(self.engine.methods) if self.engine else ["bicubic"]
        for box, _ in self.method_boxes:
            with QSignalBlocker(box):
                box.clear()
                for name in names:
                    box.addItem(display_name(name), name)
        self._select_methods()

    def _method_chosen(self, slot: int) -> None:
        self.viewer.set_method(slot, self.method_boxes[slot][0].currentData())

    def _methods_changed(self) -> None:
        """The viewer's methods changed (a choice, a flip): the boxes and settings follow."""
        self._select_methods()
        self.settings.methods = self.viewer.methods
        self._update_info()

    def _select_methods(self) -> None:
        """Show the viewer's methods in the A/B/C boxes."""
        for slot, (box, _) in enumerate(self.method_boxes):
            with QSignalBlocker(box):
                box.setCurrentIndex(max(0, box.findData(self.viewer.methods[slot])))

    def set_theme(self, theme: str) -> None:
        apply_theme(QApplication.instance(), theme)
        self.settings.theme = theme

    def set_device(self, device: str) -> None:
        try:
            pick_device(device)
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.settings.device = device
        self.fast_decoding_action.setEnabled(self._bfloat16_native(device))
        if self.engine is not None:  # reopen the photo on the new device
            self._open(self.engine.photo, self.photo_name)

    @staticmethod
    def _bfloat16_native(device: str) -> bool:
        try:
            return native_bfloat16(pick_device(device))
        except ValueError:
            return False

    def set_fast_decoding(self, on: bool) -> None:
        """bfloat16 decoding (`models.precision`) for this and later photos; the view, the
        exports and the comparison panes all follow it."""
        self.settings.precision = "bfloat16" if on else "float32"
        if self.engine is not None and self.engine.precision != self.settings.precision:
            self._open(self.engine.photo, self.photo_name)

    # --- export ------------------------------------------------------------------------------
    def _selection_changed(self) -> None:
        """Export selection and Zoom to selection act on a selection, so they are enabled only
        while there is one (Shift+drag makes it, Esc clears it)."""
        has = self.engine is not None and self.viewer.selection is not None
        self.export_action.setEnabled(has)
        self.zoom_selection_action.setEnabled(has)
        self.clear_selection_action.setEnabled(has)

    def export(self, selection: bool = True) -> None:
        if self.engine is None:
            return
        if selection and self.viewer.selection is None:
            self.statusBar().showMessage("Select a region first (Shift+drag), or export the "
                                         "view (Ctrl+Shift+E).", 6000)
            return
        region = self.viewer.selection if selection else self.viewer.visible_region()
        if region is None:
            self.show_error("Nothing to export: the photo is not in view.")
            return
        stem = Path(self.photo_name).stem.replace(" ", "_") or "export"
        dialog = ExportDialog(self, self.engine, region, self.viewer.scale,
                              self.viewer.methods[0], export_folder(self.settings.last_folder),
                              stem)
        if dialog.exec() != ExportDialog.DialogCode.Accepted:
            return
        self.start_export(dialog.settings())

    def start_export(self, settings) -> ExportJob:
        job = ExportJob(self.engine, settings, self)
        progress = QProgressDialog(f"Exporting {settings.path.name} ...", "Cancel", 0, 100, self)
        progress.setWindowTitle("Export")
        progress.setMinimumDuration(300)
        progress.setAutoClose(False)
        progress.setAutoReset(False)
        progress.canceled.connect(job.cancel)

        def step(done: int, total: int) -> None:
            progress.setMaximum(total)
            progress.setValue(done)

        def finished(message: str | None = None) -> None:
            progress.close()
            self.export_job = None
            if message:
                self.statusBar().showMessage(message, 8000)

        job.progressed.connect(step)
        job.succeeded.connect(lambda path: finished(f"Exported {path}"))
        job.cancelled.connect(lambda: finished("Export cancelled; nothing was written."))
        job.failed.connect(lambda message: (finished(), self.show_error(message)))
        self.export_job = job
        job.start()
        return job

    # --- help and closing --------------------------------------------------------------------
    def _show_controls(self) -> None:
        rows = [("Wheel, pinch", "zoom around the pointer"), ("Drag, arrow keys", "pan"),
                ("+  -", "zoom in, out"), ("0", "fit the photo"), ("Ctrl+0", "fit its width"),
                ("Shift+0", "fill the window"), ("1  2  4", "100%, 200%, 400%"),
                ("Z", "zoom to the selection"), ("Shift+drag", "select a region"),
                ("Esc", "clear the selection"), ("Space (hold)", "show the original (bicubic)"),
                ("Ctrl+1  Ctrl+2  Ctrl+3", "one, two or three methods side by side"),
                ("W", "A/B wipe"), ("F", "swap A and B"),
                ("PgDown  PgUp, or \u2192 \u2190 at fit", "next, previous photo of the folder"),
                ("Home  End", "first, last photo"), ("Ctrl+E", "export the selection"),
                ("Ctrl+Shift+E", "export the view"), ("I", "photo info"),
                ("F11", "full screen")]
        table = "".join(f"<tr><td><b>{k}</b></td><td style='padding-left:14px'>{v}</td></tr>"
                        for k, v in rows)
        box = QMessageBox(self)
        box.setWindowTitle("Controls")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(f"<table cellspacing='3'>{table}</table>")
        box.exec()

    def _about(self) -> None:
        QMessageBox.about(self, "About ddir-zoom", (
            f"ddir-zoom {__version__}\n\nA photo viewer whose zoom renders every visible pixel at "
            "the exact scale with DDIR (Li et al., ECCV 2024), a real-world arbitrary-scale "
            "super-resolution model.\n\nSupported formats: "
            + ", ".join(sorted(set(READ_FORMATS.values())))))

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.folder = None  # a prefetch finishing now keeps nothing
        if self.export_job is not None:
            self.export_job.cancel()
            self.export_job.wait(10)
        self.settings.geometry = self.saveGeometry()
        self.settings.methods = self.viewer.methods
        self.settings.sync()
        self.viewer.close_engine()
        super().closeEvent(event)
