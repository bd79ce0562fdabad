"""The append-only file that carries invalidations between the workers of one machine.

Each worker reads it from where its last request left off, but only when its end moved: every writer
stores the file's new end in an 8-byte memory-mapped file beside it (`<file>-seq`), so a request
that finds it unchanged makes no system call (a `read()` per request was ~3% of a worker's CPU).
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from pathlib import Path

log = logging.getLogger("gateway.identity")

CLOEXEC = getattr(os, "O_CLOEXEC", 0)
READ_SIZE = 1 << 16


class InvalidationFile:
    """`append()` lines; `read_new()` the lines other writers appended since the last call."""

    #: What `read_new()` returns when the file was removed or truncated by hand: drop everything.
    REPLACED = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None  # the file, open for reading from `_offset`
        self._offset = 0
        self._inode = 0
        self._checked = 0.0  # when the path was last checked for a replaced or truncated file
        self._end: mmap.mmap | None = None  # where the last writer's lines ended (8 bytes, shared)
        self._end_seen = b""

    def open(self) -> None:
        """(Re)open the file at its end: what was written before is in no cache yet."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        self.close()
        self._fd = os.open(self.path, os.O_RDONLY | CLOEXEC)
        st = os.fstat(self._fd)
        self._inode, self._offset = st.st_ino, st.st_size
        try:
            fd = os.open(f"{self.path}-seq", os.O_RDWR | os.O_CREAT | CLOEXEC, 0o644)
            try:
                if os.fstat(fd).st_size < 8:
                    os.ftruncate(fd, 8)
                self._end = mmap.mmap(fd, 8)
            finally:
                os.close(fd)
        except (OSError, ValueError) as exc:
            log.warning("cache invalidation: cannot map %s-seq (%s); reading the file on every request",
                        self.path, exc)
            return
        self._end_seen = self._end[:8]

    def append(self, data: bytes) -> None:
        """Append whole lines, then say where they end."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            end = os.lseek(fd, 0, os.SEEK_CUR)  # after an O_APPEND write: the end of these lines
        finally:
            os.close(fd)
        if self._end is not None:
            # Every write stores a different end, so a reader that saw one value and finds another
            # reads the file, even when two writers store theirs out of order.
            self._end[:8] = end.to_bytes(8, "little")

    def read_new(self) -> list[str] | None:
        """The lines appended since the last call (a look at the shared end, and a `read()` only
        when it moved). Once a second the file is read anyway and its path checked: `REPLACED`
        when it was removed or truncated by hand (it is then reopened)."""
        if self._fd is None:
            return []
        now = time.monotonic()
        if now - self._checked > 1.0:
            self._checked = now
            try:
                st = os.stat(self.path)
                replaced = st.st_ino != self._inode or st.st_size < self._offset
            except FileNotFoundError:
                replaced = True
            if replaced:
                self.open()
                return self.REPLACED
        elif self._end is not None:
            end = self._end[:8]
            if end == self._end_seen:
                return []
            self._end_seen = end
        data = os.pread(self._fd, READ_SIZE, self._offset)
        whole = data.rfind(b"\n") + 1  # whole lines only; a line being written is read next time
        if whole < len(data) or len(data) == READ_SIZE:
            self._end_seen = b""  # more to read: look again next time, moved or not
        self._offset += whole
        return data[:whole].decode(errors="replace").splitlines()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._end is not None:
            self._end.close()
            self._end = None
