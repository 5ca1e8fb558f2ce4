"""Writing files whole or not at all: write to a hidden partial name, then rename.

A reader never sees a half-written file under the target's name: the data goes
to ``.<name>.<pid>.partial`` in the same folder (so the rename is atomic on one
file system) and is renamed over the target only once complete. A process
killed mid-write leaves its partial file behind; the next write into the same
folder removes partial files whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from typing import Iterator

PARTIAL_SUFFIX = ".partial"
_PARTIAL_NAME = re.compile(r"^\..+\.(\d+)\.partial$")


def partial_path(target: str) -> str:
    """The hidden name ``target`` is written under until it is complete."""
    folder, name = os.path.split(os.path.abspath(target))
    return os.path.join(folder, f".{name}.{os.getpid()}{PARTIAL_SUFFIX}")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours: possibly another thread's write in progress
    if os.name != "posix":  # on Windows os.kill(pid, 0) would terminate the process
        try:
            import psutil  # a ComfyUI requirement
        except ImportError:
            return True  # cannot tell: leave it
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot tell): leave it
    return True


def remove_stale_partials(folder: str) -> list[str]:
    """Delete the partial files (or folders) in ``folder`` left by processes that no longer run; returns them."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        found = _PARTIAL_NAME.match(name)
        if found is None or _process_alive(int(found.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            _remove(path)
            removed.append(path)
        except OSError:
            pass
    return removed


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _flush_to_disk(path: str) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextmanager
def atomic_write(target: str) -> Iterator[str]:
    """Yield a temporary path to write ``target``'s content to; on success it becomes ``target``.

    The folder is created if needed, stale partial files in it are removed first,
    and on any exception (Ctrl-C included) the temporary file is deleted and
    ``target`` is left as it was. The caller may make the temporary path a folder
    (a png sequence); it is then renamed whole.
    """
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    remove_stale_partials(folder)
    temporary = partial_path(target)
    try:
        yield temporary
        if os.path.isfile(temporary):
            _flush_to_disk(temporary)
        os.replace(temporary, target)
    except BaseException:
        if os.path.lexists(temporary):
            _remove(temporary)
        raise
