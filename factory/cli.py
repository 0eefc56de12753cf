"""``factory``: a thin command line over the library. Each command parses, calls, and prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from factory import __version__, config, images, pipeline
from factory.failures import FactoryError
from factory.request import parse_request

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _say(message: str) -> None:
    err.print(f"[dim]·[/dim] {message}", soft_wrap=True)


def cmd_build(args: argparse.Namespace, cfg: config.Config) -> int:
    requests = [parse_request(spec) for spec in args.specs]  # all parsed before anything is built
    if args.arch:
        cfg = cfg.replace(archs=tuple(args.arch))
    if args.python:
        cfg = cfg.replace(pythons=tuple(args.python))
    failed = 0
    for request in requests:
        err.print(f"[bold]build {request}[/bold]")
        record = pipeline.run(request, cfg, _say)
        timings = "  ".join(f"{k} {v:.1f}s" for k, v in record.durations.items())
        if record.status == "built":
            names = record.published or [w["filename"] for w in record.wheels] or ["nothing new"]
            out.print(f"[green]built[/green] {record.request}: {', '.join(names)}")
        else:
            failed += 1
            out.print(f"[red]failed[/red] {record.request}: [bold]{record.failure_class}[/bold]: {record.reason}")
        err.print(f"  [dim]{timings}  record: {cfg.records_dir / (record.project or '_unresolved') / record.id}.json[/dim]")
    return 1 if failed else 0


def cmd_images(args: argparse.Namespace, cfg: config.Config) -> int:
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
    b.add_argument("--python", action="append", help="only this CPython, e.g. 3.11 (repeatable)")
    b.set_defaults(func=cmd_build)

    i = sub.add_parser("images", help="build the builder images (ensure) or print their tags")
    i.add_argument("action", choices=["ensure", "tag"])
    i.add_argument("--arch", action="append", choices=config.ARCHITECTURES)
    i.set_defaults(func=cmd_images)

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
