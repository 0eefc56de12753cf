"""The build environment's only package source: factory's own index, mounted read-only into
the build container (which has no network), with the build's pins as pip constraints and a
recipe's seeds, if any, beside them."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

#: Where build containers see factory's index, and the build's pins and seeds.
INDEX_MOUNT = "/factory-index"
CONTEXT_MOUNT = "/factory-build"


@dataclasses.dataclass(frozen=True)
class BuildEnvironment:
    """The mounts and the pip settings of a build container."""

    index_dir: Path
    context: Path  # constraints.txt and seeds/

    @classmethod
    def write(cls, context: Path, index_dir: Path, constraints: str, seeds: Sequence[Path] = ()) -> BuildEnvironment:
        """Lay out ``context`` for a build: the constraints file and the seed wheels."""
        shutil.rmtree(context, ignore_errors=True)
        (context / "seeds").mkdir(parents=True)
        (context / "constraints.txt").write_text(constraints)
        for seed in seeds:
            os.link(seed, context / "seeds" / seed.name) if _same_device(seed, context) else \
                shutil.copyfile(seed, context / "seeds" / seed.name)
        index_dir.mkdir(parents=True, exist_ok=True)
        return cls(index_dir.resolve(), context.resolve())

    @property
    def volumes(self) -> list[str]:
        return [f"{self.index_dir}:{INDEX_MOUNT}:ro", f"{self.context}:{CONTEXT_MOUNT}:ro"]

    @property
    def variables(self) -> dict[str, str]:
        """pip's settings: our index only, the pins, binaries only, no configuration file."""
        return {
            "PIP_INDEX_URL": f"file://{INDEX_MOUNT}/simple/",
            "PIP_CONSTRAINT": f"{CONTEXT_MOUNT}/constraints.txt",
            "PIP_FIND_LINKS": f"{CONTEXT_MOUNT}/seeds",
            "PIP_ONLY_BINARY": ":all:",
            "PIP_CONFIG_FILE": "/dev/null",
            "PIP_NO_CACHE_DIR": "1",
        }


def _same_device(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev
