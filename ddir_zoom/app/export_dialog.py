"""The export dialog (region, scale or exact size, method, format, metadata) and the background
job that writes the file through the engine's exporter, with progress and cancel."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QWidget,
)

from ddir_zoom.app.viewer import display_name
from ddir_zoom.engine import Engine
from ddir_zoom.engine.export import MAX_SIDE, export_geometry, export_region
from ddir_zoom.engine.methods import Cancelled
from ddir_zoom.engine.view import MAX_SCALE, MIN_SCALE
from ddir_zoom.imaging.io import ImageSaveError
from ddir_zoom.resources import resources_dir

FORMATS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WebP": ".webp", "HEIC": ".heic",
           "AVIF": ".avif"}
SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
            ".webp": "WebP", ".heic": "HEIC", ".heif": "HEIC", ".avif": "AVIF"}
LOSSY = {"JPEG", "WebP", "HEIC", "AVIF"}


@dataclass
class ExportSettings:
    path: Path
    method: str
    rect: tuple[float, float, float, float]
    scale: float | None
    size: tuple[int, int] | None
    keep_metadata: bool
    quality: int


class ExportDialog(QDialog):
    def __init__(self, parent: QWidget | None, engine: Engine,
                 rect: tuple[float, float, float, float], scale: float, method: str,
                 folder: str, stem: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.engine = engine
        self.rect = rect
        y, x, h, w = rect
        form = QFormLayout(self)
        form.addRow("Region", QLabel(f"{w:.0f} x {h:.0f} pixels at ({x:.0f}, {y:.0f})"))

        self.by_scale = QRadioButton("Scale")
        self.by_size = QRadioButton("Exact size")
        group = QButtonGroup(self)
        group.addButton(self.by_scale)
        group.addButton(self.by_size)
        self.by_scale.setChecked(True)
        self.scale = QDoubleSpinBox()
        self.scale.setRange(MIN_SCALE, MAX_SCALE)
        self.scale.setDecimals(3)
        self.scale.setSuffix(" x")
        self.scale.setValue(max(MIN_SCALE, min(MAX_SCALE, scale)))
        row = QHBoxLayout()
        row.addWidget(self.by_scale)
        row.addWidget(self.scale)
        form.addRow(row)
        self.width = QSpinBox()
        self.height = QSpinBox()
        for box in (self.width, self.height):
            box.setRange(1, 65500)
            box.setSuffix(" px")
        self.width.setValue(max(1, round(w * scale)))
        self.height.setValue(max(1, round(h * scale)))
        self.keep_aspect = QCheckBox("keep aspect")
        self.keep_aspect.setChecked(True)
        row = QHBoxLayout()
        row.addWidget(self.by_size)
        row.addWidget(self.width)
        row.addWidget(QLabel("x"))
        row.addWidget(self.height)
        row.addWidget(self.keep_aspect)
        form.addRow(row)
        self.result_size = QLabel()
        form.addRow("Output", self.result_size)

        self.method = QComboBox()
        for name in engine.methods:
            self.method.addItem(display_name(name), name)
        self.method.setCurrentIndex(max(0, self.method.findData(method)))
        form.addRow("Method", self.method)

        self.format = QComboBox()
        self.format.addItems(list(FORMATS))
        form.addRow("Format", self.format)
        self.stem = stem
        self._auto_name = True  # the name follows scale and size until the user edits it
        self.path = QLineEdit(str(Path(folder or Path.home()) / f"{stem}_x{scale:.2f}.png"))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        form.addRow("File", row)
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setValue(95)
        self.quality.setToolTip("JPEG, WebP, HEIC and AVIF: PNG and TIFF are lossless")
        form.addRow("Quality", self.quality)
        self.metadata = QCheckBox("Keep EXIF and colour profile")
        self.metadata.setChecked(True)
        form.addRow(self.metadata)
        self.error = QLabel()
        self.error.setStyleSheet("color: #e05050")
        self.error.setWordWrap(True)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)

        self.scale.valueChanged.connect(self._scale_changed)
        self.width.valueChanged.connect(lambda v: self._size_changed("w"))
        self.height.valueChanged.connect(lambda v: self._size_changed("h"))
        self.format.currentTextChanged.connect(self._format_changed)
        self.path.textChanged.connect(self._path_changed)
        for widget in (self.by_scale, self.by_size):
            widget.toggled.connect(self._update)
        self._syncing = False
        self._update()

    # --- keeping the fields consistent -------------------------------------------------------
    def _scale_changed(self, value: float) -> None:
        if not self._syncing:
            self.by_scale.setChecked(True)
        self._update()

    def _size_changed(self, which: str) -> None:
        if self._syncing:
            return
        self.by_size.setChecked(True)
        _, _, h, w = self.rect
        if self.keep_aspect.isChecked():
            self._syncing = True
            if which == "w":
                self.height.setValue(max(1, round(self.width.value() * h / w)))
            else:
                self.width.setValue(max(1, round(self.height.value() * w / h)))
            self._syncing = False
        self._update()

    def _format_changed(self, name: str) -> None:
        path = Path(self.path.text())
        if path.suffix.lower() != FORMATS[name]:
            self._syncing = True
            self.path.setText(str(path.with_suffix(FORMATS[name])))
            self._syncing = False
        self._update()

    def _path_changed(self, text: str) -> None:
        if not self._syncing:
            self._auto_name = False  # the user's own name is kept from now on
        name = SUFFIXES.get(Path(text).suffix.lower())
        if name is not None and self.format.currentText() != name:
            self.format.setCurrentText(name)
        self._update()

    def _browse(self) -> None:
        filters = ";;".join(f"{name} (*{ext})" for name, ext in FORMATS.items())
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(), filters)
        if path:
            self.path.setText(path)

    def settings(self) -> ExportSettings:
        by_scale = self.by_scale.isChecked()
        return ExportSettings(
            path=Path(self.path.text()).expanduser(), method=self.method.currentData(),
            rect=self.rect, scale=self.scale.value() if by_scale else None,
            size=None if by_scale else (self.height.value(), self.width.value()),
            keep_metadata=self.metadata.isChecked(), quality=self.quality.value())

    def _problem(self) -> str | None:
        s = self.settings()
        _, _, shape = export_geometry(s.rect, s.scale, s.size)
        fmt = {"HEIC": "HEIF"}.get(SUFFIXES.get(s.path.suffix.lower(), ""),
                                   SUFFIXES.get(s.path.suffix.lower(), "").upper()) or None
        self.result_size.setText(f"{shape[1]} x {shape[0]} pixels "
                                 f"({shape[0] * shape[1] / 1e6:.1f} MP)")
        if fmt is None:
            return "The file name must end in .png, .jpg, .tif, .webp, .heic or .avif."
        if max(shape) > MAX_SIDE[fmt]:
            return f"{fmt} images can be at most {MAX_SIDE[fmt]} pixels on a side."
        if not s.path.parent.is_dir():
            return f"The folder {s.path.parent} does not exist."
        return None

    def _retag(self) -> None:
        """The default file name says what is exported: _x2.50 at a scale, _1920x1080 at an
        exact size."""
        if not self._auto_name:
            return
        if self.by_scale.isChecked():
            tag = f"x{self.scale.value():.2f}"
        else:
            tag = f"{self.width.value()}x{self.height.value()}"
        path = Path(self.path.text())
        self._syncing = True
        self.path.setText(str(path.with_name(f"{self.stem}_{tag}{path.suffix}")))
        self._syncing = False

    def _update(self) -> None:
        self._retag()
        self.quality.setEnabled(self.format.currentText() in LOSSY)
        problem = self._problem()
        self.error.setText(problem or "")
        self.ok_button.setEnabled(problem is None)

    def _accept(self) -> None:
        path = self.settings().path
        if path.exists():
            answer = QMessageBox.question(self, "Replace file?",
                                          f"{path.name} already exists. Replace it?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.accept()


class ExportJob(QObject):
    """Runs one export in a background thread. progressed(done, total), then exactly one of
    succeeded(path), failed(message) or cancelled()."""

    progressed = Signal(int, int)
    succeeded = Signal(str)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, engine: Engine, settings: ExportSettings,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.settings = settings
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ddir-zoom-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        s = self.settings
        try:
            path = export_region(self.engine, s.path, s.method, rect=s.rect, scale=s.scale,
                                 size=s.size, keep_metadata=s.keep_metadata, quality=s.quality,
                                 progress=self.progressed.emit, cancelled=self._cancel.is_set)
        except Cancelled:
            self.cancelled.emit()
        except (ImageSaveError, ValueError, OSError, MemoryError) as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # shown to the user, never a crash
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.succeeded.emit(str(path))


def export_folder(folder: str) -> str:
    """Where exports go by default: the photo's folder, unless that is inside the program (the
    bundled sample) or cannot be written; then the user's Pictures folder, or home."""
    path = Path(folder) if folder else None
    if path is not None and path.is_dir() and os.access(path, os.W_OK) and \
            resources_dir() not in (path.resolve(), *path.resolve().parents):
        return str(path)
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return pictures if pictures and Path(pictures).is_dir() else str(Path.home())
