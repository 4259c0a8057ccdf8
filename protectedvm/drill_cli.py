"""``python -m protectedvm drill``: the restore drill's command line (registered in protectedvm/cli.py).

Exit codes, like ``verify``: 0 every sampled VM restored, verified and cleaned up; 1 any failed (a
failed or slow restore, a stale recovery point, a disk count mismatch, a disk left behind, an
interruption); 2 unusable input, as one ``error:`` line (argparse usage errors are 2 as well).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

from protectedvm.azure_client import BackupApi, ComputeApi, make_sdk_client
from protectedvm.cli import BadInput, _load_outputs, _max_age_hours  # verify's: one set of input errors
from protectedvm.drill import DrillInputError, RestoreDrill, Staging, render_json, render_table, select_vms
from protectedvm.health import load_protected_vms
from protectedvm.verifier import utc_now

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _bounded(kind: type[float] | type[int], low: float, high: float, unit: str) -> Callable[[str], Any]:
    """argparse type: a finite number in [low, high]; anything else is a usage error naming the range."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: allowed {low:g}-{high:g} {unit}")
        return value

    return parse


def register_drill(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "drill",
        help="restore a sample of the stack's VMs into a staging resource group, verify, clean up",
        description=(
            "Restores the latest recovery point of a sample of the VMs in protectedVms as managed disks "
            "into a staging resource group, waits for the Restore jobs, checks the restored disks against "
            "the source VM, reports the recovery point age and the restore time, then deletes exactly the "
            "disks it created (tagged protectedvm-drill). Exits 1 if any VM could not be restored."
        ),
    )
    parser.add_argument(
        "--stack-outputs", required=True, metavar="FILE", help="`pulumi stack output --json` written to FILE, - = stdin"
    )
    parser.add_argument(
        "--staging-resource-group",
        required=True,
        metavar="RG",
        help="resource group name (in the storage account's subscription) or id, dedicated to drills",
    )
    parser.add_argument(
        "--staging-storage-account",
        required=True,
        metavar="ID",
        help="storage account id for the restore's staging data (VM config, template), in the vault's region",
    )
    parser.add_argument("--region", default=None, help="restore region (default: the source VM's, i.e. the vault's)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--sample",
        type=_bounded(int, 1, 10_000, "VMs"),
        default=None,
        help="how many VMs, rotating weekly over the sorted list so every VM is drilled in time (default 1)",
    )
    which.add_argument(
        "--vm", action="append", default=[], metavar="NAME", help="drill this VM (name or id); repeatable"
    )
    parser.add_argument(
        "--max-rto-minutes",
        type=_bounded(float, 0.1, 10_080, "minutes"),
        default=None,
        help="fail a VM whose restore took longer",
    )
    parser.add_argument(
        "--max-rp-age-hours",
        type=_max_age_hours,
        default=None,
        help="fail a VM whose latest recovery point is older",
    )
    parser.add_argument("--poll-seconds", type=_bounded(float, 1, 600, "seconds"), default=30.0)
    parser.add_argument("--timeout-minutes", type=_bounded(float, 1, 10_080, "minutes"), default=360.0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    parser.set_defaults(handler=run_drill)


def run_drill(args: argparse.Namespace) -> int:
    out: TextIO = args.stdout
    err: TextIO = args.stderr
    try:
        entries = load_protected_vms(_load_outputs(args.stack_outputs, args.stdin))
        staging = Staging.parse(args.staging_resource_group, args.staging_storage_account, args.region)
        chosen = select_vms(entries, names=args.vm, sample=args.sample)
    except (BadInput, ValueError) as error:  # DrillInputError is a ValueError
        print(f"error: {error}", file=err)
        return EXIT_BAD_INPUT
    api_factory = getattr(args, "api_factory", None) or BackupApi.for_vault
    disks = getattr(args, "disk_api", None) or ComputeApi(make_sdk_client(staging.subscription_id))
    drill = RestoreDrill(
        api_factory,
        disks,
        staging,
        poll_seconds=args.poll_seconds,
        timeout_minutes=args.timeout_minutes,
        max_rto_minutes=args.max_rto_minutes,
        max_rp_age_hours=args.max_rp_age_hours,
        clock=getattr(args, "clock", None) or utc_now,
        sleep=getattr(args, "sleep", None) or _sleep,
        log=lambda message: print(f"[{utc_now():%H:%M:%S}] {message}", file=err, flush=True),
    )
    try:
        with _sigterm_as_interrupt():
            report = drill.run(chosen, entries)
    except DrillInputError as error:
        print(f"error: {error}", file=err)
        return EXIT_BAD_INPUT
    print(render_json(report) if args.json else render_table(report), file=out)
    return EXIT_OK if report.ok else EXIT_FAILED


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A pipeline cancelling the job sends SIGTERM: treat it like Ctrl-C so the drill cleans up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
