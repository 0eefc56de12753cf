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
        assert ledger.counts() == {"queued": 2, "building": 0, "built": 0, "failed": 0, "refused": 0, "waiting": 0}


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


def _claim_all(url, worker, out, together):
    claimed = []
    with Ledger(url) as ledger:
        while (item := ledger.claim(worker)) is not None:
            claimed.append(item.id)
            if len(claimed) == 1:  # all hold a claim before any goes on: shared by construction, not by speed
                together.wait()
            assert ledger.finish(item, worker, BuildStatus.BUILT) == "built"
    out.put((worker, claimed))


def test_eight_workers_share_one_queue_without_double_or_lost_claims(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([demand(f"p{i}", hits=i % 17 + 1) for i in range(2000)], now=time.time())
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    together = ctx.Barrier(8, timeout=300)
    procs = [ctx.Process(target=_claim_all, args=(queue_url, f"w{n}", out, together)) for n in range(8)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    claimed = [i for _, ids in results for i in ids]
    assert len(claimed) == len(set(claimed)) == 2000  # zero double claims, zero lost
    assert all(ids for _, ids in results)  # the work really was shared, by all eight
    with Ledger(queue_url) as ledger:
        assert ledger.counts()["built"] == 2000


# -- build dependencies -------------------------------------------------------------------------

def claim(ledger, project, version, worker="w", now=NOW):
    item = ledger.claim(worker, now=now)
    assert (item.project, item.version) == (project, version), item
    return item


def test_a_request_waits_for_its_build_dependencies_which_go_first(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([demand("app", "1.0", hits=9), demand("other", "1.0", hits=5)], now=NOW)
        app = claim(ledger, "app", "1.0")
        assert ledger.wait(app, "w", [("setuptools", "75.2.0"), ("cython", "3.0.11")], "r1.json",
                           floor="2024-10-18T15:21:55Z", now=NOW) == "waiting"
        item = ledger.get("app", "1.0")
        assert (item.state, item.attempts, item.lease_owner, item.reason) == \
            ("waiting", 0, None, "waiting for setuptools==75.2.0, cython==3.0.11")
        dep = ledger.get("setuptools", "75.2.0")
        assert (dep.state, dep.origin, dep.priority) == ("queued", "build dependency of app==1.0", app.priority)
        assert dep.floor == "2024-10-18T15:21:55Z"  # built with tools no older than what needs it
        # The dependencies are as urgent as what waits for them: before `other`.
        first, second = ledger.claim("w", now=NOW), ledger.claim("w", now=NOW)
        assert {first.project, second.project} == {"setuptools", "cython"}
        assert ledger.finish(first, "w", BuildStatus.BUILT, now=NOW) == "built"
        assert ledger.get("app", "1.0").state == "waiting"  # one is still missing
        assert ledger.finish(second, "w", BuildStatus.BUILT, now=NOW) == "built"
        assert ledger.get("app", "1.0").state == "queued"
        assert claim(ledger, "app", "1.0").attempts == 1  # waiting did not count as an attempt
        assert [(p, v, s) for p, v, s in ledger.dependencies(app.id)] == \
            [("cython", "3.0.11", "built"), ("setuptools", "75.2.0", "built")]


def test_a_failed_dependency_fails_its_dependents_down_the_chain_and_a_requeue_restores_them(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([demand("app", "1.0")], now=NOW)
        ledger.wait(claim(ledger, "app", "1.0"), "w", [("lib", "2.0")], now=NOW)
        ledger.wait(claim(ledger, "lib", "2.0"), "w", [("tool", "3.0")], now=NOW)
        tool = claim(ledger, "tool", "3.0")
        assert ledger.finish(tool, "w", BuildStatus.FAILED, FailureClass.COMPILE, "x.c:1: error", now=NOW) == "failed"
        lib, app = ledger.get("lib", "2.0"), ledger.get("app", "1.0")
        assert (lib.state, lib.failure_class) == ("failed", "dependency-failed")
        assert lib.reason == "build dependency tool==3.0 failed (compile: x.c:1: error)"
        assert (app.state, app.failure_class) == ("failed", "dependency-failed")
        assert "lib==2.0" in app.reason
        # A person fixes the tool (a recipe, say) and requeues it: its dependents wait for it again.
        assert ledger.requeue("tool", "3.0", now=NOW) == 1
        assert [ledger.get(p, v).state for p, v in (("tool", "3.0"), ("lib", "2.0"), ("app", "1.0"))] == \
            ["queued", "waiting", "waiting"]
        assert ledger.finish(claim(ledger, "tool", "3.0"), "w", BuildStatus.BUILT, now=NOW) == "built"
        assert ledger.get("lib", "2.0").state == "queued"


def test_waiting_for_a_dependency_that_already_failed_fails_at_once(queue_url):
    with Ledger(queue_url, max_attempts=1) as ledger:
        ledger.add([demand("tool", "3.0"), demand("app", "1.0")], now=NOW)
        ledger.finish(claim(ledger, "tool", "3.0"), "w", BuildStatus.FAILED, FailureClass.NO_SOURCE, "no sdist", now=NOW)
        assert ledger.wait(claim(ledger, "app", "1.0"), "w", [("tool", "3.0")], now=NOW) == "failed"
        app = ledger.get("app", "1.0")
        assert (app.failure_class, app.reason) == ("dependency-failed",
                                                   "build dependency tool==3.0 failed (no-source: no sdist)")


def test_a_dependency_cycle_fails_instead_of_waiting_forever(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([demand("a", "1")], now=NOW)
        ledger.wait(claim(ledger, "a", "1"), "w", [("b", "2")], now=NOW)
        assert ledger.wait(claim(ledger, "b", "2"), "w", [("a", "1")], now=NOW) == "failed"
        b, a = ledger.get("b", "2"), ledger.get("a", "1")
        assert (b.failure_class, b.reason.split(":")[0]) == ("dependency-cycle", "build dependencies form a cycle (b==2 -> a==1 -> b==2)")
        assert "seed" in b.reason
        assert (a.state, a.failure_class) == ("failed", "dependency-failed")


def test_dependencies_built_meanwhile_requeue_and_built_but_useless_ones_fail(queue_url):
    with Ledger(queue_url) as ledger:
        ledger.add([demand("tool", "3.0"), demand("app", "1.0")], now=NOW)
        ledger.finish(claim(ledger, "tool", "3.0"), "w", BuildStatus.BUILT, now=NOW)
        app = claim(ledger, "app", "1.0")
        assert ledger.wait(app, "w", [("tool", "3.0")], now=NOW) == "queued"  # built between the build's look and now
        again = claim(ledger, "app", "1.0")
        # Its build still lacks it: the built tool does not serve this build's targets.
        assert ledger.wait(again, "w", [("tool", "3.0")], now=NOW) == "failed"
        assert "was built but does not serve" in ledger.get("app", "1.0").reason


def test_a_lost_lease_cannot_wait(queue_url):
    with Ledger(queue_url, lease_seconds=10) as ledger:
        ledger.add([demand("app", "1.0")], now=NOW)
        first = claim(ledger, "app", "1.0", "w1")
        claim(ledger, "app", "1.0", "w2", now=NOW + 11)  # w1's lease ran out
        assert ledger.wait(first, "w1", [("tool", "3.0")], now=NOW + 12) is None
        assert ledger.get("tool", "3.0") is None


def test_a_queue_keyed_by_head_and_size_is_rekeyed(queue_url):
    """Issue 12, item 11: inputs were keyed by (first line, size), so a second log of the same
    first line and size was never marked ingested. A queue made then is rekeyed when opened."""
    old = "CREATE TABLE ingested (head TEXT NOT NULL, size BIGINT NOT NULL, digest TEXT NOT NULL, " \
          "at DOUBLE PRECISION NOT NULL, PRIMARY KEY (head, size))"
    if queue_url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(queue_url, autocommit=True) as conn:
            conn.execute(old)
            conn.execute("INSERT INTO ingested VALUES ('h', 10, 'd1', 1)")
    else:
        import sqlite3

        conn = sqlite3.connect(queue_url)
        conn.execute(old)
        conn.execute("INSERT INTO ingested VALUES ('h', 10, 'd1', 1)")
        conn.commit()
        conn.close()
    for _ in range(2):  # opening it again changes nothing more
        with Ledger(queue_url) as ledger:
            assert ledger.ingested_prefixes("h") == [(10, "d1")]
    with Ledger(queue_url) as ledger:
        ledger.add([], ingested=("h", 10, "d2"), seen=[(10, "d1")], now=NOW)
        assert ledger.ingested_prefixes("h") == [(10, "d1"), (10, "d2")]
