"""Failed build logs become a class and a reason a person can act on."""

import pytest

from factory.pipeline.diagnose import classify
from factory.pipeline.repair import policy_failure

CASES = [
    ("src/_yaml.c:1234:10: fatal error: yaml.h: No such file or directory", "missing-system-library", "header yaml.h"),
    ("ext/x.c:3:10: fatal error: 'ffi.h' file not found", "missing-system-library", "header ffi.h"),
    ("/usr/bin/ld: cannot find -lxml2: No such file or directory", "missing-system-library", "library -lxml2"),
    ("ld.lld: error: unable to find library -lssl", "missing-system-library", "library -lssl"),
    ("ERROR: No matching distribution found for cython>=99", "build-requirements",
     "pip: no matching distribution found for cython>=99: it is not among the build's pins"),
    ("ERROR: Could not find a version that satisfies the requirement wheel (from versions: none)\n"
     "ERROR: No matching distribution found for wheel", "build-requirements",
     "pip: no version satisfies wheel (offered: none): it is not among the build's pins"),
    ("OSError: [Errno 101] Network is unreachable", "network", "builds run without one"),
    ("WARNING: Retrying ... Max retries exceeded with url: /simple/setuptools/", "network", "Max retries exceeded"),
    ("x.c:1:1: error: unknown type name 'foo'\nerror: command 'zig-cc' failed", "compile", "unknown type name 'foo'"),
    ("WARNING: Retrying ... Temporary failure in name resolution\nERROR: No matching distribution found for setuptools",
     "network", "Temporary failure in name resolution"),
]


@pytest.mark.parametrize(("log", "failure_class", "words"), CASES)
def test_classify(log, failure_class, words):
    failure = classify("noise\n" + log + "\nmore noise\n", "cibuildwheel")
    assert failure.failure_class == failure_class
    assert words in failure.reason


#: pip 26's words when the build's environment lacks a pinned version (as in a real build's log).
PIP_CONFLICT = """\
Looking in indexes: file:///factory-build/simple/
  
The conflict is caused by:
    The user requested setuptools>=40.8.0
    The user requested (constraint) setuptools==75.6.0

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip attempt to solve the dependency conflict

ERROR: Cannot install setuptools>=40.8.0 because these package versions have conflicting dependencies.
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
Traceback (most recent call last):
subprocess.CalledProcessError: Command '['/tmp/x/bin/python', '-Im', 'pip', 'install']' returned non-zero exit status 1.
"""


def test_a_pin_the_environment_lacks_is_named_in_pips_words():
    failure = classify(PIP_CONFLICT, "discovering the build requirements")
    assert failure.failure_class == "build-requirements"
    assert ("pip: cannot install setuptools>=40.8.0 (The user requested setuptools>=40.8.0; The user requested "
            "(constraint) setuptools==75.6.0): the build's environment does not offer the wheel its pin names"
            ) in failure.reason
    assert "ResolutionImpossible" in failure.log_tail  # the tool's own output is kept


def test_no_recognisable_error_still_gives_a_reason():
    failure = classify("something went wrong\n", "python -m build")
    assert failure.failure_class == "compile" and "python -m build failed" in failure.reason


def test_policy_findings_from_the_repair_script():
    log = "\n".join([
        'FACTORY-POLICY {"kind": "auditwheel", "message": "cannot repair"}',
        'FACTORY-POLICY {"kind": "tag", "sym_tag": "manylinux_2_29_x86_64", "tag": "manylinux_2_29_x86_64"}',
        'FACTORY-POLICY {"file": "m.so", "kind": "symbol", "library": "libm.so.6", "symbol": "exp", "version": "GLIBC_2.29"}',
    ])
    failure = policy_failure(log)
    assert failure is not None and failure.failure_class == "policy"
    assert "exp@GLIBC_2.29 from libm.so.6 (in m.so)" in failure.reason and "manylinux_2_29_x86_64" in failure.reason
    assert policy_failure("no findings here") is None
