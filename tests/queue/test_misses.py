"""Miss logs: both formats, bad lines with their numbers, names, versions; no line crashes it."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factory.queue import misses

COMBINED = [
    b'10.0.0.1 - - [22/Nov/2026:09:12:01 +0000] "GET /simple/Foo_Bar/ HTTP/1.1" 404 153 "-" "pip/26.0"',
    b'10.0.0.2 - - [22/Nov/2026:09:12:02 +0100] "GET /simple/foo.bar HTTP/1.1" 404 0 "-" "uv/0.13"',
    b'10.0.0.3 - - [22/Nov/2026:09:12:03 +0000] "GET /packages/ab/cd/Foo_Bar-1.0.tar.gz?x=1 HTTP/1.1" 404 0 "-" "pip"',
    b'10.0.0.3 - - [22/Nov/2026:09:12:04 +0000] "GET /f/foo_bar-2.0-cp311-cp311-manylinux_2_28_x86_64.whl.metadata HTTP/2.0" 404 0',
    b'10.0.0.3 - - [22/Nov/2026:09:12:05 +0000] "GET /simple/foo-bar/ HTTP/1.1" 200 999 "-" "pip"',
    b'10.0.0.3 - - [22/Nov/2026:09:12:06 +0000] "GET /simple/pip/ HTTP/1.1" 404 0 "-" "pip"',
    b'10.0.0.3 - - [22/Nov/2026:09:12:07 +0000] "GET /robots.txt HTTP/1.1" 404 0 "-" "bot"',
    b"garbage",
    b'10.0.0.4 - - [22/Nov/2026:09:12:08 +0000] "GET /acme/prod/+simple/Django/ HTTP/1.1" 404 0 "-" "pip"',
    b'10.0.0.4 - - [99/Foo/2026:09:12:08 +0000] "GET /simple/x/ HTTP/1.1" 404 0 "-" "pip"',
]


def test_combined_log():
    found = list(misses.parse_combined(COMBINED))
    got = [(m.kind, m.project, m.version, m.client) for m in found if isinstance(m, misses.Miss)]
    assert got == [
        ("project", "foo-bar", None, "10.0.0.1"),
        ("project", "foo-bar", None, "10.0.0.2"),
        ("file", "foo-bar", "1.0", "10.0.0.3"),
        ("metadata", "foo-bar", "2.0", "10.0.0.3"),
        ("project", "django", None, "10.0.0.4"),
    ]
    bad = [(b.line, b.reason) for b in found if isinstance(b, misses.BadLine)]
    assert bad == [(8, "not a combined access log line"), (10, "bad time '99/Foo/2026:09:12:08 +0000'")]
    first, second = found[0], found[1]
    assert second.ts - first.ts == 1 - 3600  # +0100 is an hour ahead of UTC


def test_jsonl_log():
    lines = [
        json.dumps({"ts": "2026-11-22T09:00:00Z", "kind": "project", "project": "Foo.Bar", "status": 404,
                    "user_agent": "pip/26"}).encode(),
        json.dumps({"ts": 1790000000, "kind": "file", "filename": "foo_bar-1.0.post1.tar.gz", "client": "c1"}).encode(),
        json.dumps({"ts": 1790000000, "kind": "metadata", "filename": "foo_bar-01.0-py3-none-any.whl.metadata"}).encode(),
        b"{not json",
        json.dumps({"kind": "project", "project": "x"}).encode(),
        json.dumps({"ts": 1, "kind": "wheel", "project": "x"}).encode(),
        json.dumps({"ts": 1, "kind": "file", "filename": "README.txt"}).encode(),
        json.dumps({"ts": 1, "kind": "file", "project": "other", "filename": "foo_bar-1.0.tar.gz"}).encode(),
        json.dumps({"ts": 1, "kind": "project", "project": "pip"}).encode(),
        b"",
        json.dumps([1, 2]).encode(),
    ]
    found = list(misses.parse_jsonl(lines))
    got = [(m.kind, m.project, m.version, m.client) for m in found if isinstance(m, misses.Miss)]
    assert got == [("project", "foo-bar", None, "pip/26"), ("file", "foo-bar", "1.0.post1", "c1"),
                   ("metadata", "foo-bar", "1.0", "")]
    bad = {b.line: b.reason for b in found if isinstance(b, misses.BadLine)}
    assert sorted(bad) == [4, 5, 6, 7, 8, 11]
    assert "no `ts`" in bad[5] and "`kind` must be one of" in bad[6] and "does not match" in bad[8]


def test_format_detection():
    assert misses.detect(COMBINED[0]) == "combined"
    assert misses.detect(b'  {"ts": 1}') == "jsonl"
    with pytest.raises(misses.UnknownFormat):
        misses.detect(b"hello")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.lists(st.text(max_size=200), max_size=20))
def test_no_line_crashes_either_parser(raw, text):
    lines = raw + [t.encode("utf-8", "surrogatepass") for t in text]
    for parse in misses.PARSERS.values():
        for item in parse(lines):
            assert isinstance(item, misses.Miss | misses.BadLine)


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
                    max_leaves=20),
       st.fixed_dictionaries({}, optional={"ts": st.one_of(st.integers(), st.floats(), st.text(max_size=40)),
                                           "kind": st.sampled_from(["project", "file", "metadata", "x"]),
                                           "project": st.text(max_size=30), "filename": st.text(max_size=60),
                                           "version": st.text(max_size=20)}))
def test_no_json_record_crashes_the_parser(value, record):
    for data in (value, record):
        for item in misses.parse_jsonl([json.dumps(data).encode()]):
            assert isinstance(item, misses.Miss | misses.BadLine)


def test_deeply_nested_json_is_a_bad_line():
    (item,) = misses.parse_jsonl([b"[" * 100000 + b"]" * 100000])
    assert isinstance(item, misses.BadLine)


def test_the_whole_buffer_reader_agrees_with_the_line_reader():
    good = [line for line in COMBINED if line != b"garbage" and b"99/Foo" not in line]
    for lines in (good, COMBINED, good + [b""], [b""] + good):
        data = b"\n".join(lines) + b"\n"
        assert list(misses.parse_buffer("combined", data, 5)) == list(misses.parse_combined(lines, 5))
