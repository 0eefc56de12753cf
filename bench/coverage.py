"""What issue 11's gates cost.

- the import gate: fixture-cext (cp311) built for x86_64 and for aarch64 (QEMU); the seconds the
  `imports` stage adds per target (median), against the whole build;
- system-library inference: fixtures that need libyaml (a header), libffi (pkg-config) and PCRE2
  (pcre2-config), built with no recipe (factory finds the package) and with a recipe naming it;
  the extra rounds and seconds inference costs.

    .venv/bin/python bench/coverage.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import ROOT, LocalIndex, make_sdist, signing, time_factory_build, warm_copy

from factory import config

LIBRARIES = {"fixture-needsyaml": "libyaml-dev", "fixture-pkgconfig": "libffi-dev", "fixture-config": "libpcre2-dev"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp, signing(Path(tmp) / "sigstore"):
        index = LocalIndex(fallback=config.pip_index_url())
        for project in ["fixture-cext", *LIBRARIES]:
            index.add_file(project, make_sdist(project, "1.0.0", Path(tmp)))
        with index:
            print("import gate: fixture-cext 1.0.0, cp311")
            for arch in ("x86_64", "aarch64"):
                warm = Path(tmp) / f"warm-{arch}"  # bootstraps setuptools, warms the caches
                time_factory_build(index.url, warm, "fixture-cext==1.0.0", FACTORY_ARCHS=arch, FACTORY_PYTHONS="3.11")
                imports, totals = [], []
                for n in range(args.rounds):
                    work = Path(tmp) / f"{arch}-{n}"
                    warm_copy(warm, work, "fixture-cext")
                    elapsed, record = time_factory_build(index.url, work, "fixture-cext==1.0.0", FACTORY_ARCHS=arch,
                                                         FACTORY_PYTHONS="3.11")
                    imports.append(record["durations"]["imports"])
                    totals.append(elapsed)
                print(f"  {arch:<8} imports median {statistics.median(imports):5.2f} s per target, "
                      f"of {statistics.median(totals):6.2f} s end to end")
            print("system-library inference (x86_64, cp311): no recipe against a recipe naming the package")
            for project, package in LIBRARIES.items():
                inferred, named, rounds = [], [], 0
                for n in range(args.rounds):
                    for way in ("inferred", "named"):
                        work = Path(tmp) / f"{project}-{way}-{n}"
                        warm_copy(Path(tmp) / "warm-x86_64", work, project)
                        recipes = work / "recipes"
                        recipes.mkdir()
                        for name in ("setuptools.toml", "cython.toml"):
                            (recipes / name).write_text((ROOT / "recipes" / name).read_text())
                        if way == "named":
                            (recipes / f"{project}.toml").write_text(f'system-packages = ["{package}"]\n')
                        elapsed, record = time_factory_build(index.url, work, f"{project}==1.0.0", FACTORY_ARCHS="x86_64",
                                                             FACTORY_PYTHONS="3.11", FACTORY_RECIPES_DIR=str(recipes))
                        (inferred if way == "inferred" else named).append(elapsed)
                        if way == "inferred":
                            rounds = record["inference_rounds"]
                i, m = statistics.median(inferred), statistics.median(named)
                print(f"  {project:<18} {package:<13} inferred {i:6.2f} s ({rounds} extra round), named {m:6.2f} s: "
                      f"+{i - m:.2f} s")


if __name__ == "__main__":
    main()
