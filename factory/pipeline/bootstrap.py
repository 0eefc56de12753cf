"""Build a request and, first, every build dependency it waits for, recursively: what
``factory build`` does (the queue does the same with its own edges, see queue/ledger.py).

A build whose build requirements are not all in factory's index ends ``waiting`` and names them;
each is built the same way, then the request again. A dependency that fails fails its dependents
with ``dependency-failed`` naming it; a dependency that needs one of its dependents is a cycle
(``dependency-cycle``), which only a recipe's seed can break.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from factory.config import Config
from factory.failures import FailureClass
from factory.pipeline.record import BuildRecord, BuildStatus, now, record_path, save
from factory.pipeline.request import BuildRequest, parse_request
from factory.pipeline.run import run

Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Node:
    """One request's final record, and the build dependencies built for it first."""

    request: BuildRequest
    record: BuildRecord
    dependencies: tuple[Node, ...] = ()

    @property
    def ok(self) -> bool:
        return self.record.status is BuildStatus.BUILT

    def walk(self) -> list[Node]:
        """This node and every dependency below it, depth first."""
        return [self, *(n for d in self.dependencies for n in d.walk())]


def build(request: BuildRequest, config: Config, say: Say = lambda _: None,
          dependents: tuple[BuildRequest, ...] = (), floor: str | None = None) -> Node:
    """Build ``request`` once its build dependencies are in the index, building them first (with
    tools no older than ``request``'s release: see requirements.py)."""
    built: list[Node] = []  # the builds this one needed, each shown once
    done: set[str] = set()
    while True:
        record = run(request, config, say, floor=floor)
        if record.status is not BuildStatus.WAITING:
            return Node(request, record, tuple(built))
        again = [spec for spec in record.waiting_for if spec in done]
        if again:  # built, yet still missing: it did not build for every target this build needs
            return _failed(request, config, record, built, FailureClass.DEPENDENCY_FAILED,
                           f"build dependency {again[0]} was built but does not serve every target of this build")
        for spec in record.waiting_for:
            dependency = parse_request(spec)
            chain = (*dependents, request)
            if dependency in chain:
                cycle = " -> ".join(map(str, (*chain[chain.index(dependency):], dependency)))
                return _failed(request, config, record, built, FailureClass.DEPENDENCY_CYCLE,
                               f"build dependencies form a cycle ({cycle}): a recipe must take one of them from the "
                               "upstream as a binary ([build-requires] seed)")
            say(f"{request} needs {dependency} to build: building it first")
            node = build(dependency, config, say, chain, record.waiting_floor)
            done.add(spec)
            if node.record.published or node.dependencies or not node.ok:  # not merely built meanwhile
                built.append(node)
            if not node.ok:
                why = f"{node.record.failure_class}: {node.record.reason}" if node.record.failure_class else \
                    str(node.record.status)
                return _failed(request, config, record, built, FailureClass.DEPENDENCY_FAILED,
                               f"build dependency {dependency} failed ({why})")


def _failed(request: BuildRequest, config: Config, record: BuildRecord, built: list[Node], failure: FailureClass,
            reason: str) -> Node:
    """The request's record, ending as failed because of its dependencies (saved over the
    waiting one: it is the same build, decided)."""
    final = dataclasses.replace(record, status=BuildStatus.FAILED, failure_class=failure, reason=reason,
                                finished=now())
    save(record_path(config.records_dir, request.project, record.id), final)
    return Node(request, final, tuple(built))
