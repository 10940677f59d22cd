"""File helpers: every write tfcpu makes is atomic (temp file in the same directory + rename).

Outputs are checked before the work (`check_writable()`), written with the user's umask (a new
file is ``0666 & ~umask``, a replaced file keeps its mode) and any ``OSError`` on the way becomes an
`OutputError` that names the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from tfcpu.errors import OutputError

__all__ = ["atomic_write_bytes", "atomic_write_text", "check_not_input", "check_writable", "output_error"]

_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_error(exc: OSError, path: str | os.PathLike[str]) -> OutputError:
    """The `OutputError` for an ``OSError`` raised while writing ``path``."""
    where = str(path)
    if exc.errno in _FULL:
        return OutputError(
            "no space left to write the output",
            where=where,
            why=os.strerror(exc.errno or errno.ENOSPC),
            hint="free some space on that file system, or write elsewhere with -o/--output",
        )
    if exc.errno in _DENIED:
        return OutputError(
            "the output directory is not writable",
            where=where,
            why=exc.strerror or "permission denied",
            hint="choose a directory you can write to with -o/--output, or fix its permissions",
        )
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return OutputError(
            "the output path is not usable",
            where=where,
            why=exc.strerror or "a part of the path is a file, or the output is a directory",
            hint="choose a path whose parent is a directory, with -o/--output",
        )
    return OutputError(
        "could not write the output", where=where, why=exc.strerror or str(exc), hint="write elsewhere with -o/--output"
    )


def _real(path: Path) -> Path:
    """``path`` with every link resolved (a missing tail is kept as written)."""
    return Path(os.path.realpath(path))


def check_not_input(
    output: str | os.PathLike[str], inputs: list[Path], *, overwrite: bool = False, what: str = "-o"
) -> None:
    """Refuse an output that would lose an input: it is, is inside, or links to an input file or directory.

    Links are followed on both sides, so a symlink (or a hard link) to the input counts as the input.
    Replacing an input *file* by itself is allowed with ``overwrite`` (``--overwrite``): the user
    named it; an output inside an input directory (a SavedModel's ``saved_model.pb``, its
    variables) or an output directory holding an input is never allowed.

    Args:
        output: the path about to be written.
        inputs: the files and directories the command reads (paths that do not exist are ignored).
        overwrite: the user asked to replace the input file in place.
        what: how the output is named in messages (``"-o"``).

    Raises:
        ConfigError: the output would replace, or write inside, an input (exit 2).
    """
    from tfcpu.errors import ConfigError

    out = _real(Path(output))
    for source in inputs:
        if not source.exists():
            continue
        real = _real(source)
        same = out == real or (out.exists() and os.path.samefile(out, real))
        if same and real.is_file():
            if overwrite:
                continue
            raise ConfigError(
                f"{what} is the input file",
                where=f"{output} -> {real}" if Path(output) != real else str(output),
                hint="write elsewhere, or pass --overwrite to replace it",
            )
        if same or real in out.parents:
            raise ConfigError(
                f"{what} is inside the input {'directory' if real.is_dir() else 'model'}",
                where=f"{output} (input: {source})",
                why="writing there would change the model being read",
                hint="write the output outside the input directory",
            )
        if out in real.parents:
            raise ConfigError(
                f"{what} is a directory that holds the input",
                where=f"{output} (input: {source})",
                why="writing there could replace the model being read",
                hint="choose an output directory that does not contain the input",
            )


def check_writable(path: str | os.PathLike[str], *, directory: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written (its missing parents created).

    Args:
        path: the file (or, with ``directory=True``, the directory) tfcpu is going to write.
        directory: ``path`` is an output directory, not a file.

    Returns:
        ``path`` as a `Path`.

    Raises:
        OutputError: a part of the path is a file, the output is a directory where a file is
            expected (or the reverse), or the nearest existing directory is not writable.
    """
    target = Path(path)
    if target.exists() and target.is_dir() != directory:
        why = "it is a directory" if target.is_dir() else "it is a file, not a directory"
        raise OutputError("the output path is not usable", where=str(target), why=why, hint="choose another path")
    start = target if directory else target.parent
    existing = start.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            "the output path is not usable",
            where=str(target),
            why=f"{existing} is a file, not a directory",
            hint="choose a path whose parent is a directory, with -o/--output",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise output_error(OSError(errno.EACCES, "permission denied", str(existing)), existing)
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never part.

    When ``path`` is a symbolic link, the file it names is replaced and the link is kept.

    Args:
        path: the file to write; missing parent directories are created.
        data: the whole content.

    Returns:
        ``path`` as a `Path`.

    Raises:
        OutputError: the file could not be written (permissions, no space, a parent is a file).
    """
    named = Path(path)
    # A link is written through, never replaced: the new content lands in the file it names.
    target = _real(named) if named.is_symlink() else named
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise output_error(exc, target) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise output_error(exc, target) from exc
        raise
    return named


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """`atomic_write_bytes` of ``text`` encoded as UTF-8.

    Args:
        path: the file to write.
        text: the whole content.

    Returns:
        ``path`` as a `Path`.
    """
    return atomic_write_bytes(path, text.encode())
