"""System dependencies, inferred: what a failed build was missing (a header, a pkg-config module,
a library, a ``*-config`` program), found in Debian's Contents index, and the package to install.

The whole log is read, not its tail, and each miss keeps the log line that gave it away. Where a
project only prints prose, what its build probed (the compiler's and pkg-config's own errors)
usually says it too; a few prose forms are read as well. Choosing among several packages that
ship the file follows rules a person can read, in this order:

1. a development package (``-dev``): the headers, the ``.so`` link and the ``.pc`` file are there;
2. one whose name holds the file's stem (``curl`` for ``curl-config``);
3. among TLS variants, OpenSSL's, which CPython's own ``ssl`` module links;
4. the shortest name, then the first by name (the plainest package).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from factory.config import Config
from factory.failures import BuildFailure, ConfigError
from factory.pipeline.contents import ContentsIndex
from factory.pipeline.diagnose import Miss, misses
from factory.pipeline.images import BuilderImage, debian_mirror
from factory.pipeline.record import load_all
from factory.plumbing import net
from factory.recipes import recipe_path


@dataclasses.dataclass(frozen=True)
class Inference:
    """A package chosen for a miss, and why."""

    package: str
    file: str  # the file in the package that the build missed
    miss: Miss
    why: str  # how it was chosen among the candidates

    @property
    def reason(self) -> str:
        return f"{self.miss} not found (\"{self.miss.line.strip()[:200]}\"): /{self.file} is in {self.package}" + \
            (f" ({self.why})" if self.why else "")


def _files(miss: Miss, triplet: str) -> list[tuple[str, str]]:
    """(LIKE pattern, basename) of the files that would have satisfied ``miss``, most exact first."""
    name = miss.name
    if miss.kind == "header":
        base = name.rsplit("/", 1)[-1]
        return [(f"usr/include/{name}", base), (f"usr/include/{triplet}/{name}", base), (f"usr/include/%/{name}", base)]
    if miss.kind == "pkg-config":
        return [(f"usr/lib/{triplet}/pkgconfig/{name}.pc", f"{name}.pc"), (f"usr/share/pkgconfig/{name}.pc", f"{name}.pc"),
                (f"usr/lib/pkgconfig/{name}.pc", f"{name}.pc")]
    if miss.kind == "library":
        return [(f"usr/lib/{triplet}/lib{name}.so", f"lib{name}.so"), (f"usr/lib/lib{name}.so", f"lib{name}.so"),
                (f"usr/lib/{triplet}/lib{name}.a", f"lib{name}.a")]
    if miss.kind == "program":
        return [(f"usr/bin/{name}", name), (f"bin/{name}", name)]
    low = name.lower().removeprefix("lib")
    return [(f"usr/lib/{triplet}/pkgconfig/{low}.pc", f"{low}.pc"), (f"usr/lib/{triplet}/pkgconfig/lib{low}.pc",
                                                                       f"lib{low}.pc"),
            (f"usr/include/{low}.h", f"{low}.h"), (f"usr/lib/{triplet}/lib{low}.so", f"lib{low}.so")]


def choose(candidates: Sequence[str], stem: str) -> tuple[str, str]:
    """The package to install among ``candidates`` that ship the file, and why (empty when there
    was only one)."""
    if len(candidates) == 1:
        return candidates[0], ""
    stem = re.sub(r"^lib|-config$|\.(h|pc|so)$|[-_.]?\d.*$", "", stem.lower())
    ranked = sorted(candidates, key=lambda p: (not p.endswith("-dev"), stem not in p, _tls_rank(p), len(p), p))
    best, others = ranked[0], [p for p in candidates if p != ranked[0]]
    rules = []
    if best.endswith("-dev") and any(not p.endswith("-dev") for p in others):
        rules.append("a development package")
    if stem in best and any(stem not in p for p in others):
        rules.append(f"named for {stem}")
    if _tls_rank(best) < max(_tls_rank(p) for p in others):
        rules.append("OpenSSL's, as CPython's ssl module")
    rules = rules or ["the plainest name"]
    return best, f"chosen over {', '.join(sorted(others))}: {'; '.join(rules)}"


def _tls_rank(package: str) -> int:
    for rank, variant in enumerate(("openssl", "gnutls", "nss")):
        if variant in package:
            return rank
    return 0


def infer(found: Iterable[Miss], contents: ContentsIndex, triplet: str,
          installed: Iterable[str] = ()) -> tuple[list[Inference], list[Miss]]:
    """The packages that would satisfy ``found``, and the misses no package (not installed yet)
    satisfies."""
    have = set(installed)
    chosen: list[Inference] = []
    unresolved: list[Miss] = []
    for miss in found:
        for pattern, basename in _files(miss, triplet):
            shipped = contents.packages(pattern, basename)
            if not shipped:
                continue
            path = next(iter(shipped))  # the most exact path first
            if have & set(shipped[path]):
                unresolved.append(miss)  # a package that ships it is installed already: the cause is elsewhere
                break
            package, why = choose(shipped[path], basename)
            if all(c.package != package for c in chosen):
                chosen.append(Inference(package, path, miss, why))
            break
        else:
            unresolved.append(miss)
    return chosen, unresolved


# -- rounds of inference within one build --------------------------------------------------------

#: How many times one build installs what it was missing and tries again.
MAX_ROUNDS = 3


class Inferrer:
    """What one build's logs say it is missing, round after round: the packages to add to its
    image, and what could not be found (for the failure's reason)."""

    def __init__(self, config: Config, work: Path, recipe_packages: Sequence[str]) -> None:
        self.config, self.work = config, work
        self.recipe_packages = tuple(recipe_packages)
        self.inferred: dict[str, Inference] = {}
        self.unresolved: list[Miss] = []
        self._marks: dict[Path, int] = {}

    @property
    def packages(self) -> list[str]:
        """Every package the build's image needs: the recipe's, then the inferred ones."""
        return [*self.recipe_packages, *(p for p in self.inferred if p not in self.recipe_packages)]

    @property
    def why(self) -> dict[str, str]:
        return {p: f"inferred: {i.reason}" for p, i in self.inferred.items()}

    def mark(self) -> None:
        """A round starts: only what its logs say from now on counts."""
        self._marks = {p: p.stat().st_size for p in self.work.glob("build-*.log")}

    def _log(self, arch: str) -> str:
        parts = []
        for path in sorted(self.work.glob("build-*.log")):
            if arch not in path.name and not path.name.startswith(("build-pure", "build-requires")):
                continue
            text = path.read_text(errors="replace")
            start = self._marks.get(path, 0)
            parts.append(text[start:] if len(text) >= start else text)
        return "\n".join(parts)

    def learn(self, image: BuilderImage) -> list[Inference]:
        """Read this round's logs of ``image``'s architecture; the packages newly found to install."""
        found = misses(self._log(image.spec.arch.name))
        if not found:
            return []
        with net.client(self.config.http_timeout) as client, ContentsIndex.ensure(
                self.config.cache_dir, debian_mirror(self.config), self.config.debian_suite, image.spec.arch.debian,
                image.spec.tag, client) as contents:
            chosen, self.unresolved = infer(found, contents, image.spec.arch.triplet, self.packages)
        new = [i for i in chosen if i.package not in self.inferred]
        for inference in new:
            self.inferred[inference.package] = inference
        return new

    def explain(self, failure: BuildFailure) -> BuildFailure:
        """The failure, its reason saying what was looked for and what was tried."""
        if not self.unresolved and not self.inferred:
            return failure
        parts = [f"{m} (\"{m.line.strip()[:160]}\"): no Debian package in {self.config.debian_suite} ships it"
                 for m in self.unresolved]
        if self.inferred:
            parts.append(f"installed {', '.join(self.inferred)} for what was missing before, and it still fails")
        return BuildFailure(failure.failure_class, f"{failure.reason}; {'; '.join(parts)}", log_tail=failure.log_tail)


def suggest(records_dir: Path, project: str) -> str:
    """The recipe that makes explicit what the newest build of ``project`` inferred (its system
    packages), as TOML with the reason for each; ConfigError when there is nothing to say."""
    for record in reversed(load_all(records_dir, project)):
        inferred = [p for p in record.system_packages if p.why.startswith("inferred")]
        if not inferred:
            continue
        lines = [f"# {recipe_path(Path('recipes'), project)}: what factory inferred for {project} {record.version} "
                 f"(build {record.id})", "system-packages = ["]
        lines += [f"    {json.dumps(p.name)},  # {p.why.removeprefix('inferred: ')}" for p in inferred]
        return "\n".join([*lines, "]"])
    raise ConfigError(f"no build of {project} inferred a system package: there is nothing to make explicit")
