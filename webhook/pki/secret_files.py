"""Writing secret files (private keys): atomic, 0600 from creation, never through a symlink.

Why: opening the target itself with O_CREAT|O_TRUNC keeps an existing file's mode (a 0644 file stays
world-readable after a --force rewrite) and follows a symlink at that path (a dangling link makes the key
appear wherever it points). Instead the data goes to a fresh temp file in the same folder, created with
O_EXCL|O_NOFOLLOW and mode 0600, fsynced, then renamed over the target with os.replace, which replaces a
symlink at the destination rather than following it. Readers see the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class SecretExistsError(FileExistsError):
    """Something (a file, a link, even a dangling one) is at the path and replacing it was not asked for."""


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_MODE, force: bool = False) -> None:
    """Put `data` at `path`, created with `mode` (less the umask); SecretExistsError if something is there and
    not `force`."""
    if not force and os.path.lexists(path):
        raise SecretExistsError(f"{path} already exists; pass --force to replace it")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, _CREATE, mode)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if not force and os.path.lexists(path):  # appeared meanwhile: still never replaced without force
            raise SecretExistsError(f"{path} already exists; pass --force to replace it")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_private_key(path: Path, pem: bytes, *, force: bool = False) -> None:
    """A private key: 0600, atomic, no symlink followed (see the module docstring)."""
    write_atomic(path, pem, mode=PRIVATE_MODE, force=force)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(directory: Path) -> None:
    """Persist the rename too, so a crash cannot leave the name pointing at nothing."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
