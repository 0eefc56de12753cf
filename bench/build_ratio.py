"""How much does factory add to a plain build? One run, printed as a table and a ratio.

Times ``factory build`` of the fixture C sdist (tests/projects/fixture-cext) from a local index
on 127.0.0.1 into an empty index, against a bare ``python -m build --wheel`` of the same sdist
in the same builder image (same zig cache volume, same upstream for build dependencies).
Rounds alternate between the two so that neither gets a warmer machine. Aim: ratio <= 1.15.

    .venv/bin/python bench/build_ratio.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import fixture_index, signing, time_factory_build, warm_copy

from factory import config
from factory.pipeline import images
from factory.plumbing import podman


def time_bare(image: images.BuilderImage, sdist: Path, index_url: str) -> float:
    script = (f'work=$(mktemp -d) && cd "$work" && tar xzf /in/{sdist.name} && cd {sdist.name.removesuffix(".tar.gz")} && '
              'python -m build --wheel --outdir "$work/out" . && ls "$work"/out/*.whl')
    cmd = podman.run_args(image.tag, network="host", label="factory.bench=bare",
                          volumes=[f"{sdist.parent}:/in:ro", f"{image.spec.zig_cache_volume}:/opt/zig-cache"],
                          pass_env=["PIP_INDEX_URL"])
    cmd += ["sh", "-c", f"PATH=/opt/python/cp311-cp311/bin:$PATH; {script}"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={"PIP_INDEX_URL": index_url, "PATH": "/usr/bin:/bin"})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bare build failed:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    image = images.ensure(config.load(), "x86_64")
    one_target = {"FACTORY_ARCHS": "x86_64", "FACTORY_PYTHONS": "3.11"}
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp, signing(Path(tmp) / "sigstore"):
        index, sdist = fixture_index("fixture-cext", Path(tmp))
        with index:
            time_bare(image, sdist, index.url)  # one warm-up each: the zig cache volume, page cache
            # The warm-up also bootstraps the build requirements, which every round then finds.
            time_factory_build(index.url, Path(tmp) / "warmup", "fixture-cext==1.0.0", **one_target)
            factory_times, bare_times, stages = [], [], []
            for n in range(args.rounds):
                warm_copy(Path(tmp) / "warmup", Path(tmp) / f"round-{n}", "fixture-cext")
                elapsed, record = time_factory_build(index.url, Path(tmp) / f"round-{n}", "fixture-cext==1.0.0", **one_target)
                factory_times.append(elapsed)
                stages.append(record["durations"])
                bare_times.append(time_bare(image, sdist, index.url))
    f, b = statistics.median(factory_times), statistics.median(bare_times)
    print(f"fixture-cext 1.0.0, cp311-x86_64, {args.rounds} rounds, image {image.tag}")
    print(f"  factory build (CLI, end to end): median {f:6.2f} s  runs {' '.join(f'{t:.2f}' for t in factory_times)}")
    print(f"  bare python -m build --wheel:    median {b:6.2f} s  runs {' '.join(f'{t:.2f}' for t in bare_times)}")
    for stage in stages[0]:
        print(f"    stage {stage:<8} median {statistics.median(s[stage] for s in stages):6.2f} s")
    print(f"  factory's overhead: {f - b:.2f} s; ratio factory/bare: {f / b:.2f}  (aim: <= 1.15)")


if __name__ == "__main__":
    main()
