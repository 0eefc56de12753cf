"""One build, start to end: request -> release -> source -> tree -> wheels -> checked -> published.

Each stage is a module with a small typed API; this module only passes their frozen results
along, times them, and writes the record. Whatever happens, a record is written and the work
directory is removed; a failed build publishes nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from factory import __version__, build, fetch, images, net, records, repair, resolve, unpack
from factory.config import Config
from factory.failures import BuildFailure, FactoryError, FailureClass
from factory.index import publish
from factory.index.distfile import inspect_wheel
from factory.index.manifest import Manifest
from factory.request import BuildRequest

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
            self.durations[name] = round(time.monotonic() - started, 3)


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
    """Build ``request`` from source and publish the result; return the record (also saved)."""
    build_id = records.new_build_id()
    work = config.work_dir / build_id
    clock = Stopwatch()
    fields: dict[str, Any] = {"id": build_id, "request": str(request), "started": _now(),
                              "factory_version": __version__}
    try:
        _stages(request, config, build_id, work, clock, fields, say)
        fields["status"] = "built"
    except BuildFailure as failure:
        fields.update(status="failed", failure_class=str(failure.failure_class), reason=failure.reason,
                      log_tail=failure.log_tail)
    except FactoryError as exc:  # e.g. the index refused a file, podman is missing
        fields.update(status="failed", failure_class=str(FailureClass.INTERNAL), reason=str(exc))
    except Exception as exc:  # a bug in factory: record it like any other failure
        fields.update(status="failed", failure_class=str(FailureClass.INTERNAL), reason=repr(exc),
                      log_tail=traceback.format_exc())
    finally:
        logs = sorted(work.glob("build-*.log"))
        fields.update(durations=clock.durations, finished=_now())
        record = records.BuildRecord(**fields)
        path = records.save(config.records_dir, record)
        if logs:  # the whole log is kept beside the record, which holds its tail
            with path.with_suffix(".log").open("w") as out:
                for log in logs:
                    out.write(log.read_text(errors="replace"))
        shutil.rmtree(work, ignore_errors=True)
    return record


def _stages(request: BuildRequest, config: Config, build_id: str, work: Path, clock: Stopwatch,
            fields: dict[str, Any], say: Say) -> None:
    with net.client(config.http_timeout) as client:
        with clock.stage("resolve"):
            release = resolve.resolve(request, config.upstream, client)
        fields.update(project=release.project, version=str(release.version),
                      source={"url": release.sdist.url, "filename": release.sdist.filename,
                              "sha256": release.sdist.sha256})
        say(f"resolved {release.project} {release.version}: {release.sdist.filename}")
        already = published_files(config, release.project, str(release.version))
        if already:
            say(f"already in the index: {', '.join(already)}")
            return
        with clock.stage("fetch"):
            source = fetch.fetch(release, config.cache_dir, client)
    say(f"fetched {source.path.name} (sha256 {source.sha256[:12]}… verified)")
    with clock.stage("unpack"):
        tree = unpack.unpack(source, work / "src", unpack.Limits(config.max_unpacked_size, config.max_unpacked_files))
    with clock.stage("images"):
        builders = [images.ensure(config, arch, say) for arch in config.archs]
    fields["images"] = [{"arch": b.spec.arch.name, "tag": b.tag, "id": b.id} for b in builders]
    settings = build.BuildSettings(config.pythons, config.container_network, config.build_timeout, config.upstream)
    say(f"building in {', '.join(b.tag for b in builders)}")
    with clock.stage("build"):
        outputs = build.build(tree, builders, settings, work, f"factory.build={build_id}")
    fields["cibuildwheel_config"] = "".join(o.cibuildwheel_config for o in outputs)
    with clock.stage("repair"):
        checked = [repair.gate(wheel) for output in outputs for wheel in output.wheels]
    fields["wheels"] = [{"filename": c.filename, "sha256": c.sha256, "size": c.size, "policy": c.policy}
                        for c in checked]
    with clock.stage("publish"):
        done = publish.publish(config.index_dir, [inspect_wheel(c.path) for c in checked])
    fields["published"] = [e.filename for e in done.entries]
    for name in fields["published"]:
        say(f"published {name}")
