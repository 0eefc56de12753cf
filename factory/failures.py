"""How a build can fail: one class per cause, each with a reason a person can act on."""

from __future__ import annotations

import enum


class FailureClass(enum.StrEnum):
    """Why a build ended without publishing. The value is what records and the CLI show."""

    NO_SOURCE = "no-source"  # the release has no sdist (or no hash to verify it by)
    HASH_MISMATCH = "hash-mismatch"  # downloaded bytes differ from the hash the index declared
    NOT_FOUND = "not-found"  # no such project, version or file upstream
    NETWORK = "network"  # the upstream could not be reached, or a build tried to reach the network
    UNSAFE_ARCHIVE = "unsafe-archive"  # the sdist would write outside its tree, or is too big
    MISSING_SYSTEM_LIBRARY = "missing-system-library"  # a header or library is not in the image
    COMPILE = "compile"  # the build backend or compiler failed
    RECIPE = "recipe"  # the package's recipe does not apply (a patch fails, say)
    POLICY = "policy"  # the wheel cannot meet the manylinux policy
    NO_TARGET = "no-target"  # the project supports none of the configured Pythons
    IMPORT = "import"  # a compiled module of the wheel does not import on its target
    TEST = "test"  # the wheel built but its smoke test failed
    TIMEOUT = "timeout"  # the build ran longer than the configured limit
    SIGNING = "signing"  # the wheels could not be signed (no identity, Sigstore unreachable)
    BUILD_REQUIREMENTS = "build-requirements"  # the build requirements cannot be found or resolved
    DEPENDENCY_FAILED = "dependency-failed"  # a build dependency could not be built
    DEPENDENCY_CYCLE = "dependency-cycle"  # build dependencies need each other: a recipe must seed one
    NEEDS_RUST = "needs-rust"  # Rust crates cannot be fetched here, so Rust extensions cannot be built
    INTERNAL = "internal"  # a bug in factory itself

    @property
    def transient(self) -> bool:
        """Whether trying again later, unchanged, can succeed."""
        return self in (FailureClass.NETWORK, FailureClass.TIMEOUT, FailureClass.INTERNAL, FailureClass.SIGNING)


class FactoryError(Exception):
    """Base of factory's errors: the message names the input and what to do."""


class ConfigError(FactoryError):
    """A setting, a config file or a command-line argument is wrong."""


class BuildFailure(FactoryError):
    """A build stage ended the build; nothing of it is published."""

    def __init__(self, failure_class: FailureClass, reason: str, *, log_tail: str = "") -> None:
        super().__init__(f"{failure_class}: {reason}")
        self.failure_class = failure_class
        self.reason = reason
        self.log_tail = log_tail
