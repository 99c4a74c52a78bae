"""Paths and globs of a files source expanded into files: bounded, never hanging, every miss
reported with its place.

Glob semantics follow :meth:`pathlib.Path.glob` with ``recurse_symlinks=False`` (Python 3.13):
``*``, ``?`` and ``[...]`` match within one path segment and never match a leading dot (Kubernetes
mounts keep their real files in ``..data`` directories); ``**`` as a whole segment matches any
number of directories. Symbolic links to files are followed; a directory symlink is followed by
``**`` only with ``follow_symlinks``, and then every directory is entered once, recognised by its
(device, inode), so ``up -> ..`` or ``loop -> .`` cannot multiply locations or walk for ever.

A walk is bounded three ways: at most ``max_files`` files (counted while walking, not after), a
``deadline`` (monotonic seconds), and a ``stop`` event that the refresh sets when it is cancelled
(SIGTERM during a walk ends it at the next directory). A walk cut short keeps what it found and
says so with one ``limit_reached`` error.

Nothing is opened for reading here: directories are listed with ``os.scandir`` and classified
from their entries, so FIFOs, sockets and devices are handed on by name (the reader refuses
them without opening them for a blocking read).

Errors (``ItemError.reason``):

* ``no_match``: a glob that matches no file, a base directory that does not exist, a path that
  is a directory;
* ``not_found``: a plain path that does not exist;
* ``permission_denied``: a directory that cannot be listed, or a path inside one;
* ``limit_reached``: the file cap or the deadline cut the walk short.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import ItemFailure
from ..results import ItemError

_MAGIC = re.compile(r"[*?\[]")


def has_magic(segment: str) -> bool:
    return _MAGIC.search(segment) is not None


@dataclass(frozen=True)
class Limits:
    max_files: int
    deadline: float  # time.monotonic() value
    follow_symlinks: bool = False
    stop: threading.Event = field(default_factory=threading.Event)

    def exceeded(self, found: int) -> str | None:
        """Why the walk must stop now, or None."""
        if self.stop.is_set():
            return "the refresh was cancelled"
        if found >= self.max_files:
            return f"more than {self.max_files} files; the first {self.max_files} are read"
        if time.monotonic() > self.deadline:
            return "the walk ran past the source's timeout; the files found so far are read"
        return None


@dataclass
class Walked:
    files: list[str] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    #: Why the walk was cut short ("" when it completed).
    cut: str = ""


class _Cut(Exception):
    pass


def _reason_of(exc: OSError) -> ItemFailure:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ItemFailure.PERMISSION_DENIED
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return ItemFailure.NOT_FOUND
    return ItemFailure.UNREADABLE


class _Walker:
    def __init__(self, limits: Limits, exclude: Sequence[str], out: Walked) -> None:
        self.limits = limits
        self.exclude = exclude
        self.out = out
        self.found: dict[str, None] = {}
        self.matched = 0  # files a pattern matched, excluded ones included

    def check(self) -> None:
        why = self.limits.exceeded(len(self.found))
        if why is not None:
            self.out.cut = why
            raise _Cut

    def add(self, path: str) -> None:
        self.check()
        self.matched += 1
        if any(fnmatch.fnmatch(path, ex) for ex in self.exclude):
            return
        self.found.setdefault(path, None)

    def listing(self, directory: str) -> list[os.DirEntry[str]]:
        self.check()
        try:
            with os.scandir(directory or os.curdir) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as exc:
            reason = _reason_of(exc)
            message = f"directory cannot be listed: {exc.strerror or type(exc).__name__}"
            self.out.errors.append(ItemError(directory, reason, message))
            return []

    def glob(self, base: str, segments: list[str]) -> None:
        """Every file under ``base`` matching ``segments`` (depth-first, sorted)."""
        # (directory, index of the next segment); visited: (dev, ino, index) for ``**``.
        stack: list[tuple[str, int]] = [(base, 0)]
        visited: set[tuple[int, int, int]] = set()
        while stack:
            directory, i = stack.pop()
            segment = segments[i]
            last = i == len(segments) - 1
            if segment == "**":
                if not self._enter(directory, i, visited):
                    continue
                if last:  # a trailing ** matches every file below
                    stack.extend(self._recurse_files(directory, i))
                    continue
                below = [
                    (os.path.join(directory, e.name), i)
                    for e in self.listing(directory)
                    if not e.name.startswith(".") and self._descend(e)
                ]
                stack.extend(reversed(below))
                stack.append((directory, i + 1))
                continue
            if not has_magic(segment):
                self._literal(os.path.join(directory, segment), i, last, stack)
                continue
            hidden = segment.startswith(".")
            rx = re.compile(fnmatch.translate(segment))
            nxt: list[tuple[str, int]] = []
            for e in self.listing(directory):
                if (e.name.startswith(".") and not hidden) or not rx.match(e.name):
                    continue
                if last:
                    if not _is_dir(e):
                        self.add(os.path.join(directory, e.name))
                elif _is_dir(e):
                    nxt.append((os.path.join(directory, e.name), i + 1))
            stack.extend(reversed(nxt))

    def _recurse_files(self, directory: str, i: int) -> Iterator[tuple[str, int]]:
        for e in self.listing(directory):
            if e.name.startswith("."):
                continue
            if self._descend(e):
                yield (os.path.join(directory, e.name), i)
            elif not _is_dir(e):
                self.add(os.path.join(directory, e.name))

    def _descend(self, e: os.DirEntry[str]) -> bool:
        """``**`` enters real directories, and directory symlinks only with follow_symlinks."""
        try:
            if e.is_symlink():
                return self.limits.follow_symlinks and e.is_dir(follow_symlinks=True)
            return e.is_dir(follow_symlinks=False)
        except OSError:
            return False

    def _enter(self, directory: str, i: int, visited: set[tuple[int, int, int]]) -> bool:
        """Whether ``**`` at segment ``i`` has not yet expanded this directory."""
        try:
            st = os.stat(directory or os.curdir)
        except OSError:
            return False
        key = (st.st_dev, st.st_ino, i)
        if key in visited:
            return False
        visited.add(key)
        return True

    def _literal(self, path: str, i: int, last: bool, stack: list[tuple[str, int]]) -> None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if last and os.path.islink(path):
                self.add(path)  # a dangling symlink: the reader says so
            return
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                self.out.errors.append(
                    ItemError(path, ItemFailure.PERMISSION_DENIED, "permission denied")
                )
            return
        if last:
            if not stat.S_ISDIR(st.st_mode):
                self.add(path)
        elif stat.S_ISDIR(st.st_mode):
            stack.append((path, i + 1))


def _is_dir(e: os.DirEntry[str]) -> bool:
    try:
        return e.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _split(pattern: str) -> tuple[str, list[str]]:
    """The literal base directory of a glob and the segments from the first magic one on."""
    parts = pattern.split(os.sep)
    first = next(i for i, p in enumerate(parts) if has_magic(p) or p == "**")
    base = os.sep.join(parts[:first])
    if not base and pattern.startswith(os.sep):
        base = os.sep
    return base, [p for p in parts[first:] if p]


def _plain(path: str, out: Walked, add: Callable[[str], None]) -> None:
    """A path without magic: the file itself, or why not."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and os.path.islink(path):
            add(path)  # a dangling symlink: the reader reports it
            return
        reason = _reason_of(exc)
        message = (
            "no such file" if reason is ItemFailure.NOT_FOUND else exc.strerror or "unreadable"
        )
        out.errors.append(ItemError(path, reason, message))
        return
    if stat.S_ISDIR(st.st_mode):
        message = f"{path} is a directory; give a glob such as {os.path.join(path, '*.pem')}"
        out.errors.append(ItemError(path, ItemFailure.NO_MATCH, message))
        return
    add(path)


def expand(patterns: Sequence[str], exclude: Sequence[str], limits: Limits) -> Walked:
    """Every file the patterns match, in order and without duplicates, and every miss."""
    out = Walked()
    walker = _Walker(limits, exclude, out)
    for pattern in patterns:
        walker.matched = 0
        errors_before = len(out.errors)
        try:
            if not has_magic(pattern):
                _plain(pattern, out, walker.add)
                continue
            base, segments = _split(pattern)
            try:
                base_ok = os.path.isdir(base or os.curdir) and os.access(base or os.curdir, os.X_OK)
            except OSError:
                base_ok = False
            if not base_ok:
                _missing_base(base, pattern, out)
                continue
            walker.glob(base, segments)
        except _Cut:
            out.errors.append(ItemError(pattern, ItemFailure.LIMIT_REACHED, out.cut))
            break
        if walker.matched == 0 and len(out.errors) == errors_before:
            out.errors.append(
                ItemError(pattern, ItemFailure.NO_MATCH, "the pattern matches no file")
            )
    out.files = list(walker.found)
    return out


def _missing_base(base: str, pattern: str, out: Walked) -> None:
    try:
        os.stat(base)
    except OSError as exc:
        if _reason_of(exc) is ItemFailure.PERMISSION_DENIED:
            out.errors.append(ItemError(base, ItemFailure.PERMISSION_DENIED, "permission denied"))
        else:
            message = f"directory {base} does not exist"
            out.errors.append(ItemError(pattern, ItemFailure.NO_MATCH, message))
        return
    if not os.path.isdir(base):
        out.errors.append(ItemError(pattern, ItemFailure.NO_MATCH, f"{base} is not a directory"))
    else:
        out.errors.append(
            ItemError(base, ItemFailure.PERMISSION_DENIED, "directory cannot be searched")
        )
