"""Sign: every wheel gets an in-toto statement whose subject is the wheel and whose
predicate is SLSA v1 provenance, signed with Sigstore as a DSSE envelope, and checked with
sigstore's own verifier before anything is published.

Each signature yields ``<wheel>.sigstore.json`` (the bundle) and ``<wheel>.provenance`` (a PEP
740 provenance object holding the attestation built from the bundle). Where the keys and the
identity come from (``signing``):

- ``local``: factory's own Sigstore-compatible stack (``factory sigstore-stack``), for a single
  host or an air-gapped site: its trust config read from its state directory and pinned, and an
  identity token from its issuer, asked for only once the stack proved it holds that trust
  root's key (``sigstore_stack.client``);
- ``sigstore``: the real thing, the public instance (or a private one named by ``trust-config``)
  with an identity token from ``SIGSTORE_ID_TOKEN`` or the ambient OIDC credentials of a CI;
- ``none``: unsigned, only where ``allow-unsigned`` says so (the index then says so too).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factory.config import Config
from factory.failures import BuildFailure, FailureClass
from factory.pipeline.record import BuildInput, SystemPackage

#: Our build type, a URI of our own (RFC 4151 tag: no host name needed).
BUILD_TYPE = "tag:factory,2026:build/v1"
#: For an sdist the index mirrors: its "build" is fetching it and checking its hash against the upstream's.
SOURCE_TYPE = "tag:factory,2026:source/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"


@dataclasses.dataclass(frozen=True)
class SigningSettings:
    """Resolved from the config once per build."""

    mode: str  # local, sigstore or none
    trust_config: Path | None  # local: always the stack's own, in its state directory
    local_sigstore: str  # "": wherever the stack of stack_dir says it listens
    local_secret: Path  # the local stack's token.secret
    identity: str
    issuer: str
    builder_id: str
    stack_dir: Path  # the local stack's state directory: state-dir/sigstore, or where trust-config lies

    @classmethod
    def from_config(cls, config: Config) -> SigningSettings:
        identity = config.signing_identity or ("factory@localhost" if config.signing == "local" else "")
        builder = config.builder_id or f"tag:factory,2026:builder/{socket.gethostname()}"
        local = config.signing == "local"
        stack_dir = config.trust_config.parent if local and config.trust_config else config.state_dir / "sigstore"
        trust = config.trust_config or (stack_dir / "trust_config.json" if local else None)
        secret = config.local_sigstore_secret or stack_dir / "token.secret"
        return cls(config.signing, trust, config.local_sigstore, secret, identity, config.signing_issuer, builder,
                   stack_dir)


def load_trust(settings: SigningSettings) -> tuple[Any, str]:
    """The client trust config, and the issuer to expect when none is configured: for the local
    stack, its own, from its state directory (pinned: never what a port answers); else the
    ``trust-config`` file; else the public instance's."""
    from sigstore.models import ClientTrustConfig

    from factory.sigstore_stack.client import pinned
    from factory.sigstore_stack.errors import StackError

    if settings.mode == "local":
        try:
            pin = pinned(settings.stack_dir)
            return ClientTrustConfig.from_json(json.dumps(pin.trust_config)), settings.issuer or pin.issuer
        except StackError as exc:
            raise _fail(str(exc)) from None
        except Exception as exc:  # sigstore's own errors for a trust config it cannot load
            raise _fail(f"{settings.trust_config}: not a Sigstore trust config: {exc}") from None
    if settings.trust_config is not None:
        try:
            return ClientTrustConfig.from_json(settings.trust_config.read_text()), settings.issuer
        except OSError as exc:
            raise _fail(f"no Sigstore trust config at {settings.trust_config}: {exc.strerror}") from None
    try:
        return ClientTrustConfig.production(), settings.issuer
    except Exception as exc:  # the public instance's TUF repository is out of reach
        raise _fail(f"cannot load the public Sigstore trust root: {exc}") from None


@dataclasses.dataclass(frozen=True)
class BuildFacts:
    """What the provenance says about the build that made a wheel."""

    project: str
    version: str
    targets: tuple[str, ...]  # the targets the wheel serves, e.g. ("cp311-x86_64",)
    sdist_url: str
    sdist_sha256: str
    recipe_digest: str  # "" without a recipe
    recipe_path: str
    images: tuple[tuple[str, str], ...]  # (tag, image id)
    build_id: str
    started: str
    finished: str
    factory_version: str
    patches: tuple[tuple[str, str], ...] = ()  # (path, sha256) of each recipe patch applied
    inputs: tuple[BuildInput, ...] = ()  # the wheels in the build environment of the wheel's targets
    system_packages: tuple[SystemPackage, ...] = ()  # Debian packages installed for the build
    requirements: tuple[str, ...] = ()  # what the project asked for to build
    cutoffs: tuple[tuple[str, str | None], ...] = ()  # (CPython, as of when its build requirements were resolved)
    floor: str | None = None  # a dependency's: no tools older than the release that needed it
    source: bool = False  # the subject is the upstream sdist itself, mirrored, not a wheel built from it


@dataclasses.dataclass(frozen=True)
class Signature:
    """One wheel's signature, as the index stores it."""

    filename: str
    bundle: bytes
    provenance: bytes
    log_index: int
    identity: str
    issuer: str


def statement_predicate(facts: BuildFacts, builder_id: str) -> dict[str, Any]:
    """SLSA v1 provenance for a wheel (or for the sdist it was built from, see ``source``)."""
    if facts.source:
        return _source_predicate(facts, builder_id)
    dependencies: list[dict[str, Any]] = [
        {"uri": facts.sdist_url, "digest": {"sha256": facts.sdist_sha256}, "name": "sdist"},
    ]
    if facts.recipe_digest:
        dependencies.append({"uri": f"file:{facts.recipe_path}", "digest": {"sha256": facts.recipe_digest},
                             "name": "recipe"})
    for path, digest in facts.patches:
        dependencies.append({"uri": f"file:{path}", "digest": {"sha256": digest}, "name": "patch"})
    for tag, image_id in facts.images:
        dependencies.append({"uri": f"oci:{tag}", "digest": {"sha256": image_id.removeprefix("sha256:")},
                             "name": "builder-image"})
    for item in facts.inputs:
        dependencies.append({"uri": item.uri, "digest": {"sha256": item.sha256}, "name": "build-requirement",
                             "annotations": {"project": item.name, "version": item.version, "filename": item.filename,
                                             "origin": str(item.origin)}})
    for package in facts.system_packages:
        dependencies.append({"uri": f"pkg:deb/debian/{package.name}@{package.version}", "name": "system-package",
                             "annotations": {"package": package.name, "version": package.version, "why": package.why}})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"project": facts.project, "version": facts.version, "targets": list(facts.targets)},
            "internalParameters": {"factory": facts.factory_version,
                                   "buildRequirements": {"requested": list(facts.requirements),
                                                         "resolvedAsOf": dict(facts.cutoffs),
                                                         "floor": facts.floor}},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": builder_id},
            "metadata": {"invocationId": facts.build_id, "startedOn": facts.started, "finishedOn": facts.finished},
        },
    }


def _source_predicate(facts: BuildFacts, builder_id: str) -> dict[str, Any]:
    """The sdist's provenance: where it came from, and that its bytes hashed to what the upstream
    declared (factory refuses it otherwise)."""
    return {
        "buildDefinition": {
            "buildType": SOURCE_TYPE,
            "externalParameters": {"project": facts.project, "version": facts.version, "url": facts.sdist_url},
            "internalParameters": {"factory": facts.factory_version,
                                   "sha256": {"declaredUpstream": facts.sdist_sha256, "matched": True}},
            "resolvedDependencies": [{"uri": facts.sdist_url, "digest": {"sha256": facts.sdist_sha256},
                                      "name": "upstream-sdist"}],
        },
        "runDetails": {
            "builder": {"id": builder_id},
            "metadata": {"invocationId": facts.build_id, "startedOn": facts.started, "finishedOn": facts.finished},
        },
    }


def _fail(reason: str) -> BuildFailure:
    return BuildFailure(FailureClass.SIGNING, reason)


class Signer:
    """Signs wheels with one identity and one short-lived certificate; use as a context manager."""

    def __init__(self, settings: SigningSettings) -> None:
        from sigstore.oidc import IdentityError, IdentityToken, detect_credential
        from sigstore.sign import SigningContext

        self.settings = settings
        self.trust, _ = load_trust(settings)
        try:
            token = self._token(detect_credential)
            self.token = IdentityToken(token)
        except IdentityError as exc:
            raise _fail(f"the identity token is not valid: {exc}") from None
        self.context = SigningContext.from_trust_config(self.trust)
        self._signer_cm = self.context.signer(self.token, cache=True)
        try:
            self._signer = self._signer_cm.__enter__()
        except Exception as exc:
            raise _fail(f"Sigstore refused a signing certificate: {exc}") from None

    def _token(self, detect_credential: Any) -> str:
        return identity_token(self.settings, detect_credential)

    def __enter__(self) -> Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._signer_cm.__exit__(None, None, None)

    @property
    def identity(self) -> str:
        return self.token.identity

    @property
    def issuer(self) -> str:
        return self.token.issuer

    def sign(self, filename: str, sha256: str, facts: BuildFacts) -> Signature:
        """Sign one wheel; the bundle is verified before it is returned."""
        from pypi_attestations import Attestation
        from sigstore.dsse import DigestSet, StatementBuilder, Subject
        from sigstore.verify import Verifier
        from sigstore.verify.policy import Identity

        statement = (StatementBuilder()
                     .subjects([Subject(name=filename, digest=DigestSet(root={"sha256": sha256}))])
                     .predicate_type(SLSA_PROVENANCE)
                     .predicate(statement_predicate(facts, self.settings.builder_id))
                     .build())
        try:
            bundle = self._signer.sign_dsse(statement)
            Verifier(trusted_root=self.trust.trusted_root).verify_dsse(
                bundle, Identity(identity=self.identity, issuer=self.issuer))
        except Exception as exc:
            raise _fail(f"signing {filename} failed: {exc}") from None
        bundle_json = bundle.to_json()
        attestation = Attestation.from_bundle(bundle)
        provenance = {
            "version": 1,
            "attestation_bundles": [{
                "publisher": {"kind": "factory", "claims": {"builder": self.settings.builder_id,
                                                            "identity": self.identity, "issuer": self.issuer}},
                "attestations": [attestation.model_dump(mode="json")],
            }],
        }
        log_index = json.loads(bundle_json)["verificationMaterial"]["tlogEntries"][0]["logIndex"]
        return Signature(filename, bundle_json.encode(), (json.dumps(provenance, indent=1) + "\n").encode(),
                         int(log_index), self.identity, self.issuer)


def identity_token(settings: SigningSettings, detect_credential: Any = None) -> str:
    """The identity token to sign with: from the local stack (once it proved it is the stack of
    its state directory), else ``SIGSTORE_ID_TOKEN`` or the ambient OIDC credentials."""
    if settings.mode == "local":
        from factory.sigstore_stack.client import identity_token as local_token
        from factory.sigstore_stack.errors import StackError

        try:
            return local_token(settings.stack_dir, settings.local_sigstore, settings.local_secret, settings.identity)
        except StackError as exc:
            raise _fail(f"signing with the local Sigstore stack of {settings.stack_dir}: {exc}") from None
    if detect_credential is None:
        from sigstore.oidc import detect_credential
    token = os.environ.get("SIGSTORE_ID_TOKEN") or detect_credential()
    if not token:
        raise _fail("no identity to sign with: set SIGSTORE_ID_TOKEN, run where ambient OIDC credentials exist "
                    "(a CI with id-token permission), or use the local stack (signing = \"local\")")
    return token


def preflight(settings: SigningSettings) -> None:
    """Check that signing can succeed, before anything is built (a build that would fail at its
    last stage should not run): the trust root loads and an identity token can be had. Raises
    the ``signing`` failure signing would end with."""
    if settings.mode == "none":
        return
    load_trust(settings)
    identity_token(settings)


def sign_all(settings: SigningSettings, wheels: Sequence[tuple[str, str, BuildFacts]]) -> list[Signature]:
    """Sign (filename, sha256, facts) triples with one certificate."""
    with Signer(settings) as signer:
        return [signer.sign(filename, sha256, facts) for filename, sha256, facts in wheels]
