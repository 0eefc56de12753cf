"""Sign hand-made wheels for real, with the local Sigstore stack the session runs, for index
and trust tests that need signed files but no container build."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factory.config import Config
from factory.index.distfile import DistFile
from factory.pipeline.sign import BuildFacts, SigningSettings, sign_all


def facts(dist: DistFile) -> BuildFacts:
    """Provenance facts for a wheel no build made (the tests' own)."""
    return BuildFacts(project=dist.project, version=dist.version, targets=("py3-none-any",),
                      sdist_url="http://127.0.0.1:9/none.tar.gz", sdist_sha256="0" * 64, recipe_digest="",
                      recipe_path="", images=(), build_id="test", started="2026-01-01T00:00:00Z",
                      finished="2026-01-01T00:00:01Z", factory_version="test")


def signed(config: Config, dists: Sequence[DistFile]) -> list[DistFile]:
    """``dists`` with their bundles and PEP 740 provenance, signed as ``config`` says."""
    signatures = sign_all(SigningSettings.from_config(config), [(d.filename, d.sha256, facts(d)) for d in dists])
    return [dataclasses.replace(d, bundle=s.bundle, provenance=s.provenance) for d, s in zip(dists, signatures)]


def statement_of(index_dir: Path, filename: str) -> dict[str, Any]:
    """The signed in-toto statement of a file published in ``index_dir`` (its bundle's DSSE payload)."""
    bundle = next(index_dir.rglob(filename + ".sigstore.json"))
    return json.loads(base64.b64decode(json.loads(bundle.read_text())["dsseEnvelope"]["payload"]))
