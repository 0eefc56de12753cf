"""A build's lease, as a file the worker renews and the build itself watches.

The worker renews an item's lease in the ledger every third of ``lease-seconds``, and writes the
new expiry into the build's lease file. A worker that is stopped (or stalls) renews nothing, yet
its build, a process of its own, would run on and publish while another worker builds the same
item: so the build watches the file and stops itself (SIGTERM, as a worker would) once less
than a third of the lease is left, well before another worker may claim the item. A worker
that finds its lease taken marks the file expired as it stops the build.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from factory.plumbing.files import write_text

POLL = 0.5  # seconds between looks at the file


def write(path: Path, expires: float, seconds: float) -> None:
    """Say the lease runs until ``expires`` (epoch seconds); it lasts ``seconds`` when renewed."""
    write_text(path, json.dumps({"expires": expires, "seconds": seconds}) + "\n")


def left(path: Path, now: float | None = None) -> float:
    """Seconds left on the lease, as a share of its length (1.0: just renewed; 0 or less: run
    out, or no readable lease)."""
    try:
        lease = json.loads(path.read_text())
        expires, seconds = float(lease["expires"]), float(lease["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
    return (expires - (time.time() if now is None else now)) / seconds if seconds > 0 else 0.0


def watch(path: Path, on_lost: Callable[[], None]) -> threading.Thread:
    """Call ``on_lost`` once, from a thread, when less than a third of the lease is left."""
    def run() -> None:
        while left(path) >= 1 / 3:
            time.sleep(POLL)
        on_lost()

    thread = threading.Thread(target=run, name="lease-watch", daemon=True)
    thread.start()
    return thread
