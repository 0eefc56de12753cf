"""Stage 3: every unsafe archive is refused, naming the member, and leaves nothing behind."""

import io
import tarfile
import zipfile

import pytest
from support.sdists import MALICIOUS, make_sdist, malicious_sdist

from factory.failures import BuildFailure, FailureClass
from factory.fetch import Source
from factory.unpack import Limits, unpack

LIMITS = Limits(max_bytes=1024 * 1024, max_files=1000)


def _source(path):
    return Source(release=None, path=path, sha256="")  # type: ignore[arg-type]


def test_a_good_sdist_unpacks_to_its_one_directory(tmp_path):
    sdist = make_sdist("fixture-cext", "1.0.0", tmp_path)
    tree = unpack(_source(sdist), tmp_path / "out", LIMITS)
    assert tree.root == tmp_path / "out" / "fixture_cext-1.0.0"
    assert (tree.root / "fixture_cext.c").is_file() and (tree.root / "PKG-INFO").is_file()
    assert tree.epoch >= 315532800


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_unsafe_archives_are_refused(tmp_path, case):
    sdist, member = malicious_sdist(case, tmp_path)
    dest = tmp_path / "out"
    with pytest.raises(BuildFailure) as info:
        unpack(_source(sdist), dest, LIMITS)
    assert info.value.failure_class == FailureClass.UNSAFE_ARCHIVE
    assert repr(member) in info.value.reason, info.value.reason
    assert not dest.exists()  # nothing half-unpacked is left
    assert not (tmp_path.parent / "factory-evil").exists()


def test_member_count_limit(tmp_path):
    sdist = make_sdist("fixture-cext", "1.0.0", tmp_path)
    with pytest.raises(BuildFailure, match="more than 2 members"):
        unpack(_source(sdist), tmp_path / "out", Limits(max_bytes=10**9, max_files=2))


def test_links_inside_the_tree_are_fine(tmp_path):
    path = tmp_path / "ok-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("ok-1.0/pkg/real.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("ok-1.0/alias.py")
        link.type, link.linkname = tarfile.SYMTYPE, "pkg/real.py"
        tar.addfile(link)
    tree = unpack(_source(path), tmp_path / "out", LIMITS)
    assert (tree.root / "alias.py").read_bytes() == data


def test_zip_sdists_are_checked_by_what_they_really_hold(tmp_path):
    good = tmp_path / "z-1.0.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("z-1.0/setup.py", "x")
        zf.writestr("z-1.0/big.bin", b"\0" * (2 * 1024 * 1024))
    with pytest.raises(BuildFailure, match="'z-1.0/big.bin': unpacked size exceeds"):
        unpack(_source(good), tmp_path / "out", LIMITS)
    evil = tmp_path / "y-1.0.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("y-1.0/setup.py", "x")
        zf.writestr("../../escape.py", "x")
    with pytest.raises(BuildFailure, match=r"'../../escape.py': path contains '..'"):
        unpack(_source(evil), tmp_path / "out2", LIMITS)


def test_not_an_archive(tmp_path):
    bad = tmp_path / "x-1.0.tar.gz"
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(BuildFailure) as info:
        unpack(_source(bad), tmp_path / "out", LIMITS)
    assert info.value.failure_class == FailureClass.UNSAFE_ARCHIVE and "not a readable" in info.value.reason
