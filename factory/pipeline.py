"""One build, start to end: request -> release -> source -> tree -> wheels -> checked -> published.

Each stage is a module with a small typed API; this module only passes their frozen results
along, times them, and writes the record. Every target (architecture, CPython) ends built,
failed (with a class and a reason) or skipped (by the recipe); one failing target does not
lose the others. Whatever happens, a record is written and the work directory is removed;
nothing that failed a stage is published.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from factory import __version__, build, fetch, images, net, patch, recipes, records, repair, resolve, sign, smoke, targets, unpack
from factory.config import Config
from factory.failures import BuildFailure, FactoryError, FailureClass
from factory.index import publish
from factory.index.distfile import inspect_wheel
from factory.index.manifest import Manifest
from factory.request import BuildRequest
from factory.targets import Target

Say = Callable[[str], None]


class Stopwatch:
    """Times named stages."""

    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.durations[name] = round(self.durations.get(name, 0) + time.monotonic() - started, 3)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How one target ended."""

    target: Target
    status: str  # "built", "failed" or "skipped"
    wheel: str | None = None  # the file that serves it (published now or before)
    failure_class: str | None = None
    reason: str | None = None
    log_tail: str = ""

    def as_record(self) -> dict[str, Any]:
        data = {"target": str(self.target), "arch": self.target.arch, "python": self.target.python,
                "status": self.status, "wheel": self.wheel, "failure_class": self.failure_class,
                "reason": self.reason}
        if self.log_tail:
            data["log_tail"] = self.log_tail
        return data


def failed(target: Target, failure: BuildFailure) -> Outcome:
    return Outcome(target, "failed", failure_class=str(failure.failure_class), reason=failure.reason,
                   log_tail=failure.log_tail)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def published_files(config: Config, project: str, version: str) -> list[str]:
    """The files of ``project`` ``version`` already in the index."""
    manifest_path = config.index_dir / "manifest.sqlite3"
    if not manifest_path.exists():
        return []
    with Manifest(manifest_path) as manifest:
        return [e.filename for e in manifest.files(project) if e.version == version]


def run(request: BuildRequest, config: Config, say: Say = lambda _: None) -> records.BuildRecord:
    """Build ``request`` from source for every configured target and publish what succeeded;
    return the record (also saved beside the full build log)."""
    build_id = records.new_build_id()
    work = config.work_dir / build_id
    clock = Stopwatch()
    fields: dict[str, Any] = {"id": build_id, "request": str(request), "started": _now(),
                              "factory_version": __version__}
    outcomes: dict[Target, Outcome] = {}
    try:
        _stages(request, config, build_id, work, clock, fields, outcomes, say)
    except BuildFailure as failure:  # a stage every target shares failed
        fields.update(failure_class=str(failure.failure_class), reason=failure.reason, log_tail=failure.log_tail)
    except FactoryError as exc:  # e.g. a broken recipe, the index refused a file, podman is missing
        fields.update(failure_class=str(FailureClass.INTERNAL), reason=str(exc))
        if isinstance(exc, recipes.RecipeError):
            fields["failure_class"] = str(FailureClass.RECIPE)
    except Exception as exc:  # a bug in factory: record it like any other failure
        fields.update(failure_class=str(FailureClass.INTERNAL), reason=repr(exc), log_tail=traceback.format_exc())
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): recorded, then passed on
        fields.update(failure_class=str(FailureClass.INTERNAL), reason="interrupted before the build ended")
        raise
    finally:
        logs = sorted(work.glob("build-*.log"))
        _summarize(fields, outcomes)
        fields.update(durations=clock.durations, finished=_now())
        record = records.BuildRecord(**fields)
        path = records.save(config.records_dir, record)
        if logs:  # the whole log is kept beside the record, which holds its tail
            with path.with_suffix(".log").open("w") as out:
                for log in logs:
                    out.write(f"===== {log.name}\n{log.read_text(errors='replace')}")
        shutil.rmtree(work, ignore_errors=True)
    return record


def _summarize(fields: dict[str, Any], outcomes: dict[Target, Outcome]) -> None:
    """The record's overall status and, when something failed, its first failure."""
    ordered = [outcomes[t] for t in sorted(outcomes)]
    fields["targets"] = [o.as_record() for o in ordered]
    built = [o for o in ordered if o.status == "built"]
    failures = [o for o in ordered if o.status == "failed"]
    if "failure_class" in fields or (failures and not built):
        fields["status"] = "failed"
    elif failures:
        fields["status"] = "partial"
    else:
        fields["status"] = "built"
    if failures and "failure_class" not in fields:
        first = failures[0]
        fields.update(failure_class=first.failure_class, reason=f"{first.target}: {first.reason}",
                      log_tail=first.log_tail)


def _facts(release: resolve.Release, recipe: recipes.Recipe, fields: dict[str, Any],
           outcomes: dict[Target, Outcome]) -> Callable[[str], sign.BuildFacts]:
    """The provenance facts of each wheel of this build, by file name."""
    finished = _now()

    def facts(filename: str) -> sign.BuildFacts:
        return sign.BuildFacts(
            project=release.project, version=str(release.version),
            targets=tuple(str(t) for t, o in sorted(outcomes.items()) if o.wheel == filename and o.status == "built"),
            sdist_url=release.sdist.url, sdist_sha256=release.sdist.sha256,
            recipe_digest=recipe.digest, recipe_path=f"recipes/{recipe.path.name}" if recipe.path else "",
            images=tuple((i["tag"], i["id"]) for i in fields.get("images", [])),
            build_id=fields["id"], started=fields["started"], finished=finished, factory_version=__version__,
        )

    return facts


def _resolve(request: BuildRequest, config: Config, client: Any) -> tuple[resolve.Release, recipes.Recipe]:
    """The release to build and its recipe; a recipe's pinned source replaces the index's sdist."""
    if request.version is not None:
        recipe = recipes.load(config.recipes_dir, request.project, request.version)
        if recipe.source is not None:
            url = recipe.source.url_for(request.version)
            sdist = resolve.SourceFile(os.path.basename(url.split("?")[0]), url, recipe.source.sha256)
            return resolve.Release(request.project, request.version, sdist), recipe
    release = resolve.resolve(request, config.upstream, client)
    recipe = recipes.load(config.recipes_dir, release.project, release.version)
    if recipe.source is not None:
        url = recipe.source.url_for(release.version)
        sdist = resolve.SourceFile(os.path.basename(url.split("?")[0]), url, recipe.source.sha256)
        release = dataclasses.replace(release, sdist=sdist)
    return release, recipe


def _stages(request: BuildRequest, config: Config, build_id: str, work: Path, clock: Stopwatch,
            fields: dict[str, Any], outcomes: dict[Target, Outcome], say: Say) -> None:
    label = f"factory.build={build_id}"
    with net.client(config.http_timeout) as client:
        with clock.stage("resolve"):
            release, recipe = _resolve(request, config, client)
        fields.update(project=release.project, version=str(release.version),
                      source={"url": release.sdist.url, "filename": release.sdist.filename,
                              "sha256": release.sdist.sha256},
                      recipe={"path": str(recipe.path), "digest": recipe.digest} if recipe.path else None)
        say(f"resolved {release.project} {release.version}: {release.sdist.filename}"
            + (f" (recipe {recipe.path.name})" if recipe.path else ""))

        todo = []
        existing = published_files(config, release.project, str(release.version))
        for target in targets.plan(config.archs, config.pythons):
            if skip := recipe.skipped(target.arch, target.python):
                outcomes[target] = Outcome(target, "skipped", reason=skip.reason)
            elif served := next((f for f in existing if targets.serves(f, target)), None):
                outcomes[target] = Outcome(target, "built", wheel=served)
            else:
                todo.append(target)
        if existing:  # a publish interrupted before its pages: list what it published
            publish.relist(config.index_dir, release.project, config.index_url)
        if not todo:
            say("nothing to build: every target is in the index already, or skipped")
            return
        with clock.stage("fetch"):
            source = fetch.fetch(release, config.cache_dir, client)
    say(f"fetched {source.path.name} (sha256 {source.sha256[:12]}… verified)")
    with clock.stage("unpack"):
        tree = unpack.unpack(source, work / "src", unpack.Limits(config.max_unpacked_size, config.max_unpacked_files))
        patch.apply_patches(tree.root, recipe.patches)
    with clock.stage("images"):
        builders = {arch: images.ensure(config, arch, say) for arch in dict.fromkeys(t.arch for t in todo)}
    fields["images"] = [{"arch": a, "tag": b.tag, "id": b.id} for a, b in builders.items()]
    say(f"building {', '.join(map(str, todo))}")
    settings = build.BuildSettings(config.container_network, config.build_timeout, config.upstream)
    with clock.stage("build"):
        output = build.build(tree, recipe, builders, todo, settings, work, label)
    fields["cibuildwheel_config"] = "\n".join(output.cibuildwheel_configs)

    checked: dict[Path, repair.CheckedWheel | BuildFailure] = {}
    with clock.stage("repair"):
        for result in output.results:
            if result.wheel is not None and result.wheel not in checked:
                try:
                    arch = None if output.kind == "pure" else result.target.arch
                    checked[result.wheel] = repair.gate(result.wheel, release.project, release.version, arch)
                except BuildFailure as failure:
                    checked[result.wheel] = failure
    tested: dict[tuple[Path, Target], BuildFailure | None] = {}
    passing: list[tuple[Target, repair.CheckedWheel]] = []
    for result in output.results:
        gated = checked.get(result.wheel) if result.wheel else None
        if result.failure is not None or gated is None:
            outcomes[result.target] = failed(result.target, result.failure or BuildFailure(FailureClass.INTERNAL, "no wheel"))
        elif isinstance(gated, BuildFailure):
            outcomes[result.target] = failed(result.target, gated)
        else:
            passing.append((result.target, gated))
    if recipe.test is not None:
        for target, gated in passing:
            # A pure wheel is tested once, on the first target's architecture.
            key = (gated.path, todo[0] if output.kind == "pure" else target)
            if key not in tested:
                with clock.stage("test"):
                    try:
                        smoke.run(gated.path, key[1], builders[key[1].arch], recipe.test, config.container_network,
                                  label, config.build_timeout)
                        tested[key] = None
                    except BuildFailure as failure:
                        tested[key] = failure
    # A wheel that failed its test anywhere is published nowhere: an abi3 wheel failing on 3.13 would
    # otherwise reach 3.13 users through the 3.11 target that passed.
    failed_wheels = {path: f for (path, _), f in tested.items() if f is not None}
    good: list[repair.CheckedWheel] = []
    for target, gated in passing:
        if gated.path in failed_wheels:
            outcomes[target] = failed(target, failed_wheels[gated.path])
            continue
        outcomes[target] = Outcome(target, "built", wheel=gated.filename)
        if gated not in good:
            good.append(gated)
    fields["wheels"] = [{"filename": c.filename, "sha256": c.sha256, "size": c.size, "policy": c.policy}
                        for c in good]
    if not good:
        return
    dists = [inspect_wheel(c.path) for c in good]
    if config.signing != "none":
        facts = _facts(release, recipe, fields, outcomes)
        try:
            with clock.stage("sign"):
                signatures = sign.sign_all(sign.SigningSettings.from_config(config),
                                           [(c.filename, c.sha256, facts(c.filename)) for c in good])
        except BuildFailure as failure:  # nothing unsigned is published: the built targets fail too
            for target, outcome in list(outcomes.items()):
                if outcome.status == "built" and outcome.wheel in {c.filename for c in good}:
                    outcomes[target] = failed(target, failure)
            return
        fields["signatures"] = [{"filename": s.filename, "log_index": s.log_index, "identity": s.identity,
                                 "issuer": s.issuer} for s in signatures]
        dists = [dataclasses.replace(d, bundle=s.bundle, provenance=s.provenance) for d, s in zip(dists, signatures)]
    with clock.stage("publish"):
        done = publish.publish(config.index_dir, dists, config.index_url)
        fields["published"] = [e.filename for e in done.entries]
        for name in fields["published"]:
            say(f"published {name}")
