"""ddir-zoom: a photo viewer whose zoom renders every visible pixel at the exact scale with DDIR."""

from ddir_zoom.threads import set_wait_policy

__version__ = "0.1.0"

set_wait_policy()  # before torch is imported anywhere (see ddir_zoom.threads)
