"""Tree: which files of a revision are manifests, and their bytes, from git's object store or a directory.

A clone is never checked out. `git ls-tree` lists the revision and `git
cat-file --batch` streams the chosen files, so no working tree is written: on
a slow disk, writing thousands of small files cost more than the rest of a run.
One set of rules picks files from either source: `*.yaml`/`*.yml` under the
path, sorted, hidden files and directories skipped, files over the size limit
refused unread, and symlinks followed only while they stay inside the
repository (a link to /var/run/secrets would otherwise publish the job's own
token to the cluster). Links are resolved here, on the listing, never by the
filesystem.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from gitops_cron.errors import ManifestError

SUFFIXES = (".yaml", ".yml")
MAX_LINK_HOPS = 40  # what Linux allows before ELOOP
OUTSIDE = "../"  # a resolved path that left the repository


@dataclass(frozen=True)
class Entry:
    """A file or symlink of the tree; `source` is what the reader fetches it by (a blob id or a path)."""

    path: str  # relative to the repository root, "/"-separated
    size: int
    source: str
    link: str | None = None  # a symlink's target, as written in the link


@dataclass(frozen=True)
class SourceFile:
    """A manifest file to parse: its name relative to the repository root, and its bytes."""

    name: str
    data: bytes


def resolve(entries: Mapping[str, Entry], path: str, hops: int = 0) -> str | None:
    """The path with every symlink in it replaced by its target; OUTSIDE if it leaves the
    repository, None for a loop. Resolution is lexical, on the listing alone."""
    resolved = ""
    for part in path.split("/"):
        candidate = posixpath.join(resolved, part) if resolved else part
        entry = entries.get(candidate)
        if entry is None or entry.link is None:
            resolved = candidate
            continue
        if hops >= MAX_LINK_HOPS:
            return None
        target = entry.link
        if posixpath.isabs(target):
            return OUTSIDE
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(candidate), target))
        if joined == ".." or joined.startswith(OUTSIDE):
            return OUTSIDE
        inner = resolve(entries, joined, hops + 1) if joined != "." else ""
        if inner is None or inner == OUTSIDE:
            return inner
        resolved = inner
    return resolved


def resolve_directory(entries: Mapping[str, Entry], path: str) -> str:
    """`--path` as a directory of the tree ("" for the root); raises ValueError saying why it is not one."""
    if not path.strip("/."):
        return ""
    resolved = resolve(entries, posixpath.normpath(path))
    if resolved == OUTSIDE:
        raise ValueError("it leads outside the repository")
    prefix = f"{resolved}/" if resolved else ""
    if resolved is None or not any(p.startswith(prefix) for p in entries):
        raise ValueError("no such directory in the repository")
    return resolved


def wanted(path: str, directory: str) -> bool:
    """A manifest by its name: under the directory, a YAML suffix, nothing hidden below the directory."""
    prefix = f"{directory}/" if directory else ""
    if not path.startswith(prefix) or not path.endswith(SUFFIXES):
        return False
    return not any(part.startswith(".") for part in path[len(prefix):].split("/"))


def select(entries: Mapping[str, Entry], directory: str,
           max_file_bytes: int) -> tuple[list[tuple[str, Entry]], list[ManifestError]]:
    """The files to read, as (name to report, entry whose bytes to read), sorted; and the refusals."""
    chosen: list[tuple[str, Entry]] = []
    errors: list[ManifestError] = []
    for path in sorted(entries):
        if not wanted(path, directory):
            continue
        entry = entries[path]
        if entry.link is not None:
            target = resolve(entries, path)
            if target == OUTSIDE:
                errors.append(ManifestError(path, "symlink leads outside the repository; refused"))
                continue
            if target is None or target not in entries or entries[target].link is not None:
                errors.append(ManifestError(path, "symlink leads to no file in the repository; refused"))
                continue
            if wanted(target, directory):
                continue  # the target is read under its own name; reading it twice would be a duplicate
            entry = entries[target]
        if entry.size > max_file_bytes:
            errors.append(ManifestError(path, f"file is {entry.size} bytes, over the {max_file_bytes}-byte limit; "
                                              "refused"))
            continue
        chosen.append((path, entry))
    return chosen, errors


def parse_ls_tree(output: bytes) -> tuple[dict[str, Entry], list[str]]:
    """Entries from `git ls-tree -r -l -z`, and the paths of symlinks (whose targets are blobs to read).

    Submodules (commits) are left out: their files are not in this repository."""
    entries: dict[str, Entry] = {}
    links: list[str] = []
    for record in output.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid, size = meta.split()
        if kind != b"blob":
            continue
        path = raw_path.decode("utf-8", "surrogateescape")
        entries[path] = Entry(path, int(size), oid.decode())
        if mode == b"120000":
            links.append(path)
    return entries, links


def parse_cat_file(output: bytes) -> dict[str, bytes]:
    """Blob contents by id from `git cat-file --batch`: `<oid> <type> <size>\\n<content>\\n` per object."""
    blobs: dict[str, bytes] = {}
    position = 0
    while position < len(output):
        header_end = output.index(b"\n", position)
        header = output[position:header_end].split()
        if len(header) != 3:
            raise ValueError(f"unexpected git cat-file output: {output[position:header_end][:100]!r}")
        size = int(header[2])
        blobs[header[0].decode()] = output[header_end + 1:header_end + 1 + size]
        position = header_end + 1 + size + 1
    return blobs


def list_directory(root: Path) -> dict[str, Entry]:
    """A local directory's files and symlinks, as the listing of a revision would give them.

    Hidden directories are not walked (a `.git` of thousands of objects), so a link into one is dangling."""
    entries: dict[str, Entry] = {}
    root = root.resolve()
    for current, dirs, files in os.walk(root, followlinks=False):
        relative_dir = os.path.relpath(current, root)
        linked_dirs = [d for d in dirs if os.path.islink(os.path.join(current, d))]
        dirs[:] = [d for d in dirs if d not in linked_dirs and not d.startswith(".")]
        for name in [*files, *linked_dirs]:
            full = os.path.join(current, name)
            path = name if relative_dir == "." else f"{relative_dir}/{name}".replace(os.sep, "/")
            if os.path.islink(full):
                target = os.readlink(full)
                if os.path.isabs(target) and Path(target).is_relative_to(root):
                    target = os.path.relpath(target, current)  # an absolute link into the tree: the same file
                entries[path] = Entry(path, 0, full, target.replace(os.sep, "/"))
            else:
                try:
                    status = os.stat(full)
                except OSError:
                    continue
                if stat.S_ISREG(status.st_mode):  # a FIFO or a device would block or never end
                    entries[path] = Entry(path, status.st_size, full)
    return entries


def read_files(chosen: list[tuple[str, Entry]]) -> tuple[list[SourceFile], list[ManifestError]]:
    """Reads local files; the paths were resolved on the listing, so no symlink is followed here."""
    files: list[SourceFile] = []
    errors: list[ManifestError] = []
    for name, entry in chosen:
        try:
            descriptor = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(descriptor, "rb") as handle:
                files.append(SourceFile(name, handle.read()))
        except OSError as error:
            errors.append(ManifestError(name, f"cannot be read: {error.strerror}"))
    return files, errors
