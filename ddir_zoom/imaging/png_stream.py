"""Writing an 8-bit PNG row by row, so that an image of any size is written with memory bounded by
the rows in hand. Rows use the Sub filter (the left neighbour's difference), which compresses
photos well and is computed for a whole block of rows at once."""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np


def _chunk(kind: bytes, body: bytes) -> bytes:
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))


class PngStreamWriter:
    """PNG of `width` x `height`, RGB (3 channels) or RGBA (4), 8 bits, written to `handle`
    through `write_rows` in top-to-bottom order; `close` finishes the file."""

    def __init__(self, handle: BinaryIO, width: int, height: int, channels: int,
                 icc_profile: bytes | None = None, exif: bytes | None = None,
                 level: int = 6) -> None:
        if channels not in (3, 4):
            raise ValueError("PNG rows are RGB or RGBA")
        self.handle = handle
        self.width, self.height, self.channels = width, height, channels
        self.rows_written = 0
        self._compressor = zlib.compressobj(level)
        handle.write(b"\x89PNG\r\n\x1a\n")
        handle.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8,
                                                 2 if channels == 3 else 6, 0, 0, 0)))
        if icc_profile:
            handle.write(_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(icc_profile)))
        if exif:
            body = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
            handle.write(_chunk(b"eXIf", body))

    def write_rows(self, rows: np.ndarray) -> None:
        """rows: uint8 (n, width, channels)."""
        if rows.dtype != np.uint8 or rows.shape[1:] != (self.width, self.channels):
            raise ValueError(f"expected uint8 rows of shape (n, {self.width}, {self.channels}), "
                             f"got {rows.dtype} {rows.shape}")
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError("more rows than the image's height")
        flat = rows.reshape(rows.shape[0], -1)
        filtered = flat.copy()
        filtered[:, self.channels:] -= flat[:, :-self.channels]  # uint8 wraps: Sub filter
        lines = np.concatenate([np.ones((rows.shape[0], 1), np.uint8), filtered], axis=1)
        data = self._compressor.compress(lines.tobytes())
        if data:
            self.handle.write(_chunk(b"IDAT", data))
        self.rows_written += rows.shape[0]

    def close(self) -> None:
        if self.rows_written != self.height:
            raise ValueError(f"{self.rows_written} of {self.height} rows were written")
        self.handle.write(_chunk(b"IDAT", self._compressor.flush()))
        self.handle.write(_chunk(b"IEND", b""))
