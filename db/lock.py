"""Advisory lock files beside the store, so two writers of one kind never overlap.

``flock`` is released by the kernel when the process dies, so a process killed by SIGKILL or a
reboot never leaves a stale lock behind (unlike "does the file exist" locks).
"""

from __future__ import annotations

import fcntl
import os
import pwd
from pathlib import Path
import time
from types import TracebackType


# What a lock's holder wrote that is read back: a pid and a newline.
HOLDER_BYTES = 64


def parse_holder(text: str) -> tuple[str, str | None]:
    """(pid, label) from what a FileLock's holder wrote: its pid, then what it is if it said
    (``stiwatch init``)."""
    pid, _, label = text.strip().partition(" ")
    return pid or "unknown", label.strip() or None


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is what it wrote (its pid, and its
    ``label`` if it gave one), ``pid`` and ``label`` the two parts."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder
        self.pid, self.label = parse_holder(holder)
        # The file names its last stiwatch holder; a process that is not one (`flock FILE
        # ...`, as operations.md's restore by hand uses) writes nothing, so the name is then
        # of a stiwatch that has ended: the operator would look for, or kill, the wrong pid.
        self.ended = self.pid.isdigit() and not _alive(int(self.pid))
        self.actual = _flock_holders(path) if self.ended else []
        super().__init__(f"{path} is held by {self.who('a process')}")

    def who(self, otherwise: str) -> str:
        """The holder for a message: "`stiwatch init` (pid 12)" when it said what it is,
        else ``otherwise`` with its pid (a holder from before labels, or one without); when
        that process has ended, the process that holds the lock now, not being a stiwatch."""
        named = f"`{self.label}` (pid {self.pid})" if self.label else f"{otherwise} (pid {self.pid})"
        if not self.ended:
            return named
        actual = ", ".join(f"pid {pid} ({_command(pid)})" for pid in self.actual)
        return (f"a process that is not a stiwatch ({actual or 'pid unknown'}; the lock file "
                f"still names {named}, which has ended)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


def _flock_holders(path: Path) -> list[int]:
    """The pids /proc/locks gives for flocks on ``path`` (Linux; [] elsewhere or unknown)."""
    try:
        stat = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return []
    device = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    pids = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2261187 0 EOF" (a blocked waiter: "-> FLOCK")
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device \
                and fields[4].isdigit() and int(fields[4]) not in pids:
            pids.append(int(fields[4]))
    return pids


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read().strip() or "?"
    except OSError:
        return "?"


class LockUnusable(Exception):
    """The lock file cannot be created or opened (its folder is a file, it is a folder, no
    permission): a configuration the user must fix."""


class FileLock:
    """An exclusive flock on ``path``, which holds the holder's pid and ``label`` (what it is,
    e.g. ``stiwatch init``: one line, cut to fit HOLDER_BYTES) for whoever finds it held."""

    def __init__(self, path: str | os.PathLike[str], label: str | None = None) -> None:
        self.path = Path(path)
        self.label = " ".join((label or "").split())[:HOLDER_BYTES - 12] or None
        self._fd: int | None = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, trying for up to ``wait`` seconds; LockHeld if it stays taken."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise LockUnusable(f"{self.path}: cannot use it as a lock file "
                               f"({why_unopenable(self.path, error)})") from None
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.lseek(fd, 0, os.SEEK_SET)
                    holder = _read_holder(fd, HOLDER_BYTES)
                    os.close(fd)
                    raise LockHeld(self.path, holder) from None
                # Polled rather than a blocking flock, so SIGTERM or Ctrl-C still stop a
                # waiting run at once and the wait keeps its bound.
                time.sleep(min(1.0, remaining))
            except BaseException:
                os.close(fd)
                raise
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}{' ' + self.label if self.label else ''}\n".encode())
        except OSError as error:  # a full disk: the pid, the next run's clue, cannot be kept
            os.close(fd)
            raise LockUnusable(f"{self.path}: cannot use it as a lock file "
                               f"({error.strerror or error})") from None
        self._fd = fd

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def holder_of(path: str | os.PathLike[str], *, size: int = HOLDER_BYTES,
              unreadable: str | None = None) -> str | None:
    """What the process holding the lock at ``path`` wrote in it (its pid, for a FileLock; the
    first ``size`` bytes, stripped; "unknown" when empty); None when none holds it, or there
    is no such file. A file that exists but cannot be opened or locked (another user's, mode
    0600) gives ``unreadable``: None, as not held, or a text, as held by someone unknown.
    Takes nothing and makes nothing: also for a user who may only read the folder."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:
        return unreadable
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd, size)
        except OSError:
            return unreadable
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(fd: int, size: int) -> str:
    return os.read(fd, size).decode(errors="replace").strip() or "unknown"


def why_unopenable(path: Path, error: OSError) -> str:
    """Why ``path`` could not be created or opened, in words that say what to fix: the file
    in the way of its folder (the OS says only "File exists" or "Not a directory"), or, for a
    permission error, the user (most often a file or folder a command run as root made, which
    the service user cannot write: the fix is an owner or a mode)."""
    blocking = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
    if blocking is not None:
        return f"{blocking} is a file, not a folder"
    reason = error.strerror or str(error)
    if isinstance(error, PermissionError):
        reason += (f": user {_user()} may not create or open it; check the owner and mode of "
                   "the file and of its folder")
    return reason


def _user() -> str:
    """The name of the user this process runs as (its uid when it has no name)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
