"""The photos of the open photo's folder, for next / previous / first / last, and a prefetch of
the photo the user is likely to open next.

Order is natural (img2 before img10), case-insensitive, as file managers sort. Only files with a
suffix ddir-zoom reads are listed. Prefetching decodes the next photo in the direction of
travel in the background (one photo ahead: a decoded 24 MP photo takes 360 MB, so neighbours
on both sides would break the memory budget).
"""

from __future__ import annotations

import re
from pathlib import Path

from ddir_zoom.imaging import Photo
from ddir_zoom.imaging.io import WRITE_FORMATS
from ddir_zoom.imaging.raw import RAW_SUFFIXES

PHOTO_SUFFIXES = set(WRITE_FORMATS) | {".bmp"}  # every format we write, and BMP (read only)
SUFFIXES = PHOTO_SUFFIXES | RAW_SUFFIXES


def natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", path.name)]


class PhotoFolder:
    """The readable photos beside `path`, and where `path` is among them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        try:
            entries = [p for p in self.path.parent.iterdir()
                       if p.suffix.lower() in SUFFIXES and p.is_file()]
        except OSError:
            entries = [self.path]
        self.files = sorted(entries, key=natural_key)
        if self.path not in self.files:
            self.files.append(self.path)
            self.files.sort(key=natural_key)
        self.prefetched: dict[Path, Photo] = {}

    @property
    def index(self) -> int:
        return self.files.index(self.path)

    def neighbour(self, step: int) -> Path | None:
        """The photo `step` places away (+1 next, -1 previous; +-10**9 for last / first), or
        None past either end."""
        if abs(step) >= len(self.files) * 2:
            return self.files[-1 if step > 0 else 0]
        i = self.index + step
        return self.files[i] if 0 <= i < len(self.files) else None

    def describe(self) -> str:
        return f"{self.index + 1} of {len(self.files)}"

    def take(self, path: Path) -> Photo | None:
        """A prefetched photo of `path` (handed over once), or None."""
        return self.prefetched.pop(path, None)

    def keep(self, path: Path, photo: Photo) -> None:
        """Hold one prefetched photo (the latest)."""
        self.prefetched = {path: photo}
