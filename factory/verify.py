"""``factory verify``: for wheels, a wheelhouse, or an installed environment, which
distributions came from this index, and whether their signatures hold.

A wheel is ours when its sha256 is one the index published. An installed distribution is ours
when the index has a wheel of the same name and version whose RECORD it carries: every file of
the wheel installed with the same hash (scripts and other ``.data`` files are rewritten by
installers, and so left out), and nothing more than an installer adds. Then the bytes on disk
are checked against that RECORD (``factory.installed``): a modified, missing or unlisted file,
or a compiled file that is not its source compiled, is a change, and any change fails. Files at
the top of site-packages that no RECORD lists (a ``.pth``) are reported as not ours. A
signature holds when sigstore's verifier accepts the wheel's bundle against the configured
trusted root, identity and issuer, and the signed statement names exactly that wheel and its
sha256.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpx
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from factory import installed as installed_files
from factory.failures import BuildFailure, ConfigError, FactoryError
from factory.index.manifest import FileEntry, Manifest
from factory.index.pages import JSON_TYPE
from factory.pipeline.sign import SigningSettings, load_trust
from factory.plumbing.files import sha256_file


@dataclasses.dataclass(frozen=True)
class Finding:
    """What was found out about one distribution."""

    name: str
    version: str
    location: str  # the wheel file, or the .dist-info directory
    ours: bool
    wheel: str | None  # the index's file it matched
    signature: str  # "verified", "failed", "unsigned" (ours, published without one) or "-" (not ours)
    detail: str
    changed: tuple[str, ...] = ()  # installed from our wheel, then changed on disk (each change): a failure

    @property
    def trusted(self) -> bool:
        return self.ours and self.signature == "verified" and not self.changed

    @property
    def failed(self) -> bool:
        """A failure whatever is asked: a signature that does not hold, or files changed after install."""
        return self.signature == "failed" or bool(self.changed)


@dataclasses.dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def summary(self) -> str:
        ours = sum(f.ours for f in self.findings)
        verified = sum(f.trusted for f in self.findings)
        changed = sum(bool(f.changed) for f in self.findings)
        return (f"{ours} of {len(self.findings)} distributions came from the hardened index; "
                f"{verified} with a verified signature" + (f"; {changed} changed since installed" if changed else ""))

    def to_json(self) -> str:
        return json.dumps({"summary": self.summary, "total": len(self.findings),
                           "ours": sum(f.ours for f in self.findings),
                           "verified": sum(f.trusted for f in self.findings),
                           "changed": sum(bool(f.changed) for f in self.findings),
                           "distributions": [dataclasses.asdict(f) for f in self.findings]}, indent=2)



def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


class SignatureCheck:
    """The trusted root and the identity every signature must come from."""

    def __init__(self, settings: SigningSettings) -> None:
        try:
            self.trust, self.issuer = load_trust(settings)
        except BuildFailure as exc:
            raise ConfigError(exc.reason) from None
        self.identity = settings.identity
        if not self.identity or not self.issuer:
            raise ConfigError("set signing-identity and signing-issuer: the identity the wheels must be signed by")

    def check(self, bundle_path: Path, filename: str, sha256: str) -> tuple[str, str]:
        """("verified", "") or ("failed", why) for one wheel's bundle."""
        verdict, why, _ = self.statement(bundle_path, filename, sha256)
        return verdict, why

    def verify(self, bundle: bytes, filename: str, sha256: str) -> str | None:
        """None when ``bundle`` (a bundle's JSON) is a valid signature of exactly that file, else
        why not (what ``factory index check`` asks of every bundle and attestation)."""
        verdict, why, _ = self._statement(bundle, filename, sha256)
        return None if verdict == "verified" else why

    def statement(self, bundle_path: Path, filename: str, sha256: str) -> tuple[str, str, dict | None]:
        """Like :meth:`check`, with the signed in-toto statement when the signature holds."""
        try:
            data = bundle_path.read_bytes()
        except OSError as exc:
            return "failed", f"cannot read the bundle: {exc.strerror}", None
        return self._statement(data, filename, sha256)

    def statement_of(self, data: bytes, filename: str, sha256: str) -> tuple[str, str, dict | None]:
        """Like :meth:`statement`, for a bundle's bytes."""
        return self._statement(data, filename, sha256)

    def _statement(self, data: bytes, filename: str, sha256: str) -> tuple[str, str, dict | None]:
        from sigstore.models import Bundle
        from sigstore.verify import Verifier
        from sigstore.verify.policy import Identity

        try:
            bundle = Bundle.from_json(data)
            _, payload = Verifier(trusted_root=self.trust.trusted_root).verify_dsse(
                bundle, Identity(identity=self.identity, issuer=self.issuer))
            statement = json.loads(payload)
        except Exception as exc:  # sigstore raises its own errors for each way a bundle can be wrong
            return "failed", f"signature does not verify: {exc}", None
        subjects = {(s.get("name"), s.get("digest", {}).get("sha256")) for s in statement.get("subject", [])}
        if (filename, sha256) not in subjects:
            return "failed", "the signed statement is for another file", None
        return "verified", "", statement


class Index(Protocol):
    """What verification asks of an index: a local one, or one served over HTTP."""

    def find(self, sha256: str, project: str) -> FileEntry | None:
        """The file with these bytes, if the index published it (``project``: where to look)."""

    def wheels_of(self, project: str, version: str) -> list[FileEntry]:
        """The wheels of a release."""

    def wheel(self, entry: FileEntry) -> Path:
        """The file itself, on disk."""

    def bundle(self, entry: FileEntry) -> bytes | None:
        """The file's Sigstore bundle, or None when the index has none."""


class IndexView:
    """The index's manifest and files, for lookups."""

    def __init__(self, index_dir: Path) -> None:
        manifest = Manifest.existing(index_dir)
        if manifest is None:
            raise FactoryError(f"{index_dir}: no index here (nothing was ever published): set index-dir")
        self.index_dir = index_dir
        self.manifest = manifest

    def by_sha256(self, sha256: str) -> FileEntry | None:
        return self.manifest.by_sha256(sha256)

    def find(self, sha256: str, project: str) -> FileEntry | None:
        return self.manifest.by_sha256(sha256)

    def wheels_of(self, project: str, version: str) -> list[FileEntry]:
        return [e for e in self.manifest.files(project) if e.filename.endswith(".whl") and _same_version(e.version, version)]

    def path(self, entry: FileEntry) -> Path:
        return self.index_dir / entry.path

    def wheel(self, entry: FileEntry) -> Path:
        return self.index_dir / entry.path

    def bundle(self, entry: FileEntry) -> bytes | None:
        try:
            return self.path(entry).with_name(entry.filename + ".sigstore.json").read_bytes()
        except OSError:
            return None


class RemoteIndex:
    """An index served over HTTP (``factory serve``, or a repository manager in front of it),
    read as a client reads it: its PEP 691 JSON pages, the files they link, and for each file
    its Sigstore bundle beside it or, failing that, the attestation in its PEP 740 provenance.
    Credentials come from the URL (``https://user:token@host/simple/``) or ``~/.netrc``."""

    def __init__(self, url: str, timeout: float, scratch: Path) -> None:
        from factory.plumbing import net

        parts = urlsplit(url)
        auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc
        self.url = urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/"
        self.client = net.client(timeout)
        if auth is not None:
            self.client.auth = auth
        self.scratch = scratch
        self._pages: dict[str, list[FileEntry]] = {}

    def _get(self, url: str, accept: str | None = None) -> httpx.Response:
        try:
            response = self.client.get(url, headers={"accept": accept} if accept else {})
        except httpx.HTTPError as exc:
            raise FactoryError(f"{url}: cannot reach the index: {exc}") from None
        if response.status_code in (401, 403):
            raise FactoryError(f"{url}: the index refused the credentials ({response.status_code}): give them in the "
                               "URL (https://user:token@host/simple/) or in ~/.netrc")
        return response

    def _files(self, project: str) -> list[FileEntry]:
        if project not in self._pages:
            page_url = urljoin(self.url, f"{project}/")
            response = self._get(page_url, JSON_TYPE)
            files = []
            if response.status_code == 200:
                for f in response.json().get("files", []):
                    url = urljoin(str(response.url), f["url"])
                    provenance = f.get("provenance")
                    files.append(FileEntry(
                        filename=f["filename"], project=project, version=_file_version(f["filename"]),
                        sha256=f.get("hashes", {}).get("sha256", ""), size=f.get("size"),
                        requires_python=f.get("requires-python"), metadata_sha256=None,
                        upload_time=f.get("upload-time") or "", yanked=None, path=url.split("#", 1)[0],
                        provenance=urljoin(str(response.url), provenance) if provenance else None))
            self._pages[project] = files
        return self._pages[project]

    def find(self, sha256: str, project: str) -> FileEntry | None:
        return next((e for e in self._files(canonicalize_name(project)) if e.sha256 == sha256), None)

    def wheels_of(self, project: str, version: str) -> list[FileEntry]:
        return [e for e in self._files(canonicalize_name(project))
                if e.filename.endswith(".whl") and _same_version(e.version, version)]

    def wheel(self, entry: FileEntry) -> Path:
        path = self.scratch / entry.sha256 / entry.filename
        if not path.is_file():
            response = self._get(entry.path)
            if response.status_code != 200:
                raise FactoryError(f"{entry.path}: the index answered {response.status_code} for a file it lists")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(response.content)
        return path

    def bundle(self, entry: FileEntry) -> bytes | None:
        beside = self._get(entry.path + ".sigstore.json")
        if beside.status_code == 200:
            return beside.content
        if entry.provenance is None:
            return None
        provenance = self._get(entry.provenance)
        if provenance.status_code != 200:
            return None
        from pypi_attestations import Attestation

        try:
            attestation = provenance.json()["attestation_bundles"][0]["attestations"][0]
            return Attestation.model_validate(attestation).to_bundle().to_json().encode()
        except (ValueError, KeyError, IndexError, TypeError):
            return b"{}"  # an attestation that is no bundle: it fails to verify, and says so


def _file_version(filename: str) -> str:
    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except ValueError:
        return ""


def _remediated(version: str, detail: str) -> str:
    """A remediated build (a local version label: security patches) says so."""
    try:
        local = Version(version).local
    except InvalidVersion:
        local = None
    note = f"remediated build (+{local}: the recipe's security patches)" if local else ""
    return "; ".join(x for x in (note, detail) if x)


def _signature(view: Index, check: SignatureCheck, entry: FileEntry) -> tuple[str, str]:
    bundle = view.bundle(entry)
    if bundle is None:
        return _missing(entry)
    verdict, why, _ = check.statement_of(bundle, entry.filename, entry.sha256)
    return verdict, why


def _missing(entry: FileEntry) -> tuple[str, str]:
    """A bundle that is not there: the manifest says whether the file was published signed
    (then the bundle was removed, and that fails) or unsigned (allow-unsigned)."""
    if entry.provenance is not None:
        return "failed", "published signed, but its signature (bundle) is missing from the index"
    return "unsigned", "published without a signature"


def verify_wheels(paths: Iterable[Path], view: Index, check: SignatureCheck) -> Iterator[Finding]:
    for path in paths:
        try:
            name, version, _, _ = parse_wheel_filename(path.name)
        except ValueError:
            continue
        entry = view.find(sha256_file(path), name)
        if entry is None:
            yield Finding(name, str(version), str(path), False, None, "-", "not a wheel the index published")
            continue
        signature, why = _signature(view, check, entry)
        yield Finding(name, str(version), str(path), True, entry.filename, signature, _remediated(str(version), why))


def _installed_from(installed: dict[str, str], wheel: Path, sha256: str) -> bool:
    """Whether an installed RECORD is exactly the files of ``wheel`` (the index's copy, checked
    first against the hash the index published), plus what an installer adds: compiled files,
    scripts and headers placed outside site-packages, and its own files in the .dist-info."""
    if not wheel.is_file() or sha256_file(wheel) != sha256:
        return False
    record = installed_files.wheel_record(wheel)
    # Installers rewrite .data/ files (scripts get new shebangs) and write their own RECORD.
    expected = {p: h for p, h in record.items() if ".data/" not in p and not p.endswith(".dist-info/RECORD")}
    if any(installed.get(p) != h for p, h in expected.items()):
        return False
    return all(p in expected or _installer_file(p) for p in installed)


def _installer_file(path: str) -> bool:
    parts = path.split("/")
    return (path.startswith("../") or "__pycache__" in parts[:-1]
            or (len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in installed_files.INSTALLER_FILES))


def site_packages(env: Path) -> list[Path]:
    """The site-packages directories of a virtualenv, or the directory itself."""
    found = sorted(env.glob("lib/python3*/site-packages")) + sorted(env.glob("lib64/python3*/site-packages"))
    if found:
        return list(dict.fromkeys(p.resolve() for p in found))
    if any(env.glob("*.dist-info")):
        return [env]
    raise FactoryError(f"{env}: neither a virtualenv nor a site-packages directory")


def verify_environment(env: Path, view: Index, check: SignatureCheck) -> Iterator[Finding]:
    compiled = installed_files.Compiled(env)
    for directory in site_packages(env):
        dists = installed_files.distributions(directory)
        everyone = installed_files.owned(dists)
        for dist in dists:
            name, version = canonicalize_name(dist.name), dist.version
            candidates = view.wheels_of(name, version)
            match = next((e for e in candidates if _installed_from(dist.record, view.wheel(e), e.sha256)), None)
            if match is None:
                why = ("its files differ from every wheel of it in the index" if candidates
                       else "the index has no wheel of this name and version")
                yield Finding(name, version, str(dist.dist_info), False, None, "-", why)
                continue
            signature, why = _signature(view, check, match)
            changed = installed_files.changes(dist, everyone, compiled)
            if changed:
                shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
                why = f"installed from {match.filename}, changed since: {shown}"
            yield Finding(name, version, str(dist.dist_info), True, match.filename, signature, _remediated(version, why),
                          tuple(changed))
        for path in installed_files.unowned(directory, everyone, dists):
            why = ("a .pth file no installed distribution lists: it runs code at every start" if path.suffix == ".pth"
                   else "no installed distribution lists it")
            yield Finding(path.name, "", str(path), False, None, "-", why)


def wheels_under(path: Path) -> list[Path]:
    """Wheel files: the path itself, or every wheel below a directory (a wheelhouse, a pip cache)."""
    return sorted(path.rglob("*.whl")) if path.is_dir() else [path]


# -- verify --deep -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Input:
    """A wheel and, below it, the build requirements its provenance names, each checked the same
    way: ours (its sha256 is one the index published) and signed by us."""

    name: str
    filename: str
    sha256: str
    verdict: str  # "verified", or why not: "failed", "unsigned", "not ours", "upstream binary"
    detail: str
    inputs: tuple[Input, ...] = ()

    @property
    def trusted(self) -> bool:
        """Rebuilt and signed by us, and so is every input below it."""
        return self.verdict == "verified" and all(i.trusted for i in self.inputs)

    def first_untrusted(self) -> Input | None:
        """The first input, depth first, that was not rebuilt and signed by us."""
        if self.verdict != "verified":
            return self
        return next((found for i in self.inputs if (found := i.first_untrusted()) is not None), None)

    def to_dict(self) -> dict:
        return {"name": self.name, "filename": self.filename, "sha256": self.sha256, "verdict": self.verdict,
                "detail": self.detail, "trusted": self.trusted, "inputs": [i.to_dict() for i in self.inputs]}


def verify_deep(path: Path, view: Index, check: SignatureCheck) -> Input:
    """Walk a wheel's build inputs, all the way down, through the index's provenance."""
    memo: dict[str, Input] = {}
    name = parse_wheel_filename(path.name)[0] if path.name.endswith(".whl") else path.name
    return _deep(name, path.name, sha256_file(path), view, check, memo, ())


def _deep(name: str, filename: str, sha256: str, view: Index, check: SignatureCheck, memo: dict[str, Input],
          below: tuple[str, ...], origin: str = "factory") -> Input:
    if sha256 in memo:
        return memo[sha256]
    entry = view.find(sha256, name)
    if entry is None:
        verdict = "upstream binary" if origin == "upstream-binary" else "not ours"
        why = ("a recipe's seed: the upstream's wheel, not rebuilt" if origin == "upstream-binary"
               else "not a file the index published")
        found = Input(name, filename, sha256, verdict, why)
    elif sha256 in below:  # a provenance naming its own ancestor: cannot be, but must not loop
        found = Input(name, filename, sha256, "failed", "the provenance names a cycle")
    else:
        bundle = view.bundle(entry)
        if bundle is None:
            found = Input(name, entry.filename, sha256, *_missing(entry))
        else:
            verdict, why, statement = check.statement_of(bundle, entry.filename, entry.sha256)
            inputs: list[Input] = []
            for dependency in _build_requirements(statement):
                digest = dependency.get("digest", {}).get("sha256", "")
                notes = dependency.get("annotations", {})
                inputs.append(_deep(notes.get("project", "?"), notes.get("filename", dependency.get("uri", "?")), digest,
                                    view, check, memo, (*below, sha256), notes.get("origin", "factory")))
            found = Input(entry.project, entry.filename, sha256, verdict, why, tuple(inputs))
    memo[sha256] = found
    return found


def _build_requirements(statement: dict | None) -> list[dict]:
    if not statement:
        return []
    deps = statement.get("predicate", {}).get("buildDefinition", {}).get("resolvedDependencies", [])
    return [d for d in deps if d.get("name") == "build-requirement"]
