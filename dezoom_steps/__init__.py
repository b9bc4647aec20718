"""dezoom-steps: download zoomable (tiled) images and stitch them into one file."""

import os

__version__ = "0.1.0"

# numpy serves here for array copies, never for linear algebra, yet importing it starts one
# OpenBLAS thread per CPU: 0.1 s of CPU in every process that imports it (the CLI, each step,
# each tile check helper), measured while the download needs every CPU (issue 7). A value the
# user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
