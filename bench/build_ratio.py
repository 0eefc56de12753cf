"""How much does factory add to a plain build? One run, printed as a table and a ratio.

Times ``factory build`` of the fixture C sdist (tests/projects/fixture-cext) from a local index
on 127.0.0.1 into an empty index, against a bare ``python -m build --wheel`` of the same sdist
in the same builder image (same zig cache volume, same upstream for build dependencies).
Rounds alternate between the two so that neither gets a warmer machine. Aim: ratio <= 1.15.

    .venv/bin/python bench/build_ratio.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.index_server import LocalIndex  # noqa: E402
from support.sdists import make_sdist  # noqa: E402

from factory import config, images, podman  # noqa: E402


def time_factory(index_url: str, work: Path) -> tuple[float, dict[str, float]]:
    env = {**os.environ, "FACTORY_UPSTREAM": index_url, "FACTORY_INDEX_DIR": str(work / "index"),
           "FACTORY_STATE_DIR": str(work / "state")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "factory", "build", "fixture-cext==1.0.0"],
                          capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"factory build failed:\n{done.stdout}{done.stderr}")
    (record,) = (work / "state" / "records" / "fixture-cext").glob("*.json")
    return elapsed, json.loads(record.read_text())["durations"]


def time_bare(image: images.BuilderImage, sdist: Path, index_url: str) -> float:
    script = (f"cd /tmp && tar xzf /in/{sdist.name} && cd {sdist.name.removesuffix('.tar.gz')} && "
              "python -m build --wheel --outdir /tmp/out . && ls /tmp/out/*.whl")
    cmd = podman.run_args(image.tag, network="host", label="factory.bench=bare",
                          volumes=[f"{sdist.parent}:/in:ro", f"{image.spec.zig_cache_volume}:/opt/zig-cache"],
                          pass_env=["PIP_INDEX_URL"])
    cmd += ["sh", "-c", f"PATH=/opt/python/cp311-cp311/bin:$PATH; {script}"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_INDEX_URL": index_url})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"bare build failed:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cfg = config.load()
    image = images.ensure(cfg, "x86_64")
    with tempfile.TemporaryDirectory(prefix="factory-bench-") as tmp, \
            LocalIndex(fallback=config.pip_index_url()) as index:
        sdist = make_sdist("fixture-cext", "1.0.0", Path(tmp))
        index.add_file("fixture-cext", sdist)
        time_bare(image, sdist, index.url)  # one warm-up each: the zig cache volume, page cache
        time_factory(index.url, Path(tmp) / "warmup")
        factory_times, bare_times, stages = [], [], []
        for n in range(args.rounds):
            elapsed, durations = time_factory(index.url, Path(tmp) / f"round-{n}")
            factory_times.append(elapsed)
            stages.append(durations)
            bare_times.append(time_bare(image, sdist, index.url))
    f, b = statistics.median(factory_times), statistics.median(bare_times)
    print(f"fixture-cext 1.0.0, x86_64, cp311, {args.rounds} rounds, image {image.tag}")
    print(f"  factory build (CLI, end to end): median {f:6.2f} s  runs {' '.join(f'{t:.2f}' for t in factory_times)}")
    print(f"  bare python -m build --wheel:    median {b:6.2f} s  runs {' '.join(f'{t:.2f}' for t in bare_times)}")
    for stage in stages[0]:
        print(f"    stage {stage:<8} median {statistics.median(s[stage] for s in stages):6.2f} s")
    print(f"  ratio factory/bare: {f / b:.2f}  (aim: <= 1.15)")


if __name__ == "__main__":
    main()
