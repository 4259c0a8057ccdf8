"""Wall time and ARM requests of the initial-backup verifier at 1, 50 and 200 VMs, next to a per-job CLI loop.

Run: ``venv/bin/python bench/verify_scale.py`` (about 3 minutes; ``--smoke`` for CI: N=1 and 10, 2 s
jobs, 1 s polls, about 15 s). Options: ``--sizes 1,50,200``, ``--job-seconds 20``, ``--poll-seconds 5``,
``--latency-ms``, ``--operation-delay``, ``--page-size``, ``--json PATH``.

Each run gets a fresh local HTTPS emulator (``emulator.Emulator``) on its real-time clock, so a "20 s"
backup job takes 20 s of wall time, and a fresh vault with N protected VMs seeded over HTTPS. The client
side then runs in its own spawned process (the emulator lives in this one, standing in for Azure: it
does not share the client's GIL, and the client's peak RSS is its own):

* ``verifier``: the post-deploy hook's real code path, ``protectedvm.verifier.InitialBackupVerifier``
  over ``protectedvm.azure_client.BackupApi`` over the SDK client (``verify="completed"``, poll P):
  look for running jobs, trigger all VMs (bounded thread pool), one paged ``backup_jobs.list`` per
  poll for the whole vault, one ``recovery_points.list`` per VM once its job completed.
* ``baseline``: what a shell loop over the Azure CLI does, serially in one thread with the same SDK
  calls: per VM, ``az backup protection backup-now`` (POST, operation status until it names the job,
  then one ``job_details.get``: azure-cli's ``track_backup_job``), then per job ``az backup job wait``
  (``job_details.get``, and while InProgress: ``job_details.get``, sleep P). It does not look for a
  recovery point, so it proves less than the verifier.

Reported per N and path:

* wall time, and wall / (D + P) with D the job duration and P the poll interval. D is the floor (all
  jobs start at once and are seen the moment they end); D + P allows one poll interval of detection
  delay. Target for the verifier: <= 1.05.
* ARM requests per VM by route, from the emulator's counters reset after seeding: the per-VM routes
  (trigger, operation status, job GET, recovery point list; target for the verifier: <= 3 per VM) apart
  from the vault-wide ``backupJobs`` list pages, with the verifier's polls and list pages per poll
  (target: one paged list, ceil(N / page size) pages, per poll).
* peak RSS (``ru_maxrss``) of the client process, and how much its RSS grew during the run (sampled).

Why: issue 7 asks whether the batched poll keeps a 200-VM deployment at about one job duration and
O(1) requests per VM, where a per-job loop pays its requests and round trips one VM at a time.

Every request gets ``--latency-ms`` (default 50) of server-side delay: a modest ARM round trip (they
are ~50-300 ms), which concurrent requests overlap and a serial loop pays in full. (The emulator's own
loopback answers take ~1 ms: it answers with Nagle's algorithm off.) By
default D is a multiple of P; other ``--job-seconds`` move where the last job's end falls between two
polls. ``--operation-delay`` keeps trigger operations InProgress that long
(the emulator's default, and this script's, is 0: the operation names its job at the first GET).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing
import os
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.config import InitialBackupSettings  # noqa: E402
from emulator import Emulator, StaticTokenCredential  # noqa: E402
from emulator.routes import Match, Request, Response  # noqa: E402
from emulator.seeding import protect, vm_ids  # noqa: E402
from protectedvm.azure_client import (  # noqa: E402
    CA_BUNDLE_ENV,
    ENDPOINT_ENV,
    BackupApi,
    JobInfo,
    OperationInfo,
    RecoveryPointInfo,
    make_sdk_client,
)
from protectedvm.ids import VaultRef, VmRef  # noqa: E402
from protectedvm.verifier import COMPLETED, InitialBackupVerifier, utc_now  # noqa: E402
from rehearsal.table import render_table  # noqa: E402

SUB = "00000000-0000-0000-0000-0000000000b7"
VAULT = VaultRef(SUB, "rg-backup", "rsv-bench")
PATHS = ("verifier", "baseline")
#: Requests made for one VM; everything else is a vault-wide list.
PER_VM_ROUTES = {
    "backup.trigger": "trigger",
    "backupOperations.get": "op status",
    "job.get": "job GET",
    "recoveryPoints.list": "RP list",
}
LIST_ROUTE = "jobs.list"
TARGET_RATIO = 1.05
TARGET_PER_VM = 3.0
#: The verifier's default; the baseline polls trigger operations at the same pace.
OPERATION_POLL_SECONDS = 2.0
TRIGGER_WORKERS = 16


# --- the client side, in a spawned process ---------------------------------------------------


@dataclass(frozen=True)
class ClientSpec:
    path: str
    vm_ids: tuple[str, ...]
    base_url: str
    ca_path: str
    job_seconds: float
    poll_seconds: int
    operation_poll_seconds: float
    trigger_workers: int


@dataclass
class ClientOutcome:
    wall_seconds: float
    #: When the last backup POST was sent, from the start of the run: its job ends D later.
    last_trigger_seconds: float
    statuses: dict[str, int]
    #: Jobs returned by each ``list_backup_jobs`` call, before the first trigger and after it (polls).
    lists_before_trigger: list[int] = field(default_factory=list)
    lists_after_trigger: list[int] = field(default_factory=list)
    #: ``ru_maxrss``: the process's peak, imports included.
    max_rss_kb: int = 0
    #: Highest RSS sampled during the run minus RSS when it started.
    run_rss_growth_kb: int = 0


class CountingApi:
    """``BackupApi`` as the verifier sees it, noting the size of every job list (to tell the
    pre-trigger look from the polls) without changing a single request."""

    def __init__(self, api: BackupApi) -> None:
        self.api = api
        self.started = time.perf_counter()
        self.last_trigger = 0.0
        self.triggered = False
        self.before: list[int] = []
        self.after: list[int] = []
        self._lock = threading.Lock()

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str:
        with self._lock:
            self.triggered = True
            self.last_trigger = max(self.last_trigger, time.perf_counter() - self.started)
        return self.api.trigger_backup(vm, expiry)

    def operation_status(self, operation_id: str) -> OperationInfo:
        return self.api.operation_status(operation_id)

    def list_backup_jobs(self, start: dt.datetime, end: dt.datetime, status: str | None = None) -> list[JobInfo]:
        jobs = self.api.list_backup_jobs(start, end, status)
        with self._lock:
            (self.after if self.triggered else self.before).append(len(jobs))
        return jobs

    def get_job(self, job_id: str) -> JobInfo:
        return self.api.get_job(job_id)

    def recovery_points(self, vm: VmRef) -> list[RecoveryPointInfo]:
        return self.api.recovery_points(vm)


def cli_loop(api: CountingApi, vms: Sequence[VmRef], poll_seconds: float, operation_poll_seconds: float) -> list[str]:
    """The baseline: ``az backup protection backup-now`` per VM, then ``az backup job wait`` per job."""
    expiry = utc_now() + dt.timedelta(days=30)
    job_ids: list[str] = []
    for vm in vms:
        operation_id = api.trigger_backup(vm, expiry)
        operation = api.operation_status(operation_id)
        while operation.status == "InProgress":
            time.sleep(operation_poll_seconds)
            operation = api.operation_status(operation_id)
        if not operation.job_id:
            raise RuntimeError(f"{vm.name}: the trigger named no job ({operation})")
        job_ids.append(api.get_job(operation.job_id).job_id)  # backup-now prints the job it started
    statuses: list[str] = []
    for job_id in job_ids:
        # azure-cli's wait_for_job: GET, then while in progress: GET and sleep (so it notices a
        # finished job one sleep after the GET that saw it).
        job = api.get_job(job_id)
        while job.status in ("InProgress", "Cancelling"):
            job = api.get_job(job_id)
            time.sleep(poll_seconds)
        statuses.append(job.status)
    return statuses


def _max_rss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024) if sys.platform == "darwin" else int(peak)  # bytes on macOS, KiB on Linux


def _rss_kb() -> int | None:
    """Current RSS (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return None


class RssSampler:
    """Highest current RSS seen while the run lasts (ru_maxrss also counts the import peak)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.start_kb = _rss_kb() or 0
        self.peak_kb = self.start_kb
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_kb = max(self.peak_kb, _rss_kb() or 0)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *args: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, _rss_kb() or 0)


def ready() -> bool:
    """Runs first in the spawned process, so its start-up and imports overlap the seeding."""
    return True


def run_client(spec: ClientSpec) -> ClientOutcome:
    os.environ[ENDPOINT_ENV] = spec.base_url
    os.environ[CA_BUNDLE_ENV] = spec.ca_path
    vms = [VmRef.from_id(vm_id) for vm_id in spec.vm_ids]
    api = BackupApi(make_sdk_client(SUB, StaticTokenCredential()), VAULT)
    counting = CountingApi(api)
    settings = InitialBackupSettings(
        verify="completed",
        retain_days=30,
        timeout_minutes=max(10, math.ceil(4 * (spec.job_seconds + spec.poll_seconds) / 60)),
        poll_seconds=spec.poll_seconds,
    )
    # Real clock and sleep: the emulator runs on real time (time_scale 1), so utc_now() is its clock.
    verifier = InitialBackupVerifier(
        counting,
        settings,
        vault_name=VAULT.name,
        trigger_workers=spec.trigger_workers,
    )
    with RssSampler() as rss:
        counting.started = start = time.perf_counter()
        if spec.path == "verifier":
            statuses = [r.status for r in verifier.run(vms).values()]
        else:
            statuses = cli_loop(counting, vms, spec.poll_seconds, spec.operation_poll_seconds)
        wall = time.perf_counter() - start
    api.close()
    return ClientOutcome(
        wall_seconds=wall,
        last_trigger_seconds=counting.last_trigger,
        statuses=dict(Counter(statuses)),
        lists_before_trigger=counting.before,
        lists_after_trigger=counting.after,
        max_rss_kb=_max_rss_kb(),
        run_rss_growth_kb=rss.peak_kb - rss.start_kb,
    )


# --- the emulator side, in this process ------------------------------------------------------


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    job_seconds: float
    poll_seconds: int
    page_size: int
    latency_ms: float
    operation_delay: float


@dataclass
class RunReport:
    path: str
    n: int
    wall_seconds: float
    last_trigger_seconds: float
    ratio: float
    per_vm: dict[str, float]
    per_vm_total: float
    jobs_list_requests: int
    polls: int | None
    list_pages_per_poll: float | None
    other_requests: dict[str, int]
    peak_rss_mb: float
    rss_growth_mb: float
    statuses: dict[str, int]


def add_latency(emu: Emulator, seconds: float) -> None:
    """Every request waits ``seconds`` in its server thread before it is handled (concurrent
    requests overlap their waits, like ARM round trips do; a serial loop pays each one)."""
    if seconds <= 0:
        return
    handle = emu.router.handle

    def delayed(request: Request, found: Match) -> Response:
        time.sleep(seconds)
        return handle(request, found)

    emu.router.handle = delayed  # type: ignore[method-assign, assignment]


def pages(jobs: int, page_size: int) -> int:
    return max(1, math.ceil(jobs / page_size))


def measure(path: str, n: int, options: Options) -> RunReport:
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        started = pool.submit(ready)
        with Emulator(
            job_duration=options.job_seconds, operation_delay=options.operation_delay, page_size=options.page_size
        ) as emu:
            ids = vm_ids(SUB, "rg-app", n)
            protect(emu, VAULT, ids)
            add_latency(emu, options.latency_ms / 1000)
            started.result()
            emu.reset_counts()
            spec = ClientSpec(
                path=path,
                vm_ids=tuple(ids),
                base_url=emu.base_url,
                ca_path=emu.ca_path,
                job_seconds=options.job_seconds,
                poll_seconds=options.poll_seconds,
                operation_poll_seconds=OPERATION_POLL_SECONDS,
                trigger_workers=TRIGGER_WORKERS,
            )
            outcome = pool.submit(run_client, spec).result()
            counts = emu.counts
    if set(outcome.statuses) - COMPLETED:
        raise RuntimeError(f"{path} N={n}: not every backup completed: {outcome.statuses}")
    per_vm = {route: counts[route] / n for route in PER_VM_ROUTES}
    jobs_list = counts[LIST_ROUTE]
    polls = len(outcome.lists_after_trigger) if path == "verifier" else None
    pages_per_poll = None
    if polls:
        pre_trigger_pages = sum(pages(size, options.page_size) for size in outcome.lists_before_trigger)
        pages_per_poll = (jobs_list - pre_trigger_pages) / polls
    return RunReport(
        path=path,
        n=n,
        wall_seconds=outcome.wall_seconds,
        last_trigger_seconds=outcome.last_trigger_seconds,
        ratio=outcome.wall_seconds / (options.job_seconds + options.poll_seconds),
        per_vm=per_vm,
        per_vm_total=sum(per_vm.values()),
        jobs_list_requests=jobs_list,
        polls=polls,
        list_pages_per_poll=pages_per_poll,
        other_requests={k: v for k, v in counts.items() if k not in PER_VM_ROUTES and k != LIST_ROUTE},
        peak_rss_mb=outcome.max_rss_kb / 1024,
        rss_growth_mb=outcome.run_rss_growth_kb / 1024,
        statuses=outcome.statuses,
    )


def target_failures(reports: Sequence[RunReport], page_size: int) -> list[str]:
    failures = []
    for r in reports:
        if r.path != "verifier":
            continue
        if r.ratio > TARGET_RATIO:
            failures.append(f"N={r.n}: wall/(D+P) {r.ratio:.3f} > {TARGET_RATIO}")
        if r.per_vm_total > TARGET_PER_VM:
            failures.append(f"N={r.n}: {r.per_vm_total:.2f} per-VM requests per VM > {TARGET_PER_VM:g}")
        if r.list_pages_per_poll is not None and r.list_pages_per_poll > pages(r.n, page_size):
            failures.append(f"N={r.n}: {r.list_pages_per_poll:.2f} job-list pages per poll > {pages(r.n, page_size)}")
        if r.other_requests:
            failures.append(f"N={r.n}: unexpected requests {r.other_requests}")
    return failures


def render(reports: Sequence[RunReport], options: Options) -> str:
    d, p = options.job_seconds, options.poll_seconds
    time_rows = [
        [
            r.path,
            r.n,
            f"{r.wall_seconds:.1f}",
            f"{r.last_trigger_seconds:.1f}",
            f"{r.wall_seconds - r.last_trigger_seconds - d:.1f}",
            f"{r.ratio:.3f}",
            (("ok" if r.ratio <= TARGET_RATIO else "MISSED") if r.path == "verifier" else "-"),
            f"{r.peak_rss_mb:.0f}",
            f"{r.rss_growth_mb:+.1f}",
        ]
        for r in reports
    ]
    request_rows = [
        [
            r.path,
            r.n,
            *(f"{r.per_vm[route]:.2f}" for route in PER_VM_ROUTES),
            f"{r.per_vm_total:.2f}",
            r.jobs_list_requests,
            "-" if r.polls is None else r.polls,
            "-" if r.list_pages_per_poll is None else f"{r.list_pages_per_poll:.2f}",
        ]
        for r in reports
    ]
    failures = target_failures(reports, options.page_size)
    verdict = (
        f"targets met: verifier wall/(D+P) <= {TARGET_RATIO} at every N, <= {TARGET_PER_VM:g} per-VM requests "
        "per VM, one paged job list per poll"
        if not failures
        else "targets NOT met: " + "; ".join(failures)
    )
    time_headers = ["path", "N", "wall s", "last POST s", "tail s", "wall/(D+P)", f"<= {TARGET_RATIO}"]
    return "\n".join(
        [
            f"D={d:g} s jobs, P={p} s polls (D+P={d + p:g} s), {options.page_size} jobs per list page, "
            f"{options.latency_ms:g} ms added per request, trigger operations InProgress for "
            f"{options.operation_delay:g} s;",
            f"verifier: {TRIGGER_WORKERS} trigger threads, a still-running trigger operation re-checked once per poll; "
            f"baseline: operation status polled every {OPERATION_POLL_SECONDS:g} s (az backup-now).",
            "",
            "Wall time and client memory. last POST: when the last backup was triggered (its job ends D later);",
            "tail: wall - last POST - D, from the last job's end to the run's end (detection, recovery point).",
            "Peak RSS: ru_maxrss of the client process, imports included; growth: highest RSS sampled during the run",
            "minus RSS at its start.",
            render_table([*time_headers, "peak RSS MB", "growth MB"], time_rows),
            "",
            "ARM requests per VM by route (emulator counters), and the vault-wide job list pages",
            render_table(
                ["path", "N", *PER_VM_ROUTES.values(), "per-VM total", "jobs.list", "polls", "list pages/poll"],
                request_rows,
            ),
            "",
            verdict,
        ]
    )


def parse_sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes are positive integers, comma-separated")
    return sizes


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="N=1 and 10, 2 s jobs, 1 s polls (CI, ~20 s)")
    parser.add_argument("--sizes", type=parse_sizes, help="comma-separated VM counts (default 1,50,200)")
    parser.add_argument("--job-seconds", type=float, help="emulated backup job duration D (default 20)")
    parser.add_argument("--poll-seconds", type=int, help="poll interval P of both paths (default 5)")
    parser.add_argument("--page-size", type=int, default=50, help="jobs per backupJobs list page (default 50)")
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="server-side delay added to every request (default 50)"
    )
    parser.add_argument(
        "--operation-delay", type=float, default=0.0, help="seconds a trigger operation stays InProgress"
    )
    parser.add_argument("--paths", default=",".join(PATHS), help="which of verifier,baseline to run (default both)")
    parser.add_argument("--json", metavar="PATH", help="also write the measurements as JSON to PATH")
    args = parser.parse_args(argv)
    options = Options(
        sizes=args.sizes or ((1, 10) if args.smoke else (1, 50, 200)),
        job_seconds=args.job_seconds if args.job_seconds is not None else (2.0 if args.smoke else 20.0),
        poll_seconds=args.poll_seconds if args.poll_seconds is not None else (1 if args.smoke else 5),
        page_size=args.page_size,
        latency_ms=args.latency_ms,
        operation_delay=args.operation_delay,
    )
    paths = [path for path in PATHS if path in args.paths.split(",")]
    if not paths:
        parser.error(f"--paths takes a comma-separated subset of {','.join(PATHS)}")
    reports = [measure(path, n, options) for n in options.sizes for path in paths]
    out(render(reports, options))
    if args.json:
        failures = target_failures(reports, options.page_size)
        document = {
            "options": asdict(options),
            "runs": [asdict(r) for r in reports],
            "targets": {"met": not failures, "failures": failures},
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
