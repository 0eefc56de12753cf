from pathlib import Path

import pytest

from factory import config
from factory.failures import ConfigError

BASE_ENV = {"FACTORY_UPSTREAM": "http://127.0.0.1:1/simple"}


def test_defaults_work_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.load(None, BASE_ENV)
    assert cfg.index_dir == tmp_path / "index"
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.upstream == "http://127.0.0.1:1/simple/"  # a trailing slash is added
    assert cfg.archs == ("x86_64", "aarch64") and cfg.pythons == ("3.11", "3.13", "3.14")


def test_file_then_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "factory.toml"
    path.write_text('index-dir = "published"\narchs = ["x86_64", "aarch64"]\nbuild-timeout = 10\n')
    cfg = config.load(path, {**BASE_ENV, "FACTORY_BUILD_TIMEOUT": "20", "FACTORY_STATE_DIR": "st"})
    assert cfg.index_dir == tmp_path / "conf" / "published"  # relative to the file
    assert cfg.state_dir == tmp_path / "st"  # relative to the current directory
    assert cfg.archs == ("x86_64", "aarch64")
    assert cfg.build_timeout == 20


def test_factory_toml_in_the_current_directory_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("factory.toml").write_text('upstream = "http://127.0.0.1:2/simple/"\n')
    assert config.load(None, {}).upstream == "http://127.0.0.1:2/simple/"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1\n", "unknown key `colour`"),
        ("build-timeout = 'soon'\n", "`build-timeout` must be a number"),
        ("archs = 'x86_64'\narchs = 1", "cannot read config"),
        ("archs = ['sparc']\n", "unknown architecture 'sparc'"),
        ("pythons = ['3.12']\n", "no Debian suite provides CPython '3.12'"),
        ("upstream = 'ftp://x/'\n", "not an http"),
        ("max-unpacked-size = 0\n", "must be positive"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "factory.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        config.load(path, {})
    assert str(path) in str(info.value)


def test_pythons_default_to_what_the_images_hold_and_must_be_among_them(tmp_path):
    cfg = config.load(None, {**BASE_ENV, "FACTORY_IMAGE_PYTHONS": "3.11,3.13"})
    assert cfg.pythons == ("3.11", "3.13")
    assert config.load(None, {**BASE_ENV, "FACTORY_PYTHONS": "3.13"}).pythons == ("3.13",)
    path = tmp_path / "factory.toml"
    path.write_text('image-pythons = ["3.11"]\npythons = ["3.13"]\n')
    with pytest.raises(ConfigError, match="hold CPython 3.11, not 3.13: add it to `image-pythons`"):
        config.load(path, BASE_ENV)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        config.load(tmp_path / "nope.toml", BASE_ENV)


def test_upstream_defaults_to_pips_own_configuration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:3/pip-says/")
    assert config.load(None, {}).upstream == "http://127.0.0.1:3/pip-says/"
    monkeypatch.delenv("PIP_INDEX_URL")
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nindex-url = http://127.0.0.1:4/from-pip-conf/\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    assert config.load(None, {}).upstream == "http://127.0.0.1:4/from-pip-conf/"
