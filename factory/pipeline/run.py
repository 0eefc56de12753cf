"""One build, start to end. Each stage returns a frozen result and this module only passes them
on, in the order data flows, times them, and makes the record once at the end::

    request -> resolve -> plan -> fetch -> unpack (+ recipe patches) -> images -> requirements
            -> build -> repair -> test -> sign -> publish -> record

Every target (architecture, CPython) ends built, failed (with a class and a reason) or skipped
(by the recipe); one failing target does not lose the others. Whatever happens, a record is
written and the work directory is removed; nothing that failed a stage is published. A build
whose build requirements are not all in factory's index yet stops before building, ``waiting``
for them (the record names them): whoever runs it builds them first, then this again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from packaging.utils import InvalidSdistFilename, parse_sdist_filename
from packaging.version import Version

from factory import __version__, recipes
from factory.config import Config
from factory.failures import BuildFailure, FactoryError, FailureClass
from factory.index import publish
from factory.index.distfile import DistFile, inspect_sdist, inspect_wheel
from factory.index.manifest import published_files
from factory.pipeline import (
    build,
    fetch,
    gate,
    images,
    imports,
    patch,
    relabel,
    repair,
    requirements,
    resolve,
    rundeps,
    sign,
    smoke,
    sysdeps,
    unpack,
)
from factory.pipeline.plan import Plan, plan
from factory.pipeline.record import (
    BuildRecord,
    BuildStatus,
    ImageInfo,
    RecipeInfo,
    Requirements,
    SignatureInfo,
    SourceInfo,
    TargetOutcome,
    TargetStatus,
    WheelInfo,
    new_build_id,
    now,
    record_path,
    save,
)
from factory.pipeline.request import BuildRequest
from factory.plumbing import net
from factory.plumbing.files import sha256_file
from factory.targets import Target, every_target

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
class Progress:
    """What the stages have produced so far. Each stage's result is added to a new copy, so
    whatever stage a build stops at, the record is made from what was really done."""

    build_id: str
    started: str
    release: resolve.Release | None = None
    recipe: recipes.Recipe | None = None
    plan: Plan | None = None
    builders: tuple[tuple[str, images.BuilderImage], ...] = ()  # (arch, image), with the recipe's packages
    requirements: requirements.Prepared | None = None
    waiting_for: tuple[str, ...] = ()  # build dependencies to build first
    waiting_floor: str | None = None  # and with tools no older than this
    label: str = "factory"  # the local version label of a remediated build
    rounds: int = 0  # times the build learned a missing system package and ran again
    output: build.BuildOutput | None = None
    wheels: tuple[repair.CheckedWheel, ...] = ()  # passed the host's check and the smoke tests
    verdict: gate.Verdict | None = None  # after tests and signing
    signatures: tuple[sign.Signature, ...] = ()
    published: tuple[str, ...] = ()


def run(request: BuildRequest, config: Config, say: Say = lambda _: None, build_id: str | None = None,
        rebuild_into: Path | None = None, floor: str | None = None) -> BuildRecord:
    """Build ``request`` from source for every configured target and publish what succeeded;
    return the record, also saved at ``record_path(records_dir, project, build_id)`` beside the
    full build log.

    ``rebuild_into`` builds every target again, whatever the index holds, and keeps the wheels
    that pass every check in that directory instead of signing and publishing them (what
    ``factory rebuild-check`` compares with the published ones). ``floor``: for a build
    dependency, the upload time of the release that needed it (its tools are no older)."""
    progress = Progress(build_id or new_build_id(), now())
    work = config.work_dir / progress.build_id
    clock = Stopwatch()
    shared: BuildFailure | None = None
    try:
        for progress in _stages(request, config, progress, work, clock, say, rebuild_into, floor):
            pass
    except requirements.WaitingForDependencies as waiting:
        progress = dataclasses.replace(progress, waiting_for=tuple(map(str, waiting.requests)),
                                       waiting_floor=waiting.floor)
    except BuildFailure as failure:  # a stage every target shares failed
        shared = failure
    except recipes.RecipeError as exc:
        shared = BuildFailure(FailureClass.RECIPE, str(exc))
    except FactoryError as exc:  # e.g. the index refused a file, podman is missing
        shared = BuildFailure(FailureClass.INTERNAL, str(exc))
    except Exception as exc:  # a bug in factory: recorded like any other failure
        shared = BuildFailure(FailureClass.INTERNAL, repr(exc), log_tail=traceback.format_exc())
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): recorded, then passed on
        shared = BuildFailure(FailureClass.INTERNAL, "interrupted before the build ended")
        raise
    finally:
        record = _record(request, progress, shared, clock)
        path = save(record_path(config.records_dir, request.project, record.id), record)
        _keep_log(work, path.with_suffix(".log"))
        shutil.rmtree(work, ignore_errors=True)
    return record


def _keep_log(work: Path, dest: Path) -> None:
    """The whole log is kept beside the record, which holds its tail."""
    logs = sorted(work.glob("build-*.log"))
    if logs:
        with dest.open("w") as out:
            for log in logs:
                out.write(f"===== {log.name}\n{log.read_text(errors='replace')}")


def _record(request: BuildRequest, progress: Progress, shared: BuildFailure | None, clock: Stopwatch) -> BuildRecord:
    """The build's one record, made from what its stages returned."""
    outcomes = (progress.plan.settled if progress.plan else ()) + (progress.verdict.outcomes if progress.verdict else ())
    summary = gate.summarize(outcomes, shared)
    status = BuildStatus.WAITING if progress.waiting_for and shared is None else summary.status
    release, recipe, prepared = progress.release, progress.recipe, progress.requirements
    return BuildRecord(
        id=progress.build_id, request=str(request), status=status, started=progress.started,
        finished=now(), durations=clock.durations, project=request.project,
        version=str(_version(release, recipe, progress.label)) if release and recipe else None,
        source=SourceInfo(release.sdist.url, release.sdist.filename, release.sdist.sha256) if release else None,
        recipe=RecipeInfo(str(recipe.path), recipe.digest) if recipe and recipe.path else None,
        targets=tuple(sorted(outcomes, key=lambda o: o.target)),
        images=tuple(ImageInfo(arch, image.tag, image.id) for arch, image in progress.builders),
        cibuildwheel_config="\n".join(progress.output.cibuildwheel_configs) if progress.output else "",
        wheels=tuple(WheelInfo(w.filename, w.sha256, w.size, w.policy) for w in progress.wheels),
        published=progress.published,
        signatures=tuple(SignatureInfo(s.filename, s.log_index, s.identity, s.issuer) for s in progress.signatures),
        requirements=Requirements(prepared.requested, tuple(map(str, prepared.pins)), prepared.cutoffs,
                                  prepared.floor) if prepared else None,
        inputs=prepared.inputs if prepared else (),
        system_packages=tuple(dict.fromkeys(p for _, image in progress.builders for p in image.packages)),
        inference_rounds=progress.rounds,
        waiting_for=progress.waiting_for, waiting_floor=progress.waiting_floor,
        failure_class=summary.failure_class, reason=summary.reason, log_tail=summary.log_tail,
        factory_version=__version__,
    )


def _release(request: BuildRequest, config: Config, client: httpx.Client) -> tuple[resolve.Release, recipes.Recipe]:
    """The release to build and its recipe; a recipe's pinned source replaces the index's sdist
    (for an exact version, the upstream is then not asked at all)."""
    if request.version is not None:
        recipe = recipes.load(config.recipes_dir, request.project, request.version)
        if recipe.source is not None:
            uploaded = resolve.release_time(client, config.upstream, request.project, request.version)
            return resolve.Release(request.project, request.version, _pinned(recipe.source, request.version),
                                   uploaded), recipe
    release = resolve.resolve(request, config.upstream, client)
    recipe = recipes.load(config.recipes_dir, release.project, release.version)
    if recipe.source is not None:
        release = dataclasses.replace(release, sdist=_pinned(recipe.source, release.version))
    return release, recipe


def _pinned(source: recipes.SourceOverride, version: Version) -> resolve.SourceFile:
    """The source a recipe pins, in place of the upstream's sdist."""
    url = source.url_for(version)
    return resolve.SourceFile(os.path.basename(url.split("?")[0]), url, source.sha256)


def _facts(progress: Progress, outcomes: tuple[TargetOutcome, ...], wheel: repair.CheckedWheel | None) -> sign.BuildFacts:
    """What the provenance of one wheel of this build says."""
    assert progress.release is not None and progress.recipe is not None
    release, recipe, prepared = progress.release, progress.recipe, progress.requirements
    filename = wheel.filename if wheel else None
    targets = tuple(str(o.target) for o in outcomes if o.wheel == filename and o.status is TargetStatus.BUILT)
    arches = {o.target.arch for o in outcomes if o.wheel == filename}
    return sign.BuildFacts(
        project=release.project, version=str(_version(release, recipe, progress.label)), targets=targets,
        sdist_url=release.sdist.url, sdist_sha256=release.sdist.sha256,
        recipe_digest=recipe.digest, recipe_path=f"recipes/{recipe.path.name}" if recipe.path else "",
        patches=tuple((f"recipes/patches/{release.project}/{p.name}", sha256_file(p)) for p in recipe.patches),
        images=tuple((image.tag, image.id) for _, image in progress.builders),
        build_id=progress.build_id, started=progress.started, finished=now(), factory_version=__version__,
        inputs=tuple(i for i in prepared.inputs if set(i.targets) & set(targets)) if prepared else (),
        system_packages=tuple(dict.fromkeys(p for arch, image in progress.builders if arch in arches
                                            for p in image.packages)),
        requirements=prepared.requested if prepared else (),
        cutoffs=tuple(prepared.cutoffs.items()) if prepared else (), floor=prepared.floor if prepared else None,
    )


def _stages(request: BuildRequest, config: Config, progress: Progress, work: Path, clock: Stopwatch,
            say: Say, rebuild_into: Path | None = None, floor: str | None = None) -> Iterator[Progress]:
    """Run the stages in order, yielding what has been done after each."""
    label = f"factory.build={progress.build_id}"
    with net.client(config.http_timeout) as client:
        with clock.stage("resolve"):
            release, recipe = _release(request, config, client)
        yield (progress := dataclasses.replace(progress, release=release, recipe=recipe))
        say(f"resolved {release.project} {release.version}: {release.sdist.filename}"
            + (f" (recipe {recipe.path.name})" if recipe.path else ""))

        progress = dataclasses.replace(progress, label=config.remediation_label)
        existing = published_files(config.index_dir, release.project, str(_version(release, recipe, progress.label)))
        planned = plan(every_target(config.archs, config.pythons), recipe, [] if rebuild_into else existing)
        yield (progress := dataclasses.replace(progress, plan=planned))
        if existing and not rebuild_into:  # a publish interrupted before its pages: list what it published
            publish.relist(config.index_dir, release.project, config.page_base_url)
        if not planned.todo:
            say("nothing to build: every target is in the index already, or skipped")
            return
        with clock.stage("fetch"):
            source = fetch.fetch(release, config.cache_dir, client)
    say(f"fetched {source.path.name} (sha256 {source.sha256[:12]}… verified)")

    with clock.stage("unpack"):
        tree = unpack.unpack(source, work / "src", unpack.Limits(config.max_unpacked_size, config.max_unpacked_files))
        patch.apply_patches(tree.root, recipe.patches)
    with clock.stage("requirements"):
        declared = requirements.static(tree, recipe)

    with clock.stage("images"):
        bases = images.ensure_all(config, tuple(dict.fromkeys(t.arch for t in planned.todo)), say)
    inferrer = sysdeps.Inferrer(config, work, recipe.system_packages)
    for round_ in range(sysdeps.MAX_ROUNDS + 1):  # a build missing a system library learns it, and again
        with clock.stage("images"):
            try:
                builders = tuple((arch, images.with_packages(config, base, inferrer.packages, inferrer.why, say))
                                 for arch, base in bases.items())
            except BuildFailure as failure:
                if not inferrer.inferred:
                    raise
                raise BuildFailure(FailureClass.MISSING_SYSTEM_LIBRARY, f"{failure.reason}; inferred for it: "
                                   + "; ".join(i.reason for i in inferrer.inferred.values())) from None
        yield (progress := dataclasses.replace(progress, builders=builders, rounds=round_))
        inferrer.mark()
        try:
            with clock.stage("requirements"), net.client(config.http_timeout) as client:
                prepared = requirements.prepare(release, recipe, tree, declared, planned.todo,
                                                _discovery_image(builders), config, client, work, label, floor)
        except BuildFailure as failure:
            if round_ < sysdeps.MAX_ROUNDS and _learned(inferrer, [_discovery_image(builders)], say):
                continue
            raise inferrer.explain(failure) from None
        yield (progress := dataclasses.replace(progress, requirements=prepared))
        say(f"build requirements: {', '.join(map(str, prepared.pins)) or 'none'}"
            + (f" (as of {', '.join(f'{c} for {p}' for p, c in prepared.cutoffs.items() if c)})"
               if any(prepared.cutoffs.values()) else ""))

        say(f"building {', '.join(map(str, planned.todo))}")
        settings = build.BuildSettings(config.build_timeout, prepared.env)
        with clock.stage("build"):
            output = build.build(tree, recipe, dict(builders), planned.todo, settings, work, label)
        failed = [dict(builders)[a] for a in dict.fromkeys(r.target.arch for r in output.results if r.failure)]
        if failed and round_ < sysdeps.MAX_ROUNDS and _learned(inferrer, failed, say):
            continue
        break
    output = dataclasses.replace(output, results=tuple(
        dataclasses.replace(r, failure=inferrer.explain(r.failure)) if r.failure else r for r in output.results))
    # Security patches: published as VERSION+<label>.N; with wheel-build-tag, with that build tag.
    if recipe.remediation or config.wheel_build_tag:
        version = _version(release, recipe, progress.label)
        relabelled = {w: relabel.relabel(w, version, work / "relabelled", config.wheel_build_tag or None)
                      for w in dict.fromkeys(r.wheel for r in output.results if r.wheel)}
        output = dataclasses.replace(output, results=tuple(
            dataclasses.replace(r, wheel=relabelled[r.wheel]) if r.wheel else r for r in output.results))
    yield (progress := dataclasses.replace(progress, output=output))

    with clock.stage("repair"):
        checked = gate.after_repair(output.results, _host_checks(output, release.project,
                                                                _version(release, recipe, progress.label)))
    tested: dict[tuple[Path, Target], gate.Tested] = {}
    for wheel, target in gate.smoke_tests(output.kind, checked):
        try:  # every compiled module loads and imports, then the recipe's own test passes
            with clock.stage("imports"), net.client(config.http_timeout) as client:
                deps = rundeps.offer(wheel.path, target, release.uploaded, config, client,
                                     work / "rundeps" / str(target))
                imported = imports.check(wheel.path, target, bases[target.arch], deps, label, config.build_timeout)
            if recipe.test is not None:
                with clock.stage("test"):
                    smoke.run(wheel.path, target, bases[target.arch], recipe.test, config.container_network,
                              label, config.build_timeout)
            tested[(wheel.path, target)] = gate.Tested(skipped=tuple(map(str, imported.skipped)))
        except BuildFailure as failure:
            tested[(wheel.path, target)] = gate.Tested(failure)
    verdict = gate.after_tests(checked, tested)
    yield (progress := dataclasses.replace(progress, wheels=verdict.wheels, verdict=verdict))
    if not verdict.wheels:
        return
    if rebuild_into is not None:  # a check of reproducibility: nothing is signed or published
        rebuild_into.mkdir(parents=True, exist_ok=True)
        for wheel in verdict.wheels:
            shutil.copyfile(wheel.path, rebuild_into / wheel.filename)
        return

    dists = [inspect_wheel(w.path) for w in verdict.wheels]
    sdist = _mirrored_sdist(source.path, release, recipe)
    facts = [(w.filename, w.sha256, _facts(progress, verdict.outcomes, w)) for w in verdict.wheels]
    if sdist is not None:  # beside the wheels, the exact upstream sdist they were built from
        dists.append(sdist)
        facts.append((sdist.filename, sdist.sha256, dataclasses.replace(
            _facts(progress, verdict.outcomes, None), targets=(), source=True)))
    if config.signing != "none":
        failure = None
        try:
            with clock.stage("sign"):
                signatures = sign.sign_all(sign.SigningSettings.from_config(config), facts)
        except BuildFailure as exc:
            failure, signatures = exc, []
        verdict = gate.after_signing(verdict, failure)
        yield (progress := dataclasses.replace(progress, verdict=verdict, signatures=tuple(signatures)))
        if not verdict.wheels:
            return
        dists = [dataclasses.replace(d, bundle=s.bundle, provenance=s.provenance) for d, s in zip(dists, signatures)]

    with clock.stage("publish"):
        done = publish.publish(config.index_dir, dists, config.page_base_url)
    yield dataclasses.replace(progress, published=tuple(e.filename for e in done.entries))
    for entry in done.entries:
        say(f"published {entry.filename}")


def _mirrored_sdist(path: Path, release: resolve.Release, recipe: recipes.Recipe) -> DistFile | None:
    """The upstream sdist a build used, to publish beside its wheels: only where the wheels were
    built from exactly it. Not a recipe's pinned source (no upstream sdist, its hash checked
    against the recipe only), and not for a build the recipe patches (``--no-binary`` users would
    get the unpatched source: for a remediation, the vulnerable one)."""
    if recipe.remediation or recipe.patches or recipe.source is not None:
        return None
    try:
        name, version = parse_sdist_filename(path.name)
    except InvalidSdistFilename:
        return None
    if (name, version) != (release.project, release.version):
        return None
    return inspect_sdist(path)


def _learned(inferrer: sysdeps.Inferrer, failed: list[images.BuilderImage], say: Say) -> bool:
    """Whether the logs of the failed builds name system packages to install and try again with."""
    learned = [i for image in failed for i in inferrer.learn(image)]
    for inference in learned:
        say(f"installing {inference.package}: {inference.reason}")
    return bool(learned)


def _discovery_image(builders: tuple[tuple[str, images.BuilderImage], ...]) -> images.BuilderImage:
    """Build requirements are discovered once, natively where possible (QEMU is slow)."""
    native = images.host_arch().name
    return next((image for arch, image in builders if arch == native), builders[0][1])


def _version(release: resolve.Release, recipe: recipes.Recipe, label: str) -> Version:
    """The version the build publishes: the release's, or VERSION+<label>.N when the recipe's
    patches are security fixes (remediation N)."""
    return relabel.local_version(release.version, label, recipe.remediation) if recipe.remediation else release.version


def _host_checks(output: build.BuildOutput, project: str, version: Version) -> dict[Path, repair.CheckedWheel | BuildFailure]:
    """Each distinct wheel checked once on the host, trusting nothing the container said."""
    checks: dict[Path, repair.CheckedWheel | BuildFailure] = {}
    for result in output.results:
        if result.wheel is None or result.wheel in checks:
            continue
        arch = None if output.kind is build.BuildKind.PURE else result.target.arch
        try:
            checks[result.wheel] = repair.check(result.wheel, project, version, arch)
        except BuildFailure as failure:
            checks[result.wheel] = failure
    return checks
