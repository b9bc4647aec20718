"""A canvas that is never stored: row bands are assembled by a background thread as an encoder reads.

The encoders read a canvas top to bottom (`read_rows(y, n)` with `y` never going back), so
the stitched rows can go straight from the tile decoder into the encoder, with no canvas file
in between. A producer thread fills bands (one band = the rows of one tile row) into a ring
of reused buffers while the encoder compresses the previous one, so decoding and encoding
overlap on two cores; memory holds `RING` bands whatever the image's height.

Rows a read returns stay valid until the next `read_rows` call (a band's buffer goes back to
the producer only then).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Callable, Iterable

import numpy as np

# Band buffers: one being filled while the encoder reads the other. A band is a tile row high and
# the image wide (77 MB at 50,000 px with 512 px tiles); a third buffer measured no faster.
RING = 2
BandFiller = Callable[[int, np.ndarray], None]  # fill(y0, rows view of the band) in place


class _Failed:
    """The producer's exception, passed to the reader."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class StreamCanvas:
    """Read-once canvas over bands [(y0, rows), ...] (increasing, not overlapping) filled by `fill`."""

    def __init__(self, width: int, height: int, channels: int, bands: Iterable[tuple[int, int]], fill: BandFiller):
        self.width, self.height, self.channels = width, height, channels
        self._bands = [(y0, rows) for y0, rows in bands if rows > 0]
        band_rows = max((rows for _, rows in self._bands), default=0)
        self._free: queue.Queue[np.ndarray] = queue.Queue()
        for _ in range(RING if self._bands else 0):
            self._free.put(np.empty((band_rows, width, channels), dtype=np.uint8))
        self._ready: queue.Queue[tuple[int, np.ndarray] | _Failed | None] = queue.Queue()
        self._held: deque[tuple[int, np.ndarray]] = deque()  # (y0, buffer view) being read
        self._next_y = 0
        self._stop = threading.Event()
        self._done = not self._bands
        self._thread = threading.Thread(target=self._produce, args=(fill,), daemon=True)
        if self._bands:
            self._thread.start()

    def _produce(self, fill: BandFiller) -> None:
        """Producer thread: fill each band into a free buffer and hand it over in order."""
        try:
            for y0, rows in self._bands:
                buf = self._free.get()
                if self._stop.is_set():
                    return
                view = buf[:rows]
                view.fill(0)  # missing tiles stay black (transparent with alpha)
                fill(y0, view)
                self._ready.put((y0, view))
            self._ready.put(None)
        except BaseException as exc:  # handed to the reader, which raises it
            self._ready.put(_Failed(exc))

    def _pull(self) -> bool:
        """Take the next band from the producer; False when there are no more."""
        if self._done:
            return False
        item = self._ready.get()
        if item is None:
            self._done = True
            return False
        if isinstance(item, _Failed):
            self._done = True
            raise item.exc
        self._held.append(item)
        return True

    def _release(self, band: np.ndarray) -> None:
        """Give a band's buffer back to the producer."""
        self._free.put(band.base if band.base is not None else band)

    def _band_end(self, i: int) -> int:
        """The row after held band `i`."""
        return self._held[i][0] + len(self._held[i][1])

    def read_rows(self, y: int, n: int) -> np.ndarray:
        """Rows y..y+n-1 as (n, width, channels) uint8; `y` must not be below the end of the previous read."""
        if y < self._next_y:
            raise ValueError(f"a stream canvas reads forward only (row {y} after row {self._next_y})")
        n = max(0, min(n, self.height - y))
        end = self._next_y = y + n
        while True:  # bands wholly above this read are done with (the previous read's rows expire now)
            while self._held and self._band_end(0) <= y:
                self._release(self._held.popleft()[1])
            if self._held or not self._pull():
                break
        if self._held and self._held[0][0] <= y and self._band_end(0) >= end:
            b0, band = self._held[0]
            return band[y - b0:end - b0]  # a view, valid until the next read
        out = np.zeros((n, self.width, self.channels), dtype=np.uint8)
        while self._held or self._pull():
            b0, band = self._held[0]
            if b0 >= end:
                break
            lo, hi = max(y, b0), min(end, b0 + len(band))
            out[lo - y:hi - y] = band[lo - b0:hi - b0]
            if b0 + len(band) > end:
                break
            self._release(self._held.popleft()[1])
            if b0 + len(band) == end:
                break
        return out

    def close(self) -> None:
        """Stop the producer (when the reader gives up early) and wait for it."""
        self._stop.set()
        for _ in range(RING):
            self._free.put(np.empty((0, self.width, self.channels), dtype=np.uint8))
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> "StreamCanvas":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
