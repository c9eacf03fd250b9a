"""Which `stiwatch serve` processes have a store open: each announces itself in a file of its own
beside the database, which `stiwatch restore` reads.

A restore renames another file into the database's place: a `serve` started before goes on
serving the file it opened (the replaced store, under its old inode) until it is restarted, and
nothing told the operator. Each serve makes ``<database>.serve.<pid>.lock`` (its start time and
address in it) and holds an exclusive ``flock`` on it for as long as it runs; it removes the file
when it stops. The kernel releases the lock when the process ends however it ends (SIGKILL, a
crash), so a file nobody holds is a record of a serve gone, whatever pid it names (that pid may
be another process's by now): it counts for nothing, and the next restore removes it. The file
is written and locked under another name and hard-linked into place; on a file system without
hard links (vfat, some network and FUSE mounts) it is made in place with O_EXCL, written, then
locked (see ``Announcement._created`` for why a restore never reads it half-written there).

(Until this layout, every serve wrote a line into one shared ``<database>.serve.lock``: a serve
that could not write that file, made by another user, was named "pid unknown", and the line of
a serve killed outright stayed while another ran, naming its pid once reused.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
import fcntl
import os
from pathlib import Path

from db.lock import holder_of

# Attempts at announcing where a record of the same pid, left by a serve gone, is in the way.
_ATTEMPTS = 5
_SUFFIX = ".lock"
_LINE_BYTES = 4096  # of an announcement: pid, start time, address


def _prefix(database: str | os.PathLike[str]) -> Path:
    return Path(f"{Path(database).resolve()}.serve.")


def serve_lock_path(database: str | os.PathLike[str], pid: int | None = None) -> Path:
    """The file the serve of pid ``pid`` (this process by default) of the store at
    ``database`` (the file itself, links resolved) announces itself in."""
    return Path(f"{_prefix(database)}{pid or os.getpid()}{_SUFFIX}")


@dataclass
class Serving:
    """A `stiwatch serve` that has the store open."""

    pid: int | None
    started_at: str | None
    url: str | None

    def describe(self) -> str:
        """`pid 123, http://127.0.0.1:8001/stiwatch`, as far as it is known."""
        parts = [f"pid {self.pid}" if self.pid is not None else "pid unknown"]
        if self.url:
            parts.append(self.url)
        return ", ".join(parts)

    def as_json(self) -> dict[str, object]:
        return {"pid": self.pid, "started_at": self.started_at, "url": self.url}


class Announcement:
    """This process's announcement, held from ``start`` to ``stop``."""

    def __init__(self, database: str | os.PathLike[str], url: str) -> None:
        self.path = serve_lock_path(database)
        self.url = url
        self._fd: int | None = None

    def start(self) -> str | None:
        """Make this serve's file, never seen half-written by a restore; the reason it could
        not (a folder this user may not write), None when announced."""
        started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{os.getpid()} {started} {self.url}\n".encode()
        try:
            fd = self._linked(line)
            if fd is None:
                # A file system without hard links (vfat, some network and FUSE mounts):
                # os.link raised EPERM, EOPNOTSUPP or ENOSYS where ext4 or NFS make the link.
                fd = self._created(line)
        except _Refused as refused:
            return str(refused)
        except OSError as error:
            return error.strerror or str(error)
        self._fd = fd
        return None

    def _linked(self, line: bytes) -> int | None:
        """The file written and locked under a name no restore reads, then linked into place:
        a file with the final name is always whole and held while its serve runs. None when
        the file system makes no hard links."""
        temp = self.path.with_name(self.path.name.removesuffix(_SUFFIX) + ".new")
        temp.unlink(missing_ok=True)  # this pid's, so left by a process gone
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _write_all(fd, line)
            for _ in range(_ATTEMPTS):
                try:
                    os.link(temp, self.path)
                    return fd
                except FileExistsError:
                    self._clear_the_way()
                except OSError:
                    os.close(fd)
                    return None
            raise _Refused("a file of the same name kept coming back")
        except BaseException:
            os.close(fd)
            raise
        finally:
            try:
                temp.unlink()
            except OSError:
                pass

    def _created(self, line: bytes) -> int:
        """The file made in place with O_EXCL, for a file system without hard links."""
        for _ in range(_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._clear_the_way()
                continue
            try:
                # Written before it is locked: a reader reads a file only once it found its
                # lock held (db.lock.holder_of), so after the write returned, and never reads
                # it half-written. Until the lock is taken the file is unlocked, as a dead
                # serve's: a restore reading then counts it for nothing (as a serve starting a
                # moment later) and may remove it, so once locked it must still be the file at
                # the path, or it is made again.
                _write_all(fd, line)
                fcntl.flock(fd, fcntl.LOCK_EX)
                if _is_at(fd, self.path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise _Refused("a file of the same name kept coming back")

    def _clear_the_way(self) -> None:
        """Remove a file of this pid left by a serve gone; _Refused if one is held."""
        if not _remove_if_stale(self.path):
            # another PID namespace's serve of the same pid, in a shared folder
            raise _Refused(f"{self.path} is held by another serve")

    def stop(self) -> None:
        """Remove this serve's file and release its lock."""
        if self._fd is None:
            return
        try:
            if _is_at(self._fd, self.path):
                self.path.unlink()
        except OSError:
            pass  # gone, or a folder it may no longer write: unlocked, it says nothing
        finally:
            os.close(self._fd)
            self._fd = None


class _Refused(Exception):
    """This serve cannot announce itself under its name (a held file of the same name)."""


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the one at ``path`` (not removed nor replaced)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _remove_if_stale(path: Path) -> bool:
    """Remove ``path`` if no process holds its lock; whether it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        if not _try_lock(fd, fcntl.LOCK_EX):
            return False
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                path.unlink()
        except FileNotFoundError:
            pass
        return True
    finally:
        os.close(fd)


def running_serves(database: str | os.PathLike[str]) -> list[Serving]:
    """The serves that have the store at ``database`` open now: one per file whose lock is
    held. The files of serves gone are removed where this user may."""
    prefix = _prefix(database)
    try:
        names = sorted(os.listdir(prefix.parent))
    except OSError:
        return []
    found = []
    for name in names:
        pid = name.removeprefix(prefix.name).removesuffix(_SUFFIX)
        if not (name.startswith(prefix.name) and name.endswith(_SUFFIX) and pid.isdigit()):
            continue
        path = prefix.parent / name
        # An announcement this user may not read is held, as far as anyone knows ("": its
        # start and address unknown); its line, with a long address, exceeds a pid's 64 bytes.
        text = holder_of(path, size=_LINE_BYTES, unreadable="")
        if text is None:  # a serve gone (or stopped meanwhile)
            try:
                _remove_if_stale(path)
            except OSError:
                pass  # another user's, in a folder this one may not write: ignored
            continue
        fields = text.split(maxsplit=2)
        started, url = (fields[1], fields[2].strip()) if len(fields) == 3 else (None, None)
        found.append(Serving(int(pid), started, url))
    return found
