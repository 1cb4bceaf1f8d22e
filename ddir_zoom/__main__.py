import sys

from ddir_zoom.cli import main

sys.exit(main())
