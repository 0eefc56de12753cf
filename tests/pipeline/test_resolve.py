"""Stage 1 against a real HTTP index on 127.0.0.1 (JSON, and HTML as the fallback)."""

import pytest
from packaging.version import Version

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.request import parse_request
from factory.pipeline.resolve import choose, resolve
from factory.plumbing import net


@pytest.fixture
def client():
    with net.client(10) as c:
        yield c


def test_json_page_gives_the_sdist_and_its_hash(local_index, sdists, client):
    release = resolve(parse_request("Fixture_Cext==1.0.0"), local_index.url, client)
    assert release.project == "fixture-cext" and release.version == Version("1.0.0")
    assert release.sdist.filename == sdists["fixture-cext"].name
    assert release.sdist.url.startswith("http://127.0.0.1:") and release.sdist.url.endswith(release.sdist.filename)
    assert len(release.sdist.sha256) == 64


def test_html_only_index_is_read_too(local_index, client):
    release = resolve(parse_request("fixture-htmlonly"), local_index.url, client)
    assert release.version == Version("1.0.0")
    assert release.sdist.requires_python == ">=3.8"
    assert len(release.sdist.sha256) == 64


@pytest.mark.parametrize(
    ("spec", "failure_class", "words"),
    [
        ("no-such-project-here", FailureClass.NOT_FOUND, "no project"),
        ("fixture-cext==9.9", FailureClass.NOT_FOUND, "no release 9.9"),
        ("fixture-wheelonly==1.0.0", FailureClass.NO_SOURCE, "no sdist: cannot rebuild from source"),
        ("fixture-wheelonly", FailureClass.NO_SOURCE, "no sdist"),
    ],
)
def test_failures_are_classified(local_index, client, spec, failure_class, words):
    with pytest.raises(BuildFailure) as info:
        resolve(parse_request(spec), local_index.url, client)
    assert info.value.failure_class == failure_class
    assert words in info.value.reason


def test_unreachable_upstream_is_a_network_failure(client):
    with pytest.raises(BuildFailure) as info:
        resolve(parse_request("six"), "http://127.0.0.1:9/simple/", client)
    assert info.value.failure_class == FailureClass.NETWORK


def _details(*files):
    return {"meta": {"api-version": "1.1"}, "name": "demo", "files": [
        {"filename": name, "url": name, "hashes": {"sha256": "a" * 64}, **extra} for name, extra in files
    ]}


def test_newest_non_yanked_final_release_with_an_sdist_is_chosen():
    details = _details(
        ("demo-1.0.tar.gz", {}),
        ("demo-1.0.zip", {}),
        ("demo-2.0.tar.gz", {"yanked": "broken"}),
        ("demo-3.0-py3-none-any.whl", {}),
        ("demo-4.0b1.tar.gz", {}),
        ("other-9.0.tar.gz", {}),
    )
    release = choose(parse_request("demo"), "http://x/simple/demo/", details)
    assert release.version == Version("1.0")
    assert release.sdist.filename == "demo-1.0.tar.gz"  # .tar.gz over .zip
    assert release.sdist.url == "http://x/simple/demo/demo-1.0.tar.gz"
    # An exact pin may take a yanked release (PEP 592), and says so.
    pinned = choose(parse_request("demo==2.0"), "http://x/simple/demo/", details)
    assert pinned.sdist.yanked == "broken"
    assert choose(parse_request("demo==4.0b1"), "http://x/", details).version == Version("4.0b1")


def test_an_sdist_without_a_sha256_is_refused():
    details = _details(("demo-1.0.tar.gz", {}))
    details["files"][0]["hashes"] = {"md5": "0" * 32}
    with pytest.raises(BuildFailure) as info:
        choose(parse_request("demo==1.0"), "http://x/", details)
    assert info.value.failure_class == FailureClass.NO_SOURCE and "sha256" in info.value.reason
