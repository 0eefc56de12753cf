"""The build ledger on SQLite and on a real PostgreSQL server: states, leases, retries, and
many workers claiming from one queue."""

import multiprocessing
import time

import pytest

from factory.failures import FailureClass
from factory.pipeline.record import BuildStatus
from factory.queue.ledger import DAY, Demand, Ledger, priority

NOW = 1_800_000_000.0


def demand(project, version="latest", hits=1, clients=("c1",), seen=NOW):
    return Demand(project, version, hits, frozenset(clients), seen, seen)


def test_demand_is_queued_once_and_then_only_gains_weight(queue_url):
    with Ledger(queue_url) as ledger:
        assert ledger.add([demand("a", hits=2, clients=("c1", "c2")), demand("b", "1.0")], now=NOW) == (2, 0)
        assert ledger.add([demand("a", hits=3, clients=("c2", "c3"), seen=NOW + 60)], now=NOW + 60) == (0, 1)
        a = ledger.get("a", "latest")
        assert (a.state, a.hits, a.clients, a.first_seen, a.last_seen) == ("queued", 5, 3, NOW, NOW + 60)
        assert a.priority == pytest.approx(priority(5, 3, NOW + 60))
        assert ledger.counts() == {"queued": 2, "building": 0, "built": 0, "failed": 0, "refused": 0}


def test_priority_rises_with_hits_clients_and_recency(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([
            demand("old-popular", hits=50, clients=[f"c{i}" for i in range(10)], seen=NOW - 5 * DAY),
            demand("new-rare", hits=1, seen=NOW),
            demand("new-popular", hits=20, clients=("c1", "c2", "c3"), seen=NOW),
            demand("new-medium", hits=5, clients=("c1",), seen=NOW),
        ], now=NOW)
        assert [i.project for i in ledger.top_queued()] == ["new-popular", "new-medium", "new-rare", "old-popular"]
        assert [ledger.claim("w", now=NOW).project for _ in range(4)] == ["new-popular", "new-medium", "new-rare", "old-popular"]
        assert ledger.claim("w", now=NOW) is None


def test_outcomes_become_states(queue_url):
    with Ledger(queue_url, max_attempts=2, backoff=60) as ledger:
        ledger.add([demand(p) for p in ("ok", "broken", "nosdist", "flaky")], now=NOW)
        items = {}
        while (item := ledger.claim("w", now=NOW)) is not None:
            items[item.project] = item
        assert ledger.finish(items["ok"], "w", BuildStatus.BUILT, record="r.json", built_version="1.0", now=NOW) == "built"
        assert ledger.finish(items["broken"], "w", BuildStatus.FAILED, FailureClass.COMPILE, "x.c:1: error", now=NOW) == "failed"
        assert ledger.finish(items["nosdist"], "w", BuildStatus.FAILED, FailureClass.NO_SOURCE, "no sdist", now=NOW) == "refused"
        # Transient: back to the queue, not before the backoff has passed.
        assert ledger.finish(items["flaky"], "w", BuildStatus.FAILED, FailureClass.NETWORK, "timed out", now=NOW) == "queued"
        assert ledger.claim("w", now=NOW + 59) is None
        again = ledger.claim("w", now=NOW + 61)
        assert again.project == "flaky" and again.attempts == 2
        # The attempts are used up: it stays failed.
        assert ledger.finish(again, "w", BuildStatus.FAILED, FailureClass.NETWORK, "timed out", now=NOW + 61) == "failed"
        ok = ledger.get("ok", "latest")
        assert (ok.state, ok.built_version, ok.record, ok.failure_class) == ("built", "1.0", "r.json", None)
        # New hits on built, failed or refused requests raise their weight, nothing else.
        ledger.add([demand(p, seen=NOW + 100) for p in ("ok", "broken", "nosdist")], now=NOW + 100)
        assert {i.project: (i.state, i.hits) for i in ledger.all()} == {
            "ok": ("built", 2), "broken": ("failed", 2), "nosdist": ("refused", 2), "flaky": ("failed", 1)}
        assert ledger.failure_classes() == {"compile": 1, "no-source": 1, "network": 1}
        # A person fixes the cause and requeues.
        assert ledger.requeue(failure_class="compile", now=NOW + 200) == 1
        assert ledger.requeue("nosdist", now=NOW + 200) == 0  # refused is not requeued unless asked
        assert ledger.requeue("nosdist", states=("refused",), now=NOW + 200) == 1
        assert {i.project for i in ledger.all() if i.state == "queued"} == {"broken", "nosdist"}


def test_leases_expire_and_a_lost_lease_cannot_finish(queue_url):
    with Ledger(queue_url, lease_seconds=30, max_attempts=3) as ledger:
        ledger.add([demand("a")], now=NOW)
        first = ledger.claim("w1", now=NOW)
        assert ledger.claim("w2", now=NOW + 10) is None  # leased
        assert ledger.heartbeat(first.id, "w1", now=NOW + 20)  # renewed until NOW + 50
        assert ledger.claim("w2", now=NOW + 40) is None
        second = ledger.claim("w2", now=NOW + 51)  # expired: w1 is presumed dead
        assert second.id == first.id and second.lease_owner == "w2" and second.attempts == 2
        assert not ledger.heartbeat(first.id, "w1", now=NOW + 52)
        assert ledger.finish(first, "w1", BuildStatus.BUILT, now=NOW + 53) is None
        assert ledger.finish(second, "w2", BuildStatus.BUILT, now=NOW + 54) == "built"


def test_a_release_gives_the_item_back_uncounted(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([demand("a")], now=NOW)
        item = ledger.claim("w", now=NOW)
        assert ledger.release(item.id, "w", now=NOW)
        again = ledger.get("a", "latest")
        assert (again.state, again.attempts, again.lease_owner) == ("queued", 0, None)


def test_an_item_that_keeps_losing_its_worker_fails(queue_url):
    with Ledger(queue_url, lease_seconds=10, max_attempts=2) as ledger:
        ledger.add([demand("a")], now=NOW)
        ledger.claim("w1", now=NOW)
        ledger.claim("w2", now=NOW + 11)
        assert ledger.claim("w3", now=NOW + 22) is None
        item = ledger.get("a", "latest")
        assert item.state == "failed" and item.failure_class == "internal" and "lost 2 times" in item.reason


def _claim_all(url, worker, out):
    claimed = []
    with Ledger(url) as ledger:
        while (item := ledger.claim(worker)) is not None:
            claimed.append(item.id)
            assert ledger.finish(item, worker, BuildStatus.BUILT) == "built"
    out.put((worker, claimed))


def test_eight_workers_share_one_queue_without_double_or_lost_claims(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([demand(f"p{i}", hits=i % 17 + 1) for i in range(2000)], now=time.time())
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(queue_url, f"w{n}", out)) for n in range(8)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [i for _, ids in results for i in ids]
    assert len(claimed) == len(set(claimed)) == 2000  # zero double claims, zero lost
    assert sum(1 for _, ids in results if ids) >= 2  # the work really was shared
    with Ledger(queue_url) as ledger:
        assert ledger.counts()["built"] == 2000
