"""Power loss under a TV's brain, for the device crash tests.

:class:`PowerLossVfs` is an SQLite VFS, installed as the default in a device process
through ``ctypes`` into the very SQLite library the ``sqlite3`` module uses (apsw's VFS
classes only serve apsw's own bundled SQLite, not the stdlib connections the brain
opens). It passes every call to SQLite's unix VFS, and before each write or truncate of
a file appends what the file held there to an undo journal; each fsync of the file marks
its entries durable. It can also SIGKILL its own process just before its n-th write,
truncate or fsync: a kill inside SQLite's durable writes, at a point chosen by number.

After the process died, :func:`lose_power` undoes, file by file, what was written since
that file's last fsync: the files are left as the disk would hold them after a power cut
that lost its cache (LazyFS's "clear cache" model). Not modelled: torn sectors, writes
reaching the disk out of order, directory fsyncs (a created file is taken to exist). The
``-shm`` index is not a VFS file (SQLite maps it itself); the first connection after the
crash rebuilds it from the WAL, as after a real power cut.

The ctypes structures below are SQLite's ``sqlite3_vfs`` and ``sqlite3_io_methods`` as of
version 3 of each (SQLite ≥ 3.7.17). :meth:`PowerLossVfs.install` checks the library
against them before anything runs on it (:func:`check_layout`, and a probe file opened
through the VFS) and stops with a sentence saying so on a mismatch: a wrong layout would
otherwise crash the process, or worse, write through the wrong function.

Run as a script, this module is a zygote (see :class:`Zygote`): it imports the brain and
the sync client once, then forks one device process per job, so each of many kill points
costs a fork, not an interpreter start.
"""

from __future__ import annotations

import _sqlite3
import asyncio
import contextlib
import ctypes as C
import functools
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

SQLITE_OK = 0
SQLITE_IOERR = 10
SQLITE_IOERR_SHORT_READ = 522

_IO_METHODS = (
    "xClose",
    "xRead",
    "xWrite",
    "xTruncate",
    "xSync",
    "xFileSize",
    "xLock",
    "xUnlock",
    "xCheckReservedLock",
    "xFileControl",
    "xSectorSize",
    "xDeviceCharacteristics",
    "xShmMap",
    "xShmLock",
    "xShmBarrier",
    "xShmUnmap",
    "xFetch",
    "xUnfetch",
)
_VFS_METHODS = (
    "xOpen",
    "xDelete",
    "xAccess",
    "xFullPathname",
    "xDlOpen",
    "xDlError",
    "xDlSym",
    "xDlClose",
    "xRandomness",
    "xSleep",
    "xCurrentTime",
    "xGetLastError",
    "xCurrentTimeInt64",
    "xSetSystemCall",
    "xGetSystemCall",
    "xNextSystemCall",
)


class _IoMethods(C.Structure):  # sqlite3_io_methods, version 3
    _fields_ = [("iVersion", C.c_int), *((name, C.c_void_p) for name in _IO_METHODS)]


class _File(C.Structure):  # sqlite3_file: its methods first, then the VFS's own state
    _fields_ = [("pMethods", C.c_void_p)]


class _Vfs(C.Structure):  # sqlite3_vfs, version 3
    _fields_ = [
        ("iVersion", C.c_int),
        ("szOsFile", C.c_int),
        ("mxPathname", C.c_int),
        ("pNext", C.c_void_p),
        ("zName", C.c_char_p),
        ("pAppData", C.c_void_p),
        *((name, C.c_void_p) for name in _VFS_METHODS),
    ]


#: The version of sqlite3_vfs and of sqlite3_io_methods the structures above describe, and
#: the first SQLite that has both.
LAYOUT_VERSION = 3
LAYOUT_SINCE = (3, 7, 17)


def check_layout(library: str, vfs_version: int, io_version: int | None = None) -> None:
    """RuntimeError, in one sentence, unless SQLite ``library`` (``sqlite3.sqlite_version``)
    has the structures above: a VFS of version 3 and file methods of version 1 to 3."""
    parts = tuple(int(n) for n in library.split(".")[:3])
    fits = parts >= LAYOUT_SINCE and vfs_version == LAYOUT_VERSION
    if fits and (io_version is None or 1 <= io_version <= LAYOUT_VERSION):
        return
    found = f"a VFS of version {vfs_version}"
    if io_version is not None:
        found += f" and file methods of version {io_version}"
    raise RuntimeError(
        f"tests/sync/_power_loss.py drives SQLite through ctypes structures of sqlite3_vfs "
        f"and sqlite3_io_methods version {LAYOUT_VERSION} (SQLite ≥ "
        f"{'.'.join(map(str, LAYOUT_SINCE))}), but SQLite {library} has {found}: compare "
        "_Vfs and _IoMethods with its sqlite3.h and update them"
    )


_OPEN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_void_p, C.c_int, C.c_void_p)
_CLOSE = C.CFUNCTYPE(C.c_int, C.c_void_p)
_READ = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_int, C.c_int64)
_WRITE = _READ
_TRUNCATE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_int64)
_SYNC = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_int)
_FILE_SIZE = C.CFUNCTYPE(C.c_int, C.c_void_p, C.POINTER(C.c_int64))

# One journal record: kind (w: write, t: truncate, s: fsync), path length, offset, the
# file's size before, the pre-image's length; then the path and the pre-image.
_RECORD = struct.Struct(">cIqqI")


def _guarded(method: Callable[..., int]) -> Callable[..., int]:
    """A VFS call that fails as an I/O error if our part of it raises: SQLite must never
    take a write that did not happen for one that did."""

    @functools.wraps(method)
    def call(*args: Any) -> int:
        try:
            return method(*args)
        except Exception:
            traceback.print_exc()
            return SQLITE_IOERR

    return call


class PowerLossVfs:
    """The default VFS of this process from :meth:`install` on (see the module docstring).

    ``kill_at``: SIGKILL this process just before its ``kill_at``-th write, truncate or
    fsync (counted from 1; None: never). ``ops`` counts them.
    """

    def __init__(self, journal: Path, *, kill_at: int | None = None) -> None:
        self._journal = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.kill_at = kill_at
        self.ops = 0
        self._lib = C.CDLL(_sqlite3.__file__)  # its symbols resolve to sqlite3's library
        self._lib.sqlite3_vfs_find.restype = C.c_void_p
        self._lib.sqlite3_vfs_find.argtypes = [C.c_char_p]
        self._lib.sqlite3_vfs_register.argtypes = [C.c_void_p, C.c_int]
        self._base_address = self._lib.sqlite3_vfs_find(None)
        base = _Vfs.from_address(self._base_address)
        check_layout(sqlite3.sqlite_version, base.iVersion)
        self._journal_path = journal
        self._layout_error: str | None = None
        self._base_open = _OPEN(base.xOpen)
        self._vfs = _Vfs.from_buffer_copy(base)
        self._vfs.zName = b"omega-power-loss"
        self._vfs.pNext = None
        self._callbacks = {
            "xOpen": _OPEN(_guarded(self._open)),
            "xClose": _CLOSE(_guarded(self._close)),
            "xWrite": _WRITE(_guarded(self._write)),
            "xTruncate": _TRUNCATE(_guarded(self._truncate)),
            "xSync": _SYNC(_guarded(self._sync)),
        }
        self._vfs.xOpen = C.cast(self._callbacks["xOpen"], C.c_void_p).value
        self._tables: dict[int, tuple[_IoMethods, _IoMethods]] = {}  # base → (base, ours)
        self._files: dict[int, tuple[str, _IoMethods]] = {}  # file → (path, base methods)

    def install(self) -> None:
        """Check the file methods' layout on a probe file opened through this VFS (it
        reads, so nothing is journaled or counted), then make it the default."""
        if self._lib.sqlite3_vfs_register(C.addressof(self._vfs), 0) != SQLITE_OK:
            raise RuntimeError("sqlite3_vfs_register failed")
        probe = self._journal_path.with_name(self._journal_path.name + ".probe")
        try:
            uri = f"file:{probe}?vfs={self._vfs.zName.decode()}"
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
                conn.execute("PRAGMA user_version").fetchone()
        except sqlite3.Error:
            if self._layout_error is None:
                raise
        finally:
            probe.unlink(missing_ok=True)
        if self._layout_error is not None:
            raise RuntimeError(self._layout_error)
        if self._lib.sqlite3_vfs_register(C.addressof(self._vfs), 1) != SQLITE_OK:
            raise RuntimeError("sqlite3_vfs_register failed")

    # -- the VFS ---------------------------------------------------------------------
    def _open(self, vfs: int, name: int | None, file: int, flags: int, out_flags: int) -> int:
        rc: int = self._base_open(self._base_address, name, file, flags, out_flags)
        handle = _File.from_address(file)
        if rc == SQLITE_OK and name and handle.pMethods:
            base, ours = self._table(handle.pMethods)
            handle.pMethods = C.addressof(ours)
            self._files[file] = (C.string_at(name).decode(), base)
        return rc

    def _table(self, address: int) -> tuple[_IoMethods, _IoMethods]:
        """Our copy of a base method table, with the calls we watch put in."""
        if address not in self._tables:
            base = _IoMethods.from_address(address)
            try:
                check_layout(sqlite3.sqlite_version, self._vfs.iVersion, base.iVersion)
            except RuntimeError as exc:  # refused (an I/O error), and said by install()
                self._layout_error = str(exc)
                raise
            ours = _IoMethods.from_buffer_copy(base)
            for name in ("xClose", "xWrite", "xTruncate", "xSync"):
                setattr(ours, name, C.cast(self._callbacks[name], C.c_void_p).value)
            self._tables[address] = (base, ours)
        return self._tables[address]

    # -- the files -------------------------------------------------------------------
    def _close(self, file: int) -> int:
        _, base = self._files.pop(file)
        rc: int = _CLOSE(base.xClose)(file)
        return rc

    def _write(self, file: int, data: int, amount: int, offset: int) -> int:
        path, base = self._files[file]
        self._tick()
        size = self._size(file, base)
        self._record(b"w", path, offset, size, self._read(file, base, offset, amount, size))
        rc: int = _WRITE(base.xWrite)(file, data, amount, offset)
        return rc

    def _truncate(self, file: int, size: int) -> int:
        path, base = self._files[file]
        self._tick()
        before = self._size(file, base)
        self._record(b"t", path, size, before, self._read(file, base, size, before - size, before))
        rc: int = _TRUNCATE(base.xTruncate)(file, size)
        return rc

    def _sync(self, file: int, flags: int) -> int:
        path, base = self._files[file]
        self._tick()
        rc: int = _SYNC(base.xSync)(file, flags)
        if rc == SQLITE_OK:
            self._record(b"s", path, 0, 0, b"")
        return rc

    def _tick(self) -> None:
        self.ops += 1
        if self.ops == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    @staticmethod
    def _size(file: int, base: _IoMethods) -> int:
        size = C.c_int64()
        if _FILE_SIZE(base.xFileSize)(file, C.byref(size)) != SQLITE_OK:
            raise OSError("xFileSize failed")
        return size.value

    @staticmethod
    def _read(file: int, base: _IoMethods, offset: int, amount: int, size: int) -> bytes:
        """The file's bytes in [offset, offset + amount) that exist (a pre-image)."""
        amount = max(0, min(amount, size - offset))
        if amount == 0:
            return b""
        buffer = C.create_string_buffer(amount)
        rc = _READ(base.xRead)(file, buffer, amount, offset)
        if rc not in (SQLITE_OK, SQLITE_IOERR_SHORT_READ):
            raise OSError(f"xRead failed ({rc})")
        return buffer.raw

    def _record(self, kind: bytes, path: str, offset: int, size: int, image: bytes) -> None:
        name = path.encode()
        os.write(
            self._journal, _RECORD.pack(kind, len(name), offset, size, len(image)) + name + image
        )


@dataclass(frozen=True, slots=True)
class _Entry:
    kind: bytes
    offset: int
    size: int
    image: bytes


def _entries(journal: Path) -> dict[str, list[_Entry]]:
    """The journal, by file; a record cut short by the kill is dropped (its write never
    began: the record is appended first)."""
    data = journal.read_bytes() if journal.exists() else b""
    found: dict[str, list[_Entry]] = defaultdict(list)
    at = 0
    while at + _RECORD.size <= len(data):
        kind, name_len, offset, size, image_len = _RECORD.unpack_from(data, at)
        end = at + _RECORD.size + name_len + image_len
        if end > len(data):
            break
        name = data[at + _RECORD.size : at + _RECORD.size + name_len].decode()
        found[name].append(_Entry(kind, offset, size, data[end - image_len : end]))
        at = end
    return found


def lose_power(journal: Path) -> dict[str, int]:
    """Undo every write and truncate made after each file's last fsync (see the module
    docstring); returns how many were undone, by file name."""
    undone: dict[str, int] = {}
    for path, entries in _entries(journal).items():
        synced = max((i for i, e in enumerate(entries) if e.kind == b"s"), default=-1)
        lost = [e for e in entries[synced + 1 :] if e.kind != b"s"]
        undone[Path(path).name] = len(lost)
        if not lost or not os.path.exists(path):
            continue
        fd = os.open(path, os.O_WRONLY)
        try:
            for entry in reversed(lost):
                os.pwrite(fd, entry.image, entry.offset)
            os.ftruncate(fd, lost[0].size)
            os.fsync(fd)
        finally:
            os.close(fd)
    return undone


# -- the device process ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Job:
    """One device process: open the brain in ``directory`` and sync once with ``url``,
    its SQLite files journaled to ``journal``. It is SIGKILLed just before its I/O number
    ``kill_at``, at step ``kill_step`` (its own ``on_step`` hook), or from outside by the
    zygote ``kill_after`` seconds after it started, when given. On a clean exit it
    writes its I/O count to ``report``."""

    directory: str
    url: str
    journal: str
    report: str
    now: float
    page: int
    kill_at: int | None = None
    kill_step: str | None = None
    kill_after: float | None = None


def run_device(job: Job) -> None:
    from _sync_world import open_brain

    from omega.clock import ManualClock
    from omega.sync import HttpTransport, SyncClient

    vfs = PowerLossVfs(Path(job.journal), kill_at=job.kill_at)
    vfs.install()

    def step(name: str) -> None:
        if name == job.kill_step:
            os.kill(os.getpid(), signal.SIGKILL)

    brain = open_brain(Path(job.directory), ManualClock(job.now))

    async def sync() -> None:
        async with HttpTransport(job.url) as transport:
            await SyncClient(brain, transport, max_pull_bytes=job.page, on_step=step).sync()

    asyncio.run(sync())
    Path(job.report).write_text(str(vfs.ops))
    brain.close()


class Zygote:
    """This module run as a script: it imports the brain and the sync client once, then
    forks a device process per :class:`Job` and reports how each ended.

    :meth:`run` returns the job's exit code (-9: SIGKILLed).
    """

    def __init__(self, log: Path) -> None:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        self.log = log
        with log.open("ab") as err:
            self._process = subprocess.Popen(
                [sys.executable, __file__, *sys.path],  # the same imports as this process
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
            )

    def run(self, job: Job) -> int:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(asdict(job)).encode() + b"\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died:\n{self.log.read_text()[-3000:]}")
        code: int = json.loads(line)
        return code

    def close(self) -> None:
        for pipe in (self._process.stdin, self._process.stdout):
            if pipe is not None:
                pipe.close()
        self._process.wait(timeout=30)


def _zygote(lines: IO[str], out: IO[str]) -> None:
    import omega.brain
    import omega.sync  # noqa: F401  (imported once here, for every fork)

    for line in lines:
        job = Job(**json.loads(line))
        pid = os.fork()
        if pid == 0:
            os.dup2(2, 1)  # stdout is the zygote's pipe to the parent
            code = 1
            try:
                run_device(job)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        out.write(json.dumps(_wait(pid, job.kill_after)) + "\n")
        out.flush()


def _wait(pid: int, kill_after: float | None) -> int:
    """Wait for ``pid``, SIGKILLing it after ``kill_after`` seconds if it still runs (it
    is not reaped before, so its pid cannot be another process's by then)."""
    deadline = None if kill_after is None else time.monotonic() + kill_after
    while True:
        done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        assert deadline is not None
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = None
        else:
            time.sleep(0.0002)


if __name__ == "__main__":
    sys.path[:0] = [p for p in sys.argv[1:] if p not in sys.path]
    _zygote(sys.stdin, sys.stdout)
