"""What the window needs from the operating system, checked before Qt starts.

Qt's X11 platform plugin (xcb) needs a set of system libraries; when one is missing, Qt prints a
cryptic line and aborts the process. We look for each library first and, if any is missing, say
in plain words which packages to install.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping

# soname: (Debian / Ubuntu package, Fedora / RHEL package); from ldd of Qt 6's libQt6XcbQpa
# and libQt6Gui.
XCB_LIBRARIES = {
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    # Qt's GUI library itself (a missing one fails the import of PySide6.QtGui):
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
}


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def uses_xcb(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt will start its X11 plugin: on Linux, asked for, or by default with a
    DISPLAY and no Wayland session."""
    if not platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(";")[0].startswith("xcb")
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def missing_xcb_libraries() -> list[str]:
    return [soname for soname in XCB_LIBRARIES if not _loadable(soname)]


def platform_problem(environ: Mapping[str, str] = os.environ, always: bool = False
                     ) -> str | None:
    """A message for the user when the window cannot open, else None. always: check even when
    Qt would not use X11 (Qt failed to load already)."""
    if not (always or uses_xcb(environ)):
        return None
    missing = missing_xcb_libraries()
    if not missing:
        return None
    debian = sorted({XCB_LIBRARIES[m][0] for m in missing})
    fedora = sorted({XCB_LIBRARIES[m][1] for m in missing})
    return ("ddir-zoom cannot open its window: Qt's X11 support needs system libraries that "
            f"are not installed ({', '.join(missing)}).\n"
            f"Install them, then start ddir-zoom again:\n"
            f"  Debian, Ubuntu:  sudo apt-get install {' '.join(debian)}\n"
            f"  Fedora, RHEL:    sudo dnf install {' '.join(fedora)}\n"
            "The command line (ddir-zoom upscale) works without them.")
