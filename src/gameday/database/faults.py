"""Damage done to backups on purpose, to prove the restore check notices."""

from __future__ import annotations

from pathlib import Path


def truncate_archive(archive: Path, keep: float = 0.5) -> Path:
    """Cut the archive's largest file to ``keep`` of its size, as an interrupted copy would.

    Returns the file that was cut.
    """
    files = [archive] if archive.is_file() else [p for p in archive.rglob("*") if p.is_file()]
    if not files:
        raise FileNotFoundError(f"{archive} holds no files to truncate")
    victim = max(files, key=lambda p: p.stat().st_size)
    size = victim.stat().st_size
    with open(victim, "r+b") as handle:
        handle.truncate(int(size * keep))
    return victim
