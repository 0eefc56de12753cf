import pytest
from packaging.version import Version

from factory.failures import ConfigError
from factory.pipeline.request import BuildRequest, parse_request


def test_name_and_version_are_normalized():
    assert parse_request("MarkupSafe==3.0.2") == BuildRequest("markupsafe", Version("3.0.2"))
    assert parse_request("Foo.Bar_baz") == BuildRequest("foo-bar-baz", None)
    assert str(parse_request("six == 1.17.0")) == "six==1.17.0"


@pytest.mark.parametrize("text", ["six>=1", "six==1.*", "six[x]==1", "six==1,!=2", "six @ file:///x", "==1", "six==not a version"])
def test_anything_but_an_exact_pin_is_refused(text):
    with pytest.raises(ConfigError, match="NAME|version|exact"):
        parse_request(text)
