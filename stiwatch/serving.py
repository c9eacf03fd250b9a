"""Which `stiwatch serve` processes have a store open: each announces itself in a lock file
beside the database, which `stiwatch restore` reads.

A restore renames another file into the database's place: a `serve` started before goes on
serving the file it opened (the replaced store, under its old inode) until it is restarted, and
nothing told the operator. Each serve holds a shared ``flock`` on ``<database>.serve.lock`` for
as long as it runs and appends a line to it (pid, start time, address). The kernel releases the
lock when the process ends however it ends (SIGKILL, a crash), so a lock nobody holds says no
serve runs, whatever lines the file still has; the last serve to stop removes the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
import fcntl
import os
from pathlib import Path

# Attempts at taking the lock of a file another serve removes at that moment (it stopped).
_ATTEMPTS = 5


def serve_lock_path(database: str | os.PathLike[str]) -> Path:
    """The file the serves of the store at ``database`` (the file itself, links resolved)
    announce themselves in."""
    return Path(f"{Path(database).resolve()}.serve.lock")


@dataclass
class Serving:
    """A `stiwatch serve` that has the store open (None: it could not write its line)."""

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
        """Take the shared lock and write this serve's line; the reason it could not (a
        folder this user may not write), None when announced."""
        for _ in range(_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
                writable = True
            except OSError as error:
                try:  # made by another user: locked all the same, without a line
                    fd, writable = os.open(self.path, os.O_RDONLY), False
                except OSError:
                    return error.strerror or str(error)
            try:
                alone = _try_lock(fd, fcntl.LOCK_EX)
                if alone and writable:
                    os.ftruncate(fd, 0)  # lines of serves ended outright: none holds it
                fcntl.flock(fd, fcntl.LOCK_SH)
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    raise FileNotFoundError  # the last serve removed it meanwhile: again
                if writable:
                    started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    os.write(fd, f"{os.getpid()} {started} {self.url}\n".encode())
            except FileNotFoundError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return None
        return "another serve kept removing it"

    def stop(self) -> None:
        """Release the lock; the last serve to stop removes the file."""
        if self._fd is None:
            return
        try:
            if _try_lock(self._fd, fcntl.LOCK_EX):
                Path(self.path).unlink(missing_ok=True)
        except OSError:
            pass  # a folder it may not write: the file stays, and says nothing once unlocked
        finally:
            os.close(self._fd)
            self._fd = None


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def running_serves(database: str | os.PathLike[str]) -> list[Serving]:
    """The serves that have the store at ``database`` open now, by the lines of those still
    alive; one of unknown pid when the lock is held but no line names a live process."""
    path = serve_lock_path(database)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return []
    try:
        if _try_lock(fd, fcntl.LOCK_EX):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return []  # a file left by serves ended outright (SIGKILL): none runs
        text = Path(path).read_text(errors="replace")
    finally:
        os.close(fd)
    found = []
    for line in text.splitlines():
        fields = line.split(maxsplit=2)
        if len(fields) == 3 and fields[0].isdigit() and _alive(int(fields[0])):
            found.append(Serving(int(fields[0]), fields[1], fields[2]))
    return found or [Serving(None, None, None)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True
