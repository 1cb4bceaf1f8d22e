"""Opening photos in the main window: files, the folder's next and previous, the clipboard and
drag and drop; decoding off the GUI thread, the next photo prefetched, and a RAW file's embedded
preview shown while the RAW develops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication, QFileDialog
from superqt.utils import create_worker

from ddir_zoom.app.folder import PHOTO_SUFFIXES, PhotoFolder
from ddir_zoom.engine import Engine
from ddir_zoom.imaging import ImageLoadError, Photo, load_photo
from ddir_zoom.imaging.io import unit_float
from ddir_zoom.imaging.raw import RAW_SUFFIXES, is_raw, raw_preview
from ddir_zoom.models import CheckpointError, load_checkpoint
from ddir_zoom.resources import bundled_first_pass, bundled_weights

BUNDLED = {"DDIR": "ddir", "LIIF": "liif"}
IMAGE_FILTER = ("Photos (" + " ".join(f"*{s}" for s in sorted(PHOTO_SUFFIXES | RAW_SUFFIXES))
                + ");;Camera RAW (" + " ".join(f"*{s}" for s in sorted(RAW_SUFFIXES))
                + ");;All files (*)")


def load_engine(source: str | Path | Photo, device: str,
                models: dict[str, Path | tuple[Path, Path]], precision: str = "float32"
                ) -> tuple[Engine, list[str]]:
    """Decode (unless given a Photo) and prepare an engine with `models` (a file, or a file
    and its fast first pass) decoding in `precision`; runs off the GUI thread. Returns the
    engine and warnings about models that could not be loaded."""
    photo = source if isinstance(source, Photo) else load_photo(source)
    engine = Engine(photo, device=device, precision=precision)
    warnings = []
    for name, files in models.items():
        path, first_pass = files if isinstance(files, tuple) else (files, None)
        fast = None
        if first_pass is not None:
            try:
                fast, _ = load_checkpoint(first_pass, expect_model=None)
            except (CheckpointError, OSError, RuntimeError) as exc:
                # The model still works, only without its quick first pass.
                warnings.append(f"{name}'s first pass: {exc}")
        try:
            engine.add_model(name, path, first_pass=fast)
        except (CheckpointError, OSError, RuntimeError) as exc:
            warnings.append(f"{name}: {exc}")
    return engine, warnings


class PhotoOpening:
    """Mixed into MainWindow (which provides settings, viewer, engine, loading, folder,
    photo_path, statusBar, show_error and _show_engine)."""

    viewer_placeholder = "No photo open: Open (Ctrl+O), paste (Ctrl+V) or drop one here"
    showing_preview = False  # the embedded preview of a RAW being developed is on screen
    _load_token: object | None = None

    def _show_raw_preview(self, path: Path, name: str, token: object) -> None:
        """Show a RAW file's embedded JPEG at once, while `_open` develops the file."""
        def make() -> tuple[Engine, list[str]] | None:
            pixels = raw_preview(path)
            if pixels is None:
                return None
            photo = Photo(rgb=unit_float(pixels), rgb8=pixels, format="RAW preview")
            return load_engine(photo, self.settings.device, self._models(),
                               self.settings.precision)

        def shown(result) -> None:
            if result is None or token is not self._load_token or not self.loading:
                return  # no preview, or the developed image (or another photo) came first
            self._show_engine(result[0], f"{name} (embedded preview; developing the RAW)")
            self.showing_preview = True
            self.statusBar().showMessage(f"Developing {name} ...")

        create_worker(make, _start_thread=True,
                      _connect={"returned": shown, "errored": lambda exc: None})

    def _models(self) -> dict[str, Path | tuple[Path, Path]]:
        models: dict[str, Path | tuple[Path, Path]] = {}
        for name, kind in BUNDLED.items():
            if bundled_weights(kind).exists():
                fast = bundled_first_pass(kind)
                models[name] = (bundled_weights(kind), fast) if fast else bundled_weights(kind)
        for path in self.settings.models:
            if Path(path).exists():
                models[Path(path).stem] = Path(path)
        return models

    def open_path(self, path: str | Path) -> None:
        path = Path(path)
        prefetched = self.folder.take(path.resolve()) if self.folder is not None else None
        self._open(prefetched or path, path.name, path)

    def step_photo(self, step: int) -> None:
        """Open the photo `step` places away in the folder (+1 next, -1 previous)."""
        if self.folder is None or self.loading:
            return
        target = self.folder.neighbour(step)
        if target is None:
            self.statusBar().showMessage("No more photos in this folder "
                                         f"({self.folder.describe()}).", 4000)
            return
        self._step = 1 if step > 0 else -1
        self.open_path(target)

    def _prefetch(self) -> None:
        """Decode the photo the user will probably open next, in the background."""
        folder = self.folder
        target = folder.neighbour(self._step) if folder is not None else None
        if target is None:
            return

        def keep(photo: Photo) -> None:
            if self.folder is folder:
                folder.keep(target, photo)

        create_worker(load_photo, target, _start_thread=True,
                      _connect={"returned": keep, "errored": lambda exc: None})

    def _open(self, source: Path | Photo, name: str, path: Path | None = None) -> None:
        """Load off the GUI thread; the current photo stays until the new one is ready."""
        self.loading = True
        self.statusBar().showMessage(f"Opening {name} ...")
        if self.engine is None:
            self.viewer.set_placeholder(f"Opening {name} ...")
        QApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        path = path if path is not None else (source if isinstance(source, Path) else None)

        token = self._load_token = object()
        if path is not None and isinstance(source, Path) and is_raw(path):
            self._show_raw_preview(path, name, token)

        def done(result: tuple[Engine, list[str]]) -> None:
            engine, warnings = result
            if token is not self._load_token:
                return  # a newer photo was asked for meanwhile
            self._finish_loading()
            self.photo_path = path
            self._show_engine(engine, name, keep_view=self.showing_preview)
            if path is not None:
                self.settings.add_recent(str(path.resolve()))
                self.settings.last_folder = str(path.resolve().parent)
                if self.folder is None or self.folder.path.parent != path.resolve().parent:
                    self.folder = PhotoFolder(path)
                else:
                    self.folder.path = path.resolve()
                self._prefetch()
            else:
                self.folder = None
            if warnings:
                self.show_error("Some models could not be loaded: " + "; ".join(warnings))

        def failed(exc: Exception) -> None:
            if token is not self._load_token:
                return
            self._finish_loading()
            if self.engine is None:
                self.viewer.set_placeholder(self.viewer_placeholder)
            if isinstance(source, Path) and not source.exists():
                self.settings.remove_recent(str(source))
            message = str(exc) if isinstance(exc, ImageLoadError) else \
                f"Cannot open {name}: {type(exc).__name__}: {exc}"
            self.show_error(message)

        create_worker(load_engine, source, self.settings.device, self._models(),
                      self.settings.precision, _start_thread=True,
                      _connect={"returned": done, "errored": failed})

    def _finish_loading(self) -> None:
        self.loading = False
        QApplication.restoreOverrideCursor()
        self.statusBar().clearMessage()

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open photo", self.settings.last_folder,
                                              IMAGE_FILTER)
        if path:
            self.open_path(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent:
            self.recent_menu.addAction(path, lambda p=path: self.open_path(p))
        if not self.settings.recent:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def paste(self) -> None:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.show_error("The clipboard holds no image.")
            return
        self._open(photo_from_qimage(image), "Pasted image")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        data = event.mimeData()
        for url in data.urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
                event.acceptProposedAction()
                return
        if data.hasImage():
            self._open(photo_from_qimage(QImage(data.imageData())), "Dropped image")
            event.acceptProposedAction()



def photo_from_qimage(image: QImage) -> Photo:
    """A Photo from a QImage (clipboard, drops): 8-bit RGB, alpha kept apart."""
    has_alpha = image.hasAlphaChannel()
    converted = image.convertToFormat(QImage.Format.Format_RGBA8888 if has_alpha
                                      else QImage.Format.Format_RGB888)
    w, h = converted.width(), converted.height()
    channels = 4 if has_alpha else 3
    buffer = np.frombuffer(converted.constBits(), np.uint8, count=converted.sizeInBytes())
    pixels = buffer.reshape(h, converted.bytesPerLine())[:, :w * channels].reshape(h, w, channels)
    rgb8 = np.array(pixels[..., :3], order="C")
    alpha = unit_float(pixels[..., 3]) if has_alpha else None
    return Photo(rgb=unit_float(rgb8), alpha=alpha, rgb8=rgb8, format="PNG")
