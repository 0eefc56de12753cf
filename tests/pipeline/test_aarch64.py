"""aarch64, for real: an emulated arm64 container, with zig running natively inside it.

The shortcut must be proven equal: the aarch64 wheel has the same tags as the x86_64 one (but
for the architecture), and it installs from the index and runs in a clean arm64 container.
"""

import re
import subprocess

import pytest

from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.plumbing import podman

pytestmark = pytest.mark.container

CHECK = "import fixture_cext, math; assert math.isclose(fixture_cext.curve(2.0), math.exp(2) + math.log(3) + 8); " \
        "assert fixture_cext.file_size('/etc/hostname') >= 0; import platform; print(platform.machine())"


def test_fixture_c_extension_for_both_architectures(config, builder_image, arm64_image):
    cfg = config.replace(archs=("x86_64", "aarch64"))
    (cfg.recipes_dir / "fixture-cext.toml").write_text(f'[test]\ncommand = "python -c \\"{CHECK}\\""\n')
    record = run(parse_request("fixture-cext==1.0.0"), cfg)
    assert record.status == "built", f"{record.reason}\n{record.log_tail}"
    wheels = {t.target.arch: t.wheel for t in record.targets}
    assert "manylinux_2_28_aarch64" in wheels["aarch64"] and "manylinux_2_28_x86_64" in wheels["x86_64"]
    # The same interpreter and ABI tags, and manylinux_2_28 on both (aarch64's glibc ABI starts at
    # 2.17, x86_64's at 2.5, so auditwheel's oldest tags differ by nature).
    assert wheels["aarch64"].split("-")[:4] == wheels["x86_64"].split("-")[:4]
    policies = {w.filename: w.policy for w in record.wheels}
    assert re.fullmatch(r"manylinux_2_(\d+)_aarch64", policies[wheels["aarch64"]])
    assert int(policies[wheels["aarch64"]].split("_")[2]) <= 28
    assert record.durations["test"] > 0  # the smoke test ran in a clean container of each architecture

    # As a user on an arm64 machine would: install from the index, in a clean arm64 container.
    python = "/opt/python/cp311-cp311/bin/python"
    script = (f"{python} -m venv --without-pip /tmp/v && "
              f"{python} -m pip --python /tmp/v/bin/python install --quiet --index-url file:///index/simple/ fixture-cext && "
              f"cd /tmp && /tmp/v/bin/python -c \"{CHECK}\"")
    cmd = podman.run_args(arm64_image.tag, network="none", label="factory.test=aarch64",
                          volumes=[f"{cfg.index_dir}:/index:ro"])
    done = subprocess.run([*cmd, "sh", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "aarch64"
