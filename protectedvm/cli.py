"""``python -m protectedvm <command>``: the pipeline-facing commands.

Built on argparse subcommands so more can be added without touching existing ones: write a
``register(subparsers)`` that adds a parser and ``set_defaults(handler=...)`` (a handler takes the
parsed namespace and returns the exit code), then append it to :data:`SUBCOMMANDS`.

``verify`` exit codes: 0 every VM healthy, 1 at least one VM unhealthy, 2 unusable input
(argparse also uses 2 for usage errors).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from protectedvm.azure_client import BackupApi
from protectedvm.health import check_all, load_protected_vms, render_json, render_table
from protectedvm.ids import VaultRef

EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_BAD_INPUT = 2

Handler = Callable[[argparse.Namespace], int]
ApiFactory = Callable[[VaultRef], BackupApi]


def register_verify(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="re-check the latest backup of every VM in the stack outputs",
        description=(
            "Reads `pulumi stack output --json` and checks every VM in protectedVms: protection state "
            "Protected, last backup Healthy, and a recovery point exists. Exits 1 if any VM is not healthy."
        ),
    )
    parser.add_argument(
        "--stack-outputs",
        required=True,
        metavar="FILE",
        help="JSON file written by `pulumi stack output --json`, or - for stdin",
    )
    parser.add_argument(
        "--max-age-hours",
        type=float,
        default=None,
        help="also fail VMs whose latest recovery point is older than this (default: any age)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--workers", type=int, default=16, help="concurrent checks (default 16)")
    parser.set_defaults(handler=run_verify)


#: Each registers one subcommand on the ``add_subparsers()`` object.
SUBCOMMANDS: list[Callable[[Any], None]] = [register_verify]


def _register_drill(subparsers: Any) -> None:
    from protectedvm.drill_cli import register_drill  # the restore drill (issue 18)

    register_drill(subparsers)


SUBCOMMANDS.append(_register_drill)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m protectedvm", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def run_verify(args: argparse.Namespace) -> int:
    out: TextIO = args.stdout
    err: TextIO = args.stderr
    try:
        raw = args.stdin.read() if args.stack_outputs == "-" else _read(args.stack_outputs)
        outputs = json.loads(raw)
        if not isinstance(outputs, dict):
            raise ValueError("the stack outputs must be a JSON object")
        entries = load_protected_vms(outputs)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=err)
        return EXIT_BAD_INPUT
    max_age = dt.timedelta(hours=args.max_age_hours) if args.max_age_hours else None
    factory: ApiFactory = args.api_factory or BackupApi.for_vault
    rows = check_all(entries, factory, max_age=max_age, workers=args.workers)
    print(render_json(rows) if args.format == "json" else render_table(rows), file=out)
    return EXIT_OK if all(row.healthy for row in rows) else EXIT_UNHEALTHY


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def main(
    argv: Sequence[str] | None = None,
    *,
    api_factory: ApiFactory | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Parse ``argv`` and run the subcommand; returns the exit code (``__main__`` exits with it)."""
    args = build_parser().parse_args(argv)
    args.api_factory = api_factory
    args.stdin = stdin or sys.stdin
    args.stdout = stdout or sys.stdout
    args.stderr = stderr or sys.stderr
    handler: Handler = args.handler
    return handler(args)
