"""Build requirements: what a project needs in order to be built, resolved to exact versions as
they were on the day its sdist appeared, and which of them factory's own index still lacks.

- **declared**: ``[build-system].requires``, or the setuptools legacy default, read on the host
  by pypa/build's ``ProjectBuilder`` (nothing of the project runs);
- **changed by the recipe**: ``[build-requires]`` pins, overrides, extras and seeds;
- **resolved** with uv, against the upstream, once per target CPython, limited to files uploaded
  no later than the release (``--exclude-newer``, PEP 700): an old release is built with the tools
  of its day. Two floors: never older than the target CPython (tools older than the interpreter
  they run on mostly cannot run on it: setuptools older than 66 breaks on 3.12), and, for a build
  dependency, never older than the release that needed it (the tools of old tools drag in older
  tools still, down to cycles and to ones that cannot build at all: setuptools and wheel needed
  each other before 2023). The resolutions are merged into one constraints file, each pin marked
  with its CPython. Resolution reads the upstream's wheel metadata only (``--only-binary``), so
  no code runs on the host;
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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import httpx
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from factory.config import Config
from factory.failures import BuildFailure, FactoryError, FailureClass
from factory.index.manifest import FileEntry, Manifest
from factory.pipeline import discover
from factory.pipeline.buildenv import BuildEnvironment
from factory.pipeline.fetch import download
from factory.pipeline.images import BuilderImage
from factory.pipeline.record import BuildInput, Origin
from factory.pipeline.request import BuildRequest
from factory.pipeline.resolve import Release, file_version, project_page, source_file
from factory.pipeline.unpack import SourceTree
from factory.plumbing.files import write_text
from factory.recipes import BuildRequires, Recipe
from factory.targets import ARCHES, CPYTHONS, Target, serves

#: Build requirements that mean a Rust toolchain and crates (which cannot be fetched here).
RUST_BACKENDS = {"maturin", "setuptools-rust", "puccinialin"}


class WaitingForDependencies(FactoryError):
    """Build dependencies are not in factory's index yet: build them, then build this again."""

    def __init__(self, requests: Sequence[BuildRequest], floor: str | None = None) -> None:
        super().__init__("waiting for build dependencies: " + ", ".join(map(str, requests)))
        self.requests = tuple(requests)
        self.floor = floor  # the dependencies are built with tools no older than this


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


def cutoff(uploaded: str | None, python: str, floor: str | None = None) -> str | None:
    """As of when the build requirements of a release uploaded at ``uploaded`` are resolved for
    CPython ``python``: then, but no earlier than that CPython's release, nor than ``floor`` (the
    release that needed this one to build). None (the newest tools) when the upstream does not
    say when the release was uploaded."""
    if uploaded is None:
        return None
    dates = [_utc(uploaded), _utc(CPYTHONS[python].released), *([_utc(floor)] if floor else [])]
    # uv excludes what was uploaded at the cutoff itself; "no later than" includes it.
    return (max(dates).replace(microsecond=0) + datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(a: str | None, b: str | None) -> str | None:
    """The later of two ISO 8601 times (None is no time)."""
    if a is None or b is None:
        return a or b
    return a if _utc(a) >= _utc(b) else b


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

    def __init__(self, upstream: str, cache_dir: Path, timeout: float) -> None:
        self.upstream, self.cache_dir, self.timeout = upstream, cache_dir, timeout

    def resolve(self, requirements: Sequence[str], cutoff: str | None, python: str, seeds: Sequence[str] = (),
                excluded: Sequence[str] = (), arch: str | None = None) -> tuple[Pin, ...]:
        """Pins for ``requirements`` on CPython ``python`` as of ``cutoff``, each marked with that
        CPython; ``excluded`` are constraints such as ``meson!=1.11.1`` (releases that cannot be
        rebuilt). With ``arch``, for that architecture's manylinux_2_28 only (what one target
        installs); else for any Linux machine."""
        if not requirements:
            return ()
        parts: list[object] = [sorted(requirements), cutoff, self.upstream, python, sorted(excluded)]
        key = hashlib.sha256(json.dumps(parts + ([arch] if arch else []), sort_keys=True).encode()).hexdigest()
        cached = self.cache_dir / "resolutions" / key[:2] / f"{key}.txt"
        if cached.is_file():
            text = cached.read_text()
        else:
            text = self._uv(requirements, cutoff, python, excluded, arch)
            write_text(cached, text)
        return tuple(_pins(text, {canonicalize_name(s) for s in seeds}, python))

    def _uv(self, requirements: Sequence[str], cutoff: str | None, python: str, excluded: Sequence[str],
            arch: str | None) -> str:
        from uv import find_uv_bin

        # Universal from ``python`` up: markers for later CPythons are kept, then narrowed to this one.
        where = ["--python-platform", ARCHES[arch].uv_platform] if arch else ["--universal"]
        cmd = [find_uv_bin(), "pip", "compile", "-", *where, "--python-version", python,
               "--index-url", self.upstream, "--only-binary", ":all:", "--no-header", "--no-annotate", "--no-config",
               "--quiet"]
        if cutoff:
            cmd += ["--exclude-newer", cutoff]
        if excluded:
            constraints = self.cache_dir / "resolutions" / f"excluded-{os.getpid()}.txt"
            write_text(constraints, "".join(f"{c}\n" for c in sorted(excluded)))
            cmd += ["--constraint", str(constraints)]
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


def _pins(text: str, seeds: set[str], python: str) -> Iterable[Pin]:
    """The pins of a resolution for ``python``, each marked so (those whose own marker excludes
    that CPython are left out)."""
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        name = canonicalize_name(req.name)
        if req.marker is not None and not _holds_for_python(req.marker, env):
            continue
        yield Pin(name, Version(spec.version), f"python_version == '{python}'", name in seeds)


def _holds_for_python(marker: Marker, env: dict[str, str]) -> bool:
    """Whether ``marker`` can hold on a CPython of ``env`` on some Linux machine."""
    return any(marker.evaluate({**env, "platform_machine": arch, "sys_platform": "linux",
                                "platform_system": "Linux"}) for arch in ("x86_64", "aarch64"))


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
    # By project and version: one project may be pinned at different versions for different
    # CPythons (an old release's tools are older on the CPythons of its day), and each is offered.
    entries: dict[tuple[str, Version], list[FileEntry]] = {}
    if manifest is not None:
        with manifest:
            for name in {p.name for p in pins}:
                for e in manifest.files(name):
                    if e.filename.endswith(".whl"):
                        entries.setdefault((name, _version_of(e.filename)), []).append(e)
    for pin in pins:
        for target in targets:
            if not pin.applies(target):
                continue
            if pin.seed:
                found = [(s.filename, s.sha256, s.uri, Origin.UPSTREAM_BINARY) for s in seeds
                         if canonicalize_name(s.name) == pin.name and serves(s.filename, target)]
            else:
                found = [(e.filename, e.sha256, index_url + e.path, Origin.FACTORY)
                         for e in entries.get((pin.name, pin.version), [])
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
    cutoffs: dict[str, str | None]  # CPython -> as of when its build requirements were resolved
    floor: str | None  # no tools older than this: the release that needed this one, if it is a dependency
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
            image: BuilderImage, config: Config, client: httpx.Client, work: Path, label: str,
            floor: str | None = None) -> Prepared:
    """Resolve and check the build requirements of ``tree``: the declared ones (``static``),
    then with those the backend's dynamic ones, discovered in ``image``; ``floor`` is the upload
    time of the release that needed this one to build, if any.

    Raises :class:`WaitingForDependencies` when factory's index lacks some of them."""
    resolver = Resolver(config.upstream, config.cache_dir, config.http_timeout)
    policy = recipe.build_requires
    pythons = sorted({t.python for t in targets}, key=Version)
    cutoffs = {p: cutoff(release.uploaded, p, floor) for p in pythons}

    def resolve(requirements: Sequence[str]) -> Callable[[Sequence[str]], tuple[Pin, ...]]:
        return lambda excluded: tuple(pin for p in pythons for pin in resolver.resolve(
            requirements, cutoffs[p], p, policy.seed, excluded))

    def environment(pins: Sequence[Pin]) -> tuple[BuildEnvironment, tuple[BuildInput, ...]]:
        """What the build container may install for ``pins``, and nothing else."""
        seeds = _seeds(pins, config, client, targets)
        found = inputs(pins, config.index_dir, config.index_url, targets, [seed for _, seed in seeds])
        ours = [i for i in found if i.origin is Origin.FACTORY]
        return BuildEnvironment.write(work / "buildenv", config.index_dir, constraints(pins), ours,
                                      [path for path, _ in seeds]), found

    pins = _ready(release, resolve(declared_), config, targets, client, floor)
    env, _ = environment(pins)
    found = discover.discover(tree, recipe, image, pythons, env, config.cache_dir, work, label, config.build_timeout)
    wanted = requested(found, policy)
    refuse_rust(wanted, tree)
    pins = _ready(release, resolve(wanted), config, targets, client, floor)
    env, found_inputs = environment(pins)
    return Prepared(wanted, pins, cutoffs, floor, env, found_inputs)


#: How many releases without an sdist one resolution may step over.
MAX_EXCLUDED = 10


def _ready(release: Release, resolve: Callable[[Sequence[str]], tuple[Pin, ...]], config: Config,
           targets: Sequence[Target], client: httpx.Client, floor: str | None) -> tuple[Pin, ...]:
    """The pins, once factory's index has them all (else the build waits for them). A release
    the index lacks and the upstream has no sdist of cannot be rebuilt: it is excluded and the
    resolution done again (a release published as wheels only, say)."""
    excluded: list[str] = []
    while True:
        pins = resolve(excluded)
        refuse_self(release.project, pins)
        lacking = missing(pins, config.index_dir, targets)
        unbuildable = [p for p in lacking if not _has_sdist(client, config.upstream, p)]
        if not unbuildable:
            break
        excluded += [f"{p.name}!={p.version}" for p in unbuildable]
        if len(excluded) > MAX_EXCLUDED:
            raise BuildFailure(FailureClass.BUILD_REQUIREMENTS,
                               f"no resolution whose releases all have an sdist (stepped over {', '.join(excluded)})")
    if lacking:
        raise WaitingForDependencies(list(dict.fromkeys(BuildRequest(p.name, p.version) for p in lacking)),
                                     later(release.uploaded, floor))
    return pins


def _has_sdist(client: httpx.Client, upstream: str, pin: Pin) -> bool:
    """Whether the upstream has an sdist of the pinned release (so factory can rebuild it)."""
    try:
        _, details = project_page(client, upstream, pin.name)
    except BuildFailure:
        return True  # cannot tell: let the dependency's own build say why
    return any(parsed == (pin.version, True) for f in details["files"]
               if (parsed := file_version(f["filename"], pin.name)) is not None)


def _seeds(pins: Sequence[Pin], config: Config, client: httpx.Client,
           targets: Sequence[Target]) -> list[tuple[Path, BuildInput]]:
    """The upstream wheels of the seeded pins, downloaded and hash-checked."""
    return upstream_binaries([p for p in pins if p.seed], config, client, targets, "the recipe seeds it")


def upstream_binaries(pins: Sequence[Pin], config: Config, client: httpx.Client, targets: Sequence[Target],
                      why: str) -> list[tuple[Path, BuildInput]]:
    """The upstream's wheels of ``pins`` for the ``targets`` they apply to, downloaded on the host
    and checked against the sha256 the upstream declares; ``why`` they are wanted goes into the
    error when the upstream has none."""
    found = []
    for pin in pins:
        page_url, details = project_page(client, config.upstream, pin.name)
        files = [f for f in details["files"] if f["filename"].endswith(".whl")
                 and _version_of(f["filename"]) == pin.version
                 and any(pin.applies(t) and serves(f["filename"], t) for t in targets)]
        if not files:
            raise BuildFailure(FailureClass.BUILD_REQUIREMENTS,
                               f"{pin.name} {pin.version} is wanted as a binary ({why}), but the upstream has no "
                               f"wheel of it for {', '.join(map(str, targets))}")
        for entry in files:
            source = source_file(page_url, entry)
            if not source.sha256:
                raise BuildFailure(FailureClass.BUILD_REQUIREMENTS, f"the upstream declares no sha256 for "
                                                                    f"{source.filename}: it cannot be used unchecked")
            path = download(source, config.cache_dir, client, kind="seeds")
            used = tuple(str(t) for t in targets if pin.applies(t) and serves(source.filename, t))
            found.append((path, BuildInput(pin.name, str(pin.version), source.filename, source.sha256, source.url,
                                           Origin.UPSTREAM_BINARY, used)))
    return found
