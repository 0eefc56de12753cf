"""The build environment's only package source: exactly the wheels the build's pins name, taken
from factory's own index and laid out beside the pins, each listed with its sha256 on a simple
page of its own. The build container (which has no network) sees that directory and nothing
else of the index, so what the provenance lists is all a build could install: a backend that
asks for anything else finds nothing."""

from __future__ import annotations

import dataclasses
import html
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from factory.index.publish import file_path
from factory.pipeline.record import BuildInput

#: Where build containers see the build's pins, its wheels and their pages, and its seeds.
CONTEXT_MOUNT = "/factory-build"


@dataclasses.dataclass(frozen=True)
class BuildEnvironment:
    """The mount and the pip settings of a build container."""

    context: Path  # constraints.txt, wheels/ with simple/ (a page per project listing them), seeds/

    @classmethod
    def write(cls, context: Path, index_dir: Path, constraints: str, offered: Sequence[BuildInput] = (),
              seeds: Sequence[Path] = ()) -> BuildEnvironment:
        """Lay out ``context`` for a build: the constraints file, the ``offered`` wheels of the
        index at ``index_dir`` with a simple page per project listing them, and the seed wheels."""
        shutil.rmtree(context, ignore_errors=True)
        for sub in ("wheels", "simple", "seeds"):
            (context / sub).mkdir(parents=True)
        (context / "constraints.txt").write_text(constraints)
        by_project: dict[str, list[BuildInput]] = {}
        for wheel in offered:
            _place(index_dir / file_path(wheel.sha256, wheel.filename), context / "wheels" / wheel.filename)
            by_project.setdefault(wheel.name, []).append(wheel)
        for project, wheels in sorted(by_project.items()):
            links = "".join(f'<a href="{html.escape(f"../../wheels/{w.filename}#sha256={w.sha256}")}">'
                            f"{html.escape(w.filename)}</a>\n" for w in sorted(wheels, key=lambda w: w.filename))
            (context / "simple" / project).mkdir()
            (context / "simple" / project / "index.html").write_text(
                f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
        for seed in seeds:
            _place(seed, context / "seeds" / seed.name)
        return cls(context.resolve())

    @property
    def volumes(self) -> list[str]:
        return [f"{self.context}:{CONTEXT_MOUNT}:ro"]

    @property
    def variables(self) -> dict[str, str]:
        """pip's settings: the offered wheels only, the pins, binaries only, no configuration file."""
        return {
            "PIP_INDEX_URL": f"file://{CONTEXT_MOUNT}/simple/",
            "PIP_CONSTRAINT": f"{CONTEXT_MOUNT}/constraints.txt",
            "PIP_FIND_LINKS": f"{CONTEXT_MOUNT}/seeds",
            "PIP_ONLY_BINARY": ":all:",
            "PIP_CONFIG_FILE": "/dev/null",
            "PIP_NO_CACHE_DIR": "1",
        }


def _place(source: Path, dest: Path) -> None:
    """``source`` at ``dest``: a hard link where both are on one file system, else a copy."""
    if source.stat().st_dev == dest.parent.stat().st_dev:
        os.link(source, dest)
    else:
        shutil.copyfile(source, dest)
