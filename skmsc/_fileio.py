"""Files users depend on: replaced whole or not at all, and read without surprises.

- :func:`replace_folder`: build a folder beside its target and swap it in, so that at
  every moment the target holds either the complete old folder or the complete new one
  (a crash, an exception, a full disk or a concurrent writer leaves no mix);
- :func:`write_file_atomically`: the same for one file (temporary file, fsync, rename);
- :func:`open_regular_file`: open a file for reading, refusing FIFOs, devices, sockets and
  folders at once instead of blocking on them.

How a folder is swapped in. The new folder is written under a hidden name beside the
target (same file system, so renames are atomic), its files and itself are fsynced, and
then:

- no target yet: ``rename`` (atomic);
- a target exists: the two folders are exchanged in one step (Linux ``renameat2`` with
  ``RENAME_EXCHANGE``, macOS ``renamex_np`` with ``RENAME_SWAP``) and the old one, now
  under the hidden name, is deleted. Concurrent writers need no lock: each exchange is
  atomic and each writer deletes what its exchange brought out. Where the file system
  cannot exchange, writers take turns (``flock`` on the parent folder) to rename the old
  folder aside (``.NAME.skmsc-old-*``) and the new one in; a reader that finds no target
  in that instant uses the folder set aside (:func:`readable_folder`), so the old or the
  new folder can be read at every moment.

Hidden ``.NAME.skmsc-*`` folders left by a process that died mid-write are never read
as the target (except as above); a later write removes those of processes that no longer
run once they are an hour old.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "NotRegularFileError", "open_regular_file", "readable_folder", "replace_folder",
    "write_file_atomically",
]

# Leftovers of dead writers are removed once this old (a live writer may take a while).
STALE_SECONDS = 3600.0
# A writer waits this long for another to finish swapping in its folder.
LOCK_TIMEOUT_SECONDS = 60.0
_NEW, _OLD, _TMP = "new", "old", "tmp"


class NotRegularFileError(OSError):
    """A path names a FIFO, device, socket or folder where a regular file was expected.

    Examples
    --------
    >>> import tempfile
    >>> from skmsc._fileio import NotRegularFileError, open_regular_file
    >>> try:
    ...     open_regular_file(tempfile.gettempdir())
    ... except NotRegularFileError as exc:
    ...     print("folder" in str(exc))
    True
    """


def _kind(mode: int) -> str:
    for test, name in [(stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "FIFO (named pipe)"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket")]:
        if test(mode):
            return name
    return "special file"


def open_regular_file(path, *, dir_fd: int | None = None):
    """Open ``path`` for binary reading; a ``NotRegularFileError`` if it is not a file.

    The file is opened without blocking (``O_NONBLOCK``) and checked on the opened
    descriptor, so a FIFO (which would wait forever for a writer), a device such as
    ``/dev/zero`` (endless) or a folder is refused at once, even if the path changes
    between a check and the open.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, dir_fd=dir_fd) if dir_fd is not None else os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(
                errno.EINVAL, f"not a regular file but a {_kind(mode)}; pass an image "
                "or data file", os.fsdecode(path),
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# ------------------------------------------------------------------ writing
def _fsync_folder(folder: Path) -> None:
    """Make a folder's entries (renames, new files) durable; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows cannot open folders
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename is still atomic
    finally:
        os.close(fd)


def _hidden_name(target: Path, role: str) -> Path:
    """A fresh hidden name beside ``target``; the pid says which process made it."""
    return target.with_name(f".{target.name}.skmsc-{role}-{os.getpid()}-{secrets.token_hex(4)}")


def _default_file_mode(probe: Path) -> int:
    """The permissions a new file gets here (0o666 less the umask), read from ``probe``."""
    return stat.S_IMODE(os.stat(probe).st_mode)


def write_file_atomically(path, write: Callable) -> None:
    """Write ``path`` through ``write(file)`` on a temporary file, then rename it in place.

    The temporary file lies beside ``path`` and gets the permissions a new file gets
    (umask honoured); it is flushed and fsynced before the rename, and removed if
    anything fails, so ``path`` holds the old content or the whole new one, never part.
    """
    path = Path(os.path.abspath(path))
    temp = _hidden_name(path, _TMP)
    try:
        with open(temp, "xb") as file:  # a new file: 0o666 less the umask
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)


def _exchange_function():
    """The C call that swaps two paths atomically, as ``f(a, b) -> 0``, or ``None``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
    if hasattr(libc, "renameat2"):  # Linux, glibc >= 2.28
        at_fdcwd, rename_exchange = -100, 2
        return lambda a, b: libc.renameat2(at_fdcwd, a, at_fdcwd, b, rename_exchange)
    if hasattr(libc, "renamex_np"):  # macOS
        rename_swap = 2
        return lambda a, b: libc.renamex_np(a, b, rename_swap)
    return None


_EXCHANGE = _exchange_function()


def _exchange(first: Path, second: Path) -> None:
    """Swap two folders in one atomic step; ``OSError`` where the system cannot."""
    if _EXCHANGE is None:
        raise OSError(errno.ENOSYS, "no atomic exchange on this system")
    if _EXCHANGE(os.fsencode(first), os.fsencode(second)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(second))


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive ``flock`` on ``folder``: one writer at a time swaps in its result.

    Threads take turns too (each opens its own descriptor). Where locking is not
    available, or the lock stays taken for ``LOCK_TIMEOUT_SECONDS`` (a writer stuck or
    interrupted with the lock held), the write goes on without it: the exchange alone
    keeps every state whole, and a hang would be worse.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            except OSError:
                break  # e.g. NFS without folder locks
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_tree(folder: Path) -> None:
    """Delete a folder, best effort (a file system error leaves it for a later save)."""
    try:
        shutil.rmtree(folder, ignore_errors=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # finish before passing an interrupt on
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _remove_stale_leftovers(target: Path) -> None:
    """Delete ``.NAME.skmsc-*`` leftovers of dead processes, once they are an hour old."""
    prefix = f".{target.name}.skmsc-"
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            if not entry.name.startswith(prefix):
                continue
            try:
                pid = int(entry.name[len(prefix):].split("-")[1])
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except (IndexError, ValueError, OSError):
                continue
            if age > STALE_SECONDS and pid != os.getpid() and not _pid_alive(pid):
                if entry.is_dir(follow_symlinks=False):
                    _remove_tree(Path(entry.path))
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def _swap_in(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target``; the folder it replaces (if any) is deleted after."""
    if not os.path.lexists(target):
        try:
            os.rename(staging, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            # Another writer put a folder there meanwhile: exchange with it below.
    try:
        _exchange(staging, target)
    except OSError:
        # No atomic exchange here: concurrent writers take turns for the two renames.
        with _folder_lock(target.parent):
            _swap_by_renames(staging, target)
        return
    _fsync_folder(target.parent)
    _remove_tree(staging)  # now the old folder


def _swap_by_renames(staging: Path, target: Path) -> None:
    """Rename the old folder aside, the new one in, then delete the old one.

    For an instant there is no ``target``; :func:`readable_folder` then finds the old one.
    If anything fails, the old folder goes back unless the new one is already in place.
    """
    aside = _hidden_name(target, _OLD)
    try:
        os.rename(target, aside)
        os.rename(staging, target)
    except BaseException:
        if not os.path.lexists(target) and os.path.lexists(aside):
            os.rename(aside, target)  # the new one never got in: the old one goes back
        elif os.path.lexists(aside):
            _remove_tree(aside)  # the new one is in: this save is done
        raise
    try:
        _fsync_folder(target.parent)
    finally:
        _remove_tree(aside)


def replace_folder(target, fill: Callable[[Path], None],
                   check_replaceable: Callable[[Path], None] = lambda path: None) -> Path:
    """Create or replace the folder ``target`` with what ``fill(folder)`` writes, atomically.

    ``fill`` writes files into a new hidden folder beside ``target``; they are fsynced
    and given the permissions a plain new file and folder get (umask honoured), then the
    folder is swapped in (see the module docstring). ``check_replaceable(target)`` runs
    before and again under the lock, and raises if the existing ``target`` must not be
    replaced. On any failure ``target`` is left as it was and the new folder removed.

    Returns
    -------
    target : pathlib.Path
        The absolute path written (symbolic links resolved: a link keeps pointing at
        the folder, which is replaced).
    """
    target = Path(os.path.realpath(target))
    check_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _hidden_name(target, _NEW)
    try:
        os.mkdir(staging, 0o777)  # the umask applies, as to any folder a user makes
        fill(staging)
        for entry in os.scandir(staging):
            _fsync_file(Path(entry.path))
        _fsync_folder(staging)
        check_replaceable(target)  # again: the target may have changed meanwhile
        _swap_in(staging, target)
        _remove_stale_leftovers(target)
    except BaseException:
        _remove_tree(staging)
        raise
    return target


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_file(folder: Path, name: str) -> Path:
    """Create the empty file ``folder/name`` with a new file's permissions (umask honoured).

    Writers that create files their own way (e.g. safetensors writes 0600) can then copy
    this mode (:func:`give_default_mode`).
    """
    path = folder / name
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return path


def give_default_mode(path: Path, probe: Path) -> None:
    """Give ``path`` the permissions of ``probe`` (a file made by :func:`new_file`)."""
    os.chmod(path, _default_file_mode(probe))


def readable_folder(target) -> Path:
    """``target``, or where its previous content lies while a non-atomic swap is under way.

    Only where the file system cannot exchange folders is there an instant with no
    ``target``: its old content is then at ``.NAME.skmsc-old-*``. Returns ``target``
    itself when it exists or nothing was set aside.
    """
    target = Path(target)
    if os.path.lexists(target):
        return target
    prefix = f".{target.name}.skmsc-{_OLD}-"
    try:
        aside = [Path(e.path) for e in os.scandir(target.parent or ".")
                 if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return target
    if not aside:
        return target
    return max(aside, key=lambda p: p.stat().st_mtime)
