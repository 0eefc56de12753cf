"""``factory``: a thin command line over the library. Each command parses, calls, and prints."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import getpass
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from factory import __version__, config, recipes
from factory.failures import BuildFailure, FactoryError
from factory.pipeline import bootstrap, images
from factory.pipeline.record import BuildRecord, TargetStatus, record_path
from factory.pipeline.request import parse_request
from factory.pipeline.run import run
from factory.queue.misses import FORMATS
from factory.targets import ARCHITECTURES, every_target

if TYPE_CHECKING:
    from factory.verify import Index, Input, SignatureCheck

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
STATUS_STYLE = {"built": "green", "partial": "yellow", "failed": "red", "skipped": "dim", "refused": "magenta",
                "queued": "cyan", "building": "blue", "waiting": "cyan"}


def _say(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}", soft_wrap=True)


def _styled(status: str, width: int = 0) -> str:
    style = STATUS_STYLE.get(status, "")
    text = status.ljust(width)
    return f"[{style}]{text}[/{style}]" if style else text


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _print_record(record: BuildRecord, cfg: config.Config, header: bool = True) -> None:
    version = f" {record.version}" if record.version and "==" not in record.request else ""
    if header:  # else a tree printed it already
        out.print(f"{_styled(record.status)} {record.request}{version}")
    for target in record.targets:
        detail = target.wheel if target.status is not TargetStatus.FAILED else \
            f"[bold]{target.failure_class or ''}[/bold] {target.reason}"
        out.print(f"  {str(target.target):<14} {_styled(target.status, 7)} {detail or target.reason or ''}",
                  soft_wrap=True)
        for note in target.skipped_checks:
            out.print(f"  {'':<14} [dim]{note}[/dim]", soft_wrap=True)
    if not record.targets and record.failure_class:
        out.print(f"  [bold]{record.failure_class}[/bold]: {record.reason}", soft_wrap=True)
    timings = "  ".join(f"{k} {v:.1f}s" for k, v in record.durations.items())
    path = record_path(cfg.records_dir, record.project or "", record.id)
    err.print(f"  [dim]{timings}  record: {path}[/dim]", soft_wrap=True)


def cmd_build(args: argparse.Namespace, cfg: config.Config) -> int:
    requests = [parse_request(spec) for spec in args.specs]  # all parsed before anything is built
    if args.build_id and len(requests) != 1:
        raise FactoryError("--build-id names the build of one request: give one NAME==VERSION")
    cfg = _narrowed(args, cfg)
    if args.no_sign:
        if not cfg.allow_unsigned:
            raise FactoryError("--no-sign publishes unsigned wheels: allow it in the config (allow-unsigned = true)")
        cfg = cfg.replace(signing="none")
    # A worker's build: the worker checked signing before it claimed anything.
    _local_stack(cfg, args.config, check=not args.build_id)
    # SIGTERM (from a worker, say) stops a build the way Ctrl-C does: containers removed, record kept.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if args.lease_file:  # a worker's build stops itself when the worker stops renewing its lease
        from factory.queue import lease

        lease.watch(args.lease_file, lambda: os.kill(os.getpid(), signal.SIGTERM))
    say = (lambda _: None) if args.json else _say
    done = []
    for request in requests:
        if not args.json:
            err.print(f"[bold]build {request}[/bold]")
        if args.build_id:  # a worker's build: the queue builds its dependencies, not this process
            record = run(request, cfg, say, build_id=args.build_id, floor=args.floor)
            done.append(record)
            if not args.json:
                _print_record(record, cfg)
            continue
        node = bootstrap.build(request, cfg, say)
        done.append(node.record)
        _update_site(cfg, [n.request.project for n in node.walk()])
        if not args.json:
            if node.dependencies:
                out.print(_tree(node))
            _print_record(node.record, cfg, header=not node.dependencies)
    if args.json:
        print(json.dumps([r.to_dict() for r in done], indent=2))
    return 0 if all(r.status == "built" for r in done) else 1


def _tree(node: bootstrap.Node) -> Tree:
    """The builds a request needed, as a tree: the request, its build dependencies below it."""
    def label(n: bootstrap.Node) -> str:
        version = f"=={n.record.version}" if n.record.version and "==" not in str(n.request) else ""
        why = f" [bold]{n.record.failure_class}[/bold]: {n.record.reason}" if not n.ok and n.record.failure_class else ""
        return f"{_styled(n.record.status)} {n.request}{version}{why}"

    tree = Tree(label(node))

    def grow(branch: Tree, n: bootstrap.Node) -> None:
        for child in n.dependencies:
            grow(branch.add(label(child)), child)

    grow(tree, node)
    return tree


def cmd_rebuild_check(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.rebuild_check import rebuild_check

    request = parse_request(args.spec)
    cfg = _narrowed(args, cfg)
    _local_stack(cfg, args.config, check=False)  # nothing is signed
    report = rebuild_check(request, cfg, _say)
    if report.record.status.value != "built":
        _print_record(report.record, cfg)
        out.print(f"[red]not reproduced[/red]: the rebuild of {request} did not build")
        return 1
    for wheel in report.wheels:
        if wheel.identical:
            out.print(f"[green]identical[/green] {wheel.filename} (sha256 {wheel.rebuilt_sha256})")
            continue
        out.print(f"[red]differs[/red]   {wheel.filename}", soft_wrap=True)
        for line in wheel.differences:
            out.print(f"  {line}", soft_wrap=True)
    verdict = "[green]reproducible[/green]" if report.identical else "[red]not reproducible[/red]"
    out.print(f"{verdict}: {sum(w.identical for w in report.wheels)} of {len(report.wheels)} wheels identical")
    return 0 if report.identical else 1


def _narrowed(args: argparse.Namespace, cfg: config.Config) -> config.Config:
    """The config, narrowed to the targets given with --arch and --python."""
    if args.arch:
        cfg = cfg.replace(archs=tuple(dict.fromkeys(args.arch)))
    if args.python:
        cfg = cfg.replace(pythons=config.check_pythons(tuple(dict.fromkeys(args.python)), "--python", cfg))
    return cfg


def cmd_images(args: argparse.Namespace, cfg: config.Config) -> int:
    if args.action == "prune":
        for name in images.prune(cfg):
            out.print(f"removed {name}")
        return 0
    arches = args.arch or cfg.archs
    if args.action == "tag":
        for arch in arches:
            out.print(images.spec_for(cfg, arch).tag)
        return 0
    for arch, image in images.ensure_all(cfg, arches, _say).items():
        out.print(f"{arch}: {image.tag} ({image.id[:12]})")
    return 0


def cmd_recipes(args: argparse.Namespace, cfg: config.Config) -> int:
    if args.action == "suggest":
        if not args.name:
            raise FactoryError("usage: factory recipes suggest NAME: the recipe that makes NAME's inferences explicit")
        from factory.pipeline.sysdeps import suggest

        out.print(suggest(cfg.records_dir, parse_request(args.name).project), markup=False, highlight=False)
        return 0
    files = sorted(cfg.recipes_dir.glob("*.toml"))
    for path in files:
        recipes.check(path)
        out.print(f"ok {path.name}")
    out.print(f"{len(files)} recipes in {cfg.recipes_dir} are valid")
    return 0


def _masked(value: str) -> str:
    """A URL with its password hidden."""
    return re.sub(r"(://[^/:@]+:)[^/@]+@", r"\1***@", value)


def cmd_config(args: argparse.Namespace, cfg: config.Config) -> int:
    for setting in config.SETTINGS:
        value = getattr(cfg, setting.field)
        shown = list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value
        shown = "" if shown is None else shown
        if isinstance(shown, str):
            shown = _masked(shown)
        out.print(f"{setting.key} = {json.dumps(shown)}", "  # " + setting.env, soft_wrap=True)
    return 0


def cmd_ingest(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.queue import ingest
    from factory.queue.ledger import Ledger

    inputs: list[tuple[str, bytes]] = []
    for name in args.files:  # all read first: a missing file is an error before anything is recorded
        if name == "-":
            inputs.append(("<stdin>", sys.stdin.buffer.read()))
            continue
        try:
            inputs.append((name, Path(name).read_bytes()))
        except OSError as exc:
            raise FactoryError(f"{name}: cannot read: {exc.strerror}") from None
    reports = []
    with Ledger.open(cfg) as ledger:
        for name, data in inputs:
            with err.status(f"ingesting {name}") if err.is_terminal else contextlib.nullcontext():
                report = ingest.ingest(ledger, name, data, args.format, args.strict)
            reports.append(report)
            already = f", {report.skipped_bytes} bytes ingested before" if report.skipped_bytes else ""
            out.print(f"{name} ({report.format}): {report.lines} lines, {report.misses} misses -> "
                      f"{report.requests} requests ({report.new} new), {len(report.bad)} bad lines{already}")
            for bad in report.bad[: args.show_bad]:
                err.print(f"  {name}:{bad.line}: {bad.reason}", soft_wrap=True)
            if len(report.bad) > args.show_bad:
                err.print(f"  … and {len(report.bad) - args.show_bad} more bad lines")
    return 0


def cmd_worker(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.queue.ledger import LATEST, Ledger, State
    from factory.queue.worker import Finished, Worker

    _local_stack(cfg, args.config)
    with Ledger.open(cfg) as ledger:
        waiting = ledger.counts()[State.QUEUED]
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=not err.is_terminal)
    task = progress.add_task("building", total=1 if args.once else max(waiting, 1))

    def report(done: Finished) -> None:
        _update_site(cfg, [done.item.project])
        record = done.record
        if record is not None and record.published:
            _upload_published(cfg, record.published, progress.console.print)
        state = done.state or "released"
        built = f" -> {record.version}" if done.item.version == LATEST and record and record.version else ""
        why = f": {record.failure_class}: {record.reason}" if state not in ("built", "released") and record else ""
        progress.console.print(f"{_styled(state)} {done.item.spec}{built} ({done.seconds:.1f} s){why}", soft_wrap=True)
        progress.advance(task)

    worker = Worker(cfg, args.config, jobs=args.jobs, on_finish=report, verbose=args.verbose)
    with progress:
        finished = worker.run(once=args.once, forever=args.forever, poll=args.poll)
    counts: dict[str, int] = {}
    for f in finished:
        counts[str(f.state or "released")] = counts.get(str(f.state or "released"), 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "nothing to do"
    err.print(f"worker {worker.id}: {summary}")
    return 0


def cmd_farm(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.farm import Farm

    _local_stack(cfg, args.config)  # one stack for every worker, started (and checked) before them
    serve = ["--host", args.host, "--port", str(args.port)]
    serve += ["--users", str(args.users)] if args.users else []
    serve += ["--fallback", args.fallback] if args.fallback else []
    err.print(f"farm: serving {cfg.index_dir} at http://{args.host}:{args.port}/simple/ with {args.workers} "
              f"worker{'s' if args.workers != 1 else ''}; misses become builds")
    return Farm(cfg, args.config, args.workers, serve, args.poll, _say).run()


def _upload_published(cfg: config.Config, filenames: Sequence[str], say: Callable[[str], None]) -> None:
    """With ``upload-to`` set, what a build published goes to that repository too. A failed
    upload does not fail the build: the next ``factory upload`` (or publish) sends what is missing."""
    from factory.upload.run import after_publish

    try:
        report = after_publish(cfg, filenames)
    except FactoryError as exc:
        say(f"[yellow]warning:[/yellow] not uploaded to {_masked(cfg.upload_to)}: {exc} (`factory upload` sends it later)")
        return
    if report is not None:
        say(("" if report.ok else "[yellow]warning:[/yellow] ") + f"upload: {report.summary}")


def _update_site(cfg: config.Config, projects: list[str]) -> None:
    """The status site, after builds: the front page and these projects' pages."""
    from factory.status import site

    try:
        site.update(cfg, projects)
    except OSError as exc:  # the site is a view: a build that is done stays done
        err.print(f"[yellow]warning:[/yellow] the status site was not updated: {exc}")


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


CELL_STYLE = {"served": "green", "not-needed": "dim", "excluded": "dim", "queued": "cyan", "building": "blue",
              "waiting": "cyan", "failed": "red", "refused": "magenta", "lacking": "yellow"}


def cmd_coverage(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory import coverage

    cfg = _narrowed(args, cfg)
    targets = every_target(cfg.archs, cfg.pythons)
    reports = [coverage.of_file(path, cfg, targets, queue=args.queue) for path in args.files]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports] if len(reports) > 1 else reports[0].to_dict(), indent=2))
        return 0
    for report in reports:
        table = Table(title=f"{report.file} ({report.kind})", title_justify="left")
        for column in ("pin", *report.targets, "detail"):
            table.add_column(column, overflow="fold")
        for pin in report.pins:
            cells = [f"[{CELL_STYLE[c]}]{c}[/{CELL_STYLE[c]}]" for c in pin.cells.values()]
            table.add_row(f"{pin.name}=={pin.version}", *cells, pin.detail)
        out.print(table)
        for line in report.unpinned:
            err.print(f"  not measured (no exact version): {line}", soft_wrap=True)
        out.print(report.headline, soft_wrap=True)
    return 0


def cmd_status(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.index.manifest import coverage, missing_targets
    from factory.queue.ledger import Ledger
    from factory.queue.ledger import weight as ledger_weight

    with Ledger.open(cfg) as ledger:
        counts, top, failures, classes = (ledger.counts(), ledger.top_queued(args.top),
                                          ledger.recent_failures(args.top), ledger.failure_classes())
        waiting = [(i, ledger.dependencies(i.id)) for i in ledger.waiting(args.top)]
        missed = missing_targets(cfg.index_dir, ledger.missed_targets())[: args.top]
    covered = coverage(cfg.index_dir, cfg.image_pythons, cfg.archs)
    if args.html:
        from factory.status import site

        n = site.rebuild(cfg)
        out.print(f"wrote the status site for {n} projects: {cfg.status_dir / 'index.html'}")
        return 0
    if args.json:
        item = lambda i: {**dataclasses.asdict(i), "state": str(i.state), "spec": i.spec}  # noqa: E731
        print(json.dumps({"counts": {str(s): n for s, n in counts.items()}, "top_queued": [item(i) for i in top],
                          "waiting": [{**item(i), "dependencies": [{"project": p, "version": v, "state": str(s)}
                                                                   for p, v, s in deps]} for i, deps in waiting],
                          "failure_classes": classes, "recent_failures": [item(i) for i in failures],
                          "missing_targets": [{"target": t, "misses": n, "projects": p} for t, n, p in missed],
                          "index": {p: {"version": v, "pythons": pythons} for p, (v, pythons) in covered.items()}},
                         indent=2))
        return 0
    where = _masked(cfg.queue_url) if cfg.queue_url else str(cfg.state_dir / "queue.sqlite3")
    out.print(f"queue: {where}", soft_wrap=True)
    table = Table()
    table.add_column("state")
    table.add_column("items", justify="right")
    for state, n in counts.items():
        table.add_row(_styled(state), str(n))
    out.print(table)
    if top:
        table = Table(title="most wanted (queued); weight = (1 + hits)(1 + clients) e^(-days since last seen)",
                      title_justify="left")
        for column in ("weight", "request", "hits", "clients", "last seen", "attempts", "why"):
            table.add_column(column, justify="right" if column in ("weight", "hits", "clients", "attempts") else "left")
        now = time.time()
        for i in top:
            table.add_row(f"{ledger_weight(i.priority, now):.2f}", i.spec, str(i.hits), str(i.clients),
                          _when(i.last_seen), str(i.attempts), i.origin or "misses")
        out.print(table)
    if waiting:
        table = Table(title="waiting for build dependencies", title_justify="left")
        for column in ("request", "waits for"):
            table.add_column(column, overflow="fold")
        for i, deps in waiting:
            table.add_row(i.spec, ", ".join(f"{p}=={v} ({_styled(s)})" for p, v, s in deps))
        out.print(table)
    if missed:
        table = Table(title="most wanted missing targets (clients found no file for them)", title_justify="left")
        for column in ("target", "misses", "projects"):
            table.add_column(column, justify="right" if column == "misses" else "left", overflow="fold")
        for target, n, projects in missed:
            buildable = "" if target in {str(t) for t in every_target(cfg.archs, cfg.pythons)} else \
                " [dim](not a target of this factory)[/dim]"
            table.add_row(target + buildable, str(n), ", ".join(projects[:5]) + (" …" if len(projects) > 5 else ""))
        out.print(table)
    if covered:
        per_python = ", ".join(f"{p}: {sum(1 for _, c in covered.values() if c[p])}" for p in cfg.image_pythons)
        out.print(f"index: {len(covered)} projects; with a wheel for CPython {per_python}")
        if args.projects:
            table = Table(title="the CPythons each project's newest version serves", title_justify="left")
            for column in ("project", "version", *cfg.image_pythons):
                table.add_column(column)
            for project, (version, pythons) in covered.items():
                table.add_row(project, version, *(", ".join(pythons[p]) or "[red]none[/red]" for p in cfg.image_pythons))
            out.print(table)
    if failures:
        table = Table(title="recent failures " + ", ".join(f"({c}: {n})" for c, n in classes.items()), title_justify="left")
        for column in ("state", "request", "class", "reason", "when"):
            table.add_column(column, overflow="fold")
        for i in failures:
            table.add_row(_styled(i.state), i.spec, i.failure_class or "", i.reason or "", _when(i.updated))
        out.print(table)
    return 0


def cmd_requeue(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.queue.ledger import LATEST, Ledger, State

    project = version = None
    if args.spec:
        request = parse_request(args.spec)
        project, version = request.project, (str(request.version) if request.version else None)
        if args.latest:
            version = LATEST
    if not (args.spec or args.failure_class or args.all):
        raise FactoryError("say what to requeue: NAME[==VERSION], --class CLASS, or --all")
    states = (State.FAILED, State.REFUSED) if args.refused else (State.FAILED,)
    with Ledger.open(cfg) as ledger:
        n = ledger.requeue(project, version, args.failure_class, states)
    out.print(f"requeued {n} item{'s' if n != 1 else ''}")
    return 0


def cmd_publish(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.index import publish

    if not args.rebuild:
        raise FactoryError("factory publishes what it builds; `factory publish --rebuild` rewrites every page")
    started = time.perf_counter()
    n = publish.rebuild(cfg.index_dir, cfg.page_base_url)
    out.print(f"rewrote the pages of {n} projects in {time.perf_counter() - started:.2f} s")
    return 0


def cmd_index(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.index import check, publish
    from factory.index.manifest import PROJECT_STATUSES, ProjectStatus

    if args.action == "check":
        signatures, why = _signature_check(cfg)
        report = check.check(cfg.index_dir, cfg.page_base_url, signatures, why)
        for problem in report.problems:
            out.print(f"[red]problem[/red] {problem}", soft_wrap=True)
        pending = f"; {report.pending} files not on a page yet (an interrupted publish: `factory publish --rebuild`)" \
            if report.pending else ""
        if report.stale:
            pending += (f"; {len(report.stale)} projects' pages do not show a yank or status change yet "
                        f"({', '.join(report.stale[:5])}: `factory publish --rebuild`)")
        verdict = "[green]ok[/green]" if report.ok else f"[red]{len(report.problems)} problems[/red]"
        out.print(f"{verdict}: {report.projects} projects, {report.files} files checked, "
                  f"{report.signatures} signatures verified{pending}")
        return 0 if report.ok else 1
    if not args.project or not args.status:
        raise FactoryError("usage: factory index set-status PROJECT STATUS [--reason TEXT]")
    if args.status not in PROJECT_STATUSES:
        raise FactoryError(f"status must be one of {', '.join(PROJECT_STATUSES)}")
    project = parse_request(args.project).project
    status = None if args.status == "active" and not args.reason else ProjectStatus(args.status, args.reason)
    publish.set_status(cfg.index_dir, project, status, cfg.page_base_url)
    out.print(f"{project}: {args.status}")
    return 0


def _signature_check(cfg: config.Config) -> tuple[SignatureCheck | None, str]:
    """The check of every signature in the index, or None and why there is none (also when
    nothing in it is signed: then no trusted root needs loading)."""
    from factory import verify
    from factory.index.manifest import Manifest
    from factory.pipeline.sign import SigningSettings

    manifest = Manifest.existing(cfg.index_dir)
    if manifest is None:
        return None, "no manifest"
    with manifest:
        if not any(e.provenance for e in manifest.all_files()):
            return None, "nothing is signed"
    try:
        return verify.SignatureCheck(SigningSettings.from_config(cfg)), ""
    except FactoryError as exc:
        return None, f"no trusted root to check it with ({exc})"


def cmd_yank(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.index import publish

    request = parse_request(args.spec)
    if request.version is None:
        raise FactoryError(f"{args.spec!r}: yank one version, as in {request.project}==1.2.3")
    n = publish.yank(cfg.index_dir, request.project, str(request.version), None if args.undo else args.reason,
                     cfg.page_base_url)
    out.print(f"{'un-yanked' if args.undo else 'yanked'} {n} file{'s' if n != 1 else ''} of {request}")
    return 0


def cmd_users(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.serve.auth import TOKEN_USER, add_user

    secret = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass(f"secret for {args.name}: ")
    if args.token:
        secret = secret or secrets.token_urlsafe(32)
        # A token's name is stored as __token__NAME; a NAME given with the prefix already keeps one.
        name = args.name.removeprefix(TOKEN_USER)
        add_user(args.file, TOKEN_USER + name, secret)
        out.print(f"token for {name}: {secret}")
    else:
        add_user(args.file, args.name, secret)
        out.print(f"added {args.name} to {args.file}")
    return 0


def cmd_serve(args: argparse.Namespace, cfg: config.Config) -> int:
    import uvicorn

    from factory.serve.app import create_app, settings_for
    from factory.serve.auth import Users
    from factory.serve.proxy import networks

    users = Users(args.users) if args.users else None
    if users is None and args.host not in ("127.0.0.1", "::1", "localhost"):
        err.print("[yellow]warning:[/yellow] serving without --users on a non-loopback address: anyone can read")
    if args.no_queue:
        cfg = cfg.replace(queue_misses=False)
    settings = settings_for(cfg, users, "none" if args.no_fallback else args.fallback, args.miss_log,
                            tuple(args.trusted_proxy or ()))
    networks(settings.trusted_proxies)  # a bad address is an error before the server starts
    where = "closed" if settings.upstream is None else \
        f"falling back per {settings.fallback} to {_masked(cfg.upstream)}"
    queued = "; each into the queue" if settings.queue is not None else ""
    err.print(f"serving {cfg.index_dir} at http://{args.host}:{args.port}/simple/ ({where}; misses to "
              f"{settings.miss_log}{queued})")
    # uvicorn's own proxy handling is off: it would trust 127.0.0.1 by default; TrustedProxies decides.
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=_serve_logging(args.access_log),
                log_level=None, access_log=args.access_log, proxy_headers=False)
    return 0


def _serve_logging(access_log: bool) -> dict[str, object]:
    """uvicorn's logging: warnings and errors, and with ``--access-log`` a line per request on
    standard output (uvicorn logs those at INFO, which a server-wide ``warning`` level drops)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    logging = copy.deepcopy(LOGGING_CONFIG)
    logging["loggers"]["uvicorn"]["level"] = "WARNING"
    logging["loggers"]["uvicorn.error"]["level"] = "WARNING"
    logging["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    return logging


def cmd_upload(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.upload.run import Result, Selection, upload

    url = args.repository or cfg.upload_to
    if not url:
        raise FactoryError("say where to upload: factory upload REPOSITORY_URL (or set upload-to)")
    selection = Selection(projects=tuple(args.project or ()), since=args.since)
    simple_url = args.simple_url or (cfg.upload_simple_url if not args.repository else None) or None
    report = upload(cfg.index_dir, cfg.state_dir, url, selection, simple_url=simple_url, jobs=args.jobs,
                    timeout=cfg.http_timeout, say=_say if args.verbose else None)
    if args.json:
        print(json.dumps({"target": report.target, "ok": report.ok,
                          "files": [{**dataclasses.asdict(o), "result": str(o.result)} for o in report.outcomes]},
                         indent=2))
        return 0 if report.ok else 1
    for outcome in report.outcomes:
        if outcome.result is Result.UPLOADED or outcome.result in (Result.CONFLICT, Result.FAILED, Result.YANKED):
            style = "green" if outcome.result is Result.UPLOADED else "red"
            detail = f": {outcome.detail}" if outcome.detail else ""
            out.print(f"[{style}]{outcome.result}[/{style}] {outcome.filename}{detail}", soft_wrap=True)
    out.print(report.summary, soft_wrap=True)
    return 0 if report.ok else 1


def cmd_hashes(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory.lockfiles.ours import Ours
    from factory.lockfiles.rewrite import hashes
    from factory.plumbing import net

    index_url = args.index_url or (cfg.page_base_url + "simple/" if cfg.page_base_url else None)
    ours = Ours(cfg.index_dir, index_url, lambda: net.client(cfg.http_timeout))
    results = [hashes(path, ours, check=args.check) for path in args.files]  # each written only when it changes
    for result in results:
        for pin in result.pins:
            if pin.change:
                out.print(f"  {pin.name}=={pin.version}: {pin.change}", soft_wrap=True)
        changed = sum(bool(p.change) for p in result.pins)
        verb = "would change" if args.check else "changed"
        out.print(f"{result.path} ({result.kind}): {len(result.pins)} pins factory serves, {changed} {verb}, "
                  f"{len(result.pins) - changed} already ours", soft_wrap=True)
    return 1 if args.check and any(r.changed for r in results) else 0


def cmd_verify(args: argparse.Namespace, cfg: config.Config) -> int:
    from factory import verify
    from factory.pipeline.sign import SigningSettings

    if not args.paths and not args.env:
        raise FactoryError("say what to verify: WHEEL..., a directory of wheels, or --env PATH")
    check = verify.SignatureCheck(SigningSettings.from_config(cfg))
    with tempfile.TemporaryDirectory(prefix="factory-verify-") as scratch:
        view = (verify.RemoteIndex(args.index, cfg.http_timeout, Path(scratch)) if args.index
                else verify.IndexView(cfg.index_dir))
        if args.deep:
            return _verify_deep(args, view, check)
        return _verify(args, view, check)


def _verify(args: argparse.Namespace, view: Index, check: SignatureCheck) -> int:
    from factory import verify

    findings = []
    for path in args.paths:
        if not path.exists():
            raise FactoryError(f"{path}: no such file or directory")
        findings += verify.verify_wheels(verify.wheels_under(path), view, check)
    for env in args.env or []:
        findings += verify.verify_environment(env, view, check)
    report = verify.Report(tuple(findings))
    if args.json:
        print(report.to_json())
    else:
        table = Table()
        for column in ("distribution", "version", "ours", "signature", "detail"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            sig = {"verified": "[green]verified[/green]", "failed": "[red]failed[/red]"}.get(f.signature, f.signature)
            sig += " [red](changed)[/red]" if f.changed else ""
            table.add_row(f.name, f.version, "[green]yes[/green]" if f.ours else "[yellow]no[/yellow]", sig,
                          f.detail or (f.wheel or ""))
        out.print(table)
        out.print(report.summary)
    if args.require_all and not all(f.trusted for f in report.findings):
        return 1
    return 1 if any(f.failed for f in report.findings) else 0


def _verify_deep(args: argparse.Namespace, view: Index, check: SignatureCheck) -> int:
    """Every wheel's build inputs, all the way down: rebuilt and signed by us, or the first that was not."""
    from factory import verify

    if args.env:
        raise FactoryError("--deep walks the provenance of wheel files: give WHEEL... or a directory, not --env")
    roots = []
    for path in args.paths:
        if not path.exists():
            raise FactoryError(f"{path}: no such file or directory")
        roots += [verify.verify_deep(w, view, check) for w in verify.wheels_under(path)]
    if args.json:
        print(json.dumps([r.to_dict() for r in roots], indent=2))
    for root in roots:
        if not args.json:
            out.print(_input_tree(root))
            bad = root.first_untrusted()
            out.print(f"[green]trusted all the way down[/green]: {root.filename}" if bad is None else
                      f"[red]not trusted[/red]: {root.filename}: first input not rebuilt and signed by this factory: "
                      f"{bad.filename} ({bad.verdict}: {bad.detail})", soft_wrap=True)
    return 0 if roots and all(r.trusted for r in roots) else 1


def _input_tree(root: Input) -> Tree:
    def label(node: Input) -> str:
        style = "green" if node.verdict == "verified" else "red"
        detail = f" ({node.detail})" if node.detail else ""
        return f"[{style}]{node.verdict}[/{style}] {node.filename}{detail}"

    tree = Tree(label(root))

    def grow(branch: Tree, node: Input, seen: set[str]) -> None:
        for child in node.inputs:
            sub = branch.add(label(child))
            if child.sha256 not in seen:  # each input's own inputs are shown once
                grow(sub, child, seen | {child.sha256})

    grow(tree, root, {root.sha256})
    return tree


def _local_stack(cfg: config.Config, config_path: Path | None, check: bool = True) -> None:
    """With ``signing = "local"``, start the Sigstore stack of the state directory if it is not
    running; then (``check``) make sure signing can succeed, before anything is built."""
    from factory.pipeline.sign import SigningSettings, preflight
    from factory.sigstore_stack.background import ensure_running
    from factory.sigstore_stack.errors import StackError

    settings = SigningSettings.from_config(cfg)
    try:
        if cfg.signing == "local" and (url := ensure_running(settings.stack_dir, cfg.local_sigstore, config_path)):
            _say(f"started the local Sigstore stack of {settings.stack_dir} at {url} "
                 f"(log: {settings.stack_dir / 'stack.log'})")
        if check:
            preflight(settings)
    except BuildFailure as failure:
        raise FactoryError(f"signing cannot succeed, so nothing is built: {failure.reason}") from None
    except StackError as exc:
        raise FactoryError(f"signing cannot succeed, so nothing is built: {exc}") from None


def cmd_sigstore_stack(args: argparse.Namespace, cfg: config.Config) -> int:
    from urllib.parse import urlsplit

    from factory.pipeline.sign import SigningSettings
    from factory.sigstore_stack import serve

    state = args.state or SigningSettings.from_config(cfg).stack_dir
    if args.background:
        from factory.sigstore_stack.background import ensure_running

        if cfg.signing != "local":
            out.print(f"signing = {cfg.signing!r}: no local Sigstore stack needed")
        elif url := ensure_running(state, cfg.local_sigstore, args.config):
            out.print(f"started the Sigstore stack of {state} at {url} (log {state / 'stack.log'})")
        else:
            out.print(f"the Sigstore stack of {state} is running")
        return 0
    where = urlsplit(cfg.local_sigstore) if cfg.local_sigstore else None
    host = args.host or (where.hostname if where else None) or "127.0.0.1"
    port = args.port if args.port is not None else (where.port or 80) if where else 0
    serve(state, host, port, lambda m: err.print(m, soft_wrap=True))
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factory", description="Rebuild Python packages from source into a private index.")
    p.add_argument("--version", action="version", version=f"factory {__version__}")
    p.add_argument("--config", type=Path, help="config file (default: $FACTORY_CONFIG or ./factory.toml)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build NAME==VERSION from its sdist and publish the wheels")
    b.add_argument("specs", nargs="+", metavar="NAME[==VERSION]")
    b.add_argument("--arch", action="append", choices=ARCHITECTURES, help="only this architecture (repeatable)")
    b.add_argument("--python", action="append", help="only this CPython, e.g. 3.13 (repeatable)")
    b.add_argument("--json", action="store_true", help="print the build records as JSON, nothing else")
    b.add_argument("--build-id", help=argparse.SUPPRESS)  # a worker names its build, to find its record
    b.add_argument("--floor", help=argparse.SUPPRESS)  # a build dependency's tools are no older than this
    b.add_argument("--lease-file", type=Path, help=argparse.SUPPRESS)  # and says how long it may run (lease.py)
    b.add_argument("--no-sign", action="store_true", help="publish unsigned (only where allow-unsigned = true)")
    b.set_defaults(func=cmd_build)

    rb = sub.add_parser("rebuild-check", help="build NAME==VERSION again and compare with the index, byte for byte")
    rb.add_argument("spec", metavar="NAME==VERSION")
    rb.add_argument("--arch", action="append", choices=ARCHITECTURES, help="only this architecture (repeatable)")
    rb.add_argument("--python", action="append", help="only this CPython, e.g. 3.13 (repeatable)")
    rb.set_defaults(func=cmd_rebuild_check)

    g = sub.add_parser("ingest", help="turn miss logs into queued build requests")
    g.add_argument("files", nargs="+", metavar="FILE", help="a miss log; - for standard input")
    g.add_argument("--format", choices=FORMATS, help="default: detected from the first line")
    g.add_argument("--strict", action="store_true", help="a bad line is an error (then nothing is ingested)")
    g.add_argument("--show-bad", type=_positive, default=10, metavar="N", help="bad lines to list (default 10)")
    g.set_defaults(func=cmd_ingest)

    w = sub.add_parser("worker", help="claim queued requests and build them")
    w.add_argument("-j", "--jobs", type=_positive, default=1, help="concurrent builds (default 1)")
    mode = w.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="build one item, then stop")
    mode.add_argument("--forever", action="store_true", help="wait for more work instead of stopping")
    w.add_argument("-v", "--verbose", action="store_true", help="show each build's progress")
    w.add_argument("--poll", type=float, default=5.0, metavar="SECONDS",
                   help="with --forever: how often to look for work when there is none (default 5)")
    w.set_defaults(func=cmd_worker)

    fm = sub.add_parser("farm", help="serve the index and build what it misses: the server and N workers, supervised")
    fm.add_argument("-w", "--workers", type=_positive, default=1, help="worker processes (default 1)")
    fm.add_argument("--host", default="127.0.0.1")
    fm.add_argument("--port", type=int, default=8080)
    fm.add_argument("--users", type=Path, help="users file for the server (`factory users add`)")
    fm.add_argument("--fallback", choices=["project", "version", "none"], help="the server's fallback (see serve)")
    fm.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="how often idle workers look (default 1)")
    fm.set_defaults(func=cmd_farm)

    cv = sub.add_parser("coverage", help="which pins of a requirements file, uv.lock or pylock.toml the index serves")
    cv.add_argument("files", nargs="+", type=Path, metavar="FILE", help="requirements.txt, uv.lock or pylock.toml")
    cv.add_argument("--arch", action="append", choices=ARCHITECTURES, help="only this architecture (repeatable)")
    cv.add_argument("--python", action="append", help="only this CPython, e.g. 3.13 (repeatable)")
    cv.add_argument("--queue", action="store_true",
                    help="queue a build of every pin that lacks a target and is not in the queue (origin: the file's name)")
    cv.add_argument("--json", action="store_true")
    cv.set_defaults(func=cmd_coverage)

    s = sub.add_parser("status", help="the queue: counts by state, most wanted, recent failures")
    s.add_argument("--json", action="store_true")
    s.add_argument("--top", type=_positive, default=10, metavar="N")
    s.add_argument("--projects", action="store_true", help="list the CPythons each project in the index serves")
    s.add_argument("--html", action="store_true", help="write the whole status site (index/status/) again")
    s.set_defaults(func=cmd_status)

    r = sub.add_parser("requeue", help="queue failed requests again (e.g. after adding a recipe)")
    r.add_argument("spec", nargs="?", metavar="NAME[==VERSION]")
    r.add_argument("--latest", action="store_true", help="the NAME request for the newest release")
    r.add_argument("--class", dest="failure_class", metavar="CLASS", help="only failures of this class")
    r.add_argument("--all", action="store_true", help="every failed request")
    r.add_argument("--refused", action="store_true", help="refused requests too")
    r.set_defaults(func=cmd_requeue)

    pb = sub.add_parser("publish", help="rewrite every page of the index from its manifest (--rebuild)")
    pb.add_argument("--rebuild", action="store_true")
    pb.set_defaults(func=cmd_publish)

    ix = sub.add_parser("index", help="check the index (check) or set a project's PEP 792 status (set-status)")
    ix.add_argument("action", choices=["check", "set-status"])
    ix.add_argument("project", nargs="?")
    ix.add_argument("status", nargs="?", help="active, archived, quarantined or deprecated")
    ix.add_argument("--reason")
    ix.set_defaults(func=cmd_index)

    y = sub.add_parser("yank", help="yank NAME==VERSION (PEP 592): installers skip it unless pinned")
    y.add_argument("spec", metavar="NAME==VERSION")
    y.add_argument("--reason", default="", help="why, for the people who pinned it")
    y.add_argument("--undo", action="store_true", help="un-yank")
    y.set_defaults(func=cmd_yank)

    sv = sub.add_parser("serve", help="serve the index over HTTP, with auth, upstream fallback and a miss log")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("--users", type=Path, help="users file (`factory users add`); without it anyone may read")
    sv.add_argument("--no-fallback", action="store_true", help="a closed index: no upstream for projects it lacks")
    sv.add_argument("--fallback", choices=["project", "version", "none"],
                    help="project: the upstream's page of a project the index lacks; version: also the upstream's "
                         "files of the versions it lacks; none: closed (default: the config's `fallback`)")
    sv.add_argument("--no-queue", action="store_true", help="log misses only; do not put them in the queue")
    sv.add_argument("--miss-log", type=Path, help="default: state-dir/misses.jsonl (what `factory ingest` reads)")
    sv.add_argument("--access-log", action="store_true", help="log every request on standard output")
    sv.add_argument("--trusted-proxy", action="append", metavar="ADDR",
                    help="a proxy or repository manager whose X-Forwarded-For and X-Forwarded-User-Agent name the "
                         "client (address or network, repeatable; default: trusted-proxies)")
    sv.set_defaults(func=cmd_serve)

    us = sub.add_parser("users", help="add a user (or a token) to a users file for `factory serve`")
    us.add_argument("action", choices=["add"])
    us.add_argument("file", type=Path)
    us.add_argument("name")
    us.add_argument("--token", action="store_true", help="a token (random unless one is given on stdin)")
    us.set_defaults(func=cmd_users)

    up = sub.add_parser("upload", help="upload what the index holds, and the repository lacks, into a hosted "
                                       "repository (devpi, Artifactory, Nexus, ...) through the upload API twine uses")
    up.add_argument("repository", nargs="?", metavar="REPOSITORY_URL", help="its upload URL (default: upload-to)")
    up.add_argument("--project", action="append", metavar="NAME", help="only this project (repeatable)")
    up.add_argument("--since", metavar="WHEN", help="only files published at or after WHEN (ISO 8601, UTC)")
    up.add_argument("--simple-url", metavar="URL", help="the repository's simple index (default: "
                                                        "upload-simple-url for upload-to; else found beside "
                                                        "REPOSITORY_URL, +simple/ or simple/)")
    up.add_argument("-j", "--jobs", type=_positive, default=4, help="uploads at a time (default 4)")
    up.add_argument("--json", action="store_true", help="every file's outcome as JSON")
    up.add_argument("-v", "--verbose", action="store_true", help="say each file as it is done")
    up.set_defaults(func=cmd_upload)

    hs = sub.add_parser("hashes", help="adopt the index without regenerating locks: our sha256 beside upstream's in a "
                                       "requirements file; uv.lock and pylock.toml pointed at our files for the pins "
                                       "we serve")
    hs.add_argument("files", nargs="+", type=Path, metavar="FILE", help="requirements file, uv.lock or pylock.toml")
    hs.add_argument("--check", action="store_true", help="only say what would change (exit 1 if anything would)")
    hs.add_argument("--index-url", metavar="URL", help="for lock files: the simple URL factory's index is installed "
                                                       "from (default: base-url's simple/)")
    hs.set_defaults(func=cmd_hashes)

    vf = sub.add_parser("verify", help="which wheels (or installed distributions) came from this index, signed")
    vf.add_argument("paths", nargs="*", type=Path, metavar="WHEEL|DIR", help="wheels, or directories of wheels")
    vf.add_argument("--env", action="append", type=Path, metavar="PATH", help="a virtualenv or site-packages")
    vf.add_argument("--json", action="store_true")
    vf.add_argument("--require-all", action="store_true", help="exit 1 unless every one is ours and verified")
    vf.add_argument("--deep", action="store_true",
                    help="walk each wheel's build inputs through the provenance: were they all rebuilt and signed by us?")
    vf.add_argument("--index", metavar="URL",
                    help="check against an index served over HTTP (factory serve, or a repository manager in front of "
                         "it: https://user:token@host/simple/, or credentials in ~/.netrc) instead of index-dir")
    vf.set_defaults(func=cmd_verify)

    sg = sub.add_parser("sigstore-stack", help="run factory's local Sigstore stack (OIDC issuer, CA, Rekor log)")
    sg.add_argument("--state", type=Path, help="keys and log (default: state-dir/sigstore)")
    sg.add_argument("--background", action="store_true", help="start it detached unless it already runs")
    sg.add_argument("--host", help="address to listen on (default: local-sigstore's, else 127.0.0.1)")
    sg.add_argument("--port", type=int, help="port (default: local-sigstore's, else one the system picks; the "
                                             "stack says which in its state directory)")
    sg.set_defaults(func=cmd_sigstore_stack)

    i = sub.add_parser("images", help="build the builder images (ensure), print their tags, remove old ones (prune)")
    i.add_argument("action", choices=["ensure", "tag", "prune"])
    i.add_argument("--arch", action="append", choices=ARCHITECTURES)
    i.set_defaults(func=cmd_images)

    rc = sub.add_parser("recipes", help="check every recipe in recipes-dir (check); print the recipe for what a "
                                        "build inferred (suggest NAME)")
    rc.add_argument("action", choices=["check", "suggest"])
    rc.add_argument("name", nargs="?", metavar="NAME")
    rc.set_defaults(func=cmd_recipes)

    c = sub.add_parser("config", help="print the effective settings and their environment variables")
    c.set_defaults(func=cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    func: Callable[[argparse.Namespace, config.Config], int] = args.func
    try:
        cfg = config.load(args.config)
        return func(args, cfg)
    except FactoryError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return 2
    except OSError as exc:  # an unwritable state directory, a users file that is a directory
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return 130


if __name__ == "__main__":
    sys.exit(main())

