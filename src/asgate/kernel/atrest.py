"""Files at rest: everything asgate keeps in its data directory is its owner's only.

Folders are created ``0700`` and files ``0600`` whatever the process umask is (the mode is set
explicitly after creation, never left to the umask), and files found with wider modes (an older
version, a copy) are narrowed when asgate opens them. SQLite creates a database's ``-wal`` and
``-shm`` files with the database file's own mode (os_unix.c, ``findCreateFileMode``), so the
database file is created ``0600`` before SQLite ever opens it.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) owner-only; narrow it if it exists."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for created in missing:  # mkdir's mode is subject to the umask
        os.chmod(created, DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing; owner-only either way (its content is left alone)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Replace ``path`` atomically with ``data`` (a crash leaves the old file or the new one),
    owner-only from its first byte."""
    tmp = path.with_name(f"{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), FILE_MODE)
        out.write(data)
        if fsync:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)


def sqlite_database(database: Path) -> None:
    """Before SQLite opens ``database``: its folder (when asgate creates it) ``0700``, the file and
    whatever companions exist ``0600``; new companions then inherit ``0600`` from the file."""
    if not database.parent.exists():
        private_dir(database.parent)
    private_file(database)
    for suffix in SQLITE_COMPANIONS:
        companion = database.with_name(database.name + suffix)
        if companion.exists():
            os.chmod(companion, FILE_MODE)
