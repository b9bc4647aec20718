"""Tile checks in helper processes: bodies go down a pipe, verdicts come back.

Field notes S5: "decode in a worker with limits". Decoding a tile to check it is the largest
cost of a download after the network itself (issue 7: about a third of the download loop's
time on 256 px JPEG tiles); in its own process it runs beside the loop on another CPU, and a
decoder crash on a hostile tile ends the helper, not the download. The helpers are plain
`python -c` processes reading frames on stdin and writing verdicts on stdout; they hold no
network connection and no file of the parent.

Given a cache folder, a helper also writes each valid tile there (cache.store) before it
answers: the download loop then only moves bytes between the network and the helpers.

The frames of one turn of the download loop go down the pipe in one write, and a helper
answers everything it read at once in one write (issue 7: a write each way per tile, each
waking the other side, cost about 6 % of a 9,322-tile run).

Frames, little-endian. Request: token u32, mode u8 (0 decode, 1 header), content-type length
u32, cache key length u32, body length u32, then the content type (latin-1), the key (ASCII;
empty: not stored) and the body. Verdict: token u32, outcome u8 (VALID, INVALID, NOT_STORED),
message length u32, then the message (UTF-8: why the tile is invalid, or the write error).
"""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
from typing import Any

from dezoom_steps import cache

REQUEST = struct.Struct("<IBIII")
VERDICT = struct.Struct("<IBI")
MODES = ("decode", "header")
VALID, INVALID, NOT_STORED = 1, 0, 2  # verdict outcomes
PIPE_BYTES = 1 << 20  # request pipe size asked of Linux (F_SETPIPE_SZ): tiles queued without blocking
# When a helper repays its start-up (an interpreter, Pillow, simplejpeg, numpy: about 0.13 s before its
# first verdict). Measured (issue 7) with 256 px JPEG tiles, `dezoom` to a TIFF, helper against checks
# in the loop: 1,120 tiles (73 Mpx) 0.58 against 0.49 s, 1,600 tiles (100 Mpx) 0.70 against 0.59 s,
# 3,300 tiles (210 Mpx) 0.90 against 1.01 s, 9,322 tiles (600 Mpx) 2.3 against 2.8 s; 4,345 tiles
# of 128 px (71 Mpx) about even. A check costs about 5-10 µs a tile plus 0.7 ns a pixel.
MIN_PIXELS = 150_000_000  # tile pixels from which the checks go to a helper
MANY_TILES = 10_000  # tiles from which they do whatever their size
MIN_TILES = 256  # the rule when the tiles' sizes are not known
MAX_RESTARTS = 3  # helpers that died (e.g. a decoder crash) replaced before checks go back in-loop
_F_SETPIPE_SZ = 1031  # fcntl.h (Linux)


class StoreFailed(Exception):
    """A helper could not write a valid tile into the cache (a full disk, say); the message is why."""


def default_workers(tiles: int | None, pixels: int | None = None) -> int:
    """Helpers used when `--check-workers` is not given: one on a machine with two or more CPUs
    for a download large enough to repay the helper's start-up, else none.

    Large enough: an unknown count, MANY_TILES tiles, or MIN_PIXELS pixels in all (`pixels`, the
    tiles' total area, when known; else MIN_TILES tiles).
    """
    if tiles is not None and tiles < MANY_TILES:
        if (pixels < MIN_PIXELS) if pixels is not None else (tiles < MIN_TILES):
            return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 1 if cpus >= 2 else 0


class _Helper:
    """One helper process and the keys of the checks it has not answered yet."""

    def __init__(self, store_dir: str | None) -> None:
        self.store_dir = store_dir
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
                f"from dezoom_steps.checkworker import serve; serve({store_dir!r})")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0, close_fds=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.send_fd = self.proc.stdin.fileno()
        self.recv_fd = self.proc.stdout.fileno()
        try:
            import fcntl
            fcntl.fcntl(self.send_fd, _F_SETPIPE_SZ, PIPE_BYTES)
        except (ImportError, OSError):
            pass  # the default pipe size: the loop waits a little more often
        os.set_blocking(self.recv_fd, False)
        self.pending: dict[int, Any] = {}
        self.buffer = bytearray()
        self.outbox: list[bytes] = []  # frames queued by `send`, written by `flush`

    def send(self, token: int, key: Any, data: bytes, ctype: str, mode: str, name: str) -> None:
        """Queue one check; it goes down the pipe with the others of this turn at `flush`."""
        ctype_bytes, name_bytes = ctype.encode("latin-1", "replace"), name.encode("ascii")
        self.outbox += (REQUEST.pack(token, MODES.index(mode), len(ctype_bytes), len(name_bytes), len(data)),
                        ctype_bytes, name_bytes, data)
        self.pending[token] = key

    def flush(self) -> None:
        """Write the queued checks (blocks only while the helper is a pipe's worth of tiles behind).

        One write a turn of the download loop, not one a tile (issue 7: 9,322 writes, each
        waking the helper for one tile)."""
        if not self.outbox:
            return
        frames = b"".join(self.outbox)
        self.outbox.clear()
        cache.write_all(self.send_fd, frames)

    def receive(self) -> tuple[list[tuple[Any, str | None]], str | None]:
        """The verdicts that have arrived: (key, None) for a valid tile, (key, why) otherwise; and
        how the helper ended when it did (its checks still pending then have no verdict).

        Raises StoreFailed when a valid tile could not be written (the download stops).
        """
        ended = None
        while True:
            try:
                chunk = os.read(self.recv_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                ended = self._ended()
                break
            self.buffer += chunk
        out: list[tuple[Any, str | None]] = []
        buf, pos = self.buffer, 0
        while len(buf) - pos >= VERDICT.size:
            token, outcome, length = VERDICT.unpack_from(buf, pos)
            end = pos + VERDICT.size + length
            if end > len(buf):
                break
            message = bytes(buf[pos + VERDICT.size:end]).decode("utf-8", "replace")
            if outcome == NOT_STORED:
                raise StoreFailed(message)
            out.append((self.pending.pop(token), None if outcome == VALID else message))
            pos = end
        del buf[:pos]
        return out, ended

    def _ended(self) -> str:
        code = self.proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the tile check process ended by {name}"
        return f"the tile check process ended (exit {code})"

    def close(self) -> None:
        """End the helper: its input closes, it finishes and exits."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_EARLY: list[_Helper] = []  # helpers started ahead of their download (`start_early`), not taken yet


def start_early(store_dir: str | os.PathLike[str] | None, workers: int | None = None) -> None:
    """Start the helper of a download about to begin, so that its start-up (an interpreter, PIL,
    simplejpeg and numpy: 0.18 s of CPU) runs while the caller is still listing tiles, on a CPU
    that is idle then, instead of during the download, when every CPU is busy (issue 7).

    `workers`: the download's `--check-workers` (None: `default_workers` for an unknown count).
    The next `CheckPool` for the same store takes the helper; `discard_early` ends one left unused.
    """
    wanted = default_workers(None) if workers is None else workers
    if wanted > 0 and not _EARLY:
        _EARLY.append(_Helper(os.fspath(store_dir) if store_dir is not None else None))


def discard_early() -> None:
    """End the helpers that `start_early` started and no download took."""
    while _EARLY:
        _EARLY.pop().close()


def _new_helper(store_dir: str | None) -> _Helper:
    """A helper for `store_dir`: one started early when there is one still running, else a new one."""
    for helper in _EARLY:
        if helper.store_dir == store_dir and helper.proc.poll() is None:
            _EARLY.remove(helper)
            return helper
    return _Helper(store_dir)


class CheckPool:
    """Up to `workers` helper processes checking tile bodies (and storing the valid ones in
    `store_dir` when given); verdicts are collected with `verdicts`."""

    def __init__(self, workers: int, store_dir: str | None = None):
        self.workers, self.store_dir = workers, store_dir
        self.helpers: list[_Helper] = []
        self.restarts = 0
        self._tokens = 0
        self._next = 0

    @property
    def pending(self) -> int:
        """Checks sent and not answered yet."""
        return sum(len(h.pending) for h in self.helpers)

    @property
    def usable(self) -> bool:
        """False once helpers died more than MAX_RESTARTS times: the caller checks in its own process."""
        return self.restarts <= MAX_RESTARTS

    def submit(self, key: Any, data: bytes, ctype: str, mode: str, name: str = "") -> None:
        """Queue one body to be checked (and stored as `name` in the store folder when given); it is
        sent at the next `flush`, `wait` or `verdicts`, and its verdict comes back with `key` from `verdicts`."""
        if len(self.helpers) < self.workers:
            self.helpers.append(_new_helper(self.store_dir))
        helper = min(self.helpers, key=lambda h: len(h.pending))
        self._tokens = (self._tokens + 1) & 0xFFFFFFFF
        helper.send(self._tokens, key, data, ctype, mode, name)

    def flush(self) -> None:
        """Send the checks queued since the last flush (the download loop calls it before it waits)."""
        for helper in self.helpers:
            try:
                helper.flush()
            except (BrokenPipeError, OSError):
                # A dead helper: what it held comes back as failed checks from `verdicts`.
                helper.outbox.clear()

    def fds(self) -> list[int]:
        """The file descriptors that become readable when verdicts arrive."""
        return [h.recv_fd for h in self.helpers if h.pending]

    def verdicts(self) -> list[tuple[Any, str | None]]:
        """Every verdict that has arrived (the queued checks are sent first): (key, None) valid,
        (key, why) invalid or not checked.

        Raises StoreFailed when a helper could not write a valid tile.
        """
        self.flush()
        out: list[tuple[Any, str | None]] = []
        for helper in list(self.helpers):
            if not helper.pending:
                continue
            arrived, ended = helper.receive()
            out += arrived
            if ended is not None:  # what it answered before it ended counts; the rest failed
                out += [(key, ended) for key in helper.pending.values()]
                helper.pending.clear()
                self.helpers.remove(helper)
                helper.close()
                self.restarts += 1
        return out

    def wait(self, timeout: float) -> None:
        """Send what is queued, then wait up to `timeout` seconds for a verdict."""
        self.flush()
        fds = self.fds()
        if fds:
            select.select(fds, [], [], timeout)

    def close(self) -> None:
        """End every helper."""
        for helper in self.helpers:
            helper.close()
        self.helpers.clear()


def serve(store_dir: str | None = None) -> None:
    """The helper's process: answer requests until stdin closes; a parent that went away ends it
    quietly, anything else with one line on stderr (never a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes our stdin
    try:
        _serve(store_dir)
    except BrokenPipeError:  # the parent stopped reading (it ended): nothing to tell anyone
        os._exit(0)
    except Exception as exc:
        print(f"dezoom: tile check helper stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        os._exit(1)


def _serve(store_dir: str | None) -> None:
    from dezoom_steps import tilecheck  # Pillow and the decoders: only the helper needs them

    tilecheck.load_turbo_in_background()  # its faster JPEG decode, loaded while the first tiles are checked
    src, out = sys.stdin.fileno(), sys.stdout.fileno()
    buf, pos = bytearray(), 0
    while True:
        chunk = os.read(src, PIPE_BYTES)  # whatever has arrived: every frame in it is answered in one write
        if not chunk:
            break
        del buf[:pos]
        buf += chunk
        pos, answers = 0, []
        while len(buf) - pos >= REQUEST.size:
            token, mode, ctype_len, name_len, data_len = REQUEST.unpack_from(buf, pos)
            start = pos + REQUEST.size
            end = start + ctype_len + name_len + data_len
            if end > len(buf):
                break
            ctype = bytes(buf[start:start + ctype_len]).decode("latin-1")
            name = bytes(buf[start + ctype_len:start + ctype_len + name_len]).decode("ascii")
            data = bytes(buf[start + ctype_len + name_len:end])
            pos = end
            answers.append(_answer(token, MODES[mode], ctype, name, data, store_dir, tilecheck))
        if answers:
            cache.write_all(out, b"".join(answers))


def _answer(token: int, mode: str, ctype: str, name: str, data: bytes, store_dir: str | None,
            tilecheck: Any) -> bytes:
    """The verdict frame of one request: the check, then the cache write of a valid tile."""
    outcome, message = VALID, b""
    try:
        tilecheck.check_tile(data, ctype, mode=mode)
    except tilecheck.TileInvalid as exc:
        outcome, message = INVALID, str(exc).encode("utf-8", "replace") or b"invalid tile"
    except Exception as exc:  # a decoder failure of any kind: the tile is refused, the helper goes on
        outcome, message = INVALID, f"the tile check failed ({type(exc).__name__})".encode()
    if outcome == VALID and name and store_dir is not None:
        try:
            cache.store(store_dir, name, data)
        except OSError as exc:
            outcome, message = NOT_STORED, (exc.strerror or str(exc)).encode("utf-8", "replace")
    return VERDICT.pack(token, outcome, len(message)) + message


__all__ = ["CheckPool", "MANY_TILES", "MIN_PIXELS", "MIN_TILES", "StoreFailed", "default_workers", "discard_early",
           "serve", "start_early"]
