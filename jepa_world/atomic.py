"""Atomic file writes: readers see the old file or the complete new one, never a partial write."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Persist a rename in ``directory`` (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _umask_mode() -> int:
    """The mode ``open()`` would give a new file: ``0o666`` minus the process umask."""
    mask = os.umask(0)  # the only way to read it; set straight back
    os.umask(mask)
    return 0o666 & ~mask


#: Read once at import (in the importing thread): changing the umask, even for a moment, while
#: other threads create files would give those files the wrong permissions.
_FILE_MODE = _umask_mode()


def atomic_write(target: str | Path, write: Callable[[str], None],
                 keep_suffix: bool = False) -> Path:
    """Call ``write(tmp_path)`` on a temp file next to ``target``, fsync it, rename it over
    ``target``; the temp file is removed if anything fails. Parent folders are created. The file
    gets the usual permissions (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``,
    so others who may read the folder can read checkpoints and results too.

    The temp name is ``.<name>.<random>.tmp``; ``keep_suffix`` makes it end in the target's
    suffix instead (``.<name>.<random>.tmp.mp4``), for writers that choose the format by it
    (ffmpeg)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{target.suffix}" if keep_suffix else ".tmp"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        _pause_for_crash_tests(target)
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _pause_for_crash_tests(target: Path) -> None:
    """Test hook: with ``JEPA_WORLD_TEST_PAUSE_WRITE=<file name>`` set, a write of that name
    waits an hour before its rename, so a crash test can kill the process mid-checkpoint."""
    if os.environ.get("JEPA_WORLD_TEST_PAUSE_WRITE") == target.name:
        time.sleep(3600)


def atomic_write_text(target: str | Path, text: str) -> Path:
    return atomic_write(target, lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    return atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))
