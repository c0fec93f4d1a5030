"""Every file netspec writes or reads from a user's path goes through here.

Writing: `atomic_write` puts the bytes in a uniquely named temporary file in the target's
folder, fsyncs it, renames it over the target and fsyncs the folder, so a reader (or a
process killed at any moment) sees the old file or the complete new one, never a mix; on
any error the old file stays and the temporary is removed. Temporaries of dead processes
are cleaned on the next write. A symbolic link at the target is refused: netspec never
writes through a link into somewhere else.

Reading: `open_regular` opens without blocking and refuses anything but a regular file (a
FIFO would hang the reader, `/dev/zero` never ends) and files over a size limit, before a
byte is read. No torch here: the compiler and `netspec check` use it too.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Union

from netspec.errors import NetspecError

__all__ = ["NotRegularFile", "TEMP_SUFFIX", "atomic_write", "clean_temporaries", "open_regular", "read_regular"]

TEMP_SUFFIX = ".netspec-tmp"
Writer = Callable[[BinaryIO], object]

# Fault injection for tests: called as hook(point, path) at "written" (the temporary is
# complete and fsynced, the target not yet replaced) and "replaced" (the target is the new
# file). Tests raise or os._exit there; in normal use it is None.
_hook: Callable[[str, Path], None] | None = None


class NotRegularFile(OSError):
    """A path names a FIFO, device, socket or folder where a file was expected, or too big a file."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Union[str, os.PathLike[str]], limit: int | None = None) -> BinaryIO:
    """Open `path` for reading only if it is a regular file of at most `limit` bytes.

    O_NONBLOCK makes opening a FIFO return at once (it would wait for a writer); the kind
    is then checked on the open descriptor, so a file swapped in between cannot slip by.
    Raises FileNotFoundError, IsADirectoryError or `NotRegularFile` (all OSErrors whose
    strerror says what is wrong).
    """
    fd = os.open(os.fspath(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"is {_kind(st.st_mode)}, not a regular file", str(path))
        if limit is not None and st.st_size > limit:
            raise NotRegularFile(errno.EFBIG, f"is {st.st_size:,} bytes, more than the limit of {limit:,}", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Union[str, os.PathLike[str]], limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (read at most limit + 1: a file
    that grows while being read is caught too)."""
    with open_regular(path, limit) as f:
        # The size first (a buffered read(n) reserves n bytes), then in chunks up to the limit.
        chunks = [f.read(os.fstat(f.fileno()).st_size)]
        total = len(chunks[0])
        while total <= limit:
            chunk = f.read(min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
    if len(data) > limit:
        raise NotRegularFile(errno.EFBIG, f"holds more than the limit of {limit:,} bytes", str(path))
    return data


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clean_temporaries(folder: Path, name: str | None = None) -> list[Path]:
    """Remove netspec temporaries (of `name`, or of every file) left in `folder` by processes
    that no longer run; returns what was removed."""
    removed = []
    prefix = f".{name}." if name is not None else "."
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX)):
            continue
        pid_part = entry.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1].split("-", 1)[0]
        if pid_part.isdigit() and (int(pid_part) == os.getpid() or _pid_alive(int(pid_part))):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders; the rename is done anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Union[str, os.PathLike[str]], data: Union[bytes, bytearray, memoryview, Writer]) -> Path:
    """Replace `path` by `data` (bytes, or a function writing to a binary file) atomically.

    Raises `NetspecError` for a symbolic link or a folder at `path`, OSError for the
    environment (read-only folder, full disk); in every failure the old file is untouched.
    """
    path = Path(path)
    if path.is_symlink():
        raise NetspecError(f"{path}: cannot write through a symbolic link (netspec never does; remove it or choose another name)")
    if path.is_dir():
        raise NetspecError(f"{path}: cannot write (is a directory; move it away or choose another name)")
    folder = path.parent
    clean_temporaries(folder, path.name)
    tmp = folder / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if _hook is not None:
            _hook("written", path)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
    if _hook is not None:
        _hook("replaced", path)
    return path
