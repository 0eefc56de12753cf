"""factory's own builder images, one per architecture, tagged by a hash of their inputs.

An image is built in two steps, each skipped when its tag already exists:

1. the base: a ``debootstrap --variant=minbase`` rootfs of the configured Debian suite, made
   on the host (its second stage runs under QEMU for a foreign architecture) and imported with
   ``podman import``;
2. the builder: ``containers/Containerfile`` on top of the base, with the host's CA certificates
   and Python wheels that factory downloads on the host, so that the image build needs only the
   Debian mirror.

The tag changes whenever an input changes (the Containerfile, the scripts, the pins, the CA
certificates, the Pythons, the suite), so ``ensure`` is cheap when nothing did.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from factory.config import Config
from factory.failures import BuildFailure, ConfigError, FactoryError, FailureClass
from factory.pipeline.diagnose import tail
from factory.pipeline.record import SystemPackage
from factory.plumbing import podman
from factory.plumbing.files import write_text
from factory.targets import ARCHES, CPYTHONS, Arch

#: Bump to rebuild every image when the way images are made changes.
RECIPE_VERSION = "1"
#: Where Debian keeps locally added CA certificates.
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


def host_arch() -> Arch:
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if machine not in ARCHES:
        raise FactoryError(f"unsupported host architecture {machine}")
    return ARCHES[machine]


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """Everything an image is made from; ``tag`` is derived from it."""

    arch: Arch
    suite: str
    pythons: tuple[str, ...]
    containers_dir: Path
    ca_files: tuple[Path, ...]
    zig_host: Arch  # zig runs natively on the host, whatever the image's architecture

    @property
    def python_suites(self) -> str:
        """``3.11=bookworm 3.13=trixie``: each CPython and the suite it is installed from."""
        return " ".join(f"{p}={CPYTHONS[p].suite}" for p in self.pythons)

    @property
    def base_tag(self) -> str:
        digest = _hash([RECIPE_VERSION, self.suite, self.arch.debian, "minbase", "python3"])
        return f"localhost/factory-base:{self.suite}-{self.arch.debian}-{digest}"

    @functools.cached_property
    def tag(self) -> str:
        """Read once: an input edited while the image builds must not rename it mid-way."""
        parts = [RECIPE_VERSION, self.base_tag, self.python_suites, self.zig_host.name, self.arch.qemu_cpu]
        for path in image_inputs(self.containers_dir):
            parts += [str(path.relative_to(self.containers_dir)), oct(path.stat().st_mode & 0o111), path.read_bytes()]
        for path in self.ca_files:
            parts.append(path.read_bytes())
        return f"localhost/factory-builder:{self.arch.name}-{_hash(parts)}"

    @property
    def zig_cache_volume(self) -> str:
        """A podman volume per image: created empty, podman seeds it from the image's pre-warmed
        cache, and later builds reuse what earlier ones compiled."""
        return "factory-zig-" + self.tag.rsplit(":", 1)[1]


@dataclasses.dataclass(frozen=True)
class BuilderImage:
    """A builder image that exists locally: the builder itself, or the builder with Debian
    packages a build needs (``packages``)."""

    spec: ImageSpec
    id: str
    packages: tuple[SystemPackage, ...] = ()

    @property
    def tag(self) -> str:
        return derived_tag(self.spec.tag, [p.name for p in self.packages]) if self.packages else self.spec.tag


def derived_tag(base: str, packages: Sequence[str]) -> str:
    """The tag of ``base`` with ``packages`` installed."""
    return f"{base}-debs-{_hash(sorted(set(packages)))}"


#: What in containers/ goes into an image (host-setup, say, does not).
IMAGE_INPUTS = ("Containerfile", "requirements.txt", "zig.txt", "bin")


def image_inputs(containers_dir: Path) -> list[Path]:
    files = []
    for name in IMAGE_INPUTS:
        path = containers_dir / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def _hash(parts: list[str | bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def spec_for(config: Config, arch: str) -> ImageSpec:
    if not (config.containers_dir / "Containerfile").is_file():
        raise ConfigError(f"{config.containers_dir}: no Containerfile (set containers-dir)")
    ca_files = tuple(sorted(HOST_CA_DIR.rglob("*.crt"))) if HOST_CA_DIR.is_dir() else ()
    return ImageSpec(ARCHES[arch], config.debian_suite, config.image_pythons, config.containers_dir, ca_files, host_arch())


def debian_mirror(config: Config) -> str:
    """The configured Debian mirror, else the one the host's apt uses for the main archive."""
    if config.debian_mirror:
        return config.debian_mirror
    files: list[Path] = []
    for source in APT_SOURCES:
        files += sorted(source.glob("*.sources")) + sorted(source.glob("*.list")) if source.is_dir() else [source]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                types = re.search(r"^Types:.*\bdeb\b", stanza, re.M)
                if uris and types and re.search(r"/debian/?$", uris.group(1)):
                    return uris.group(1)
        else:
            for line in text.splitlines():
                fields = line.split()
                if fields[:1] == ["deb"] and re.search(r"/debian/?$", fields[-3] if len(fields) >= 4 else ""):
                    return fields[-3]
    raise ConfigError("no Debian mirror found in the host's apt sources: set `debian-mirror` in factory.toml")


Log = Callable[[str], None]
# The lines of podman build and debootstrap worth showing as progress.
PROGRESS = re.compile(r"STEP \d|I: .*(base system|core packages|required packages)")


def _run_logged(cmd: list[str], log_file: Path, say: Log, what: str) -> None:
    """Run a long command, its output to ``log_file``; show the podman/debootstrap steps."""
    with log_file.open("a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if PROGRESS.match(line):
                say(f"  {what}: {line.strip()[:100]}")
        if proc.wait() != 0:
            tail = "".join(log_file.read_text(errors="replace").splitlines(True)[-30:])
            raise FactoryError(f"{what} failed (full log: {log_file}):\n{tail}")


def _build_base(spec: ImageSpec, config: Config, say: Log) -> None:
    work = config.state_dir / "images"
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / f"base-{spec.arch.name}.log"
    log_file.write_text("")
    with tempfile.TemporaryDirectory(dir=work, prefix=f"rootfs-{spec.arch.name}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        say(f"debootstrap {spec.suite} for {spec.arch.debian} (a few minutes; QEMU runs the second stage of a foreign arch)")
        _run_logged(
            ["debootstrap", f"--arch={spec.arch.debian}", "--variant=minbase", "--include=python3",
             spec.suite, str(rootfs), debian_mirror(config)],
            log_file, say, "debootstrap",
        )
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", f"--arch={spec.arch.debian}", "-", spec.base_tag],
            stdin=tar.stdout, capture_output=True, text=True, check=False,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise FactoryError(f"podman import of the {spec.arch.debian} rootfs failed: {imported.stderr.strip()}")


def _download_wheels(spec: ImageSpec, context: Path) -> None:
    """Fetch the image's Python packages on the host, with pip and its configuration."""
    def download(requirements: Path, arch: Arch, dest: Path) -> None:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--no-deps",
               "--dest", str(dest), "--requirement", str(requirements)]
        for plat in arch.platforms:
            cmd += ["--platform", plat]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FactoryError(f"pip download of {requirements.name} for {arch.name} failed:\n{done.stderr[-2000:]}")

    download(spec.containers_dir / "requirements.txt", spec.arch, context / "wheels")
    download(spec.containers_dir / "zig.txt", spec.zig_host, context / "zig")


def _build_builder(spec: ImageSpec, config: Config, say: Log) -> None:
    work = config.state_dir / "images"
    context = work / f"context-{spec.arch.name}"
    shutil.rmtree(context, ignore_errors=True)
    for path in image_inputs(spec.containers_dir):
        dest = context / path.relative_to(spec.containers_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    (context / "ca").mkdir()
    (context / "ca" / ".keep").write_text("")  # COPY needs a directory even without extra CAs
    for index, path in enumerate(spec.ca_files):
        shutil.copyfile(path, context / "ca" / f"host-{index}-{path.name}")
    say("downloading the image's Python packages on the host")
    _download_wheels(spec, context)
    log_file = work / f"builder-{spec.arch.name}.log"
    log_file.write_text("")
    say(f"podman build {spec.tag}")
    _run_logged(
        ["podman", "build", *podman.RUNTIME, "--network=host", f"--arch={spec.arch.debian}", "--layers",
         "--build-arg", f"BASE={spec.base_tag}",
         "--build-arg", f"PYTHON_SUITES={spec.python_suites}",
         "--build-arg", f"TRIPLET={spec.arch.triplet}",
         "--build-arg", f"ZIG_TARGET={spec.arch.zig_target}",
         "--build-arg", f"AUDITWHEEL_PLAT={spec.arch.policy}",
         "--build-arg", f"QEMU_CPU={spec.arch.qemu_cpu}",
         "--tag", spec.tag, "--file", str(context / "Containerfile"), str(context)],
        log_file, say, "podman build",
    )
    shutil.rmtree(context, ignore_errors=True)


def ensure(config: Config, arch: str, say: Log = lambda _: None) -> BuilderImage:
    """Return the builder image for ``arch``, building whatever part of it is missing."""
    spec = spec_for(config, arch)
    if not podman.image_exists(spec.tag):
        if not podman.image_exists(spec.base_tag):
            started = time.monotonic()
            _build_base(spec, config, say)
            say(f"base image {spec.base_tag} made in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        _build_builder(spec, config, say)
        size = podman.podman("image", "inspect", "--format", "{{.Size}}", spec.tag).stdout.strip()
        say(f"builder image {spec.tag} made in {time.monotonic() - started:.0f} s ({int(size) / 1e9:.2f} GB)")
    return BuilderImage(spec, podman.image_id(spec.tag))


def ensure_all(config: Config, arches: Sequence[str], say: Log = lambda _: None) -> dict[str, BuilderImage]:
    """``ensure`` for each of ``arches``, side by side: an emulated image's build is bound by one
    QEMU-run core, the native one's mostly by apt and the mirror, so together they take about as
    long as the slower alone. Each progress line names its architecture."""
    if len(arches) < 2:
        return {arch: ensure(config, arch, say) for arch in arches}
    with concurrent.futures.ThreadPoolExecutor(len(arches)) as pool:
        futures = {arch: pool.submit(ensure, config, arch, lambda line, arch=arch: say(f"{arch}: {line}"))
                   for arch in arches}
        return {arch: future.result() for arch, future in futures.items()}


def with_packages(config: Config, image: BuilderImage, packages: Sequence[str], why: Mapping[str, str],
                  say: Log = lambda _: None) -> BuilderImage:
    """``image`` with the Debian ``packages`` installed, built once (on the host's network, so that
    builds need none) and kept; the versions installed are recorded beside the state."""
    names = sorted(set(packages))
    if not names:
        return image
    tag = derived_tag(image.spec.tag, names)
    versions_file = config.state_dir / "images" / (tag.rsplit(":", 1)[1] + ".debs.json")
    if not podman.image_exists(tag):
        say(f"installing {', '.join(names)} into a builder image for {image.spec.arch.name}")
        work = config.state_dir / "images"
        work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work, prefix="debs-") as tmp:
            containerfile = Path(tmp) / "Containerfile"
            listed = " ".join(shlex.quote(n) for n in names)
            containerfile.write_text(
                f"FROM {image.spec.tag}\n"
                f"RUN {{ apt-get install -y -qq --no-install-recommends {listed} || {{ apt-get update -qq && "
                f"apt-get install -y -qq --no-install-recommends {listed}; }}; }} && apt-get clean\n")
            done = subprocess.run(
                ["podman", "build", *podman.RUNTIME, "--network=host", f"--arch={image.spec.arch.debian}", "--tag", tag,
                 "--file", str(containerfile), tmp], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            said = [line for line in output.splitlines() if line.startswith("E:")]
            raise BuildFailure(FailureClass.RECIPE, f"apt cannot install {', '.join(names)} into the builder image: "
                                                    f"{' / '.join(said[-3:]) or done.stderr.strip()[-300:]}",
                               log_tail=tail(output))
        versions_file.unlink(missing_ok=True)
    if versions_file.is_file():
        versions = json.loads(versions_file.read_text())
    else:
        shown = podman.podman("run", "--rm", *podman.RUNTIME, "--network=none", tag, "dpkg-query", "-W",
                              "-f", "${Package}=${Version}\\n", *names)
        versions = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
        write_text(versions_file, json.dumps(versions, indent=1, sort_keys=True))
    installed = tuple(SystemPackage(n, versions.get(n, ""), why.get(n, "recipe")) for n in names)
    return BuilderImage(image.spec, podman.image_id(tag), installed)


def prune(config: Config) -> list[str]:
    """Remove factory's images and zig cache volumes that the current inputs no longer name."""
    keep: set[str] = set()
    for arch in ARCHES:
        spec = spec_for(config, arch)
        keep |= {spec.tag, spec.base_tag, spec.zig_cache_volume}
    removed = []
    listed = podman.podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    for ref in listed:
        kept = ref in keep or ref.split("-debs-")[0] in keep  # an image with packages lives as long as its base
        if ref.startswith(("localhost/factory-builder:", "localhost/factory-base:")) and not kept:
            if podman.podman("rmi", ref, check=False).returncode == 0:
                removed.append(ref)
    for volume in podman.podman("volume", "ls", "--quiet").stdout.split():
        if volume.startswith("factory-zig-") and volume not in keep:
            if podman.podman("volume", "rm", volume, check=False).returncode == 0:
                removed.append(volume)
    return removed
