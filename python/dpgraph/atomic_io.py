"""Writes that never destroy a user's file, and output paths checked before any work.

:func:`atomic_write` yields a temporary path in the target's directory; the
caller writes it, an optional ``check`` reads it back, and only then is it
renamed over the target (``os.replace``, atomic within one file system). If
writing, the check or the process is interrupted before the rename, the target
keeps its previous content and the temporary file is removed.

:func:`check_output_path` refuses, before any computation, an output path that
cannot be written: a directory, a parent that is a file, a read-only directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def check_output_path(path: str | Path, what: str = "output file") -> Path:
    """``path`` as a Path if a file can be written there (missing parents are fine); else raise OSError."""
    path = Path(path)
    if str(path) == "" or path.name in ("", ".", ".."):
        raise IsADirectoryError(f"{what} {str(path)!r} is not a file name")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a directory; give the path of a file inside it, "
                                f"e.g. {path / ('out' + path.suffix if path.suffix else 'out')}")
    anc = path.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise NotADirectoryError(f"cannot write {what} {path}: {anc} is a file, not a directory")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {what} {path}: the directory {anc} is not writable")
    if path.exists() and not os.access(path, os.W_OK) and not os.access(path.parent, os.W_OK):
        raise PermissionError(f"cannot write {what} {path}: the file and its directory are read-only")
    return path


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path: str | Path, check: Callable[[Path], object] | None = None,
                 what: str = "output file") -> Iterator[Path]:
    """Context manager: yields a temporary path next to ``path``; on success it replaces ``path``.

    The temporary name keeps the target's suffix (``.x.pt2.tmp-XXXX.pt2`` for
    ``x.pt2``) for writers that insist on one. ``check(tmp)`` runs after the
    body; an exception there (or in the body) leaves ``path`` untouched.
    """
    path = check_output_path(path, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(f"writing {what} {path} produced no data")
        if check is not None:
            check(tmp)
        with open(tmp, "rb+") as fh:  # the data is on disk before the rename makes it visible
            os.fsync(fh.fileno())
        try:
            mode = path.stat().st_mode & 0o7777  # keep the mode of the file being replaced
        except FileNotFoundError:
            mode = _default_mode()  # mkstemp creates 0600; a new file gets the usual umask mode
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, Exception) and len(err.args) == 1 and isinstance(err.args[0], str):
            note = f" ({path} was not written" + (", the previous file is unchanged)" if path.exists() else ")")
            err.args = (err.args[0].replace(str(tmp), str(path)) + note,)
        raise


def atomic_copy(src: str | Path, dst: str | Path, what: str = "output file") -> Path:
    """Copy ``src`` to ``dst`` through :func:`atomic_write` (a partial copy never replaces ``dst``)."""
    import shutil

    with atomic_write(dst, what=what) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)
