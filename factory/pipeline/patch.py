"""Apply a recipe's patches to an unpacked source tree, all of them or fail loudly."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from factory.failures import BuildFailure, FailureClass


def apply_patches(root: Path, patches: Sequence[Path]) -> None:
    """Apply ``patches`` (``-p1`` unified diffs) to the tree at ``root``, in the order given.

    A patch that does not apply exactly ends the build with class ``recipe``, naming it.
    """
    for patch in patches:
        done = subprocess.run(
            ["patch", "--batch", "--forward", "--strip=1", "--no-backup-if-mismatch", "--reject-file=-",
             f"--directory={root}", f"--input={patch.resolve()}"],
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip().splitlines()
            raise BuildFailure(
                FailureClass.RECIPE,
                f"patch {patch.name} does not apply to {root.name}: {' / '.join(output[-3:])}",
            )
