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
import math
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
            "Protected, last backup Completed, and a recovery point exists. Exits 1 if any VM is not healthy."
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
        type=_max_age_hours,
        default=None,
        help=f"also fail VMs whose latest recovery point is older than this (0 < hours <= {MAX_AGE_HOURS:g}; "
        "default: any age)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--workers", type=_workers, default=16, help=f"concurrent checks (1-{MAX_WORKERS}, default 16)")
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


#: 100 years: any larger age is no bound at all, and ``timedelta`` overflows near 2.4e13 hours.
MAX_AGE_HOURS = 876_000.0
MAX_WORKERS = 256


def _max_age_hours(text: str) -> float:
    """argparse type: a finite, positive number of hours (``nan``, ``inf``, ``1e308``, 0 and
    negatives are usage errors, not a traceback or a silently disabled check)."""
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not (math.isfinite(hours) and 0 < hours <= MAX_AGE_HOURS):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: allowed more than 0 and at most {MAX_AGE_HOURS:g}")
    return hours


def _workers(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= workers <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{workers} is out of range: allowed 1-{MAX_WORKERS}")
    return workers


class BadInput(Exception):
    """The stack outputs cannot be used; the message is the whole ``error:`` line."""


def run_verify(args: argparse.Namespace) -> int:
    out: TextIO = args.stdout
    err: TextIO = args.stderr
    try:
        entries = load_protected_vms(_load_outputs(args.stack_outputs, args.stdin))
    except (BadInput, ValueError) as error:
        print(f"error: {error}", file=err)
        return EXIT_BAD_INPUT
    max_age = dt.timedelta(hours=args.max_age_hours) if args.max_age_hours is not None else None
    factory: ApiFactory = args.api_factory or BackupApi.for_vault
    rows = check_all(entries, factory, max_age=max_age, workers=args.workers)
    print(render_json(rows) if args.format == "json" else render_table(rows), file=out)
    return EXIT_OK if all(row.healthy for row in rows) else EXIT_UNHEALTHY


def _source(path: str) -> str:
    return "stdin" if path == "-" else path


def _load_outputs(path: str, stdin: TextIO) -> dict[str, Any]:
    """The JSON object ``pulumi stack output --json`` wrote, or :class:`BadInput` saying why not."""
    source = _source(path)
    try:
        if path == "-":
            text = stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except UnicodeDecodeError as error:
        byte = error.object[error.start : error.start + 1].hex()
        raise BadInput(f"{source} is not UTF-8 text: byte 0x{byte} at offset {error.start}") from None
    except OSError as error:
        raise BadInput(f"cannot read {source}: {error.strerror or error}") from None
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInput(f"{source} is not JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise BadInput(f"{source} is nested too deeply to be `pulumi stack output --json`") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise BadInput(f"{source} is not usable JSON: {error}") from None
    if not isinstance(outputs, dict):
        kind = "a list" if isinstance(outputs, list) else f"a {type(outputs).__name__}"
        raise BadInput(f"{source} must hold a JSON object (the output of `pulumi stack output --json`), got {kind}")
    return outputs


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
