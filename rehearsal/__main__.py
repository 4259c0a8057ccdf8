"""``python -m rehearsal --stack prod``: the offline rehearsal (see :mod:`rehearsal.run`)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from components.validation import INITIAL_BACKUP_TIMEOUT_MINUTES_LIMITS
from rehearsal.run import JOB_OUTCOMES, HttpFault, JobFault, RehearsalOptions, rehearse

REALISTIC_JOB_SECONDS = 600.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal",
        description="Plan, policy check and initial-backup verification of a stack, offline: Pulumi mocks and "
        "an embedded HTTPS emulator of the Recovery Services API (no Azure, no Pulumi CLI).",
    )
    parser.add_argument("--stack", default="dev", help="stack name: stacks/Pulumi.<stack>.yaml (default dev)")
    parser.add_argument(
        "--job-seconds", type=float, default=None, help="emulated duration of each backup job (default 90)"
    )
    parser.add_argument(
        "--speed", type=float, default=None, help="emulated seconds per wall second (default 30; 1 = real time)"
    )
    parser.add_argument(
        "--realistic",
        action="store_true",
        help=f"real time with {REALISTIC_JOB_SECONDS / 60:g}-minute jobs (the stack's poll interval applies as is)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="VM=OUTCOME",
        help=f"the VM's next backup job fails with an Azure error code (e.g. UserErrorGuestAgentStatusUnavailable) "
        f"or ends {'/'.join(JOB_OUTCOMES)}; repeatable",
    )
    parser.add_argument(
        "--http-fault",
        action="append",
        default=[],
        metavar="ROUTE=STATUS[xTIMES]",
        help="the next TIMES requests to ROUTE answer STATUS (0 drops the connection), e.g. jobs.list=429x2",
    )
    parser.add_argument("--timeout-minutes", type=int, default=None, help="override initialBackup.timeoutMinutes")
    parser.add_argument("--no-rerun", action="store_true", help="skip the idempotency re-run")
    parser.add_argument("--no-drill", action="store_true", help="skip the restore drill after the pipeline check")
    parser.add_argument(
        "--drill-fault",
        action="append",
        default=[],
        metavar="VM=CODE",
        help="the VM's restore job in the drill fails with an Azure error code (or hang); repeatable",
    )
    return parser


def options_from_args(argv: Sequence[str] | None = None) -> RehearsalOptions:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        job_faults = tuple(JobFault.parse(text) for text in args.fault)
        http_faults = tuple(HttpFault.parse(text) for text in args.http_fault)
        drill_faults = tuple(JobFault.parse(text) for text in args.drill_fault)
    except ValueError as error:
        parser.error(str(error))
    default_job_seconds = REALISTIC_JOB_SECONDS if args.realistic else 90.0
    job_seconds = args.job_seconds if args.job_seconds is not None else default_job_seconds
    speed = args.speed if args.speed is not None else (1.0 if args.realistic else 30.0)
    if not (math.isfinite(job_seconds) and math.isfinite(speed)) or job_seconds <= 0 or speed <= 0:
        parser.error(f"--job-seconds ({job_seconds:g}) and --speed ({speed:g}) must be positive numbers")
    low, high = INITIAL_BACKUP_TIMEOUT_MINUTES_LIMITS
    if args.timeout_minutes is not None and not low <= args.timeout_minutes <= high:
        parser.error(f"--timeout-minutes {args.timeout_minutes} is out of range: allowed {low}-{high} minutes")
    return RehearsalOptions(
        stack=args.stack,
        job_seconds=job_seconds,
        speed=speed,
        job_faults=job_faults,
        http_faults=http_faults,
        timeout_minutes=args.timeout_minutes,
        rerun=not args.no_rerun,
        drill=not args.no_drill,
        drill_faults=drill_faults,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return rehearse(options_from_args(argv)).exit_code


if __name__ == "__main__":
    sys.exit(main())
