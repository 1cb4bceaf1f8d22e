"""The photo info panel: file, size, camera and lens from EXIF, and how it is being shown."""

from __future__ import annotations

import html
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QWidget

from ddir_zoom.engine import Engine

_EXIF_IFD = 0x8769
_TAGS = {"make": 0x010F, "model": 0x0110, "lens": 0xA434, "exposure": 0x829A,
         "f_number": 0x829D, "iso": 0x8827, "focal_length": 0x920A, "taken": 0x9003}


def exif_summary(exif_bytes: bytes | None) -> dict[str, str]:
    """Camera, lens, exposure and date from an EXIF block, as display strings."""
    if not exif_bytes:
        return {}
    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
        sub = exif.get_ifd(_EXIF_IFD)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return {}

    def get(tag: int):
        return sub.get(tag, exif.get(tag))

    out = {}
    camera = " ".join(str(get(_TAGS[k])).strip() for k in ("make", "model") if get(_TAGS[k]))
    if camera:
        out["Camera"] = camera
    if get(_TAGS["lens"]):
        out["Lens"] = str(get(_TAGS["lens"])).strip()
    parts = []
    exposure = get(_TAGS["exposure"])
    if exposure:
        value = float(exposure)
        parts.append(f"1/{round(1 / value)} s" if 0 < value < 1 else f"{value:g} s")
    if get(_TAGS["f_number"]):
        parts.append(f"f/{float(get(_TAGS['f_number'])):g}")
    if get(_TAGS["iso"]):
        parts.append(f"ISO {get(_TAGS['iso'])}")
    if get(_TAGS["focal_length"]):
        parts.append(f"{float(get(_TAGS['focal_length'])):g} mm")
    if parts:
        out["Exposure"] = ", ".join(parts)
    if get(_TAGS["taken"]):
        out["Taken"] = str(get(_TAGS["taken"]))
    return out


def photo_info(engine: Engine, name: str, path: Path | None, scale: float,
               methods: list[str], device: str) -> dict[str, str]:
    photo = engine.photo
    h, w = engine.size
    info = {"File": name}
    if path is not None:
        info["Folder"] = str(path.parent)
    info["Size"] = f"{w} x {h} ({w * h / 1e6:.1f} MP)"
    info["Format"] = f"{photo.format or 'image'}, {photo.bit_depth}-bit" + (
        ", transparent" if photo.alpha is not None else "")
    info["Colour profile"] = "embedded" if photo.icc_profile else "none (sRGB assumed)"
    info.update(exif_summary(photo.exif))
    info["Zoom"] = f"{scale:.3f} x ({scale * 100:.1f}%)"
    info["Shown with"] = ", ".join(methods)
    info["Device"] = device
    return info


class InfoPanel(QDockWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Photo info", parent)
        self.setObjectName("info-panel")
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setMargin(8)
        self.label.setMinimumWidth(240)
        self.label.setWordWrap(True)
        self.setWidget(self.label)
        self.values: dict[str, str] = {}
        self.show_values({})

    def show_values(self, values: dict[str, str]) -> None:
        self.values = values
        if not values:
            self.label.setText("<i>No photo open</i>")
            return
        rows = "".join(f"<tr><td style='color:#999;padding-right:10px'>{html.escape(k)}</td>"
                       f"<td>{html.escape(v)}</td></tr>" for k, v in values.items())
        self.label.setText(f"<table>{rows}</table>")
