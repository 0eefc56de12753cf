"""The served tree, where a page's HTML and JSON always change together.

Two files cannot be renamed at once, so each page pair lives in a generation directory and one
symlink is switched (a rename, atomic) to the new generation::

    simple/<project>          -> .pages/<project>/g-<n>      switched per publish
    simple/.pages/<project>/g-<n>/index.html, index.json
    simple/index.html         -> .root/current/index.html   fixed
    simple/index.json         -> .root/current/index.json   fixed
    simple/.root/current      -> g-<n>                      switched when the root changes

A reader sees the old pair or the new pair, never one of each. The generation before the
current one is kept for readers that resolved it a moment ago; older ones are removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

KEEP = 2  # generations kept per page: the current one, and the one a reader may still be reading


def _write(path: Path, text: str, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _switch(link: Path, target: str, sync: bool) -> None:
    """Point ``link`` at ``target`` (relative) with one rename."""
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}.tmp")
    os.symlink(target, tmp)
    if link.is_dir() and not link.is_symlink():  # an index written before generations existed
        shutil.rmtree(link)
    os.replace(tmp, link)
    if sync:
        _fsync_dir(link.parent)


def _new_generation(parent: Path, html: str, json: str, sync: bool) -> str:
    name = f"g-{time.time_ns()}-{secrets.token_hex(2)}"
    gen = os.path.join(parent, name)
    try:
        os.mkdir(gen)
    except FileNotFoundError:
        os.makedirs(gen)
    _write(Path(gen, "index.html"), html, sync)
    _write(Path(gen, "index.json"), json, sync)
    if sync:
        _fsync_dir(Path(gen))
    return name


def _prune(parent: Path, current: str) -> None:
    generations = sorted(n for n in os.listdir(parent) if n.startswith("g-") and n != current)
    for name in generations[: max(0, len(generations) - (KEEP - 1))]:
        shutil.rmtree(parent / name, ignore_errors=True)


def write_project(simple: Path, project: str, html: str, json: str, sync: bool = True) -> Path:
    """Publish a project's pages; returns the page directory as readers address it."""
    pages = simple / ".pages" / project
    gen = _new_generation(pages, html, json, sync)
    _switch(simple / project, f".pages/{project}/{gen}", sync)
    _prune(pages, gen)
    return simple / project


def write_root(simple: Path, html: str, json: str, sync: bool = True) -> Path:
    """Publish the root pages."""
    root = simple / ".root"
    gen = _new_generation(root, html, json, sync)
    _switch(root / "current", gen, sync)
    for name in ("index.html", "index.json"):
        fixed = simple / name
        if not fixed.is_symlink():
            _switch(fixed, f".root/current/{name}", sync)
    _prune(root, gen)
    return simple


def remove_temporaries(simple: Path) -> None:
    """Remove what an interrupted writer left behind (never read by anyone)."""
    for tmp in simple.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
