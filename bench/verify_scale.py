"""Wall time and ARM requests of the initial-backup verifier from 1 to 2,000 VMs, with and without
ARM's throttling, next to a per-job CLI loop.

Run: ``venv/bin/python -m bench.verify_scale`` (about 10 minutes; ``--smoke`` for CI: N=1 and 10, and
10 VMs in 2 vaults under shrunken ARM buckets, 2 s jobs, 1 s polls, about 20 s). Options:
``--sizes 1,50,200,1000,2000x10`` (``NxV``: N VMs spread over V vaults of one subscription),
``--throttled-sizes 1000,2000x10``, ``--baseline-max 200``, ``--job-seconds 20``, ``--poll-seconds 5``,
``--latency-ms``, ``--operation-delay``, ``--page-size``, ``--json PATH``.

Each run gets a fresh local HTTPS emulator (``emulator.Emulator``) on its real-time clock, so a "20 s"
backup job takes 20 s of wall time, and fresh vaults with N protected VMs seeded over HTTPS. The client
side then runs in its own spawned process (the emulator lives in this one, standing in for Azure: it
does not share the client's GIL, and the client's peak RSS is its own):

* ``verifier``: the post-deploy hook's real code path, one ``protectedvm.verifier.InitialBackupVerifier``
  per vault (in threads of the one client process, as vaults verified by one process are, sharing its
  trigger pool), each over its own ``protectedvm.azure_client.BackupApi`` and SDK client
  (``verify="completed"``, poll P).
* ``baseline``: what a shell loop over the Azure CLI does, serially in one thread with the same SDK
  calls: per VM, ``az backup protection backup-now`` (POST, operation status until it names the job,
  then one ``job_details.get``: azure-cli's ``track_backup_job``), then per job ``az backup job wait``
  (``job_details.get``, and while InProgress: ``job_details.get``, sleep P). It does not look for a
  recovery point, so it proves less than the verifier. Run up to ``--baseline-max`` VMs only.

Two ARM models:

* **unthrottled**: an ARM without limits. The emulator does not enforce its buckets, and the client's
  pacer is off (it would otherwise obey the emulator's remaining-count headers, which keep counting).
  Reported: wall / (D + P) with D the job duration and P the poll interval. D is the floor (all jobs
  start at once and are seen the moment they end); D + P allows one poll interval of detection delay.
  Targets: <= 1.0 at 1,000 VMs in one vault, <= 1.05 otherwise.
* **throttled**: ARM's token buckets enforced (``Emulator(throttling=True)``: per subscription and
  principal, writes 200 + 10/s, reads 250 + 25/s, 429 + Retry-After), the product's pacer on. The
  triggers alone need (N - 200) / 10 s, which no client can beat, so the floor is (N - 200) / 10 + D
  (the last trigger's job still runs D). Reported: wall / floor (target <= 1.15) and the 429s
  answered; target: 0 VMs failed.

Also per run: ARM requests per VM by route, from the emulator's counters reset after seeding (the
per-VM routes: trigger, operation status, job GET, recovery point list) and in all (the vault-wide
``backupJobs`` list pages included; target <= 2.2 per VM from 1,000 VMs); VMs failed; peak RSS
(``ru_maxrss``) of the client process and how much its RSS grew during the run.

Every request gets ``--latency-ms`` (default 50) of server-side delay: a modest ARM round trip (they
are ~50-300 ms), which concurrent requests overlap and a serial loop pays in full. (The emulator's own
loopback answers take ~1 ms: it answers with Nagle's algorithm off.) By default D is a multiple of P;
other ``--job-seconds`` move where the last job's end falls between two polls. ``--operation-delay``
keeps trigger operations InProgress that long (the emulator's default, and this script's, is 0).
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

from components.config import InitialBackupSettings
from emulator import Emulator, StaticTokenCredential
from emulator.routes import Match, Request, Response
from emulator.seeding import protect, vm_ids
from emulator.throttle import ARM_LIMITS, BucketLimit
from protectedvm.azure_client import (
    CA_BUNDLE_ENV,
    ENDPOINT_ENV,
    BackupApi,
    JobInfo,
    OperationInfo,
    RecoveryPointInfo,
    make_sdk_client,
)
from protectedvm.ids import VaultRef, VmRef
from protectedvm.pacing import ArmPacer, Bucket
from protectedvm.verifier import COMPLETED, InitialBackupError, InitialBackupVerifier, utc_now
from protectedvm.verifier import TRIGGER_WORKERS as VERIFIER_TRIGGER_WORKERS
from rehearsal.table import render_table

SUB = "00000000-0000-0000-0000-0000000000b7"
PATHS = ("verifier", "baseline")
#: Requests made for one VM; everything else is a vault-wide list.
PER_VM_ROUTES = {
    "backup.trigger": "trigger",
    "backupOperations.get": "op status",
    "job.get": "job GET",
    "recoveryPoints.list": "RP list",
}
LIST_ROUTE = "jobs.list"
TARGET_RATIO_SMALL = 1.05
TARGET_RATIO_FLEET = 1.0
FLEET = 1000
TARGET_PER_VM_ROUTES = 2.2
TARGET_TOTAL_PER_VM = 2.2
TARGET_FLOOR_RATIO = 1.15
#: The verifier's default; the baseline polls trigger operations at the same pace.
OPERATION_POLL_SECONDS = 2.0
#: The verifier's default, one pool shared by the vaults of the process as ``InitialBackup`` runs it
#: (``--trigger-workers`` to try others).
TRIGGER_WORKERS = VERIFIER_TRIGGER_WORKERS
#: --smoke shrinks ARM's buckets so that 10 VMs meet the limits within seconds.
SMOKE_LIMITS = {"reads": BucketLimit(6, 12.5), "writes": BucketLimit(4, 5.0), "deletes": BucketLimit(4, 5.0)}


def vault_ref(index: int, vaults: int) -> VaultRef:
    return VaultRef(SUB, "rg-backup", "rsv-bench" if vaults == 1 else f"rsv-bench-{index:02d}")


# --- the client side, in a spawned process ---------------------------------------------------


@dataclass(frozen=True)
class ClientSpec:
    path: str
    #: One tuple of VM ids per vault.
    vaults: tuple[tuple[str, ...], ...]
    base_url: str
    ca_path: str
    job_seconds: float
    poll_seconds: int
    operation_poll_seconds: float
    trigger_workers: int
    timeout_minutes: int
    #: None: no client pacing (an ARM without limits); else the buckets the pacer mirrors.
    pacing: dict[str, tuple[int, float]] | None


@dataclass
class ClientOutcome:
    wall_seconds: float
    #: When the last backup POST was sent, from the start of the run: its job ends D later.
    last_trigger_seconds: float
    statuses: dict[str, int]
    failed_vms: int
    #: Jobs returned by each ``list_backup_jobs`` call, before the first trigger and after it (polls).
    lists_before_trigger: list[int] = field(default_factory=list)
    lists_after_trigger: list[int] = field(default_factory=list)
    #: ``ru_maxrss``: the process's peak, imports included.
    max_rss_kb: int = 0
    #: Highest RSS sampled during the run minus RSS when it started.
    run_rss_growth_kb: int = 0
    #: Seconds the pacer held requests, and the 429s it saw, per kind.
    paced_seconds: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class CountingApi:
    """``BackupApi`` as the verifier sees it, noting the size of every job list (to tell the
    pre-trigger look from the polls) without changing a single request."""

    def __init__(self, api: BackupApi, started: float) -> None:
        self.api = api
        self.started = started
        self.last_trigger = 0.0
        self.triggered = False
        self.before: list[int] = []
        self.after: list[int] = []
        self._lock = threading.Lock()

    def set_time_budget(self, time_left: Callable[[], float] | None) -> None:
        self.api.set_time_budget(time_left)

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str:
        with self._lock:
            self.triggered = True
        operation_id = self.api.trigger_backup(vm, expiry)
        with self._lock:
            self.last_trigger = max(self.last_trigger, time.perf_counter() - self.started)
        return operation_id

    def operation_status(self, operation_id: str) -> OperationInfo:
        return self.api.operation_status(operation_id)

    streams_job_pages = True

    def list_backup_jobs(
        self,
        start: dt.datetime,
        end: dt.datetime,
        status: str | None = None,
        on_page: Callable[[list[JobInfo]], None] | None = None,
    ) -> list[JobInfo]:
        jobs = self.api.list_backup_jobs(start, end, status, on_page)
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
    pacer = (
        ArmPacer({kind: Bucket(size, rate) for kind, (size, rate) in spec.pacing.items()})
        if spec.pacing is not None
        else None
    )
    settings = InitialBackupSettings(
        verify="completed", retain_days=30, timeout_minutes=spec.timeout_minutes, poll_seconds=spec.poll_seconds
    )
    started = time.perf_counter()
    apis = [
        CountingApi(
            BackupApi(
                make_sdk_client(SUB, StaticTokenCredential(), pacing=pacer or False), vault_ref(i, len(spec.vaults))
            ),
            started,
        )
        for i in range(len(spec.vaults))
    ]
    statuses: Counter[str] = Counter()
    errors: list[str] = []
    failed = 0
    lock = threading.Lock()

    def verify(index: int) -> None:
        nonlocal failed
        vms = [VmRef.from_id(vm_id) for vm_id in spec.vaults[index]]
        # Real clock and sleep: the emulator runs on real time (time_scale 1), so utc_now() is its clock.
        verifier = InitialBackupVerifier(
            apis[index], settings, vault_name=vault_ref(index, len(spec.vaults)).name,
            trigger_workers=spec.trigger_workers,
        )
        try:
            found = [r.status for r in verifier.run(vms).values()]
        except InitialBackupError as error:
            found = [r.status for r in error.results.values()]
            with lock:
                failed += len(error.failures) + len(error.timeouts)
                errors.append(str(error)[:2000])
        with lock:
            statuses.update(found)

    with RssSampler() as rss:
        for api in apis:
            api.started = started = time.perf_counter()
        if spec.path == "verifier":
            threads = [threading.Thread(target=verify, args=(i,)) for i in range(len(spec.vaults))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            vms = [VmRef.from_id(vm_id) for vm_id in spec.vaults[0]]
            statuses.update(cli_loop(apis[0], vms, spec.poll_seconds, spec.operation_poll_seconds))
        wall = time.perf_counter() - started
    for api in apis:
        api.api.close()
    return ClientOutcome(
        wall_seconds=wall,
        last_trigger_seconds=max(api.last_trigger for api in apis),
        statuses=dict(statuses),
        failed_vms=failed,
        lists_before_trigger=[n for api in apis for n in api.before],
        lists_after_trigger=[n for api in apis for n in api.after],
        max_rss_kb=_max_rss_kb(),
        run_rss_growth_kb=rss.peak_kb - rss.start_kb,
        paced_seconds=dict(pacer.waited) if pacer is not None else {},
        errors=errors,
    )


# --- the emulator side, in this process ------------------------------------------------------


@dataclass(frozen=True)
class Size:
    n: int
    vaults: int = 1

    @property
    def label(self) -> str:
        return f"{self.n}" if self.vaults == 1 else f"{self.n}x{self.vaults}"


@dataclass(frozen=True)
class Options:
    sizes: tuple[Size, ...]
    throttled_sizes: tuple[Size, ...]
    baseline_max: int
    job_seconds: float
    poll_seconds: int
    page_size: int
    latency_ms: float
    operation_delay: float
    limits: dict[str, tuple[int, float]]
    trigger_workers: int = TRIGGER_WORKERS


@dataclass
class RunReport:
    path: str
    n: int
    vaults: int
    throttled: bool
    wall_seconds: float
    last_trigger_seconds: float
    #: wall / (D + P) unthrottled, wall / the throttled floor when throttled.
    ratio: float
    floor_seconds: float
    per_vm: dict[str, float]
    per_vm_total: float
    requests_per_vm: float
    jobs_list_requests: int
    polls: int | None
    list_pages_per_poll: float | None
    other_requests: dict[str, int]
    throttled_429s: int
    failed_vms: int
    peak_rss_mb: float
    rss_growth_mb: float
    statuses: dict[str, int]
    paced_seconds: dict[str, float]


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


def throttled_floor(n: int, options: Options) -> float:
    """(N - writes bucket) / writes refill + D: the last trigger cannot be sent earlier, its job runs D."""
    size, rate = options.limits["writes"]
    return max(0, n - size) / rate + options.job_seconds


def measure(path: str, size: Size, throttled: bool, options: Options) -> RunReport:
    spawn = multiprocessing.get_context("spawn")
    n = size.n
    floor = throttled_floor(n, options) if throttled else options.job_seconds + options.poll_seconds
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        started = pool.submit(ready)
        with Emulator(
            job_duration=options.job_seconds,
            operation_delay=options.operation_delay,
            page_size=options.page_size,
            throttling=throttled,
        ) as emu:
            emu.throttle.limits.update({k: BucketLimit(*v) for k, v in options.limits.items()})
            ids = vm_ids(SUB, "rg-app", n)
            per_vault = [tuple(ids[i :: size.vaults]) for i in range(size.vaults)]
            emu.throttle.enforce = False  # seeding is the deployment's business, not the verifier's
            for index, vault_ids in enumerate(per_vault):
                protect(emu, vault_ref(index, size.vaults), vault_ids)
            add_latency(emu, options.latency_ms / 1000)
            started.result()
            # Fresh buckets and counters for the run itself.
            emu.throttle = type(emu.throttle)(emu.clock, enforce=throttled, limits=emu.throttle.limits)
            emu.reset_counts()
            spec = ClientSpec(
                path=path,
                vaults=tuple(per_vault),
                base_url=emu.base_url,
                ca_path=emu.ca_path,
                job_seconds=options.job_seconds,
                poll_seconds=options.poll_seconds,
                operation_poll_seconds=OPERATION_POLL_SECONDS,
                trigger_workers=options.trigger_workers,
                timeout_minutes=max(10, math.ceil(4 * floor / 60)),
                pacing=options.limits if throttled else None,
            )
            outcome = pool.submit(run_client, spec).result()
            counts = emu.counts
            refused = sum(emu.throttle.refused.values())
    if set(outcome.statuses) - COMPLETED and not throttled:
        raise RuntimeError(f"{path} N={size.label}: not every backup completed: {outcome.statuses} {outcome.errors}")
    for error in outcome.errors:
        print(f"{path} N={size.label}: {error}", file=sys.stderr)
    per_vm = {route: counts[route] / n for route in PER_VM_ROUTES}
    jobs_list = counts[LIST_ROUTE]
    polls = len(outcome.lists_after_trigger) if path == "verifier" else None
    pages_per_poll = None
    if polls:
        pre_trigger_pages = sum(pages(jobs, options.page_size) for jobs in outcome.lists_before_trigger)
        pages_per_poll = (jobs_list - pre_trigger_pages) / polls
    return RunReport(
        path=path,
        n=n,
        vaults=size.vaults,
        throttled=throttled,
        wall_seconds=outcome.wall_seconds,
        last_trigger_seconds=outcome.last_trigger_seconds,
        ratio=outcome.wall_seconds / floor,
        floor_seconds=floor,
        per_vm=per_vm,
        per_vm_total=sum(per_vm.values()),
        requests_per_vm=sum(counts.values()) / n,
        jobs_list_requests=jobs_list,
        polls=polls,
        list_pages_per_poll=pages_per_poll,
        other_requests={k: v for k, v in counts.items() if k not in PER_VM_ROUTES and k != LIST_ROUTE},
        throttled_429s=refused,
        failed_vms=outcome.failed_vms,
        peak_rss_mb=outcome.max_rss_kb / 1024,
        rss_growth_mb=outcome.run_rss_growth_kb / 1024,
        statuses=outcome.statuses,
        paced_seconds=outcome.paced_seconds,
    )


def target_ratio(r: RunReport) -> float:
    if r.throttled:
        return TARGET_FLOOR_RATIO
    return TARGET_RATIO_FLEET if r.n >= FLEET and r.vaults == 1 else TARGET_RATIO_SMALL


def target_failures(reports: Sequence[RunReport]) -> list[str]:
    failures = []
    for r in reports:
        if r.path != "verifier":
            continue
        label = f"N={r.n}{'' if r.vaults == 1 else f' in {r.vaults} vaults'}{' throttled' if r.throttled else ''}"
        if r.failed_vms:
            failures.append(f"{label}: {r.failed_vms} VM(s) failed")
        if r.ratio > target_ratio(r):
            what = "wall/floor" if r.throttled else "wall/(D+P)"
            failures.append(f"{label}: {what} {r.ratio:.3f} > {target_ratio(r)}")
        if r.per_vm_total > TARGET_PER_VM_ROUTES:
            failures.append(f"{label}: {r.per_vm_total:.2f} per-VM requests per VM > {TARGET_PER_VM_ROUTES:g}")
        if r.n >= FLEET and r.requests_per_vm > TARGET_TOTAL_PER_VM:
            failures.append(f"{label}: {r.requests_per_vm:.2f} requests per VM > {TARGET_TOTAL_PER_VM:g}")
        if r.other_requests:
            failures.append(f"{label}: unexpected requests {r.other_requests}")
    return failures


def render(reports: Sequence[RunReport], options: Options) -> str:
    d, p = options.job_seconds, options.poll_seconds
    writes, reads = options.limits["writes"], options.limits["reads"]

    def size_label(r: RunReport) -> str:
        return f"{r.n}" if r.vaults == 1 else f"{r.n}x{r.vaults}"

    def ok(r: RunReport) -> str:
        if r.path != "verifier":
            return "-"
        return "ok" if r.ratio <= target_ratio(r) and not r.failed_vms else "MISSED"

    time_rows = [
        [
            r.path,
            size_label(r),
            "throttled" if r.throttled else "none",
            f"{r.wall_seconds:.1f}",
            f"{r.last_trigger_seconds:.1f}",
            f"{r.wall_seconds - r.last_trigger_seconds - d:.1f}",
            f"{r.floor_seconds:.0f}",
            f"{r.ratio:.3f}",
            f"{target_ratio(r):g}" if r.path == "verifier" else "-",
            ok(r),
            r.throttled_429s,
            r.failed_vms,
            f"{r.peak_rss_mb:.0f}",
            f"{r.rss_growth_mb:+.1f}",
        ]
        for r in reports
    ]
    request_rows = [
        [
            r.path,
            size_label(r),
            "throttled" if r.throttled else "none",
            *(f"{r.per_vm[route]:.2f}" for route in PER_VM_ROUTES),
            f"{r.per_vm_total:.2f}",
            r.jobs_list_requests,
            "-" if r.polls is None else r.polls,
            "-" if r.list_pages_per_poll is None else f"{r.list_pages_per_poll:.2f}",
            f"{r.requests_per_vm:.2f}",
        ]
        for r in reports
    ]
    failures = target_failures(reports)
    verdict = (
        "targets met: 0 VMs failed; unthrottled wall/(D+P) <= "
        f"{TARGET_RATIO_SMALL} (<= {TARGET_RATIO_FLEET} from {FLEET} VMs in one vault); throttled wall <= "
        f"{TARGET_FLOOR_RATIO} x floor; <= {TARGET_PER_VM_ROUTES:g} per-VM requests per VM "
        f"(<= {TARGET_TOTAL_PER_VM:g} in all from {FLEET} VMs)"
        if not failures
        else "targets NOT met: " + "; ".join(failures)
    )
    time_headers = [
        "path", "N", "ARM limits", "wall s", "last POST s", "tail s", "floor s", "wall/floor", "target", "",
        "429s", "failed", "peak RSS MB", "growth MB",
    ]
    return "\n".join(
        [
            f"D={d:g} s jobs, P={p} s polls, {options.page_size} jobs per list page, {options.latency_ms:g} ms added "
            f"per request, trigger operations InProgress for {options.operation_delay:g} s; NxV = N VMs in V vaults;",
            f"throttled: ARM's buckets enforced per subscription and principal (writes {writes[0]} +{writes[1]:g}/s, "
            f"reads {reads[0]} +{reads[1]:g}/s) and the client paces; none: no limits, no pacing.",
            f"verifier: {options.trigger_workers} trigger threads shared by the vaults; baseline: operation status "
            f"polled every {OPERATION_POLL_SECONDS:g} s (az backup-now).",
            "",
            "Wall time and client memory. floor: D+P without limits, (N - writes bucket) / refill + D throttled;",
            "last POST: when the last backup was triggered (its job ends D later); tail: wall - last POST - D.",
            "Peak RSS: ru_maxrss of the client process, imports included; growth: highest RSS sampled during the run",
            "minus RSS at its start.",
            render_table(time_headers, time_rows),
            "",
            "ARM requests per VM by route (emulator counters, 429s included), the vault-wide job list pages, and all",
            render_table(
                [
                    "path", "N", "ARM limits", *PER_VM_ROUTES.values(), "per-VM total", "jobs.list", "polls",
                    "list pages/poll", "all per VM",
                ],
                request_rows,
            ),
            "",
            verdict,
        ]
    )


def parse_sizes(text: str) -> tuple[Size, ...]:
    sizes = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        n, _, vaults = part.partition("x")
        try:
            size = Size(int(n), int(vaults) if vaults else 1)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{part!r}: sizes are N or NxV (N VMs in V vaults)") from error
        if size.n < 1 or size.vaults < 1 or size.vaults > size.n:
            raise argparse.ArgumentTypeError(f"{part!r}: N >= V >= 1")
        sizes.append(size)
    return tuple(sizes)


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="N=1 and 10, 10x2 throttled under small buckets, 2 s jobs (CI, ~20 s)"
    )
    parser.add_argument("--sizes", type=parse_sizes, help="unthrottled runs (default 1,50,200,1000,2000x10)")
    parser.add_argument("--throttled-sizes", type=parse_sizes, help="throttled runs (default 1000,2000x10)")
    parser.add_argument("--baseline-max", type=int, default=200, help="largest N the CLI loop runs (default 200)")
    parser.add_argument("--job-seconds", type=float, help="emulated backup job duration D (default 20)")
    parser.add_argument("--poll-seconds", type=int, help="poll interval P of both paths (default 5)")
    parser.add_argument("--page-size", type=int, default=50, help="jobs per backupJobs list page (default 50)")
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="server-side delay added to every request (default 50)"
    )
    parser.add_argument(
        "--operation-delay", type=float, default=0.0, help="seconds a trigger operation stays InProgress"
    )
    parser.add_argument(
        "--trigger-workers",
        type=int,
        default=TRIGGER_WORKERS,
        help=f"trigger threads shared by the vaults ({TRIGGER_WORKERS})",
    )
    parser.add_argument("--paths", default=",".join(PATHS), help="which of verifier,baseline to run (default both)")
    parser.add_argument("--json", metavar="PATH", help="also write the measurements as JSON to PATH")
    args = parser.parse_args(argv)
    limits = SMOKE_LIMITS if args.smoke else ARM_LIMITS
    options = Options(
        sizes=args.sizes if args.sizes is not None else parse_sizes("1,10" if args.smoke else "1,50,200,1000,2000x10"),
        throttled_sizes=(
            args.throttled_sizes
            if args.throttled_sizes is not None
            else parse_sizes("10x2" if args.smoke else "1000,2000x10")
        ),
        baseline_max=args.baseline_max,
        job_seconds=args.job_seconds if args.job_seconds is not None else (2.0 if args.smoke else 20.0),
        poll_seconds=args.poll_seconds if args.poll_seconds is not None else (1 if args.smoke else 5),
        page_size=args.page_size,
        latency_ms=args.latency_ms,
        operation_delay=args.operation_delay,
        limits={kind: (limit.size, limit.refill_per_second) for kind, limit in limits.items()},
        trigger_workers=args.trigger_workers,
    )
    paths = [path for path in PATHS if path in args.paths.split(",")]
    if not paths:
        parser.error(f"--paths takes a comma-separated subset of {','.join(PATHS)}")
    runs = [
        (path, size, False)
        for size in options.sizes
        for path in paths
        if path == "verifier" or (size.n <= options.baseline_max and size.vaults == 1)
    ]
    runs += [("verifier", size, True) for size in options.throttled_sizes if "verifier" in paths]
    reports = [measure(path, size, throttled, options) for path, size, throttled in runs]
    out(render(reports, options))
    if args.json:
        failures = target_failures(reports)
        document = {
            "options": asdict(options),
            "runs": [asdict(r) for r in reports],
            "targets": {"met": not failures, "failures": failures},
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
