"""Durable file primitives: atomic writes, appends, directory fsync and advisory locks.

Every state file goes through here, so three promises are kept in one place:
- nothing is half-written;
- files are created 0600 and folders 0700 whatever the umask, because state may hold private conversations;
- inside a workspace's state folder (registered by Workspace with `confine`), no folder on the way to a
  file may be a symbolic link and the file itself is never followed, so a cloned .agents/ carrying links
  cannot make a write land outside the workspace. And no secret the process read for a model call
  (core.secrets) is ever written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from letta_cli.core.errors import StorageError
from letta_cli.core.faults import crashpoint, failpoint
from letta_cli.core.secrets import redact_bytes

FILE_MODE = 0o600
DIR_MODE = 0o700

_state_dirs: set[str] = set()  # the state folders of the workspaces this process opened
_state_dir_cache: dict[str, str | None] = {}  # folder -> the state folder it is in (None: in none)


def confine(state_dir: Path) -> None:
    """Below `state_dir`, follow no symbolic link: its folders are made and checked by ensure_dir."""
    path = os.fspath(state_dir)
    if path not in _state_dirs:
        _state_dirs.add(path)
        _state_dir_cache.clear()


def _state_dir_of(path: str) -> str | None:
    known = _state_dir_cache.get(path, "")  # get, not `in`: another thread may clear the cache meanwhile
    if known != "":
        return known
    top = path
    while top not in _state_dirs and os.path.dirname(top) != top:
        top = os.path.dirname(top)
    found = _state_dir_cache[path] = top if top in _state_dirs else None
    return found


def ensure_dir(path: Path) -> Path:
    """The folder `path`, made if missing (0700). Inside a state folder every folder from the state folder
    down is checked with lstat on the way, so none of them can be a symbolic link."""
    where = os.fspath(path)
    top = _state_dir_of(where)
    if top is None:
        try:
            path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        except FileExistsError:
            raise StorageError(f"{path} (or a folder above it) exists but is not a folder") from None
    else:
        _walk(top, where, create=True)
    return path


def check_dir(path: Path) -> None:
    """StorageError if a folder on the way to `path` (inside a state folder) is a symbolic link; creates nothing.
    For the verbs that rename or delete without writing first."""
    where = os.fspath(path)
    top = _state_dir_of(where)
    if top is not None:
        _walk(top, where, create=False)


def _walk(top: str, where: str, *, create: bool) -> None:
    folders = [top]
    for part in where[len(top) + 1 :].split(os.sep) if where != top else ():
        folders.append(folders[-1] + os.sep + part)
    for folder in folders:
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            if not create:
                return
            if folder == top:  # the workspace itself is the user's folder, made with the user's umask
                try:
                    os.makedirs(os.path.dirname(top), exist_ok=True)
                except FileExistsError:
                    raise StorageError(f"{os.path.dirname(top)} (or a folder above it) is not a folder") from None
            try:
                os.mkdir(folder, DIR_MODE)
            except FileExistsError:  # made by another process just now: check what it is
                mode = os.lstat(folder).st_mode
            else:
                os.chmod(folder, DIR_MODE)  # mkdir's mode is cut by the umask: set it exactly
                continue
        if stat.S_ISLNK(mode):
            raise StorageError(f"{folder} is a symbolic link; state folders must be real folders (not followed)")
        if not stat.S_ISDIR(mode):
            raise StorageError(f"{folder} exists but is not a folder")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn OS-level write failures into one clear StorageError."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EEXIST):
            raise
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link where a state file should be
            raise StorageError(f"{what} is a symbolic link; state files are never written through one") from exc
        raise StorageError(f"cannot write {what}: {exc.strerror or exc}") from exc


def write_tmp(directory: Path, data: bytes, prefix: str = ".tmp-") -> Path:
    """Write data to a fresh, fsynced file in `directory` and return its path."""
    tmp = directory / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
    data = redact_bytes(data)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    try:
        failpoint("write")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        failpoint("fsync")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def atomic_write(path: Path, data: bytes | str, *, sync_dir: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old file or the new one, never a mix."""
    if isinstance(data, str):
        data = data.encode()
    with storage_errors(str(path)):
        ensure_dir(path.parent)
        tmp = write_tmp(path.parent, data)
        crashpoint("during_atomic_write")
        try:
            failpoint("rename")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if sync_dir:
            fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def append_line(path: Path, line: str, *, sync: bool = True) -> None:
    """Append one whole line (or none of it). The write is one O_APPEND write under the file's flock; a short
    write (a full disk) is cut back off and raised as a StorageError, so no line is ever torn and the next
    append does not join onto half a line. A file not ending in a newline (torn by a power cut) gets one first."""
    data = redact_bytes((line.rstrip("\n") + "\n").encode())
    with storage_errors(str(path)):
        ensure_dir(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # appenders take turns, so a cut-back never cuts another's line
            failpoint("append")
            _append_whole(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)


def _append_whole(fd: int, data: bytes) -> None:
    start = os.fstat(fd).st_size
    if start and os.pread(fd, 1, start - 1) != b"\n":
        data = b"\n" + data  # the last line was torn: start on a fresh one (readers skip the torn one)
    try:
        written = os.write(fd, data)
    except OSError:
        os.ftruncate(fd, start)  # nothing of ours stays (a write that failed may still have left bytes)
        raise
    if written != len(data):
        os.ftruncate(fd, start)
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (only {written} of {len(data)} bytes written)")


def read_json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Yield each valid JSON object line; a torn last line (crash mid-append) is skipped."""
    try:
        with open(path, "rb") as fh:
            for raw in fh:
                with contextlib.suppress(ValueError):
                    obj = json.loads(raw)
                    if isinstance(obj, dict):
                        yield obj
    except FileNotFoundError:
        return


@contextlib.contextmanager
def locked_folder(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on the folder itself: a lock that needs no lock file made or left behind."""
    with storage_errors(str(path)):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (created if needed). Yields False if non-blocking and busy."""
    ensure_dir(path.parent)
    with storage_errors(str(path)):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
