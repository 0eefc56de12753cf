"""A publisher killed with SIGKILL anywhere in its work always leaves an index `factory index
check` passes: files before pages, pages switched as pairs, a lock around it all.

Where it dies is chosen by events, not by time: the publisher counts every change it makes to
the disk (each file created, written, synced, renamed, linked or removed, each manifest statement
that writes) and stops before the chosen one, says so, and is killed there. So every kill lands
mid-way however loaded the machine is, and the kill points cover every kind of change."""

import random
import signal
import subprocess
import sys
from collections import Counter

from support.wheels import make_wheel

from factory.index.check import check
from factory.index.distfile import inspect_wheel
from factory.index.publish import publish

TRIALS = 50
PER_KIND = 2  # kills before each kind of change, at least (where it occurs that often)

PUBLISHER = """
import os, random, sys
from pathlib import Path
from factory.index import manifest
from factory.index.distfile import inspect_wheel
from factory.index.publish import publish, yank, set_status
from factory.index.manifest import ProjectStatus

index, wheels, base, pause_at = Path({index!r}), Path({wheels!r}), {base!r}, {pause_at}
steps = 0

def reached(kind):
    # Before each change to the disk: count it, and at the chosen one say so and wait to be killed.
    global steps
    steps += 1
    if steps == pause_at:
        print("paused", steps, kind, flush=True)
        sys.stdin.read()  # the test kills us here; should it go away instead, stop, never go on
        os._exit(3)
    if pause_at == 0:
        print("step", steps, kind, flush=True)

def counted(name, when=lambda *args, **kwargs: True):
    real = getattr(os, name)
    def step(*args, **kwargs):
        if when(*args, **kwargs):
            reached(name)
        return real(*args, **kwargs)
    setattr(os, name, step)

for name in ("write", "fsync", "chmod", "replace", "rename", "symlink", "unlink", "rmdir"):
    counted(name)
# Only the calls that can change something: a mkdir of what exists, an open to read, cannot.
counted("mkdir", lambda path, *args, **kwargs: "dir_fd" in kwargs or not os.path.exists(path))
counted("open", lambda path, flags, *args, **kwargs: bool(flags & os.O_CREAT))

# The manifest's writes happen inside SQLite, out of reach of os: its statements are counted instead.
def on_statement(sql):
    verb = sql.split(None, 1)[0].upper()
    if verb not in ("SELECT", "PRAGMA"):
        reached("sql " + verb)

opened = manifest.Manifest.__init__
def traced(self, path):
    opened(self, path)
    self.db.set_trace_callback(on_statement)
manifest.Manifest.__init__ = traced

dists = [inspect_wheel(p) for p in sorted(wheels.glob("*.whl"))]
rng = random.Random({seed})
print("ready", flush=True)
for n, dist in enumerate(dists):
    publish(index, [dist], base)
    if n % 3 == 0:
        yank(index, "p0", "1.0", "trial", base)
    if n % 5 == 0:
        set_status(index, "p0", ProjectStatus(rng.choice(["archived", "deprecated"]), "trial"), base)
print("done", steps, flush=True)
"""


def _start(tmp_path, wheels, name, seed, pause_at):
    """A publisher on a fresh index (p0 1.0 already in it, so that it can be yanked), stopping
    before its ``pause_at``-th change (0: never, and it names each change)."""
    index = tmp_path / name
    base = index.resolve().as_uri() + "/"
    publish(index, [inspect_wheel(wheels / "p0-1.0-py3-none-any.whl")], base)
    script = PUBLISHER.format(index=str(index), wheels=str(wheels), base=base, seed=seed, pause_at=pause_at)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return index, base, proc


def _changes(tmp_path, wheels):
    """The kind of each change a whole run makes, in order (a run that is not stopped)."""
    _, _, proc = _start(tmp_path, wheels, "whole-run", 0, 0)
    out, _ = proc.communicate()
    lines = out.splitlines()
    assert proc.returncode == 0 and lines[0] == "ready" and lines[-1].startswith("done "), out[-2000:]
    kinds = [" ".join(line.split()[2:]) for line in lines if line.startswith("step ")]
    assert len(kinds) == int(lines[-1].split()[1])
    return kinds


def _kill_points(kinds, rng):
    """``TRIALS`` steps to kill at (1-based): a few before each kind of change, the rest spread
    over the whole run, one in each of equal stretches of the steps left."""
    by_kind: dict[str, list[int]] = {}
    for step, kind in enumerate(kinds, 1):
        by_kind.setdefault(kind, []).append(step)
    points = {step for steps in by_kind.values() for step in rng.sample(steps, min(PER_KIND, len(steps)))}
    assert len(points) < TRIALS, by_kind.keys()
    left = [step for step in range(1, len(kinds) + 1) if step not in points]
    spread = TRIALS - len(points)
    points.update(rng.choice(left[i * len(left) // spread:(i + 1) * len(left) // spread]) for i in range(spread))
    return sorted(points)


def _kill_at(proc, step, kind):
    """Wait (on the publisher's word, not on a clock) until it stopped before change ``step``,
    of ``kind``, then SIGKILL it there."""
    assert proc.stdout.readline().strip() == "ready"
    said = proc.stdout.readline().split()
    assert said == ["paused", str(step), *kind.split()], f"the publisher did not stop before change {step}: {said}"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_anywhere_in_publishing_never_leaves_a_broken_index(tmp_path):
    wheels = tmp_path / "wheels"
    # Many small projects (new projects rewrite the root too), several versions each.
    for p in range(12):
        for v in range(4):
            make_wheel(wheels, f"p{p}", f"{v + 1}.0", body=f"{p}-{v}")
    kinds = _changes(tmp_path, wheels)
    assert len(kinds) > 10 * TRIALS, Counter(kinds)
    points = _kill_points(kinds, random.Random(20261122))
    killed_before = Counter()
    published = set()
    for trial, step in enumerate(points):
        index, base, proc = _start(tmp_path, wheels, f"index-{trial}", trial, step)
        _kill_at(proc, step, kinds[step - 1])
        killed_before[kinds[step - 1]] += 1
        report = check(index, base)
        assert report.ok, f"killed before change {step} of {len(kinds)} ({kinds[step - 1]}): {report.problems}"
        published.add(report.files + report.pending)
    # Every kind of change was interrupted, and the index was left at many different sizes.
    assert set(killed_before) == set(kinds) and len(published) >= 10, (killed_before, sorted(published))
