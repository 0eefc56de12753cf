"""factory's settings, resolved once into a frozen :class:`Config`.

Precedence, lowest first: the defaults below (each works on a fresh machine), one TOML file
(``--config FILE``, else ``$FACTORY_CONFIG``, else ``factory.toml`` in the current directory),
then one environment variable per key, ``FACTORY_<KEY>`` (``index-dir`` -> ``FACTORY_INDEX_DIR``).
Relative paths in the file are relative to the file; elsewhere, to the current directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from factory.failures import ConfigError
from factory.targets import ARCHITECTURES, CPYTHONS

#: The checkout factory runs from: recipes and container definitions ship beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

SIGNING_MODES = ("local", "sigstore", "none")


def pip_index_url() -> str:
    """The index pip itself would use: ``PIP_INDEX_URL``, else pip's configuration files, else
    pip's built-in default. factory never names a registry itself."""
    if url := os.environ.get("PIP_INDEX_URL", "").strip():
        return url
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    )
    found = {}
    for line in listed.stdout.splitlines():
        key, _, value = line.partition("=")
        section, _, option = key.rpartition(".")
        if option == "index-url" and section in ("global", "install"):
            found[section] = value.strip().strip("'\"")
    if found:
        return found.get("install") or found["global"]
    try:
        from pip._internal.models.index import PyPI  # pip's own default, not ours to hard-code
    except ImportError as exc:  # pragma: no cover - pip is part of every venv
        raise ConfigError("no upstream index: set `upstream` in factory.toml or FACTORY_UPSTREAM") from exc
    return PyPI.simple_url


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be positive"


def _archs(value: tuple[str, ...]) -> str | None:
    unknown = [a for a in value if a not in ARCHITECTURES]
    if unknown or not value:
        return f"unknown architecture {unknown[0]!r}" if unknown else "name at least one architecture"
    return None


def _pythons(value: tuple[str, ...]) -> str | None:
    unknown = [p for p in value if p not in CPYTHONS]
    if unknown:
        known = ", ".join(CPYTHONS)
        return f"no Debian suite provides CPython {unknown[0]!r} (known: {known})"
    return None


def _some_pythons(value: tuple[str, ...]) -> str | None:
    return _pythons(value) or (None if value else "name at least one CPython version")


def check_pythons(value: tuple[str, ...], where: str, config: Config) -> tuple[str, ...]:
    """Validate the CPythons to build for (from the config or ``--python``): each must be one
    the images hold."""
    if complaint := _pythons(value):
        raise ConfigError(f"{where}: {complaint}")
    missing = [p for p in value if p not in config.image_pythons]
    if missing:
        raise ConfigError(f"{where}: the builder images hold CPython {', '.join(config.image_pythons)}, not "
                          f"{', '.join(missing)}: add it to `image-pythons` (the images are then rebuilt)")
    return value


def _http(value: str) -> str | None:
    return None if re.match(r"https?://", value) else f"{value!r} is not an http(s):// URL"


def _queue_url(value: str) -> str | None:
    if not value or value.startswith(("postgresql://", "postgres://")):
        return None
    return f"{value!r} is not a postgresql:// URL (leave it empty for SQLite in state-dir)"


def _url(value: str) -> str | None:
    return None if re.match(r"(https?|file)://", value) else f"{value!r} is not an http(s):// or file:// URL"


def _optional_http(value: str) -> str | None:
    return None if not value else _http(value)


def _fallback(value: str) -> str | None:
    return None if value in ("project", "version", "none") else f"must be project, version or none, got {value!r}"


def _local_label(value: str) -> str | None:
    return None if re.fullmatch(r"[a-z][a-z0-9]*", value) else f"{value!r} is not a lowercase alphanumeric label"


def _build_tag(value: str) -> str | None:
    if not value or re.fullmatch(r"[0-9][A-Za-z0-9_]*", value):
        return None
    return f"{value!r} is not a wheel build tag: a digit first, then letters, digits or _ (e.g. 1 or 1factory)"


def _networks(value: tuple[str, ...]) -> str | None:
    import ipaddress

    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"{item!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
    return None


def _signing(value: str) -> str | None:
    return None if value in SIGNING_MODES else f"must be one of {', '.join(SIGNING_MODES)}, got {value!r}"


def setting(default: Callable[[], Any], help: str, check: Callable[[Any], str | None] | None = None) -> Any:
    """Declare one config key as a :class:`Config` field: its default (a function, so that a
    default may look at the machine), what it is for, and a check returning a complaint or None.
    The key is the field's name with dashes; its variable is ``FACTORY_<KEY>``."""
    return dataclasses.field(metadata={"default": default, "help": help, "check": check or (lambda _: None)})


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting, validated: each field is one key of the config file. Build one with :func:`load`."""

    upstream: str = setting(pip_index_url, "simple index the sources come from (default: pip's)", _url)
    index_dir: Path = setting(lambda: Path("index"), "where the private index is published")
    state_dir: Path = setting(lambda: Path("state"), "caches, build records, work trees")
    base_url: str = setting(lambda: "", "the http(s) URL the index directory is served at, for absolute provenance "
                            "links (default: none, the links are relative to the pages)", _optional_http)
    archs: tuple[str, ...] = setting(lambda: ARCHITECTURES, "architectures to build for: x86_64, aarch64", _archs)
    image_pythons: tuple[str, ...] = setting(lambda: ("3.11", "3.13", "3.14"), "CPythons the builder images hold",
                                             _some_pythons)
    pythons: tuple[str, ...] = setting(lambda: (), "CPythons to build for (default: all of image-pythons)", _pythons)
    max_unpacked_size: int = setting(lambda: 2 * 1024**3, "largest unpacked sdist, in bytes", _positive)
    max_unpacked_files: int = setting(lambda: 100_000, "most members an sdist may have", _positive)
    build_timeout: int = setting(lambda: 3600, "seconds a container build may take", _positive)
    http_timeout: float = setting(lambda: 60.0, "seconds to wait on the upstream index", _positive)
    container_network: str = setting(lambda: "host", "podman --network for builds")
    debian_suite: str = setting(lambda: "bookworm", "Debian suite of the builder images")
    debian_mirror: str = setting(lambda: "", "Debian mirror for images (default: the host's apt sources)")
    queue_url: str = setting(lambda: "", "the build queue: postgresql://... (default: SQLite in state-dir)",
                             _queue_url)
    lease_seconds: int = setting(lambda: 300, "how long a worker's claim lasts without a heartbeat", _positive)
    max_attempts: int = setting(lambda: 3, "tries for a build that fails transiently", _positive)
    retry_backoff: float = setting(lambda: 60.0, "seconds before the first retry (doubling each time)", _positive)
    signing: str = setting(lambda: "local", "local (factory's own Sigstore stack), sigstore, or none", _signing)
    allow_unsigned: bool = setting(lambda: False, "whether unsigned wheels may be published (signing = none)")
    trust_config: Path | None = setting(lambda: None, "Sigstore client trust config (default: the local "
                                        "stack's, or the public instance's with signing = sigstore)")
    local_sigstore: str = setting(lambda: "", "the URL of `factory sigstore-stack` (default: where the stack of "
                                  "the state directory says it listens, a port of its own)", _optional_http)
    local_sigstore_secret: Path | None = setting(lambda: None, "the local stack's token.secret "
                                                 "(default: state-dir/sigstore/token.secret)")
    signing_identity: str = setting(lambda: "", "identity the wheels are signed as (default: factory@localhost "
                                    "for the local stack; the CI workload's for sigstore)")
    signing_issuer: str = setting(lambda: "", "OIDC issuer of that identity (default: the local stack's)")
    builder_id: str = setting(lambda: "", "SLSA builder id (default: tag:factory:builder:<hostname>)")
    fallback: str = setting(lambda: "project", "what `factory serve` gives for what the index lacks: project (the "
                            "upstream's page of a project it lacks), version (also the upstream's files of the "
                            "versions it lacks), or none (a closed index)", _fallback)
    queue_misses: bool = setting(lambda: True, "whether `factory serve` puts each miss in the queue as it happens")
    remediation_label: str = setting(lambda: "factory", "local version label of remediated builds: VERSION+<label>.N",
                                     _local_label)
    upload_to: str = setting(lambda: "", "a hosted repository's upload URL (devpi, Artifactory, Nexus, ...): where "
                             "`factory upload` sends by default, and the farm after each publish", _optional_http)
    upload_simple_url: str = setting(lambda: "", "that repository's simple index, where it is not found beside "
                                     "upload-to (+simple/ or simple/)", _optional_http)
    trusted_proxies: tuple[str, ...] = setting(lambda: (), "addresses or networks of proxies (a repository manager) "
                                               "whose X-Forwarded-For and X-Forwarded-User-Agent `factory serve` "
                                               "believes", _networks)
    wheel_build_tag: str = setting(lambda: "", "a wheel build tag for every wheel built (e.g. 1): pip and uv rank it "
                                   "above upstream's untagged wheel with equally good platform tags in a merged "
                                   "index (default: none, the wheels keep upstream's file names)", _build_tag)
    recipes_dir: Path = setting(lambda: PROJECT_ROOT / "recipes", "per-package build recipes")
    containers_dir: Path = setting(lambda: PROJECT_ROOT / "containers", "builder image definitions")

    @property
    def index_url(self) -> str:
        """The absolute URL of the index directory, ending in / (PEP 740 links need one)."""
        url = self.base_url or self.index_dir.resolve().as_uri()
        return url if url.endswith("/") else url + "/"

    @property
    def page_base_url(self) -> str:
        """What pages put before a provenance path: ``base-url`` (ending in /) for absolute links,
        or "" for links relative to the page (see ``index.pages.provenance_url``)."""
        return "" if not self.base_url else self.base_url if self.base_url.endswith("/") else self.base_url + "/"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "cache"

    @property
    def records_dir(self) -> Path:
        return self.state_dir / "records"

    @property
    def work_dir(self) -> Path:
        return self.state_dir / "work"

    @property
    def status_dir(self) -> Path:
        """The status site: static pages beside the index, served at /status/."""
        return self.index_dir / "status"

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One key of the config file, as :class:`Config` declares it."""

    field: str
    kind: type  # str, int, float, bool, tuple or Path
    default: Callable[[], Any]
    help: str
    check: Callable[[Any], str | None]

    @property
    def key(self) -> str:
        return self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "FACTORY_" + self.field.upper()


def _kind(annotation: Any) -> type:
    """The type a setting's values are converted to, from its field's annotation."""
    for kind in (tuple, Path):
        if annotation is kind or typing.get_origin(annotation) is kind or kind in typing.get_args(annotation):
            return kind
    return annotation


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, _kind(hint), f.metadata["default"], f.metadata["help"], f.metadata["check"])
    for f, hint in zip(dataclasses.fields(Config), typing.get_type_hints(Config).values(), strict=True)
)


def _convert(setting: Setting, value: Any, where: str, base: Path) -> Any:
    value = _typed(setting, value, where, base)
    if complaint := setting.check(value):
        raise ConfigError(f"{where}: `{setting.key}`: {complaint}")
    return value


def _typed(setting: Setting, value: Any, where: str, base: Path) -> Any:
    kind = setting.kind
    if kind is tuple:
        if isinstance(value, str):
            value = [part for part in re.split(r"[,\s]+", value) if part]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: `{setting.key}` must be a list of strings, got {value!r}")
        return tuple(value)
    if kind is Path:
        if value in (None, "") and setting.default() is None:
            return None  # unset: whoever uses it picks a default
        if not isinstance(value, str | Path) or not str(value):
            raise ConfigError(f"{where}: `{setting.key}` must be a path, got {value!r}")
        try:
            path = Path(value).expanduser()
        except RuntimeError:  # ~nosuchuser
            raise ConfigError(f"{where}: `{setting.key}`: cannot expand {value!r}") from None
        return path if path.is_absolute() else (base / path)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            return value.lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: `{setting.key}` must be true or false, got {value!r}")
        return value
    if kind in (int, float) and isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            raise ConfigError(f"{where}: `{setting.key}` must be a number, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConfigError(f"{where}: `{setting.key}` must be {kind.__name__}, got {value!r}")
    return value


def config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """The config file to read: the one given, else ``$FACTORY_CONFIG``, else ./factory.toml."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"{explicit}: no such config file")
        return explicit
    if named := environ.get("FACTORY_CONFIG"):
        if not Path(named).is_file():
            raise ConfigError(f"FACTORY_CONFIG={named}: no such config file")
        return Path(named)
    default = Path("factory.toml")
    return default if default.is_file() else None


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Resolve every setting once: defaults, then the config file, then ``FACTORY_*``."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd()
    values: dict[str, Any] = {}
    path = config_path(path, environ)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}") from exc
        by_key = {s.key: s for s in SETTINGS}
        for key, value in data.items():
            setting = by_key.get(key)
            if setting is None:
                known = ", ".join(sorted(by_key))
                raise ConfigError(f"{path}: unknown key `{key}` (known keys: {known})")
            values[setting.field] = _convert(setting, value, str(path), path.resolve().parent)
    for setting in SETTINGS:
        if setting.env in environ:
            values[setting.field] = _convert(setting, environ[setting.env], setting.env, cwd)
    for setting in SETTINGS:
        if setting.field not in values:
            values[setting.field] = _convert(setting, setting.default(), "default", cwd)
    if not values["upstream"].endswith("/"):
        values["upstream"] += "/"
    if values["signing"] == "none" and not values["allow_unsigned"]:
        raise ConfigError("`signing = \"none\"` publishes unsigned wheels: allow it explicitly with `allow-unsigned = true`")
    config = Config(**values)
    if not config.pythons:
        return config.replace(pythons=config.image_pythons)
    check_pythons(config.pythons, "`pythons`", config)
    return config
