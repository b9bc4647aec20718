"""dezoom-steps: download zoomable (tiled) images and stitch them into one file."""

__version__ = "0.1.0"
