"""Stage 3: every unsafe archive is refused, naming the member, and leaves nothing behind."""

import errno
import io
import os
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.sdists import MALICIOUS, TreeMember, add_tree, make_sdist, malicious_sdist, tree_sdist

from factory.failures import BuildFailure, FailureClass
from factory.pipeline import unpack as unpack_module
from factory.pipeline.fetch import Source
from factory.pipeline.unpack import Limits, Member, _LinkOrFail, check_members, unpack

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


def _inside(path: str | Path, top: Path) -> bool:
    """Whether ``path`` really leads to ``top`` or under it, following every link on disk."""
    real, top_real = os.path.realpath(path), os.path.realpath(top)
    return real == top_real or real.startswith(top_real + os.sep)


def _everything_under(dest: Path) -> list[str]:
    """Every path under ``dest``, links included, without following links."""
    found = []
    for where, dirs, files in os.walk(dest):
        found += [os.path.join(where, name) for name in dirs + files]
    return found


def test_an_in_tree_relative_link_is_extracted(tmp_path):
    """Issue 17, item 5: a popular sdist was refused for `docs/CONTRIBUTING.md -> ../CONTRIBUTING.md`,
    which leads to its own `CONTRIBUTING.md`, because the target held `..` at all."""
    sdist = tree_sdist(tmp_path, "pkg-1.0", [("file", "{stem}/CONTRIBUTING.md", "how to help"),
                                             ("symlink", "{stem}/docs/CONTRIBUTING.md", "../CONTRIBUTING.md")])
    with tarfile.open(sdist) as tar:  # what PEP 706's data filter says, for comparison
        tar.extractall(tmp_path / "by-data-filter", filter="data")
    tree = unpack(_source(sdist), tmp_path / "out", LIMITS)
    link = tree.root / "docs" / "CONTRIBUTING.md"
    assert link.is_symlink() and os.readlink(link) == "../CONTRIBUTING.md"
    assert link.read_text() == "how to help"


#: Links that stay inside the tree: (members, a path to read through them, the text it must hold).
ACCEPTED: dict[str, tuple[list[TreeMember], str, str]] = {
    "link to a sibling directory": (
        [("file", "{stem}/src/pkg/data.txt", "data"), ("symlink", "{stem}/docs/pkg", "../src/pkg")],
        "docs/pkg/data.txt", "data"),
    "a chain of links, the last made after the first": (
        [("file", "{stem}/real.txt", "real"), ("symlink", "{stem}/a/one", "../b/two"),
         ("symlink", "{stem}/b/two", "../real.txt")],
        "a/one", "real"),
    "a link to the top directory itself": (
        [("file", "{stem}/setup.cfg", "cfg"), ("symlink", "{stem}/sub/self", "../.")], "sub/self/setup.cfg", "cfg"),
    "a target through the top directory's own name": (
        [("file", "{stem}/f", "f"), ("symlink", "{stem}/d/f", "../../{stem}/f")], "d/f", "f"),
    "a hard link": ([("file", "{stem}/f", "same"), ("hardlink", "{stem}/sub/h", "{stem}/f")], "sub/h", "same"),
    "a hard link with `..`": (
        [("dir", "{stem}/sub", ""), ("file", "{stem}/f", "same"), ("hardlink", "{stem}/h", "{stem}/sub/../f")],
        "h", "same"),
    "a hard link through a symlinked directory": (
        [("file", "{stem}/src/f", "same"), ("symlink", "{stem}/lib", "src"), ("hardlink", "{stem}/h", "{stem}/lib/f")],
        "h", "same"),
    "a file written through a link to a directory": (
        [("dir", "{stem}/src", ""), ("symlink", "{stem}/lib", "src"), ("file", "{stem}/lib/m.py", "m")],
        "src/m.py", "m"),
    "a link, then a directory of its name (which tarfile leaves the link)": (
        [("file", "{stem}/src/m.py", "m"), ("symlink", "{stem}/lib", "src"), ("dir", "{stem}/lib", "")],
        "lib/m.py", "m"),
    "a link, then a file of its name (written through it)": (
        [("file", "{stem}/f", "old"), ("symlink", "{stem}/l", "f"), ("file", "{stem}/l", "new")], "f", "new"),
    "a link replaced by a later link of its name": (
        [("file", "{stem}/f", "f"), ("symlink", "{stem}/l", "missing"), ("symlink", "{stem}/l", "f")], "l", "f"),
    "a dangling link that stays inside": (
        [("file", "{stem}/f", "f"), ("symlink", "{stem}/docs/gone", "../not-shipped.txt")], "f", "f"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_links_that_stay_inside_are_extracted(tmp_path, case):
    """Beside the hostile links of MALICIOUS: these lead inside, whatever `..` their text holds."""
    members, path, text = ACCEPTED[case]
    tree = unpack(_source(tree_sdist(tmp_path, "ok-1.0", members)), tmp_path / "out", LIMITS)
    assert (tree.root / path).read_text() == text
    assert all(_inside(p, tree.root) for p in _everything_under(tmp_path / "out"))


def test_a_link_that_cannot_be_made_is_an_error_not_a_copy(tmp_path):
    """Below check_members: tarfile makes a hard link whose target path does not resolve (here
    through a missing directory) by extracting the member its text names instead (a copy of
    `f`); a symlink it cannot make, likewise. What unpack extracts with makes the link or fails."""
    members = [("file", "{stem}/f", "x"), ("hardlink", "{stem}/h", "{stem}/missing/../f")]
    path = _tar(tmp_path / "h-1.0.tar.gz", lambda t: add_tree(t, "h-1.0", members))
    with _LinkOrFail.open(path) as tar, pytest.raises(FileNotFoundError):
        tar.extractall(tmp_path / "ours", filter="data")
    assert not (tmp_path / "ours" / "h-1.0" / "h").exists()
    with pytest.raises(BuildFailure, match=r"'h-1.0/h': hard link through a name that does not exist"):
        unpack(_source(path), tmp_path / "out", LIMITS)


def test_links_too_tangled_to_check_are_refused(tmp_path, monkeypatch):
    """A lookup follows at most 40 links, but a target may be thousands of names long: the check
    counts its own work, so that a small archive cannot keep it busy for hours."""
    monkeypatch.setattr(unpack_module, "MAX_CHECK_STEPS", 200_000)
    chain = [Member("t/l0", "symlink", target=".")]
    chain += [Member(f"t/l{i}", "symlink", target=f"l{i - 1}" + "/." * 100) for i in range(1, 38)]
    fans = [Member(f"t/f{i}", "symlink", target="l37") for i in range(1000)]
    with pytest.raises(BuildFailure, match=r"'t/f\d+': too many names and links to check"):
        check_members(tmp_path / "t-1.0.tar", [*chain, *fans], LIMITS)
    check_members(tmp_path / "t-1.0.tar", chain, LIMITS)  # the chain alone is fine


# The property: random small archives of directories, files and links whose targets are made of
# `..`, `.`, the names in use and the top directory's own name.
TOP = "t"
_NAMES = st.builds(lambda dirs, leaf: "/".join([TOP, *dirs, leaf]),
                   st.lists(st.sampled_from("ab"), max_size=2), st.sampled_from("abcd"))
_TARGET = st.lists(st.sampled_from(["..", ".", "a", "b", "c", TOP]), min_size=1, max_size=4).map("/".join)
_FILE = st.tuples(st.just("file"), _NAMES, st.just("x"))
_MEMBERS = st.lists(st.one_of(
    _FILE, _FILE,  # twice: links with something to lead to
    st.tuples(st.just("dir"), _NAMES, st.just("")),
    st.tuples(st.just("symlink"), _NAMES, _TARGET),
    st.tuples(st.just("hardlink"), _NAMES, _NAMES | _TARGET | _TARGET.map(f"{TOP}/".__add__)),
), min_size=1, max_size=8)


def _ours(archive: Path, members: list[TreeMember]) -> bool:
    """Whether check_members accepts ``members``."""
    try:
        check_members(archive, [Member(n, k, len(t) if k == "file" else 0, "" if k == "file" else t)
                                for k, n, t in members], LIMITS)
    except BuildFailure as failure:
        assert failure.failure_class == FailureClass.UNSAFE_ARCHIVE
        return False
    return True


def _stays_inside(link: str, top: Path) -> bool:
    """Whether the link on disk leads inside ``top``, without a loop."""
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return False
    return _inside(link, top)


def _data_filter(archive: Path, dest: Path) -> tuple[str, bool]:
    """Extract member by member with PEP 706's data filter: "refused", "failed" or "ok", and whether
    every link stayed inside the top directory after every member and leads to something at the end
    (a dangling link's `..` can come back to it: realpath says inside, we say a loop)."""
    dest.mkdir(parents=True)
    always_inside = True
    with tarfile.open(archive) as tar:
        for info in tar.getmembers():
            try:
                tar.extract(info, dest, filter="data")
            except tarfile.FilterError:
                return "refused", always_inside
            except (OSError, tarfile.TarError, KeyError, RecursionError):  # the last two: 3.11's copy fallbacks
                return "failed", always_inside
            always_inside = always_inside and all(
                _stays_inside(p, dest / TOP) for p in _everything_under(dest) if os.path.islink(p))
    return "ok", always_inside and all(os.path.exists(p) for p in _everything_under(dest))


def _simple(members: list[TreeMember]) -> bool:
    """Links only as leaves: unique names, nothing under a link or a file, and each hard link to a
    file member before it by its exact name."""
    names = [name for _, name, _ in members]
    leaves = {name for kind, name, _ in members if kind != "dir"}
    if len(set(names)) != len(names) or any(n.startswith(leaf + "/") for n in names for leaf in leaves):
        return False
    files: set[str] = set()
    for kind, name, target in members:
        if kind == "hardlink" and target not in files:
            return False
        if kind == "file":
            files.add(name)
    return True


@settings(max_examples=300, deadline=None)
@given(_MEMBERS)
def test_links_are_judged_by_where_they_really_lead(members):
    """Whenever we accept, everything unpacked really stays inside the top directory; whatever the
    data filter refuses, we refuse; links only as leaves that always stay inside, we accept."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"{TOP}-1.0.tar"
        with tarfile.open(archive, "w") as tar:
            add_tree(tar, TOP, members)
        ours = _ours(archive, members)
        by_filter, always_inside = _data_filter(archive, Path(tmp) / "scratch" / "dest")
        if by_filter == "refused":
            assert not ours, members
        if by_filter == "ok" and always_inside and _simple(members):
            assert ours, members
        if ours:
            sandbox = Path(tmp) / "sandbox"
            sandbox.mkdir()
            tree = unpack(_source(archive), sandbox / "dest", LIMITS)  # what we accept unpacks
            assert tree.root == sandbox / "dest" / TOP
            assert os.listdir(sandbox) == ["dest"] and os.listdir(sandbox / "dest") == [TOP], members
            for path in _everything_under(sandbox / "dest"):
                assert _inside(path, tree.root), (path, members)
