"""rebuild-check names what differs between a published wheel and its rebuild, member by member."""

import zipfile

from factory.rebuild_check import differences


def wheel(path, members):
    """A zip of ``members``: (name, data, date_time, mode), in that order."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data, when, mode in members:
            info = zipfile.ZipInfo(name, when)
            info.external_attr = mode << 16
            z.writestr(info, data)
    return path


T0, T1 = (2024, 1, 1, 0, 0, 0), (2025, 6, 1, 12, 30, 0)


def test_each_kind_of_difference_is_named(tmp_path):
    published = wheel(tmp_path / "a.whl", [("pkg/a.py", b"a", T0, 0o644), ("pkg/b.py", b"b", T0, 0o644),
                                           ("pkg/c.py", b"c", T0, 0o644), ("pkg/gone.py", b"", T0, 0o644)])
    rebuilt = wheel(tmp_path / "b.whl", [("pkg/a.py", b"A!", T0, 0o644), ("pkg/b.py", b"b", T1, 0o644),
                                         ("pkg/c.py", b"c", T0, 0o755), ("pkg/new.py", b"", T0, 0o644)])
    assert differences(published, rebuilt) == (
        "pkg/gone.py: only in the published wheel",
        "pkg/new.py: only in the rebuilt wheel",
        "pkg/a.py: different contents (1 and 2 bytes)",
        "pkg/b.py: different time (2024-01-01 00:00:00 and 2025-06-01 12:30:00)",
        "pkg/c.py: different permissions (644 and 755)",
    )


def test_the_same_members_in_another_order(tmp_path):
    members = [("pkg/a.py", b"a", T0, 0o644), ("pkg/b.py", b"b", T0, 0o644)]
    assert differences(wheel(tmp_path / "a.whl", members), wheel(tmp_path / "b.whl", members[::-1])) == \
        ("the members are in a different order",)
