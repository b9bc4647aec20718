"""StreamCanvas: forward reads of any size over bands filled by a producer thread, gaps black."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dezoom_steps.streamcanvas import RING, StreamCanvas


def random_bands(rng: np.random.Generator, height: int) -> list[tuple[int, int]]:
    """Increasing bands with random sizes and gaps between them."""
    bands, y = [], 0
    while True:
        y += int(rng.integers(0, 5))
        if y >= height:
            return bands
        rows = min(int(rng.integers(1, 40)), height - y)
        bands.append((y, rows))
        y += rows


@pytest.mark.parametrize("seed", range(40))
def test_reads_of_any_size_return_the_bands_with_black_gaps(seed):
    rng = np.random.default_rng(seed)
    width, height, channels = int(rng.integers(1, 20)), int(rng.integers(1, 200)), int(rng.choice([1, 3, 4]))
    image = rng.integers(1, 256, (height, width, channels), dtype=np.uint8)
    bands = random_bands(rng, height)
    expected = np.zeros_like(image)
    for y0, rows in bands:
        expected[y0:y0 + rows] = image[y0:y0 + rows]
    got, y = [], 0
    with StreamCanvas(width, height, channels, bands, lambda y0, view: view.__setitem__(
            slice(None), image[y0:y0 + len(view)])) as canvas:
        while y < height:
            n = height if rng.random() < 0.1 else int(rng.integers(1, 80))  # a whole-image read too
            got.append(canvas.read_rows(y, n).copy())
            y += min(n, height - y)
    np.testing.assert_array_equal(np.concatenate(got), expected)


def test_memory_is_a_ring_of_band_buffers():
    filled = []
    lock = threading.Lock()

    def fill(y0, view):
        with lock:
            filled.append(y0)
        view[:] = y0 % 251

    bands = [(y, 10) for y in range(0, 1000, 10)]
    with StreamCanvas(8, 1000, 3, bands, fill) as canvas:
        first = canvas.read_rows(0, 10)
        assert (first == 0).all()
        threading.Event().wait(0.2)  # the producer runs ahead, but only as far as the ring allows
        assert len(filled) <= RING
        for y in range(10, 1000, 10):
            assert (canvas.read_rows(y, 10) == y % 251).all()


def test_a_failure_in_the_producer_reaches_the_reader():
    def fill(y0, view):
        if y0 >= 20:
            raise OSError("disk gone")
        view[:] = 1

    with StreamCanvas(4, 100, 1, [(y, 10) for y in range(0, 100, 10)], fill) as canvas:
        assert (canvas.read_rows(0, 20) == 1).all()
        with pytest.raises(OSError, match="disk gone"):
            canvas.read_rows(20, 10)


def test_reading_backwards_is_refused_and_closing_early_does_not_hang():
    canvas = StreamCanvas(4, 100, 3, [(y, 10) for y in range(0, 100, 10)], lambda y0, view: None)
    canvas.read_rows(0, 30)
    with pytest.raises(ValueError, match="forward only"):
        canvas.read_rows(10, 5)
    canvas.close()
