"""The `ddir-zoom` program: `ddir-zoom [IMAGE]` opens the viewer on a photo (the bundled sample
when none is given)."""

from __future__ import annotations

import argparse
import sys

from ddir_zoom import __version__


def _viewer_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddir-zoom",
        description="A photo viewer whose zoom renders every visible pixel at the exact scale "
                    "with DDIR (real-world arbitrary-scale super-resolution).")
    parser.add_argument("image", nargs="?", help="photo to open (default: the bundled sample)")
    parser.add_argument("--version", action="version", version=f"ddir-zoom {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _viewer_parser().parse_args(argv)
    from ddir_zoom.app import run_viewer  # Qt is imported only when a window is wanted

    return run_viewer(args.image)


if __name__ == "__main__":
    sys.exit(main())
