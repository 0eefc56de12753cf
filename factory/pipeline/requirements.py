"""Build requirements: what a project needs in order to be built, resolved to exact versions as
they were on the day its sdist appeared, and which of them factory's own index still lacks.

- **declared**: ``[build-system].requires``, or the setuptools legacy default, read on the host
  by pypa/build's ``ProjectBuilder`` (nothing of the project runs);
- **changed by the recipe**: ``[build-requires]`` pins, overrides, extras and seeds;
- **resolved** with uv, against the upstream, as one universal resolution (markers kept, so one
  set of pins serves every target) limited to files uploaded no later than the release
  (``--exclude-newer``, PEP 700): an old release is built with the tools of its day. But never
  with tools older than the newest CPython of the builder images: they mostly cannot run on it
  (setuptools older than 66 breaks on 3.12, say), and they drag in older tools still, down to
  ones that cannot build at all (setuptools and wheel needed each other before 2023). The floor
  is the images', not one build's targets, so the pins do not depend on ``--python``.
  Resolution reads the upstream's wheel metadata only (``--only-binary``), so no code runs on
  the host;
- **missing**: a pin (and everything it needs, which the resolution includes) must have, in
  factory's index, a wheel for every target it applies to. What is missing is built first.

The backend's dynamic requirements (``get_requires_for_build_wheel``) are found in the builder
container by :mod:`factory.pipeline.discover`, then resolved the same way.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import httpx
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from factory.config import Config
from factory.failures import BuildFailure, FactoryError, FailureClass
from factory.index.manifest import Manifest
from factory.pipeline import discover
from factory.pipeline.buildenv import BuildEnvironment
from factory.pipeline.fetch import download
from factory.pipeline.images import BuilderImage
from factory.pipeline.record import BuildInput, Origin
from factory.pipeline.request import BuildRequest
from factory.pipeline.resolve import Release, project_page, source_file
from factory.pipeline.unpack import SourceTree
from factory.plumbing.files import write_text
from factory.recipes import BuildRequires, Recipe
from factory.targets import CPYTHONS, Target, serves

#: Build requirements that mean a Rust toolchain and crates (which cannot be fetched here).
RUST_BACKENDS = {"maturin", "setuptools-rust", "puccinialin"}


class WaitingForDependencies(FactoryError):
    """Build dependencies are not in factory's index yet: build them, then build this again."""

    def __init__(self, requests: Sequence[BuildRequest]) -> None:
        super().__init__("waiting for build dependencies: " + ", ".join(map(str, requests)))
        self.requests = tuple(requests)


@dataclasses.dataclass(frozen=True)
class Pin:
    """One resolved build requirement: an exact version, for the environments its marker names."""

    name: NormalizedName
    version: Version
    marker: str | None = None
    seed: bool = False  # from the upstream as a binary (a recipe's seed), not from factory's index

    def applies(self, target: Target) -> bool:
        return self.marker is None or Marker(self.marker).evaluate(target.environment)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")


def cutoff(uploaded: str | None, pythons: Iterable[str]) -> str | None:
    """As of when build requirements are resolved: the release's upload time, but no earlier than
    the release of the newest of ``pythons`` (the images' CPythons). None (the newest tools)
    when the upstream does not say when the release was uploaded."""
    if uploaded is None:
        return None
    floor = max(CPYTHONS[p].released for p in pythons)
    latest = max(_utc(uploaded), _utc(floor)).replace(microsecond=0)
    # uv excludes what was uploaded at the cutoff itself; "no later than" includes it.
    return (latest + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(text: str) -> datetime.datetime:
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


def declared(tree: SourceTree) -> tuple[str, ...]:
    """``[build-system].requires``, or the legacy default for a project without one."""
    from build import BuildException, BuildSystemTableValidationError, ProjectBuilder

    try:
        return tuple(sorted(ProjectBuilder(tree.root).build_system_requires))
    except (BuildException, BuildSystemTableValidationError) as exc:
        raise BuildFailure(FailureClass.BUILD_REQUIREMENTS, f"{tree.root.name}/pyproject.toml: {exc}") from None


def requested(found: Iterable[str], policy: BuildRequires) -> tuple[str, ...]:
    """The requirements as the recipe changes them; each must parse (PEP 508)."""
    found = list(found)
    for text in found:
        try:
            Requirement(text)
        except InvalidRequirement as exc:
            raise BuildFailure(FailureClass.BUILD_REQUIREMENTS,
                               f"the project asks for {text!r} to build, which is not a requirement: {exc}") from None
    return tuple(policy.apply(found))


def refuse_rust(requirements: Iterable[str], tree: SourceTree) -> None:
    """Rust extensions need crates, which cannot be fetched here: say so before anything runs."""
    names = {canonicalize_name(Requirement(r).name) for r in requirements}
    rust = sorted(names & RUST_BACKENDS)
    if rust or (tree.root / "Cargo.toml").is_file():
        why = f"it builds with {', '.join(rust)}" if rust else "it has a Cargo.toml"
        raise BuildFailure(FailureClass.NEEDS_RUST,
                           f"{why}: Rust extensions need crates from a crates registry, which this factory cannot "
                           "reach, so they cannot be built from source here")


def refuse_self(project: str, pins: Sequence[Pin]) -> None:
    """A project that needs itself to build can only be built from a binary of itself."""
    if any(p.name == project and not p.seed for p in pins):
        raise BuildFailure(FailureClass.DEPENDENCY_CYCLE,
                           f"{project} needs {project} itself to build: add it to `seed` in its recipe's "
                           "[build-requires] to take that one build dependency from the upstream as a binary")


class Resolver:
    """Resolves requirements with uv against the upstream, as of a date; results are cached by
    their inputs (a resolution as of a past date does not change)."""

    def __init__(self, upstream: str, cache_dir: Path, min_python: str, timeout: float) -> None:
        self.upstream, self.cache_dir, self.min_python, self.timeout = upstream, cache_dir, min_python, timeout

    def resolve(self, requirements: Sequence[str], cutoff: str | None, seeds: Sequence[str] = ()) -> tuple[Pin, ...]:
        if not requirements:
            return ()
        key = hashlib.sha256(json.dumps([sorted(requirements), cutoff, self.upstream, self.min_python],
                                        sort_keys=True).encode()).hexdigest()
        cached = self.cache_dir / "resolutions" / key[:2] / f"{key}.txt"
        if cached.is_file():
            text = cached.read_text()
        else:
            text = self._uv(requirements, cutoff)
            write_text(cached, text)
        return tuple(_pins(text, {canonicalize_name(s) for s in seeds}))

    def _uv(self, requirements: Sequence[str], cutoff: str | None) -> str:
        from uv import find_uv_bin

        cmd = [find_uv_bin(), "pip", "compile", "-", "--universal", "--python-version", self.min_python,
               "--index-url", self.upstream, "--only-binary", ":all:", "--no-header", "--no-annotate", "--no-config",
               "--quiet"]
        if cutoff:
            cmd += ["--exclude-newer", cutoff]
        env = {**os.environ, "UV_SYSTEM_CERTS": "1", "UV_CACHE_DIR": str(self.cache_dir / "uv"),
               "UV_HTTP_TIMEOUT": str(int(self.timeout))}
        env.pop("UV_NATIVE_TLS", None)
        try:
            done = subprocess.run(cmd, input="\n".join(requirements) + "\n", capture_output=True, text=True, env=env,
                                  timeout=self.timeout * 3, check=False)
        except subprocess.TimeoutExpired:
            raise BuildFailure(FailureClass.NETWORK, f"resolving {', '.join(requirements)} timed out") from None
        if done.returncode != 0:
            said = " ".join(line.strip() for line in done.stderr.strip().splitlines()[-6:])
            network = any(w in done.stderr for w in ("Failed to fetch", "error sending request", "dns error",
                                                     "Connection refused", "timed out"))
            when = f" as of {cutoff}" if cutoff else ""
            raise BuildFailure(FailureClass.NETWORK if network else FailureClass.BUILD_REQUIREMENTS,
                               f"cannot resolve the build requirements {', '.join(requirements)}{when} on the "
                               f"upstream (only wheels are read, so that no code runs on the host): {said[:800]}")
        return done.stdout


def _pins(text: str, seeds: set[str]) -> Iterable[Pin]:
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        name = canonicalize_name(req.name)
        yield Pin(name, Version(spec.version), str(req.marker) if req.marker else None, name in seeds)


def constraints(pins: Sequence[Pin]) -> str:
    """The pins as a pip constraints file."""
    return "".join(f"{p}\n" for p in pins)


def missing(pins: Sequence[Pin], index_dir: Path, targets: Sequence[Target]) -> tuple[Pin, ...]:
    """The pins factory's index cannot serve to every target they apply to (seeds aside)."""
    manifest = Manifest.existing(index_dir)
    published: dict[str, list[str]] = {}
    if manifest is not None:
        with manifest:
            for pin in {p.name for p in pins}:
                published[pin] = [e.filename for e in manifest.files(pin)]
    lacking = []
    for pin in pins:
        if pin.seed:
            continue
        files = [f for f in published.get(pin.name, []) if f.endswith(".whl") and _version_of(f) == pin.version]
        if any(pin.applies(t) and not any(serves(f, t) for f in files) for t in targets):
            lacking.append(pin)
    return tuple(lacking)


def _version_of(filename: str) -> Version:
    from packaging.utils import parse_wheel_filename

    return parse_wheel_filename(filename)[1]


def inputs(pins: Sequence[Pin], index_dir: Path, index_url: str, targets: Sequence[Target],
           seeds: Sequence[BuildInput] = ()) -> tuple[BuildInput, ...]:
    """The wheel each pin installs for each target: from factory's index, or a seed."""
    by_file: dict[tuple[str, str], BuildInput] = {}
    manifest = Manifest.existing(index_dir)
    entries = {}
    if manifest is not None:
        with manifest:
            for pin in pins:
                entries[pin.name] = [e for e in manifest.files(pin.name)
                                     if e.filename.endswith(".whl") and _version_of(e.filename) == pin.version]
    for pin in pins:
        for target in targets:
            if not pin.applies(target):
                continue
            if pin.seed:
                found = [(s.filename, s.sha256, s.uri, Origin.UPSTREAM_BINARY) for s in seeds
                         if canonicalize_name(s.name) == pin.name and serves(s.filename, target)]
            else:
                found = [(e.filename, e.sha256, index_url + e.path, Origin.FACTORY) for e in entries.get(pin.name, [])
                         if serves(e.filename, target)]
            for filename, sha256, uri, origin in found[:1]:
                known = by_file.get((filename, sha256))
                targets_of = (*known.targets, str(target)) if known else (str(target),)
                by_file[(filename, sha256)] = BuildInput(pin.name, str(pin.version), filename, sha256, uri, origin,
                                                         targets_of)
    return tuple(sorted(by_file.values(), key=lambda i: (i.name, i.filename)))


# -- the stage ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Prepared:
    """A build's requirements, resolved and all in factory's index, and the environment that
    offers them to the build container."""

    requested: tuple[str, ...]
    pins: tuple[Pin, ...]
    cutoff: str | None
    env: BuildEnvironment
    inputs: tuple[BuildInput, ...]


def static(tree: SourceTree, recipe: Recipe) -> tuple[str, ...]:
    """The declared requirements as the recipe changes them, written into the tree when they
    changed (what the build frontend reads, as a patch would); a Rust build is refused here,
    before any container runs."""
    found = declared(tree)
    wanted = requested(found, recipe.build_requires)
    refuse_rust(wanted, tree)
    if sorted(wanted) != sorted(found):
        write_requires(tree.root, wanted)
    return wanted


def write_requires(root: Path, requires: Sequence[str]) -> None:
    """Make ``[build-system].requires`` of ``root/pyproject.toml`` say ``requires``: the array is
    replaced in place (the rest of the file, comments included, is kept), or the table is added
    (with the legacy setuptools backend, which is what a project without one builds with)."""
    path = root / "pyproject.toml"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    value = json.dumps(list(requires))  # a JSON array of strings is a TOML array
    header = re.search(r"^\[build-system\][ \t]*(#.*)?$", text, re.M)
    if header is None:
        table = f'[build-system]\nrequires = {value}\nbuild-backend = "setuptools.build_meta:__legacy__"\n'
        path.write_text(table + ("\n" + text if text else ""), encoding="utf-8")
        return
    end = re.search(r"^\[", text[header.end():], re.M)
    body_end = header.end() + (end.start() if end else len(text) - header.end())
    key = re.search(r"^[ \t]*requires[ \t]*=[ \t]*", text[header.end():body_end], re.M)
    if key is None:
        path.write_text(text[:header.end()] + f"\nrequires = {value}" + text[header.end():], encoding="utf-8")
        return
    start = header.end() + key.end()
    stop = _array_end(text, start)
    path.write_text(text[:start] + value + text[stop:], encoding="utf-8")


def _array_end(text: str, start: int) -> int:
    """The index just past the TOML array that opens at ``start`` (strings and comments skipped)."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
            continue
        if c in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            i = text.find(quote, i + len(quote))
            if i < 0:
                break
            i += len(quote)
            continue
        if c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise BuildFailure(FailureClass.BUILD_REQUIREMENTS, "pyproject.toml: [build-system].requires is not a closed array")


def prepare(release: Release, recipe: Recipe, tree: SourceTree, declared_: Sequence[str], targets: Sequence[Target],
            image: BuilderImage, config: Config, client: httpx.Client, work: Path, label: str) -> Prepared:
    """Resolve and check the build requirements of ``tree``: the declared ones (``static``),
    then with those the backend's dynamic ones, discovered in ``image``.

    Raises :class:`WaitingForDependencies` when factory's index lacks some of them."""
    resolver = Resolver(config.upstream, config.cache_dir, min({t.python for t in targets}, key=Version),
                        config.http_timeout)
    policy = recipe.build_requires
    as_of = cutoff(release.uploaded, config.image_pythons)
    pins = _ready(release, resolver.resolve(declared_, as_of, policy.seed), config, targets)
    env = BuildEnvironment.write(work / "buildenv", config.index_dir, constraints(pins),
                                 [path for path, _ in _seeds(pins, config, client, targets)])
    pythons = sorted({t.python for t in targets}, key=Version)
    found = discover.discover(tree, recipe, image, pythons, env, config.cache_dir, work, label, config.build_timeout)
    wanted = requested(found, policy)
    refuse_rust(wanted, tree)
    pins = _ready(release, resolver.resolve(wanted, as_of, policy.seed), config, targets)
    seeds = _seeds(pins, config, client, targets)
    env = BuildEnvironment.write(work / "buildenv", config.index_dir, constraints(pins), [path for path, _ in seeds])
    found_inputs = inputs(pins, config.index_dir, config.index_url, targets, [seed for _, seed in seeds])
    return Prepared(wanted, pins, as_of, env, found_inputs)


def _ready(release: Release, pins: tuple[Pin, ...], config: Config, targets: Sequence[Target]) -> tuple[Pin, ...]:
    """The pins, once factory's index has them all (else the build waits for them)."""
    refuse_self(release.project, pins)
    if lacking := missing(pins, config.index_dir, targets):
        raise WaitingForDependencies([BuildRequest(p.name, p.version) for p in lacking])
    return pins


def _seeds(pins: Sequence[Pin], config: Config, client: httpx.Client,
           targets: Sequence[Target]) -> list[tuple[Path, BuildInput]]:
    """The upstream wheels of the seeded pins, downloaded and hash-checked."""
    found = []
    for pin in pins:
        if not pin.seed:
            continue
        page_url, details = project_page(client, config.upstream, pin.name)
        files = [f for f in details["files"] if f["filename"].endswith(".whl")
                 and _version_of(f["filename"]) == pin.version
                 and any(pin.applies(t) and serves(f["filename"], t) for t in targets)]
        if not files:
            raise BuildFailure(FailureClass.BUILD_REQUIREMENTS,
                               f"the recipe seeds {pin.name}, but the upstream has no wheel of {pin.name} {pin.version} "
                               "for these targets")
        for entry in files:
            source = source_file(page_url, entry)
            if not source.sha256:
                raise BuildFailure(FailureClass.BUILD_REQUIREMENTS, f"the upstream declares no sha256 for "
                                                                    f"{source.filename}: it cannot be a seed")
            path = download(source, config.cache_dir, client, kind="seeds")
            used = tuple(str(t) for t in targets if pin.applies(t) and serves(source.filename, t))
            found.append((path, BuildInput(pin.name, str(pin.version), source.filename, source.sha256, source.url,
                                           Origin.UPSTREAM_BINARY, used)))
    return found
