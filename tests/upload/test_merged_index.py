"""Our files against upstream's in a merged index: devpi's inheriting index with factory's index
mirrored first (through `factory serve`) and the upstream mirrored second, as a repository
manager user sets it up. What pip and uv take, case by case, is what the repository-manager page
says: devpi takes an identical file name from the first base; a wheel build tag
(`wheel-build-tag`) wins where both wheels' platform tags rank the same; an upstream wheel with a
better tag, or a newer release, wins in any merged mirror (a hosted stage is the cure, see
test_upload.py)."""

import pytest
from packaging.version import Version
from support.devpi import Devpi
from support.index_server import LocalIndex
from support.installers import pip_venv, uv_venv, values
from support.server import running
from support.wheels import make_wheel

from factory.index.distfile import inspect_wheel
from factory.index.publish import publish
from factory.pipeline.relabel import relabel

TIE = "py3-none-manylinux_2_28_x86_64"
#: The same best tag as TIE, under another name (auditwheel names wheels that meet two policies so).
TIE_UPSTREAM = "py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64"
#: (project, our wheel's tag, whether ours carries the build tag, upstream's wheels, who wins).
CASES = [
    ("same-name", "py3-none-any", False, [("1.0", "py3-none-any")], "ours"),
    ("tie-untagged", TIE, False, [("1.0", TIE_UPSTREAM)], "upstream"),
    ("tie-build-tag", TIE, True, [("1.0", TIE_UPSTREAM)], "ours"),
    ("older-policy-upstream", TIE, False, [("1.0", "py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64")], "ours"),
    ("better-tag-upstream", "py3-none-any", True, [("1.0", "py3-none-manylinux_2_17_x86_64")], "upstream"),
    ("newer-upstream", "py3-none-any", True, [("1.0", "py3-none-any"), ("2.0", "py3-none-any")], "upstream"),
]


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    root = tmp_path_factory.mktemp("merged")
    ours = []
    for project, tag, build_tag, _, _ in CASES:
        wheel = make_wheel(root / "built", f"m-{project}", "1.0", body="ours", tag=tag)
        if build_tag:  # as the pipeline publishes it with wheel-build-tag = "1"
            wheel = relabel(wheel, Version("1.0"), root / "tagged", "1")
        ours.append(inspect_wheel(wheel))
    publish(root / "index", ours, "")
    with LocalIndex() as upstream:
        for project, _, _, theirs, _ in CASES:
            for version, tag in theirs:
                upstream.add_file(f"m-{project}", make_wheel(root / "up" / project / version, f"m-{project}", version,
                                                             body="upstream", tag=tag))
        with running(root / "index", root / "state", "--no-fallback") as served, Devpi(root / "devpi") as devpi:
            devpi.client("index", "-c", "root/factory", "type=mirror", f"mirror_url={served}/simple/")
            devpi.client("index", "-c", "root/upstream", "type=mirror", f"mirror_url={upstream.url}")
            devpi.client("index", "-c", "root/merged", "bases=root/factory,root/upstream")
            yield devpi.simple("root/merged")


@pytest.mark.parametrize("installer", [pip_venv, uv_venv], ids=["pip", "uv"])
def test_which_file_pip_and_uv_take_from_a_merged_index(merged, installer, tmp_path):
    venv = tmp_path / "venv"
    done = installer(venv, merged, *(f"m-{project}" for project, *_ in CASES))
    assert done.returncode == 0, done.stderr
    got = values(venv / "bin" / "python", *(f"m_{project.replace('-', '_')}" for project, *_ in CASES))
    assert dict(zip([c[0] for c in CASES], got)) == {project: winner for project, *_, winner in CASES}
