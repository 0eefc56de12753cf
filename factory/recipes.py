"""Per-package build recipes: ``recipes/<normalized-name>.toml``, validated, scoped by version.

A recipe is data, never code: it can pin a source, apply patches, install Debian packages in
the build container, set environment variables and backend config settings, choose the
toolchain, adjust the build requirements, skip targets, and name a smoke test. Top-level keys
apply to every version (or to those in ``versions``); each ``[[override]]`` applies to the
versions its ``versions`` matches, in file order: its lists replace, its tables (``env``,
``config-settings``, ``build-requires``) are merged key by key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from factory.failures import ConfigError
from factory.targets import ARCHITECTURES, CPYTHONS

TOOLCHAINS = ("zig", "gcc")
_DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PROJECT_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


class RecipeError(ConfigError):
    """A recipe file is wrong; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class SourceOverride:
    """Where to get the source instead of the index's sdist."""

    url: str  # may contain {version}
    sha256: str

    def url_for(self, version: Version) -> str:
        return self.url.format(version=version)


@dataclasses.dataclass(frozen=True)
class Skip:
    """Targets that cannot work, and why. An absent field matches every value."""

    reason: str
    arch: str | None = None
    python: str | None = None

    def matches(self, arch: str, python: str) -> bool:
        return self.arch in (None, arch) and self.python in (None, python)


@dataclasses.dataclass(frozen=True)
class SmokeTest:
    """Run against each repaired wheel in a clean container of its architecture."""

    imports: tuple[str, ...] = ()
    command: str = ""  # a shell command, run with the test venv's python first on PATH
    requires: tuple[str, ...] = ()  # more to install (binary only) before the test


@dataclasses.dataclass(frozen=True)
class BuildRequires:
    """How a recipe changes what the project asks for to build (``[build-requires]``)."""

    pin: Mapping[NormalizedName, str] = dataclasses.field(default_factory=dict)  # name -> exact version
    override: Mapping[NormalizedName, str] = dataclasses.field(default_factory=dict)  # name -> requirement
    extra: tuple[str, ...] = ()  # requirements the project forgot to declare
    drop: tuple[NormalizedName, ...] = ()  # requirements the build does not need (and must not have)
    #: Taken from the upstream as binaries, to break a cycle no in-tree backend breaks; the record
    #: and the provenance mark them so.
    seed: tuple[NormalizedName, ...] = ()

    def apply(self, requirements: list[str]) -> list[str]:
        """The project's requirements as the recipe changes them."""
        out: list[str] = []
        for text in [*requirements, *self.extra]:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            if name in self.drop:
                continue
            if name in self.pin:
                marker = f" ; {req.marker}" if req.marker else ""
                text = f"{name}=={self.pin[name]}{marker}"
            elif name in self.override:
                text = self.override[name]
            if text not in out:
                out.append(text)
        return out


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What applies to one version of one project; all defaults when there is no recipe."""

    project: str
    path: Path | None = None
    digest: str = ""  # sha256 of the recipe file and the patches it uses; "" without a recipe
    toolchain: str = "zig"
    system_packages: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    config_settings: Mapping[str, str | tuple[str, ...]] = dataclasses.field(default_factory=dict)
    patches: tuple[Path, ...] = ()  # in the order they are applied (by file name)
    source: SourceOverride | None = None
    pure: bool = False  # a pure-Python wheel is expected even though the sdist has compiled sources
    skip: tuple[Skip, ...] = ()
    test: SmokeTest | None = None
    build_requires: BuildRequires = BuildRequires()
    #: N > 0: the patches are security fixes, and the build is published as VERSION+<label>.N
    remediation: int = 0

    def skipped(self, arch: str, python: str) -> Skip | None:
        return next((s for s in self.skip if s.matches(arch, python)), None)


# --- validation -------------------------------------------------------------------------

class _Checker:
    """Type-checks a recipe's TOML, naming the file and the key path in every error."""

    def __init__(self, path: Path, patch_dir: Path) -> None:
        self.path = path
        self.patch_dir = patch_dir

    def fail(self, key: str, message: str) -> RecipeError:
        return RecipeError(f"{self.path}: `{key}`: {message}")

    def string(self, key: str, value: Any, pattern: re.Pattern[str] | None = None, what: str = "a string") -> str:
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise self.fail(key, f"must be {what}, got {value!r}")
        return value

    def strings(self, key: str, value: Any, pattern: re.Pattern[str] | None = None, what: str = "a string") -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list, got {value!r}")
        return tuple(self.string(f"{key}[{i}]", v, pattern, what) for i, v in enumerate(value))

    def table(self, key: str, value: Any, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {value!r}")
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    raise self.fail(f"{key}.{k}", f"unknown key (known: {', '.join(sorted(allowed))})")
        return value

    def specifier(self, key: str, value: Any) -> SpecifierSet:
        try:
            return SpecifierSet(self.string(key, value, what="a version specifier such as \">=6,<7\""))
        except InvalidSpecifier:
            raise self.fail(key, f"{value!r} is not a version specifier such as \">=6,<7\"") from None

    def fields(self, where: str, data: dict[str, Any]) -> dict[str, Any]:
        """Check the keys a recipe and an override share; return them as Recipe fields."""
        out: dict[str, Any] = {}
        prefix = f"{where}." if where else ""
        for key, value in data.items():
            k = prefix + key
            if key == "toolchain":
                if value not in TOOLCHAINS:
                    raise self.fail(k, f"must be one of {', '.join(TOOLCHAINS)}, got {value!r}")
                out["toolchain"] = value
            elif key == "system-packages":
                out["system_packages"] = self.strings(k, value, _DEBIAN_PACKAGE, "a Debian package name")
            elif key == "env":
                table = self.table(k, value)
                for name, v in table.items():
                    self.string(f"{k}.{name}", name, _ENV_NAME, "a variable name")
                    self.string(f"{k}.{name}", v)
                out["env"] = dict(table)
            elif key == "config-settings":
                table = self.table(k, value)
                out["config_settings"] = {
                    name: (self.strings(f"{k}.{name}", v) if isinstance(v, list) else self.string(f"{k}.{name}", v))
                    for name, v in table.items()
                }
            elif key == "patches":
                names = self.strings(k, value, _FILE_NAME, "a file name in " + str(self.patch_dir))
                for i, name in enumerate(names):
                    if not (self.patch_dir / name).is_file():
                        raise self.fail(f"{k}[{i}]", f"no such patch: {self.patch_dir / name}")
                out["patches"] = tuple(self.patch_dir / n for n in sorted(names))
            elif key == "source":
                table = self.table(k, value, {"url", "sha256"})
                if set(table) != {"url", "sha256"}:
                    raise self.fail(k, "needs both `url` and `sha256`")
                url = self.string(f"{k}.url", table["url"])
                if not re.match(r"https?://", url):
                    raise self.fail(f"{k}.url", f"must be an http(s) URL, got {url!r}")
                fields = {f for _, f, _, _ in string.Formatter().parse(url) if f is not None}
                if fields - {"version"}:
                    raise self.fail(f"{k}.url", f"only {{version}} may be templated, not {sorted(fields - {'version'})}")
                sha = self.string(f"{k}.sha256", table["sha256"], _SHA256, "64 lowercase hex digits")
                out["source"] = SourceOverride(url, sha)
            elif key == "pure":
                if not isinstance(value, bool):
                    raise self.fail(k, f"must be true or false, got {value!r}")
                out["pure"] = value
            elif key == "skip":
                if not isinstance(value, list):
                    raise self.fail(k, f"must be a list of tables, got {value!r}")
                skips = []
                for i, item in enumerate(value):
                    t = self.table(f"{k}[{i}]", item, {"arch", "python", "reason"})
                    if "reason" not in t:
                        raise self.fail(f"{k}[{i}]", "needs a `reason`")
                    arch = t.get("arch")
                    if arch is not None and arch not in ARCHITECTURES:
                        raise self.fail(f"{k}[{i}].arch", f"must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
                    python = t.get("python")
                    if python is not None and python not in CPYTHONS:
                        raise self.fail(f"{k}[{i}].python", f"must be one of {', '.join(CPYTHONS)}, got {python!r}")
                    skips.append(Skip(self.string(f"{k}[{i}].reason", t["reason"]), arch, python))
                out["skip"] = tuple(skips)
            elif key == "remediation":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise self.fail(k, f"must be a positive integer (the N of VERSION+<label>.N), got {value!r}")
                out["remediation"] = value
            elif key == "build-requires":
                out["build_requires"] = _build_requires(self, k, value)
            elif key == "test":
                t = self.table(k, value, {"imports", "command", "requires"})
                test = SmokeTest(
                    imports=self.strings(f"{k}.imports", t.get("imports", []), _MODULE, "a module name"),
                    command=self.string(f"{k}.command", t.get("command", "")),
                    requires=self.strings(f"{k}.requires", t.get("requires", [])),
                )
                if not test.imports and not test.command:
                    raise self.fail(k, "needs `imports` or a `command`")
                out["test"] = test
            else:
                known = ("versions, toolchain, system-packages, env, config-settings, patches, source, pure, skip, "
                         "build-requires, remediation, test, override")
                raise self.fail(k, f"unknown key (known: {known})")
        return out


def _requirement(checker: _Checker, key: str, value: Any) -> str:
    text = checker.string(key, value, what="a requirement such as \"cython>=3,<3.1\"")
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise checker.fail(key, f"{text!r} is not a requirement: {exc}") from None
    return text


def _build_requires(checker: _Checker, key: str, value: Any) -> BuildRequires:
    table = checker.table(key, value, {"pin", "override", "extra", "drop", "seed"})
    pins = {}
    for name, version in checker.table(f"{key}.pin", table.get("pin", {})).items():
        checker.string(f"{key}.pin.{name}", version, what="an exact version such as \"3.0.12\"")
        try:
            Version(version)
        except InvalidVersion:
            raise checker.fail(f"{key}.pin.{name}", f"{version!r} is not a version") from None
        pins[canonicalize_name(name)] = version
    overrides = {}
    for name, text in checker.table(f"{key}.override", table.get("override", {})).items():
        requirement = _requirement(checker, f"{key}.override.{name}", text)
        if canonicalize_name(Requirement(requirement).name) != canonicalize_name(name):
            raise checker.fail(f"{key}.override.{name}", f"{requirement!r} is not a requirement on {name}")
        overrides[canonicalize_name(name)] = requirement
    extra = tuple(_requirement(checker, f"{key}.extra[{i}]", v) for i, v in enumerate(table.get("extra", [])))
    if not isinstance(table.get("extra", []), list):
        raise checker.fail(f"{key}.extra", "must be a list of requirements")
    seed = tuple(canonicalize_name(n) for n in checker.strings(f"{key}.seed", table.get("seed", []),
                                                                  _PROJECT_NAME, "a project name"))
    drop = tuple(canonicalize_name(n) for n in checker.strings(f"{key}.drop", table.get("drop", []),
                                                                  _PROJECT_NAME, "a project name"))
    return BuildRequires(pins, overrides, extra, drop, seed)


def recipe_path(recipes_dir: Path, project: str) -> Path:
    return recipes_dir / f"{project}.toml"


def _parse(path: Path, project: str) -> tuple[dict[str, Any], list[tuple[SpecifierSet, dict[str, Any]]], SpecifierSet | None]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read recipe: {exc}") from exc
    checker = _Checker(path, path.parent / "patches" / project)
    scope = checker.specifier("versions", data.pop("versions")) if "versions" in data else None
    overrides_raw = data.pop("override", [])
    if not isinstance(overrides_raw, list):
        raise checker.fail("override", "must be an array of tables ([[override]])")
    base = checker.fields("", data)
    overrides = []
    for i, item in enumerate(overrides_raw):
        where = f"override[{i}]"
        table = dict(checker.table(where, item))
        if "versions" not in table:
            raise checker.fail(where, "needs `versions`, the versions it applies to")
        spec = checker.specifier(f"{where}.versions", table.pop("versions"))
        overrides.append((spec, checker.fields(where, table)))
    return base, overrides, scope


def _merge(base: BuildRequires, more: BuildRequires) -> BuildRequires:
    return BuildRequires({**base.pin, **more.pin}, {**base.override, **more.override}, more.extra or base.extra,
                         more.drop or base.drop, more.seed or base.seed)


def check(path: Path) -> None:
    """Validate one recipe file (raises :class:`RecipeError`)."""
    if canonicalize_name(path.stem) != path.stem:
        raise RecipeError(f"{path}: recipes are named by the normalized project name: {canonicalize_name(path.stem)}.toml")
    _parse(path, path.stem)


def load(recipes_dir: Path, project: str, version: Version) -> Recipe:
    """The recipe that applies to ``project`` at ``version`` (the defaults if none does)."""
    path = recipe_path(recipes_dir, project)
    if not path.is_file():
        return Recipe(project)
    base, overrides, scope = _parse(path, project)
    if scope is not None and not scope.contains(version, prereleases=True):
        return Recipe(project)
    fields = dict(base)
    for spec, extra in overrides:
        if spec.contains(version, prereleases=True):
            for key, value in extra.items():
                if key in ("env", "config_settings"):
                    fields[key] = {**fields.get(key, {}), **value}
                elif key == "build_requires" and "build_requires" in fields:
                    fields[key] = _merge(fields[key], value)
                else:
                    fields[key] = value
    digest = hashlib.sha256(path.read_bytes())
    for patch in fields.get("patches", ()):
        digest.update(patch.name.encode() + b"\0" + patch.read_bytes())
    return Recipe(project, path=path, digest=digest.hexdigest(), **fields)

