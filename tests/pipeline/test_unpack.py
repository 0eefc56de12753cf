"""Stage 3: every unsafe archive is refused, naming the member, and leaves nothing behind."""

import io
import tarfile
import zipfile

import pytest
from support.sdists import MALICIOUS, make_sdist, malicious_sdist

from factory.failures import BuildFailure, FailureClass
from factory.pipeline.fetch import Source
from factory.pipeline.unpack import Limits, unpack

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
    assert info.value.failure_class == FailureClass.UNSAFE_ARCHIVE and "cannot be unpacked" in info.value.reason


def _tar(path, add):
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        add(tar)
    return path


def _file(name, data=b"x", **pax):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = pax
    return info, io.BytesIO(data)


def test_hostile_archives_are_refused_not_crashed_on(tmp_path):
    """Each of these once raised a plain exception (recorded as internal, retried forever)."""
    cases = {
        "link-to-nothing": _tar(tmp_path / "a-1.0.tar.gz", lambda t: (
            t.addfile(*_file("a-1.0/setup.py")), t.addfile(_hardlink("a-1.0/ghost", "a-1.0/missing")))),
        "infinite-mtime": _tar(tmp_path / "b-1.0.tar.gz", lambda t: t.addfile(*_file("b-1.0/setup.py", mtime="inf"))),
    }
    bad_date = tmp_path / "c-1.0.zip"
    with zipfile.ZipFile(bad_date, "w") as zf:
        zf.writestr("c-1.0/setup.py", "x")
    raw = bytearray(bad_date.read_bytes())
    for header in (b"PK\x03\x04", b"PK\x01\x02"):  # set the DOS date's month to 0 in both headers
        at = raw.find(header)
        offset = at + (12 if header == b"PK\x03\x04" else 14)
        raw[offset:offset + 2] = (0).to_bytes(2, "little")
    bad_date.write_bytes(bytes(raw))
    cases["zero-date"] = bad_date
    for name, path in cases.items():
        try:
            tree = unpack(_source(path), tmp_path / f"out-{name}", LIMITS)
        except BuildFailure as failure:
            assert failure.failure_class == FailureClass.UNSAFE_ARCHIVE, name
        else:  # unpacking it is fine too, as long as it stays inside and has a sane epoch
            assert tree.root.is_relative_to(tmp_path / f"out-{name}") and tree.epoch >= 315532800, name


def _hardlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


def test_a_zip_symlink_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "d-1.0.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d-1.0/setup.py", "x")
        link = zipfile.ZipInfo("d-1.0/bomb")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, b"\0" * (8 * 1024 * 1024))  # a "target" far bigger than any path
    with pytest.raises(BuildFailure, match="'d-1.0/bomb': symbolic link in a zip sdist"):
        unpack(_source(path), tmp_path / "out", LIMITS)


def test_a_sparse_member_is_refused_whatever_size_it_declares(tmp_path):
    """Issue 12, item 5: a sparse member declares 100 bytes, but its map makes extraction write
    what the map names (here 20 MB, past a 1 MB limit) from a 20 KB archive."""
    written = 20_000_000
    sparse, data = _file("s-1.0/big", b"\0" * written, **{
        "GNU.sparse.major": "0", "GNU.sparse.minor": "1", "GNU.sparse.map": f"0,{written}", "GNU.sparse.size": "100"})
    path = _tar(tmp_path / "s-1.0.tar.gz", lambda t: (t.addfile(*_file("s-1.0/setup.py")), t.addfile(sparse, data)))
    assert path.stat().st_size < 64 * 1024
    with tarfile.open(path) as tar:
        assert [m.size for m in tar if m.issparse()] == [100]  # what a size check would count
    with pytest.raises(BuildFailure, match=r"'s-1.0/big': sparse file") as info:
        unpack(_source(path), tmp_path / "out", LIMITS)
    assert info.value.failure_class == FailureClass.UNSAFE_ARCHIVE
    assert not (tmp_path / "out").exists()


def test_dot_entries_count_against_the_member_limit(tmp_path):
    """Issue 12, item 7: "./" entries were skipped before they were counted, so an archive of
    many of them passed max-unpacked-files."""
    def add(tar):
        tar.addfile(*_file("e-1.0/setup.py"))
        for _ in range(1500):
            dot = tarfile.TarInfo("./")
            dot.type = tarfile.DIRTYPE
            tar.addfile(dot)
    path = _tar(tmp_path / "e-1.0.tar.gz", add)
    with pytest.raises(BuildFailure, match=r"'\.': more than 1000 members"):
        unpack(_source(path), tmp_path / "out", LIMITS)
