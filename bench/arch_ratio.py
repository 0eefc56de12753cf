"""What does emulation cost? The same fixture sdist built for aarch64 (QEMU, with zig running
natively) and for x86_64, in one run; prints both and the aarch64/x86_64 ratio.

    .venv/bin/python bench/arch_ratio.py [--rounds N] [--python 3.11]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import fixture_index, signing, time_factory_build, warm_copy

from factory import config
from factory.pipeline import images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python", default="3.11")
    args = parser.parse_args()
    cfg = config.load()
    tags = {arch: images.ensure(cfg, arch).tag for arch in ("x86_64", "aarch64")}
    results: dict[str, list[tuple[float, float]]] = {"x86_64": [], "aarch64": []}
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp, signing(Path(tmp) / "sigstore"):
        index, _ = fixture_index("fixture-cext", Path(tmp))
        with index:
            for arch in results:  # warm-up: each image's zig cache volume
                time_factory_build(index.url, Path(tmp) / f"warm-{arch}", "fixture-cext==1.0.0",
                                   FACTORY_ARCHS=arch, FACTORY_PYTHONS=args.python)
            for n in range(args.rounds):
                for arch in results:
                    warm_copy(Path(tmp) / f"warm-{arch}", Path(tmp) / f"{arch}-{n}", "fixture-cext")
                    elapsed, record = time_factory_build(index.url, Path(tmp) / f"{arch}-{n}", "fixture-cext==1.0.0",
                                                         FACTORY_ARCHS=arch, FACTORY_PYTHONS=args.python)
                    results[arch].append((elapsed, record["durations"]["build"]))
    print(f"fixture-cext 1.0.0, cp{args.python.replace('.', '')}, {args.rounds} rounds")
    medians = {}
    for arch, runs in results.items():
        total = statistics.median(r[0] for r in runs)
        stage = statistics.median(r[1] for r in runs)
        medians[arch] = (total, stage)
        print(f"  {arch:<8} end to end median {total:6.2f} s, build stage median {stage:6.2f} s  ({tags[arch]})")
    print(f"  aarch64/x86_64: end to end {medians['aarch64'][0] / medians['x86_64'][0]:.2f}, "
          f"build stage {medians['aarch64'][1] / medians['x86_64'][1]:.2f}")


if __name__ == "__main__":
    main()
