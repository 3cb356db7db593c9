"""Rule sources on disk: load them, list their files, fingerprint them for change detection.

A *source* is a rules directory, a rule file, or a sequence of those (the
``[rules] directory`` plus ``files`` of a config file). The hot-reload watcher
and the command line both go through here, so "what the gateway loaded" and
"what the watcher compares" are the same set of files.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acteon.rules._engine import RuleSet
from acteon.rules._frontends import load_rules, load_rules_dir

RULE_EXTENSIONS = (".yaml", ".yml", ".cel")

# Timestamps on some filesystems tick coarsely (1 s on ext3/HFS+, 2 s on FAT). A file
# whose mtime is this close to the previous scan may have been rewritten within the
# same tick without its size or mtime changing, so its content is hashed instead.
_RACY_WINDOW_NS = 2_000_000_000


def source_paths(source: Any) -> list[Path]:
    """The paths of a source: one for a path, each item for a sequence."""
    if isinstance(source, str | os.PathLike):
        return [Path(source)]
    if isinstance(source, Iterable):
        paths = [Path(item) for item in source]
        if not paths:
            raise ValueError("an empty list of rule paths")
        return paths
    raise TypeError(f"a rules source is a path or a list of paths, got {type(source).__name__}")


def load_source(source: Any, *, strict: bool = False) -> RuleSet:
    """Load a directory, a file, or several of them (merged in the given order) into a fresh set.

    Raises :class:`acteon.RuleLoadError` at the first failure; nothing is half-loaded.
    """
    sets = []
    for path in source_paths(source):
        if path.is_dir():
            sets.append(load_rules_dir(path, strict=strict))
        else:
            # A Path is always read as a file (a missing one is a load error, never rule text).
            sets.append(load_rules(path, strict=strict))
    return sets[0] if len(sets) == 1 else RuleSet.merge(*sets)


def rule_files(directory: Path) -> list[Path]:
    """The rule files ``load_rules_dir`` reads: ``*.yaml``, ``*.yml``, ``*.cel`` directly inside."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    out = []
    for name in names:
        path = directory / name
        if name.rfind(".") > 0 and path.suffix in RULE_EXTENSIONS and path.is_file():
            out.append(path)
    return out


@dataclass(frozen=True, slots=True)
class _FileState:
    size: int
    mtime_ns: int
    digest: str


@dataclass(slots=True)
class Fingerprint:
    """What the files of a source looked like at one scan (``None`` entry = missing/unreadable)."""

    files: dict[str, _FileState | None] = field(default_factory=dict)
    scanned_ns: int = 0

    def same_as(self, other: Fingerprint) -> bool:
        return self.files == other.files


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _file_state(path: Path, previous: Fingerprint | None) -> _FileState | None:
    try:
        st = path.stat()
    except OSError:
        return None
    old = None if previous is None else previous.files.get(str(path))
    if (
        previous is not None
        and old is not None
        and old.size == st.st_size
        and old.mtime_ns == st.st_mtime_ns
        and st.st_mtime_ns < previous.scanned_ns - _RACY_WINDOW_NS
    ):
        # Unchanged stat, and old enough that a same-tick rewrite is impossible.
        return old
    digest = _digest(path)
    return None if digest is None else _FileState(st.st_size, st.st_mtime_ns, digest)


def fingerprint(source: Any, previous: Fingerprint | None = None) -> Fingerprint:
    """Scan the source's files: names, sizes, mtimes, and content hashes where stat cannot tell.

    Compare two scans with :meth:`Fingerprint.same_as`. ``previous`` lets
    unchanged files skip hashing.
    """
    scanned = time.time_ns()  # filesystem time, not the gateway clock: mtimes are wall-clock
    out = Fingerprint(scanned_ns=scanned)
    for path in source_paths(source):
        if path.is_dir():
            out.files[f"{path}{os.sep}"] = None  # the directory itself: present
            for file in rule_files(path):
                out.files[str(file)] = _file_state(file, previous)
        else:
            out.files[str(path)] = _file_state(path, previous)
    return out


def describe_source(source: Any) -> str:
    """A short human form of a source, for logs and events."""
    paths: Sequence[Path] = source_paths(source)
    return ", ".join(str(p) for p in paths)
