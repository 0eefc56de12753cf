"""Builds that must fail before a container runs: the right class, a record, and nothing published."""

import pytest
from support.sdists import MALICIOUS

from factory.pipeline import record as records
from factory.pipeline.request import parse_request
from factory.pipeline.run import run


def assert_nothing_published(cfg):
    files = cfg.index_dir / "files"
    assert not files.exists() or not any(p.is_file() for p in files.rglob("*"))
    assert not (cfg.index_dir / "simple").exists()


def assert_failed(cfg, spec, failure_class, *words):
    record = run(parse_request(spec), cfg)
    assert record.status == "failed"
    assert record.failure_class == failure_class, record.reason
    for word in words:
        assert word in record.reason, record.reason
    saved = records.load_all(cfg.records_dir)
    assert [r.id for r in saved] == [record.id] and saved[0].failure_class == failure_class
    assert not any(cfg.work_dir.iterdir()) if cfg.work_dir.exists() else True
    assert_nothing_published(cfg)
    return record


def test_hash_mismatch(config):
    assert_failed(config, "fixture-badhash==1.0.0", "hash-mismatch", "0" * 64, "fixture_badhash-1.0.0.tar.gz")
    # Nothing of the bad download is kept in the cache either.
    assert not [p for p in (config.cache_dir / "sdists").rglob("*") if p.is_file()]


def test_release_without_sdist_is_refused(config):
    assert_failed(config, "fixture-wheelonly==1.0.0", "no-source", "no sdist: cannot rebuild from source")


def test_listed_file_that_is_gone(config):
    assert_failed(config, "fixture-gone==1.0.0", "not-found", "404")


def test_unknown_project(config, local_index):
    local_index.fallback, fallback = None, local_index.fallback  # no redirect for this one
    try:
        assert_failed(config, "fixture-never-heard-of", "not-found", "no project")
    finally:
        local_index.fallback = fallback


def test_unknown_version(config):
    assert_failed(config, "fixture-cext==7.0", "not-found", "no release 7.0", "newest: 1.0.0")


def test_unreachable_upstream(config):
    assert_failed(config.replace(upstream="http://127.0.0.1:9/simple/"), "six==1.17.0", "network")


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archives(config, case):
    cfg = config.replace(max_unpacked_size=1024 * 1024)
    record = assert_failed(cfg, f"evil-{case}==1.0", "unsafe-archive", "member")
    assert "images" not in record.durations and "build" not in record.durations  # no container ran
