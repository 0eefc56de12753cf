"""A publisher killed with SIGKILL at random points always leaves an index `factory index
check` passes: files before pages, pages switched as pairs, a lock around it all."""

import random
import signal
import subprocess
import sys
import time

from support.wheels import make_wheel

from factory.index.check import check
from factory.index.distfile import inspect_wheel
from factory.index.publish import publish

TRIALS = 50

PUBLISHER = """
import sys, random
from pathlib import Path
sys.path.insert(0, {tests!r})
from factory.index.distfile import inspect_wheel
from factory.index.publish import publish, yank, set_status
from factory.index.manifest import ProjectStatus
index, wheels, base = Path({index!r}), Path({wheels!r}), {base!r}
dists = [inspect_wheel(p) for p in sorted(wheels.glob("*.whl"))]
rng = random.Random({seed})
print("ready", flush=True)
for n, dist in enumerate(dists):
    publish(index, [dist], base)
    if n % 3 == 0:
        yank(index, "p0", "1.0", "trial", base)
    if n % 5 == 0:
        set_status(index, "p0", ProjectStatus(rng.choice(["archived", "deprecated"]), "trial"), base)
print("done", flush=True)
"""


def _run(tmp_path, wheels, name, seed):
    index = tmp_path / name
    base = index.resolve().as_uri() + "/"
    publish(index, [inspect_wheel(wheels / "p0-1.0-py3-none-any.whl")], base)  # so p0 can be yanked
    script = PUBLISHER.format(tests=str(tmp_path), index=str(index), wheels=str(wheels), base=base, seed=seed)
    return index, base, subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def _time_a_whole_run(tmp_path, wheels):
    _, _, proc = _run(tmp_path, wheels, "calibration", 0)
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    assert proc.stdout.readline().strip() == "done"
    proc.wait()
    return time.monotonic() - started


def test_sigkill_at_random_points_never_leaves_a_broken_index(tmp_path):
    wheels = tmp_path / "wheels"
    # Many small projects (new projects rewrite the root too), several versions each.
    for p in range(12):
        for v in range(4):
            make_wheel(wheels, f"p{p}", f"{v + 1}.0", body=f"{p}-{v}")
    rng = random.Random(20261122)
    killed_mid_way = 0
    published = set()
    duration = _time_a_whole_run(tmp_path, wheels)
    for trial in range(TRIALS):
        index, base, proc = _run(tmp_path, wheels, f"index-{trial}", trial)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.9 * duration))  # somewhere in the middle of publishing
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        killed_mid_way += "done" not in out
        report = check(index, base)
        assert report.ok, f"trial {trial}: {report.problems}"
        published.add(report.files + report.pending)
    # The kills really landed during publishing, at many different points.
    assert killed_mid_way >= TRIALS * 0.8 and len(published) >= 10, (killed_mid_way, sorted(published))
