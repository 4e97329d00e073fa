"""Overwrite-then-remove for files that held personal data or keys (R8.1, R8.2).

Overwriting in place defeats reading the file's old blocks back through the file system; it does
not reach copies a journaling or copy-on-write file system or an SSD's wear levelling kept
elsewhere — which is why the data is also encrypted and its keys destroyed (docs/compliance.md).
"""

from __future__ import annotations

import os
from pathlib import Path

BLOCK = 1 << 20


def shred_file(path: str | Path) -> int:
    """Overwrite the file with random bytes (flushed to disk), then unlink it. Returns its size, or
    -1 when there was no such file."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return -1
    if path.is_symlink() or not path.is_file():
        path.unlink()  # a link's target is not ours to overwrite
        return 0
    with open(path, "r+b", buffering=0) as fh:
        left = size
        while left > 0:
            step = min(BLOCK, left)
            fh.write(os.urandom(step))
            left -= step
        fh.flush()
        os.fsync(fh.fileno())
    path.unlink()
    return size


def shred_tree(folder: str | Path) -> int:
    """Shred every file below ``folder`` and remove the folders; returns the number of files."""
    folder = Path(folder)
    if not folder.exists():
        return 0
    count = 0
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            shred_file(Path(root) / name)
            count += 1
        for name in dirs:
            target = Path(root) / name
            if target.is_symlink():
                target.unlink()
            else:
                target.rmdir()
    folder.rmdir()
    return count
