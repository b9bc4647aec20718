"""Check helper processes (dezoom_steps/checkworker.py): real child processes, real pipes, real files."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from dezoom_steps import cache, checkworker, net
from dezoom_steps.checkworker import CheckPool, StoreFailed
from dezoom_steps.errors import OutputError
from dezoom_steps.steps.fetch_tiles import fetch_tiles
from dezoom_steps.tilecheck import TileInvalid, check_tile
from faultserver_fixture import fault_server  # noqa: F401
from test_politeness import write_tiles
from test_tile_validation import encoded, png_with_size


def collect(pool: CheckPool, count: int, timeout: float = 30.0) -> dict[object, str | None]:
    """Wait for `count` verdicts of `pool`."""
    got: dict[object, str | None] = {}
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        pool.wait(0.5)
        got.update(pool.verdicts())
    assert len(got) == count, f"{len(got)} of {count} verdicts in {timeout} s"
    return got


def bodies() -> dict[str, tuple[bytes, str]]:
    """Tile bodies of every verdict: valid images, a truncated JPEG, a bomb header, pages."""
    jpeg = encoded("JPEG")
    return {"jpeg": (jpeg, "image/jpeg"), "png": (encoded("PNG", (40, 30)), "image/png"),
            "cut": (jpeg[: len(jpeg) // 2], "image/jpeg"), "bomb": (png_with_size(40000, 40000), "image/png"),
            "html": (b"<html><body>denied</body></html>", "text/html"), "empty": (b"", "image/jpeg")}


def expected_verdict(data: bytes, ctype: str, mode: str) -> str | None:
    """What the in-process check says of a body (None: valid)."""
    try:
        check_tile(data, ctype, mode=mode)
        return None
    except TileInvalid as exc:
        return str(exc)


@pytest.mark.parametrize("mode", ["decode", "header"])
def test_helpers_give_the_verdicts_of_the_in_process_check_and_store_only_valid_tiles(tmp_path: Path,
                                                                                        mode: str) -> None:
    cases = bodies()
    pool = CheckPool(2, str(tmp_path))
    try:
        for name, (data, ctype) in cases.items():
            pool.submit(name, data, ctype, mode, f"key-{name}")
        assert pool.pending == len(cases) and len(pool.helpers) == 2
        got = collect(pool, len(cases))
    finally:
        pool.close()
    assert got == {name: expected_verdict(data, ctype, mode) for name, (data, ctype) in cases.items()}
    assert got["jpeg"] is None and got["html"] and ("does not decode" in (got["cut"] or "")) == (mode == "decode")
    stored = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert stored == {f"key-{name}": cases[name][0] for name, why in got.items() if why is None}


def test_without_a_store_folder_nothing_is_written(tmp_path: Path) -> None:
    pool = CheckPool(1)
    try:
        data, ctype = bodies()["jpeg"]
        pool.submit("a", data, ctype, "decode", "ignored-name")
        assert collect(pool, 1) == {"a": None}
    finally:
        pool.close()
    assert not any(tmp_path.iterdir()) and not Path("ignored-name").exists()


def test_a_cache_write_failure_is_reported_not_taken_for_an_invalid_tile(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    pool = CheckPool(1, str(blocker / "cache"))
    try:
        pool.submit("a", *bodies()["jpeg"], "decode", "k")
        with pytest.raises(StoreFailed, match="Not a directory"):
            collect(pool, 1)
    finally:
        pool.close()


def test_a_helper_that_dies_fails_its_pending_checks_and_is_replaced() -> None:
    pool = CheckPool(1)
    data, ctype = bodies()["jpeg"]
    try:
        pool.submit("first", data, ctype, "decode")
        assert collect(pool, 1) == {"first": None}
        helper = pool.helpers[0]
        os.kill(helper.proc.pid, signal.SIGKILL)
        helper.proc.wait()
        pool.submit("lost", data, ctype, "decode")  # into a dead helper's pipe
        assert collect(pool, 1) == {"lost": "the tile check process ended by SIGKILL"}
        assert pool.restarts == 1 and pool.usable and not pool.helpers
        pool.submit("after", data, ctype, "decode")
        assert collect(pool, 1) == {"after": None}
        assert pool.helpers[0].proc.pid != helper.proc.pid
    finally:
        pool.close()


def test_helpers_end_when_the_pool_closes() -> None:
    pool = CheckPool(2)
    for i in range(2):
        pool.submit(i, *bodies()["png"], "decode")
    collect(pool, 2)
    procs = [h.proc for h in pool.helpers]
    pool.close()
    assert [p.returncode for p in procs] == [0, 0]


def test_a_helper_started_early_serves_the_next_pool_of_its_store(tmp_path: Path) -> None:
    checkworker.start_early(tmp_path, workers=1)
    [early] = checkworker._EARLY
    pool = CheckPool(1, str(tmp_path))
    try:
        jpeg, ctype = bodies()["jpeg"]
        pool.submit("t", jpeg, ctype, "decode", "key-t")
        assert pool.helpers == [early] and not checkworker._EARLY, "the early helper was not the one used"
        assert collect(pool, 1) == {"t": None}
    finally:
        pool.close()
    assert (tmp_path / "key-t").read_bytes() == jpeg and early.proc.returncode == 0


def test_an_early_helper_no_pool_took_is_ended_and_none_starts_without_workers(tmp_path: Path) -> None:
    checkworker.start_early(tmp_path / "a", workers=1)
    [early] = checkworker._EARLY
    pool = CheckPool(1, str(tmp_path / "b"))  # another store: a helper of its own
    try:
        pool.submit("t", *bodies()["png"], "decode", "key-t")
        assert pool.helpers[0] is not early and checkworker._EARLY == [early]
        collect(pool, 1)
    finally:
        pool.close()
        checkworker.discard_early()
    assert early.proc.returncode == 0 and not checkworker._EARLY
    checkworker.start_early(tmp_path, workers=0)
    assert not checkworker._EARLY


def test_default_helpers_depend_on_the_tile_count_and_the_cpus() -> None:
    cpus = len(os.sched_getaffinity(0))
    one = 1 if cpus >= 2 else 0
    assert checkworker.default_workers(checkworker.MIN_TILES - 1) == 0
    assert checkworker.default_workers(checkworker.MIN_TILES) == one
    assert checkworker.default_workers(None) == one
    # with the tiles' area known, the area decides (below MANY_TILES tiles)
    assert checkworker.default_workers(1_120, 1_120 * 256 * 256) == 0  # 73 Mpx: the loop checks faster
    assert checkworker.default_workers(9_322, 9_322 * 256 * 256) == one
    assert checkworker.default_workers(1_000, checkworker.MIN_PIXELS) == one  # 1,000 tiles of 387 px
    assert checkworker.default_workers(checkworker.MANY_TILES, checkworker.MANY_TILES * 64 * 64) == one
    assert checkworker.default_workers(checkworker.MANY_TILES - 1, checkworker.MANY_TILES * 64 * 64) == 0


@pytest.mark.parametrize("workers", [0, 1], ids=["in-loop", "helper"])
def test_fetch_into_an_unwritable_cache_stops_with_one_output_error(tmp_path: Path, workers: int,
                                                                    fault_server) -> None:  # noqa: F811
    root = tmp_path / "site"
    root.mkdir()
    (root / "t.jpg").write_bytes(encoded("JPEG"))
    srv = fault_server(root)
    tiles_json = tmp_path / "tiles.json"
    write_tiles(tiles_json, srv.url("ImageProperties.xml"), [srv.url("t.jpg")])
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    opts = net.NetOptions(min_interval=0, timeout=5, check_workers=workers)
    with pytest.raises(OutputError) as err:
        fetch_tiles(tiles_json=tiles_json, cache_dir=blocker / "cache", report=tmp_path / "r.json", options=opts)
    assert str(err.value) == f"{blocker / 'cache'}: cannot write to the tile cache (Not a directory)"
    assert cache.cached_keys(blocker / "cache", [cache.cache_key(srv.url("t.jpg"))]) == set()



def test_a_helper_whose_parent_stopped_reading_exits_quietly(tmp_path: Path) -> None:
    """The parent gone (its end of the verdict pipe closed): exit 0, nothing on stderr."""
    import subprocess
    import sys

    data, ctype = bodies()["jpeg"]
    code = "from dezoom_steps.checkworker import serve; serve()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(checkworker.__file__).parents[1])
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody will read the verdicts
    frame = checkworker.REQUEST.pack(1, 0, len(ctype), 0, len(data)) + ctype.encode() + data
    try:
        proc.stdin.write(frame * 3)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the helper may already be gone: its first answer found no reader
    assert proc.wait(timeout=30) == 0
    assert proc.stderr.read() == b""


def test_verdicts_a_helper_sent_before_it_died_still_count() -> None:
    """Answers already in the pipe are read before the helper's end is noticed: those tiles are
    done (checked and stored), only the unanswered ones fail."""
    import fcntl
    import termios

    pool = CheckPool(1)
    data, ctype = bodies()["jpeg"]
    try:
        pool.submit("a", data, ctype, "decode")
        pool.submit("b", data, ctype, "decode")
        pool.flush()
        helper = pool.helpers[0]
        waiting = bytearray(4)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # both answers written, none read yet
            fcntl.ioctl(helper.recv_fd, termios.FIONREAD, waiting)
            if int.from_bytes(waiting, "little") >= 2 * checkworker.VERDICT.size:
                break
            time.sleep(0.01)
        os.kill(helper.proc.pid, signal.SIGKILL)
        helper.proc.wait()
        pool.submit("c", data, ctype, "decode")
        assert collect(pool, 3) == {"a": None, "b": None, "c": "the tile check process ended by SIGKILL"}
    finally:
        pool.close()
