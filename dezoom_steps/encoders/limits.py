"""Largest side each output format can hold: checked before any download, so kept free of imports."""

JPEG_MAX_SIDE = 65535  # the frame header stores width and height on 16 bits
PNG_MAX_SIDE = 2**31 - 1  # IHDR stores sides as 31-bit integers
WEBP_MAX_SIDE = 16383  # the WebP bitstream stores sides on 14 bits
GIF_MAX_SIDE = 65535  # logical screen size fields are 16 bits
