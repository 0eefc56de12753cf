"""``factory``: a thin command line over the library. Each command parses, calls, and prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from factory import __version__, config, images, pipeline, recipes
from factory.failures import FactoryError
from factory.request import parse_request

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _say(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}", soft_wrap=True)


STATUS_STYLE = {"built": "green", "partial": "yellow", "failed": "red", "skipped": "dim"}


def cmd_build(args: argparse.Namespace, cfg: config.Config) -> int:
    requests = [parse_request(spec) for spec in args.specs]  # all parsed before anything is built
    if args.arch:
        cfg = cfg.replace(archs=tuple(dict.fromkeys(args.arch)))
    if args.python:
        cfg = cfg.replace(pythons=config.check_pythons(tuple(dict.fromkeys(args.python)), "--python", cfg))
    worst = 0
    for request in requests:
        err.print(f"[bold]build {request}[/bold]")
        record = pipeline.run(request, cfg, _say)
        style = STATUS_STYLE[record.status]
        out.print(f"[{style}]{record.status}[/{style}] {record.request}"
                  + (f" {record.version}" if record.version and "==" not in record.request else ""))
        for target in record.targets:
            detail = target["wheel"] or f"[bold]{target['failure_class'] or ''}[/bold] {target['reason']}"
            tstyle = STATUS_STYLE[target["status"]]
            out.print(f"  {target['target']:<14} [{tstyle}]{target['status']:<7}[/{tstyle}] {detail}", soft_wrap=True)
        if not record.targets and record.failure_class:
            out.print(f"  [bold]{record.failure_class}[/bold]: {record.reason}", soft_wrap=True)
        timings = "  ".join(f"{k} {v:.1f}s" for k, v in record.durations.items())
        err.print(f"  [dim]{timings}  record: {cfg.records_dir / (record.project or '_unresolved') / record.id}.json[/dim]",
                  soft_wrap=True)
        worst = max(worst, 0 if record.status == "built" else 1)
    return worst


def cmd_recipes(args: argparse.Namespace, cfg: config.Config) -> int:
    files = sorted(cfg.recipes_dir.glob("*.toml"))
    for path in files:
        recipes.check(path)
        out.print(f"ok {path.name}")
    out.print(f"{len(files)} recipes in {cfg.recipes_dir} are valid")
    return 0


def cmd_images(args: argparse.Namespace, cfg: config.Config) -> int:
    if args.action == "prune":
        for name in images.prune(cfg):
            out.print(f"removed {name}")
        return 0
    for arch in args.arch or cfg.archs:
        if args.action == "tag":
            out.print(images.spec_for(cfg, arch).tag)
            continue
        image = images.ensure(cfg, arch, _say)
        out.print(f"{arch}: {image.tag} ({image.id[:12]})")
    return 0


def cmd_config(args: argparse.Namespace, cfg: config.Config) -> int:
    for setting in config.SETTINGS:
        value = getattr(cfg, setting.field)
        shown = list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value
        out.print(f"{setting.key} = {shown!r}".replace("'", '"'), "  # " + setting.env, soft_wrap=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="factory", description="Rebuild Python packages from source into a private index.")
    p.add_argument("--version", action="version", version=f"factory {__version__}")
    p.add_argument("--config", type=Path, help="config file (default: $FACTORY_CONFIG or ./factory.toml)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build NAME==VERSION from its sdist and publish the wheels")
    b.add_argument("specs", nargs="+", metavar="NAME[==VERSION]")
    b.add_argument("--arch", action="append", choices=config.ARCHITECTURES, help="only this architecture (repeatable)")
    b.add_argument("--python", action="append", help="only this CPython, e.g. 3.13 (repeatable)")
    b.set_defaults(func=cmd_build)

    i = sub.add_parser("images", help="build the builder images (ensure), print their tags, remove old ones (prune)")
    i.add_argument("action", choices=["ensure", "tag", "prune"])
    i.add_argument("--arch", action="append", choices=config.ARCHITECTURES)
    i.set_defaults(func=cmd_images)

    r = sub.add_parser("recipes", help="check every recipe in recipes-dir against the schema")
    r.add_argument("action", choices=["check"])
    r.set_defaults(func=cmd_recipes)

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
        err.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
