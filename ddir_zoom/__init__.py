"""ddir-zoom: a photo viewer whose zoom renders every visible pixel at the exact scale with DDIR."""

__version__ = "0.1.0"
