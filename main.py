"""Start ddir-zoom from a checkout: `python main.py [IMAGE]`."""

import sys

from ddir_zoom.cli import main

if __name__ == "__main__":
    sys.exit(main())
