"""``factory farm``: the whole loop under one supervisor, so that a miss becomes a build with no
person in between. It runs ``factory serve`` (whose misses go into the queue as they happen)
and N ``factory worker --forever`` processes, each a child that dies with the farm:

- a child that exits is started again, after a pause that doubles while it keeps dying (up to
  ``MAX_BACKOFF``) and is forgotten once it has run a while;
- SIGTERM (or Ctrl-C) stops the workers first, which stop their builds and give their items back
  to the queue, then the server; then the farm exits 0.

What runs where is written to ``state-dir/farm.json`` (the children's pids), for operators and
tests.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from factory.config import Config
from factory.plumbing.files import write_text
from factory.plumbing.processes import die_with_parent

#: The longest pause before a child that keeps dying is started again.
MAX_BACKOFF = 30.0
#: A child that ran this long is healthy: its next death restarts it at once.
HEALTHY_AFTER = 60.0
#: How long the workers get to stop their builds and give their items back.
STOP_TIMEOUT = 90.0

Say = Callable[[str], None]


@dataclasses.dataclass
class Child:
    """One supervised process."""

    name: str
    command: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 1.0
    restart_at: float = 0.0
    restarts: int = 0


class Farm:
    """The server and the workers, supervised; ``run`` returns when stopped."""

    def __init__(self, config: Config, config_path: Path | None, workers: int, serve_args: Sequence[str] = (),
                 poll: float = 1.0, say: Say = lambda _: None) -> None:
        self.config, self.say = config, say
        base = [sys.executable, "-m", "factory", *(["--config", str(config_path)] if config_path else [])]
        self.children = [Child("serve", [*base, "serve", *serve_args])]
        self.children += [Child(f"worker-{n}", [*base, "worker", "--forever", "--poll", str(poll)])
                          for n in range(1, workers + 1)]
        self.stopping = False

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(child.command, stdin=subprocess.DEVNULL, start_new_session=True,
                                      preexec_fn=die_with_parent)
        child.started = time.monotonic()
        self._write_state()

    def _write_state(self) -> None:
        write_text(self.config.state_dir / "farm.json", json.dumps(
            {c.name: {"pid": c.proc.pid if c.proc else None, "restarts": c.restarts} for c in self.children},
            indent=1) + "\n")

    def stop(self, *_: object) -> None:
        self.stopping = True

    def run(self) -> int:
        handlers = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                self._start(child)
            self.say(f"farm: {', '.join(c.name for c in self.children)} running")
            while not self.stopping:
                self._supervise(time.monotonic())
                time.sleep(0.2)
            self._stop_all()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return 0

    def _supervise(self, now: float) -> None:
        for child in self.children:
            if child.proc is None:
                if now >= child.restart_at:
                    self._start(child)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            if now - child.started >= HEALTHY_AFTER:
                child.backoff = 1.0
            child.proc, child.restarts = None, child.restarts + 1
            child.restart_at = now + child.backoff
            self.say(f"farm: {child.name} exited with code {code}; starting it again in {child.backoff:.0f} s")
            child.backoff = min(child.backoff * 2, MAX_BACKOFF)

    def _stop_all(self) -> None:
        """Workers first (they give their items back), then the server."""
        self.say("farm: stopping the workers (their builds stop, their items go back to the queue)")
        workers = [c for c in self.children if c.name != "serve"]
        serve = [c for c in self.children if c.name == "serve"]
        for group in (workers, serve):
            for child in group:
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            for child in group:
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
        self.say("farm: stopped")
