"""Ingestion into the ledger: aggregation, idempotent by content, appended logs, --strict."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory.queue.ingest import IngestError, ingest
from factory.queue.ledger import Demand, Ledger

SAMPLE = Path(__file__).parents[1] / "data" / "sample-misses.log"


def snapshot(ledger):
    return {(i.project, i.version): (i.state, i.hits, i.clients) for i in ledger.all()}


def test_the_sample_log(queue_url):
    with Ledger(queue_url) as ledger:
        report = ingest(ledger, "sample", SAMPLE.read_bytes())
        assert (report.format, report.lines, report.misses, report.requests, report.new) == ("combined", 10, 6, 3, 3)
        assert [(b.line, b.reason) for b in report.bad] == [(9, "not a combined access log line")]
        assert snapshot(ledger) == {
            ("six", "latest"): ("queued", 3, 3),
            ("markupsafe", "3.0.2"): ("queued", 2, 2),  # the sdist and a wheel's .metadata
            ("no-such-project-for-factory-tests", "latest"): ("queued", 1, 1),
        }
        assert [i.spec for i in ledger.top_queued()][0] == "six"


def test_the_same_bytes_twice_add_nothing_and_a_grown_log_adds_its_new_lines(queue_url):
    data = SAMPLE.read_bytes()
    with Ledger(queue_url) as ledger:
        ingest(ledger, "first", data)
        before = snapshot(ledger)
        again = ingest(ledger, "again", data)
        assert (again.lines, again.misses, again.skipped_bytes) == (0, 0, len(data))
        assert snapshot(ledger) == before
        more = (b'10.0.0.99 - - [22/Nov/2026:12:00:00 +0000] "GET /simple/six/ HTTP/1.1" 404 1 "-" "pip"\n'
                b"another bad line\n")
        grown = ingest(ledger, "grown", data + more)
        assert (grown.lines, grown.misses, grown.skipped_bytes) == (2, 1, len(data))
        assert [b.line for b in grown.bad] == [12]  # numbered in the whole file
        assert snapshot(ledger)[("six", "latest")] == ("queued", 4, 4)
        # Re-ingesting the grown log adds nothing either.
        assert ingest(ledger, "grown", data + more).misses == 0
        assert snapshot(ledger)[("six", "latest")] == ("queued", 4, 4)


def test_strict_refuses_bad_lines_and_records_nothing(queue_url):
    with Ledger(queue_url) as ledger:
        with pytest.raises(IngestError, match=r"1 bad lines, nothing ingested.*strict:9: not a combined"):
            ingest(ledger, "strict", SAMPLE.read_bytes(), strict=True)
        assert ledger.all() == []
        assert ingest(ledger, "then", SAMPLE.read_bytes()).new == 3  # not marked as ingested


def test_jsonl_from_stdin_through_the_command_line(config, tmp_path):
    lines = [
        {"ts": "2026-11-22T10:00:00Z", "kind": "project", "project": "Fixture_Pure", "status": 404, "user_agent": "pip/26"},
        {"ts": "2026-11-22T10:00:01Z", "kind": "file", "filename": "fixture_cext-1.0.0-cp311-cp311-manylinux_2_28_x86_64.whl",
         "status": 404, "user_agent": "uv/0.13"},
    ]
    data = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n"
    env = {"FACTORY_STATE_DIR": str(config.state_dir), "FACTORY_UPSTREAM": config.upstream, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "factory", "ingest", "-"], input=data, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "<stdin> (jsonl): 3 lines, 2 misses -> 2 requests (2 new), 1 bad lines" in done.stdout
    assert "<stdin>:3:" in done.stderr
    strict = subprocess.run([sys.executable, "-m", "factory", "ingest", "--strict", "-"], input="{broken\n",
                            capture_output=True, text=True, env=env)
    assert strict.returncode == 2 and "nothing ingested" in strict.stderr
    status = subprocess.run([sys.executable, "-m", "factory", "status", "--json"], capture_output=True, text=True, env=env)
    queued = {i["spec"] for i in json.loads(status.stdout)["top_queued"]}
    assert queued == {"fixture-pure", "fixture-cext==1.0.0"}
    missing = subprocess.run([sys.executable, "-m", "factory", "ingest", str(tmp_path / "nope.log")],
                             capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "nope.log: cannot read" in missing.stderr


def test_a_line_still_being_written_waits_for_its_newline(queue_url):
    first = b'10.0.0.1 - - [22/Nov/2026:09:00:00 +0000] "GET /simple/six/ HTTP/1.1" 404 1 "-" "pip"\n'
    half = b'10.0.0.2 - - [22/Nov/2026:09:00:01 +0000] "GET /simple/si'
    with Ledger(queue_url) as ledger:
        report = ingest(ledger, "log", first + half)
        assert (report.lines, report.misses, report.bad) == (1, 1, ())
        rest = b'x/ HTTP/1.1" 404 1 "-" "pip"\n'
        report = ingest(ledger, "log", first + half + rest)
        assert (report.lines, report.misses, report.bad, report.skipped_bytes) == (1, 1, (), len(first))
        assert snapshot(ledger)[("six", "latest")] == ("queued", 2, 2)


def test_non_finite_times_are_bad_lines(queue_url):
    with Ledger(queue_url) as ledger:
        report = ingest(ledger, "log", b'{"ts": NaN, "kind": "project", "project": "six"}\n'
                                       b'{"ts": 1e999, "kind": "project", "project": "six"}\n')
        assert [b.line for b in report.bad] == [1, 2] and ledger.all() == []


BAD_NAMES = ["evil name", "$(id)", "-h", "http:localhost:8473", "a" * 200_000]


def test_names_that_are_no_project_names_are_refused_with_a_count(queue_url):
    """Issue 12, item 12: file misses named `evil name`, `$(id)`, `-h` or `http:localhost:8473`
    were queued (each then failed three times as internal), and a 200 KB name crashed the
    worker with E2BIG on every claim. They are bad lines now, counted, and nothing is queued."""
    lines = [{"ts": 1, "kind": "file", "filename": f"{name}-1.0.tar.gz"} for name in BAD_NAMES]
    lines += [{"ts": 1, "kind": "project", "project": name} for name in BAD_NAMES]
    lines.append({"ts": 1, "kind": "file", "filename": "good-1.0.tar.gz"})
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    access = b'10.0.0.1 - - [22/Nov/2026:09:00:00 +0000] "GET /files/%24(id)-1.0.tar.gz HTTP/1.1" 404 1 "-" "pip"\n'
    with Ledger(queue_url) as ledger:
        report = ingest(ledger, "misses.jsonl", data)
        assert (report.misses, report.new, len(report.bad)) == (1, 1, 2 * len(BAD_NAMES))
        assert all("project name" in b.reason for b in report.bad), report.bad
        assert [(i.project, i.version) for i in ledger.all()] == [("good", "1.0")]
        combined = ingest(ledger, "access.log", access)
        assert (combined.misses, [b.line for b in combined.bad]) == (0, [1])
        assert "project name" in combined.bad[0].reason


def test_a_log_sharing_its_first_line_with_another_is_ingested(queue_url):
    """Issue 12, item 11: a log that began with the same line as one ingested before could never
    be ingested ("ingested by another process meanwhile", exit 2, on every try)."""
    first = b'10.0.0.1 - - [22/Nov/2026:09:00:00 +0000] "GET /simple/six/ HTTP/1.1" 404 1 "-" "pip"\n'
    one = first + b'10.0.0.2 - - [22/Nov/2026:09:00:01 +0000] "GET /simple/attrs/ HTTP/1.1" 404 1 "-" "pip"\n'
    other = first + b'10.0.0.3 - - [22/Nov/2026:09:00:02 +0000] "GET /simple/flask/ HTTP/1.1" 404 1 "-" "pip"\n'
    assert len(one) == len(other)  # the same size too: one entry per (first line, size) lost the second
    with Ledger(queue_url) as ledger:
        assert ingest(ledger, "one", one).misses == 2
        report = ingest(ledger, "other", other)
        assert (report.misses, report.skipped_bytes) == (2, 0)
        assert snapshot(ledger)[("flask", "latest")] == ("queued", 1, 1)
        assert snapshot(ledger)[("six", "latest")] == ("queued", 2, 1)  # the same first line, the same client
        for name, data in (("one", one), ("other", other)):  # each is known now: nothing twice
            again = ingest(ledger, name, data)
            assert (again.misses, again.skipped_bytes) == (0, len(data))
        grown = ingest(ledger, "other", other + b'10.0.0.4 - - [22/Nov/2026:09:00:03 +0000] '
                                                 b'"GET /simple/six/ HTTP/1.1" 404 1 "-" "pip"\n')
        assert (grown.misses, grown.skipped_bytes) == (1, len(other))
        assert snapshot(ledger)[("six", "latest")] == ("queued", 3, 2)


def test_a_name_queued_before_names_were_checked_is_refused_not_built(config):
    """Issue 12, item 12: such an item failed three times as internal, and a 200 KB one crashed the
    worker with E2BIG on every claim."""
    env = {**os.environ, "FACTORY_STATE_DIR": str(config.state_dir), "FACTORY_UPSTREAM": config.upstream,
           "FACTORY_INDEX_DIR": str(config.index_dir)}
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        ledger.add([Demand(name, "1.0", 1, frozenset({"c"}), 1.0, 1.0) for name in ("$(id)", "a" * 200_000)])
    done = subprocess.run([sys.executable, "-m", "factory", "worker"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    with Ledger(str(config.state_dir / "queue.sqlite3")) as ledger:
        items = ledger.all()
    assert [(i.state, i.failure_class) for i in items] == [("refused", "not-found")] * 2
    assert all("not a project name" in i.reason for i in items)
    assert not (config.state_dir / "records").exists()  # no build was started
