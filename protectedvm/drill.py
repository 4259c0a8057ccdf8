"""The restore drill: prove that a VM *can be restored*, not only that it was backed up.

A recovery point nobody restored is a hope. For a sample of the stack's VMs the drill restores the
latest recovery point's disks as managed disks into a staging resource group (Azure's
"RestoreDisks" restore type, ``IaasVMRestoreRequest``), waits for the Restore jobs, checks that the
restored disks exist and that there are as many as the recovery point holds, measures how long it took (the
RTO actually achieved), then deletes what it created -- and only that.

One run:

1. **Input checks** (exit 2 in the CLI): the staging resource group must not hold any stack VM or
   vault (a drill never restores next to production), the sample must name stack VMs.
2. **Leftovers**: disks in the staging group tagged ``protectedvm-drill`` by an earlier, interrupted
   run are deleted first (each re-read and its tag checked right before the DELETE).
3. **Refuse to restore over anything**: a VM whose restored disks could collide with a disk already in
   the staging group (a disk named after the VM or one of its disks, without the drill's tag) is not
   restored; it is reported as failed, naming that disk.
4. **Restore** each VM's newest recovery point (one ``recoveryPoints`` list, one restore POST, one
   operation status per VM; a bounded pool of threads, like the initial backup's triggers).
5. **Wait in one batched loop** on a fixed cadence: per poll, ONE ``backupJobs`` list per vault
   (``operation eq 'Restore'``), never a GET per job; when jobs complete, ONE disk list of the staging
   group. New disks (absent before the run) are attributed to a completed VM by name -- they start
   with the VM's name or one of its source disks' names -- then tagged ``protectedvm-drill=<run id>``
   at once, and counted against the disks the recovery point holds: its
   ``recoveryPointDiskConfiguration.numberOfDisksIncludedInBackup`` when Azure gives it (a VM with
   selective disk backup restores only its included disks), else the source VM's disk count.
6. **Clean up** in a ``finally`` (failures, ``KeyboardInterrupt``; the CLI turns SIGTERM into one):
   attribute and tag any disk that appeared since, then delete every disk carrying this run's tag,
   after re-reading it and checking the tag. A disk without the tag is never deleted.

Known limit: a run interrupted while a Restore job is still running cannot tag disks that do not
exist yet. Those disks appear untagged; the next run refuses to restore over them (step 3) and names
them, so they are deleted by a person, never guessed at by the drill.

Azure APIs: ``restores.begin_trigger`` (202 + ``Azure-AsyncOperation``), ``backup_operation_statuses``,
``backup_jobs.list``, ``job_details.get`` (only for a failure the list does not detail), and the
Microsoft.Compute VM GET, disk list/get/PATCH tags/DELETE behind :class:`DiskApiLike`, so the emulator or
a fake can serve them. Nothing here imports Pulumi.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar

from azure.core.exceptions import AzureError

from protectedvm.azure_client import (
    DiskInfo,
    JobInfo,
    OperationInfo,
    RecoveryPointInfo,
    RestoreTarget,
    SourceVm,
    error_code,
    first_line,
)
from protectedvm.health import ProtectedVmEntry
from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import COMPLETED, FAILED, iso, utc_now

LOG = logging.getLogger("protectedvm.drill")

#: The tag every disk the drill creates carries (value: the run id); the only thing it deletes.
DRILL_TAG = "protectedvm-drill"
#: Which VM a drill disk was restored from (for people reading the staging group).
DRILL_VM_TAG = "protectedvm-drill-vm"
RESTORE_OPERATION = "Restore"
#: Restore jobs are looked for from a little before the first trigger (clock skew with Azure).
CLOCK_SLACK = dt.timedelta(minutes=5)
DEFAULT_SAMPLE = 1
_T = TypeVar("_T")


class DrillInputError(ValueError):
    """Unusable drill input (CLI exit 2): one message naming the setting, the value, what is allowed."""


class RestoreApiLike(Protocol):
    """The backup calls the drill makes; :class:`protectedvm.azure_client.BackupApi` has them."""

    def recovery_points(self, vm: VmRef) -> list[RecoveryPointInfo]: ...
    def trigger_restore(self, vm: VmRef, recovery_point: str, target: RestoreTarget) -> str: ...
    def operation_status(self, operation_id: str) -> OperationInfo: ...
    def list_jobs(
        self, start: dt.datetime, end: dt.datetime, operation: str, status: str | None = None
    ) -> list[JobInfo]: ...
    def get_job(self, job_id: str) -> JobInfo: ...


class DiskApiLike(Protocol):
    """The Microsoft.Compute calls; :class:`protectedvm.azure_client.ComputeApi` has them."""

    def source_vm(self, vm_id: str) -> SourceVm: ...
    def list_disks(self, resource_group_id: str) -> list[DiskInfo]: ...
    def get_disk(self, disk_id: str) -> DiskInfo | None: ...
    def set_disk_tags(self, disk_id: str, tags: Mapping[str, str]) -> None: ...
    def delete_disk(self, disk_id: str) -> None: ...


@dataclass(frozen=True)
class Staging:
    """The drill's required inputs: where restored disks and the restore's config blobs go."""

    subscription_id: str
    resource_group: str
    storage_account_id: str
    #: The restore's region; None = the source VM's (which is its vault's: Azure Backup is regional).
    region: str | None = None

    @property
    def resource_group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @staticmethod
    def parse(resource_group: str, storage_account_id: str, region: str | None = None) -> Staging:
        """``resource_group`` is a resource group id, or a name in the storage account's subscription."""
        parts = [p for p in storage_account_id.strip().split("/") if p]
        lowered = [p.lower() for p in parts]
        if (
            len(parts) != 8
            or lowered[0] != "subscriptions"
            or lowered[2] != "resourcegroups"
            or lowered[4:7] != ["providers", "microsoft.storage", "storageaccounts"]
        ):
            raise DrillInputError(
                f"--staging-storage-account {storage_account_id!r} is not a storage account id: expected "
                "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>"
            )
        group = [p for p in resource_group.strip().split("/") if p]
        if len(group) == 1 and group[0]:
            return Staging(parts[1], group[0], storage_account_id.strip(), region)
        if len(group) == 4 and group[0].lower() == "subscriptions" and group[2].lower() == "resourcegroups":
            return Staging(group[1], group[3], storage_account_id.strip(), region)
        raise DrillInputError(
            f"--staging-resource-group {resource_group!r} is not a resource group name or id "
            "(/subscriptions/<id>/resourceGroups/<name>)"
        )


@dataclass
class DrillRow:
    """One drilled VM; the table row and the JSON object."""

    vm_name: str
    vm_id: str
    vault_name: str
    recovery_point: str | None = None
    recovery_point_time: str | None = None
    recovery_point_age_hours: float | None = None
    restore_job_id: str | None = None
    status: str = "NotStarted"
    error_code: str | None = None
    #: Trigger to restored disks verified, on the drill's clock: the RTO achieved.
    rto_seconds: float | None = None
    #: The Restore job's own duration (Azure's start/end).
    job_seconds: float | None = None
    disks_expected: int | None = None
    #: Where ``disks_expected`` comes from: "recovery point" (its numberOfDisksIncludedInBackup) or
    #: "source VM" (its disk count, when the point does not say).
    disks_expected_from: str | None = None
    #: The point's numberOfDisksAttachedToVm, when it says (selective backup: fewer included than attached).
    disks_attached: int | None = None
    disks_restored: list[str] = field(default_factory=list)
    disks_deleted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.status in COMPLETED

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class DrillReport:
    run_id: str
    rows: list[DrillRow]
    leftovers_deleted: list[str] = field(default_factory=list)
    #: Disks this run created and could not delete (should stay empty).
    not_cleaned: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: An Azure error that stopped the drill as a whole (e.g. the staging group unreadable).
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            bool(self.rows)
            and all(row.ok for row in self.rows)
            and not self.not_cleaned
            and not self.interrupted
            and self.error is None
        )


# --- sampling --------------------------------------------------------------------------------


def select_vms(
    entries: Sequence[ProtectedVmEntry],
    *,
    names: Sequence[str] = (),
    sample: int | None = None,
    today: dt.date | None = None,
) -> list[ProtectedVmEntry]:
    """``names`` (VM names or ids) if given; else a rotating sample of ``sample`` VMs: the VMs sorted
    by id, a window that moves by ``sample`` every ISO week, so with N VMs every VM is drilled at least
    once every ceil(N / sample) weeks and two runs in one week drill the same VMs."""
    ordered = sorted(entries, key=lambda e: e.vm.key)
    if names:
        picked: list[ProtectedVmEntry] = []
        for name in names:
            wanted = name.strip().lower()
            match = [e for e in ordered if wanted in (e.vm.name.lower(), e.vm.key)]
            if not match:
                known = ", ".join(e.vm.name for e in ordered)
                raise DrillInputError(f"--vm {name!r} is not a VM of the stack outputs; the stack has: {known}")
            picked += [e for e in match if e not in picked]
        return picked
    count = DEFAULT_SAMPLE if sample is None else sample
    if count < 1:
        raise DrillInputError(f"--sample {count} is out of range: allowed 1 or more VMs")
    if count >= len(ordered):
        return ordered
    day = today or utc_now().date()
    week = (day - dt.timedelta(days=day.weekday())).toordinal() // 7  # consecutive across year ends
    start = (week * count) % len(ordered)
    return [ordered[(start + i) % len(ordered)] for i in range(count)]


def check_staging(staging: Staging, entries: Iterable[ProtectedVmEntry]) -> None:
    """The staging group must hold no stack VM and no vault: the drill deletes in it."""
    target = staging.resource_group_id.lower()
    for entry in entries:
        for what, rid, ref in (
            ("VM", entry.vm.vm_id, (entry.vm.subscription_id, entry.vm.resource_group)),
            ("vault", entry.vault.id, (entry.vault.subscription_id, entry.vault.resource_group)),
        ):
            if f"/subscriptions/{ref[0]}/resourcegroups/{ref[1]}".lower() == target:
                raise DrillInputError(
                    f"--staging-resource-group {staging.resource_group!r} holds the stack's {what} {rid}: "
                    "use a resource group dedicated to restore drills"
                )


# --- the drill -------------------------------------------------------------------------------


@dataclass
class _Pending:
    row: DrillRow
    entry: ProtectedVmEntry
    source: SourceVm
    operation_id: str | None = None
    triggered_at: dt.datetime | None = None
    job: JobInfo | None = None


class RestoreDrill:
    def __init__(
        self,
        api_factory: Callable[[VaultRef], RestoreApiLike],
        disks: DiskApiLike,
        staging: Staging,
        *,
        poll_seconds: float = 30.0,
        timeout_minutes: float = 360.0,
        max_rto_minutes: float | None = None,
        max_rp_age_hours: float | None = None,
        workers: int = 16,
        clock: Callable[[], dt.datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] | None = None,
        run_id: str | None = None,
    ) -> None:
        self.api_factory = api_factory
        self.disks = disks
        self.staging = staging
        self.poll_seconds = poll_seconds
        self.timeout = dt.timedelta(minutes=timeout_minutes)
        self.max_rto = dt.timedelta(minutes=max_rto_minutes) if max_rto_minutes else None
        self.max_rp_age = dt.timedelta(hours=max_rp_age_hours) if max_rp_age_hours else None
        self.workers = workers
        self.clock = clock
        self.sleep = sleep
        sink = log or (lambda message: LOG.info("%s", message))
        log_lock = threading.Lock()

        def serialized(message: str) -> None:
            # Restores start from pool threads; one line at a time (print writes text and newline apart).
            with log_lock:
                sink(message)

        self.log = serialized
        self.run_id = run_id or f"{clock().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
        self._apis: dict[str, RestoreApiLike] = {}
        self._lock = threading.Lock()
        #: Disk ids (lower-cased) present before any restore of this run: never ours.
        self._before: set[str] = set()
        #: Disk id (lower-cased) -> the VM key it was attributed to and tagged for.
        self._ours: dict[str, tuple[str, DiskInfo]] = {}
        #: Every VM whose restore was POSTed, registered before the POST so an interruption sees it.
        self._started: list[_Pending] = []

    # -- public ----------------------------------------------------------------------------
    def run(self, entries: Sequence[ProtectedVmEntry], all_entries: Sequence[ProtectedVmEntry] = ()) -> DrillReport:
        check_staging(self.staging, all_entries or entries)
        report = DrillReport(self.run_id, [])
        try:
            report.leftovers_deleted = self.remove_leftovers()
            existing = self.disks.list_disks(self.staging.resource_group_id)
            self._before = {disk.id.lower() for disk in existing}
            for entry in entries:
                report.rows.append(DrillRow(entry.vm.name, entry.vm.vm_id, entry.vault.name))
            work = list(zip(entries, report.rows, strict=True))
            sources = self._concurrently(lambda item: self._source(item[0], item[1]), work)
            known = [(e.vm, src) for (e, _), src in zip(work, sources, strict=True) if isinstance(src, SourceVm)]
            clashes: dict[str, list[str]] = {}
            for disk in existing:
                owner = _owner(disk.name, known)
                if owner is not None:
                    clashes.setdefault(owner.key, []).append(disk.name)
            starts = [
                (entry, row, src, clashes.get(entry.vm.key, []))
                for (entry, row), src in zip(work, sources, strict=True)
                if isinstance(src, SourceVm)
            ]
            self._concurrently(lambda item: self._start(*item), starts)
            self._wait(self._started)
        except AzureError as error:
            report.error = f"drill stopped by an Azure error: {error_code(error)}: {first_line(error)}"
            self.log(report.error)
        except KeyboardInterrupt:
            report.interrupted = True
            for item in self._started:
                if item.row.status not in COMPLETED | FAILED:
                    item.row.problems.append("interrupted before the restore finished")
            self.log("interrupted: cleaning up what this run created")
        finally:
            try:
                report.not_cleaned = self._clean_up(self._started, report.rows)
            except AzureError as error:
                report.error = report.error or f"cleanup stopped by an Azure error: {error_code(error)}"
                report.not_cleaned = sorted(disk.name for _, disk in self._ours.values())
        return report

    def remove_leftovers(self) -> list[str]:
        """Delete disks an earlier run tagged and could not delete (interrupted, or a failed DELETE)."""
        tagged = [disk for disk in self.disks.list_disks(self.staging.resource_group_id) if DRILL_TAG in disk.tags]
        results = self._concurrently(lambda disk: self._delete_if_tagged(disk.id, disk.tags[DRILL_TAG]), tagged)
        deleted = [disk.name for disk, gone in zip(tagged, results, strict=True) if gone]
        for disk in tagged:
            if disk.name in deleted:
                self.log(f"leftover of drill run {disk.tags[DRILL_TAG]} deleted: {disk.name}")
        return deleted

    # -- steps -----------------------------------------------------------------------------
    def _api(self, vault: VaultRef) -> RestoreApiLike:
        with self._lock:
            key = vault.id.lower()
            if key not in self._apis:
                self._apis[key] = self.api_factory(vault)
            return self._apis[key]

    def _source(self, entry: ProtectedVmEntry, row: DrillRow) -> SourceVm | None:
        """The source VM's disks (what a restore must bring back); None if unreadable (row failed)."""
        try:
            source = self.disks.source_vm(entry.vm.vm_id)
        except AzureError as error:
            return self._fail(row, error_code(error), f"source VM unreadable: {error_code(error)}")
        row.disks_expected, row.disks_expected_from = len(source.disk_names), "source VM"
        return source

    def _start(self, entry: ProtectedVmEntry, row: DrillRow, source: SourceVm, clashes: list[str]) -> _Pending | None:
        vm = entry.vm
        if clashes:
            return self._fail(
                row,
                "StagingNotEmpty",
                f"refused: the staging resource group {self.staging.resource_group} already holds "
                f"{', '.join(sorted(clashes))} (not tagged {DRILL_TAG}); delete it or use another staging group",
            )
        api = self._api(entry.vault)
        try:
            points = api.recovery_points(vm)
        except AzureError as error:
            return self._fail(row, error_code(error), f"recovery points unreadable: {error_code(error)}")
        dated = [p for p in points if p.time is not None]
        if not dated:
            return self._fail(row, "NoRecoveryPoint", "no recovery point to restore")
        point = max(dated, key=lambda p: p.time or dt.datetime.min.replace(tzinfo=dt.UTC))
        assert point.time is not None
        age = self.clock() - point.time
        row.recovery_point, row.recovery_point_time = point.name, iso(point.time)
        if point.disks_included is not None:
            # Selective disk backup: a restore brings back only the disks the point includes (docs:
            # selective-disk-backup-restore), so the point, not the VM, says how many to expect.
            row.disks_expected, row.disks_expected_from = point.disks_included, "recovery point"
            row.disks_attached = point.disks_attached
        row.recovery_point_age_hours = round(age.total_seconds() / 3600, 2)
        if self.max_rp_age is not None and age > self.max_rp_age:
            row.problems.append(
                f"recovery point is {age.total_seconds() / 3600:.1f} h old, over --max-rp-age-hours "
                f"{self.max_rp_age.total_seconds() / 3600:g}"
            )
        target = RestoreTarget(
            self.staging.resource_group_id, self.staging.storage_account_id, self.staging.region or source.location
        )
        item = _Pending(row, entry, source, triggered_at=self.clock())
        with self._lock:
            self._started.append(item)
        try:
            item.operation_id = api.trigger_restore(vm, point.name, target)
        except AzureError as error:
            return self._fail(row, error_code(error), f"restore not accepted: {error_code(error)}")
        row.status = "Triggered"
        self.log(f"{vm.name}: restore of recovery point {point.name} ({iso(point.time)}) triggered")
        try:
            self._resolve_operation(api, item)
        except AzureError as error:  # the restore was accepted: the poll loop asks again
            self.log(f"{vm.name}: operation status failed ({error_code(error)}); asking again at the next poll")
        return item if row.status not in FAILED else None

    def _resolve_operation(self, api: RestoreApiLike, item: _Pending) -> None:
        assert item.operation_id is not None
        status = api.operation_status(item.operation_id)
        if status.status == "Failed":
            code = status.error_code or "Unknown"
            item.row.status, item.row.error_code = "Failed", code
            item.row.problems.append(f"restore failed: {code}: {status.error_message or ''}".rstrip(": "))
        elif status.job_id:
            item.row.restore_job_id = status.job_id
            item.row.status = "InProgress"
            self.log(f"{item.row.vm_name}: restore job {status.job_id} accepted")

    def _wait(self, pending: list[_Pending]) -> None:
        waiting = [p for p in pending if p.row.status not in FAILED]
        if not waiting:
            return
        first = min(p.triggered_at or self.clock() for p in waiting)
        window_start = first - CLOCK_SLACK
        deadline = first + self.timeout
        next_poll = self.clock() + dt.timedelta(seconds=self.poll_seconds)
        while waiting:
            self.sleep(max(0.0, (next_poll - self.clock()).total_seconds()))
            now = self.clock()
            next_poll = max(next_poll + dt.timedelta(seconds=self.poll_seconds), now)
            done = self._poll(waiting, window_start, now)
            if done:
                self._verify_disks(done)
            waiting = [p for p in waiting if p.row.status not in COMPLETED | FAILED]
            if waiting and now >= deadline:
                for item in waiting:
                    item.row.problems.append(
                        f"restore job {item.row.restore_job_id or '(not found)'} still "
                        f"{item.row.status} after {self.timeout.total_seconds() / 60:g} min"
                    )
                return

    def _poll(self, waiting: list[_Pending], start: dt.datetime, now: dt.datetime) -> list[_Pending]:
        """One Restore job list per vault; returns the items whose job completed in this poll."""
        completed: list[_Pending] = []
        by_vault: dict[str, list[_Pending]] = {}
        for item in waiting:
            by_vault.setdefault(item.entry.vault.id.lower(), []).append(item)
        for items in by_vault.values():
            api = self._api(items[0].entry.vault)
            for item in items:
                if item.row.restore_job_id is None and item.operation_id is not None:
                    try:
                        self._resolve_operation(api, item)
                    except AzureError as error:
                        self.log(f"{item.row.vm_name}: operation status failed ({error_code(error)}); next poll")
            try:
                jobs = {j.job_id.lower(): j for j in api.list_jobs(start, now + CLOCK_SLACK, RESTORE_OPERATION)}
            except AzureError as error:
                self.log(f"restore job list failed ({error_code(error)}); retrying at the next poll")
                continue
            for item in items:
                job = jobs.get((item.row.restore_job_id or "").lower())
                if job is None or item.row.status in FAILED:
                    continue
                item.job, item.row.status = job, job.status
                if job.status in COMPLETED:
                    item.row.job_seconds = _job_seconds(job)
                    completed.append(item)
                elif job.status in FAILED:
                    self._record_job_failure(api, item, job)
        return completed

    def _record_job_failure(self, api: RestoreApiLike, item: _Pending, job: JobInfo) -> None:
        errors = job.errors
        if not errors and job.status == "Failed":
            try:
                errors = api.get_job(job.job_id).errors
            except AzureError:
                errors = ()
        item.row.job_seconds = _job_seconds(job)
        if errors:
            item.row.error_code = errors[0].code
            item.row.problems.append(f"restore job {job.status}: {errors[0].describe()}")
        else:
            item.row.error_code = job.status
            item.row.problems.append(f"restore job {job.status}")
        self.log(f"{item.row.vm_name}: restore job {job.job_id} {job.status} ({item.row.error_code})")

    def _verify_disks(self, done: list[_Pending]) -> None:
        """One disk list for the staging group; attribute, tag and count the new disks."""
        self._attribute(done)
        now = self.clock()
        for item in done:
            row = item.row
            if item.triggered_at is not None:
                row.rto_seconds = round((now - item.triggered_at).total_seconds(), 1)
            expected = row.disks_expected or 0
            note = _expected_note(row)
            if len(row.disks_restored) != expected:
                holder = "the recovery point includes" if row.disks_expected_from == "recovery point" else "the VM has"
                row.problems.append(
                    f"restored {len(row.disks_restored)} disk(s) in {self.staging.resource_group}, "
                    f"{holder} {expected}" + (f" ({note})" if note else "")
                )
            limit = self.max_rto.total_seconds() if self.max_rto is not None else None
            if limit is not None and row.rto_seconds is not None and row.rto_seconds > limit:
                row.problems.append(
                    f"restore took {row.rto_seconds / 60:.1f} min, over --max-rto-minutes {limit / 60:g}"
                )
            self.log(
                f"{row.vm_name}: restore job {row.restore_job_id} {row.status}, "
                f"{len(row.disks_restored)} of {expected} disk(s) restored" + (f" ({note})" if note else "")
            )

    def _attribute(self, items: Sequence[_Pending]) -> None:
        if not items:
            return
        try:
            disks = self.disks.list_disks(self.staging.resource_group_id)
        except AzureError as error:
            for item in items:
                item.row.problems.append(f"restored disks unreadable: {error_code(error)}")
            return
        found: list[tuple[DiskInfo, _Pending]] = []
        for disk in disks:
            key = disk.id.lower()
            if key in self._before or key in self._ours:
                continue
            vm = _owner(disk.name, [(i.entry.vm, i.source) for i in items])
            owner = next((i for i in items if vm is not None and i.entry.vm.key == vm.key), None)
            if owner is not None:
                found.append((disk, owner))

        def tag(pair: tuple[DiskInfo, _Pending]) -> None:
            disk, owner = pair
            try:
                self.disks.set_disk_tags(
                    disk.id, {**disk.tags, DRILL_TAG: self.run_id, DRILL_VM_TAG: owner.row.vm_name}
                )
            except AzureError as error:
                owner.row.problems.append(f"could not tag {disk.name}: {error_code(error)}")

        # Registered as ours even if tagging fails: cleanup then finds no tag, keeps the disk and says so.
        for disk, owner in found:
            self._ours[disk.id.lower()] = (owner.entry.vm.key, disk)
            owner.row.disks_restored.append(disk.name)
        self._concurrently(tag, found)

    def _concurrently(self, work: Callable[[_T], object], items: Sequence[_T]) -> list[object]:
        """Per-VM and per-disk requests (VM reads, restores, tags, re-reads, deletes) in a bounded pool,
        like the initial backup's triggers: a drill of 50 VMs has 100 disks and should not pay 300
        round trips one after another."""
        if not items:
            return []
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(items))))
        try:
            return list(pool.map(work, items))
        except BaseException:
            # Ctrl-C/SIGTERM: no queued restore may start after the interruption.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)

    def _clean_up(self, pending: Sequence[_Pending], rows: Sequence[DrillRow]) -> list[str]:
        """Tag what appeared since the last look, then delete every disk of this run (tag checked)."""
        triggered = [p for p in pending if p.operation_id is not None]
        try:
            self._attribute(triggered)
        except AzureError as error:
            self.log(f"last look for restored disks failed ({error_code(error)})")
        rows_by_vm = {p.entry.vm.key: p.row for p in pending}
        not_cleaned: list[str] = []

        def delete(disk: DiskInfo) -> bool:
            try:
                return self._delete_if_tagged(disk.id, self.run_id)
            except AzureError as error:
                self.log(f"{disk.name}: delete failed ({error_code(error)}); the next run removes it by its tag")
                return False

        ours = list(self._ours.items())
        results = self._concurrently(delete, [disk for _, (_, disk) in ours])
        for (key, (vm_key, disk)), deleted in zip(ours, results, strict=True):
            if deleted:
                rows_by_vm[vm_key].disks_deleted.append(disk.name)
                del self._ours[key]
            else:
                not_cleaned.append(disk.name)
        for row in rows:
            if row.disks_restored and len(row.disks_deleted) != len(row.disks_restored):
                row.problems.append("not every restored disk was deleted")
        return not_cleaned

    def _delete_if_tagged(self, disk_id: str, run_id: str) -> bool:
        """Re-read the disk and delete it only if it still carries ``protectedvm-drill=<run_id>``."""
        current = self.disks.get_disk(disk_id)
        if current is None:
            return True
        if current.tags.get(DRILL_TAG) != run_id:
            self.log(f"{current.name}: not deleted, its {DRILL_TAG} tag is {current.tags.get(DRILL_TAG)!r}")
            return False
        self.disks.delete_disk(disk_id)
        return True

    @staticmethod
    def _fail(row: DrillRow, code: str, problem: str) -> None:
        row.status, row.error_code = "Failed", code
        row.problems.append(problem)
        return None


def _owner(disk_name: str, candidates: Sequence[tuple[VmRef, SourceVm]]) -> VmRef | None:
    """The VM a restored disk belongs to: restored disks are named after their VM or its source disk
    (see emulator/compute.py for why by name: no source shows Azure's exact names). The longest
    matching prefix wins, so ``vm-web-2_OsDisk...`` belongs to ``vm-web-2``, not ``vm-web``."""
    name = disk_name.lower()
    best: tuple[int, VmRef] | None = None
    for vm, source in candidates:
        for prefix in (vm.name.lower(), *(d.lower() for d in source.disk_names)):
            matches = name == prefix or name.startswith((prefix + "-", prefix + "_"))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), vm)
    return best[1] if best else None


def _expected_note(row: DrillRow) -> str:
    """Why fewer disks than the VM has can be right: the recovery point's own disk count."""
    if row.disks_expected_from != "recovery point":
        return ""
    if row.disks_attached is None:
        return "from the recovery point"
    if row.disks_attached != row.disks_expected:
        return f"selective backup: {row.disks_expected} of {row.disks_attached} attached"
    return f"recovery point: all {row.disks_attached} attached"


def _job_seconds(job: JobInfo) -> float | None:
    if job.start_time and job.end_time:
        return round((job.end_time - job.start_time).total_seconds(), 1)
    return job.duration_seconds


# --- rendering -------------------------------------------------------------------------------

COLUMNS = ("VM", "VAULT", "RECOVERY POINT", "RP AGE", "RESTORE JOB", "RTO", "DISKS", "DELETED", "RESULT")


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}m"


def render_table(report: DrillReport) -> str:
    body = []
    for row in report.rows:
        point = f"{row.recovery_point} ({row.recovery_point_time})" if row.recovery_point else "-"
        age = "-" if row.recovery_point_age_hours is None else f"{row.recovery_point_age_hours:.1f}h"
        disks = f"{len(row.disks_restored)}/{row.disks_expected if row.disks_expected is not None else '-'}"
        if row.disks_attached is not None and row.disks_attached != row.disks_expected:
            disks += f" ({row.disks_attached} attached)"  # selective disk backup: the point holds fewer
        result = "OK" if row.ok else f"FAIL: {'; '.join(row.problems) or row.status}"
        body.append(
            [row.vm_name, row.vault_name, point, age, row.restore_job_id or "-", _minutes(row.rto_seconds), disks,
             str(len(row.disks_deleted)), result]
        )
    widths = [max(len(line[i]) for line in [list(COLUMNS), *body]) for i in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)) + "  " + line[-1]
        for line in [list(COLUMNS), *body]
    ]
    failed = sum(not row.ok for row in report.rows)
    summary = f"{len(report.rows) - failed} of {len(report.rows)} VM(s) restored and cleaned up"
    summary += f", {failed} failed" if failed else ""
    if report.leftovers_deleted:
        summary += f"; {len(report.leftovers_deleted)} leftover disk(s) of earlier runs deleted"
    if report.not_cleaned:
        summary += f"; NOT deleted (tagged {DRILL_TAG}={report.run_id}): {', '.join(report.not_cleaned)}"
    if report.interrupted:
        summary += "; interrupted"
    if report.error:
        summary += f"; {report.error}"
    lines.append(f"drill {report.run_id}: {summary}")
    return "\n".join(lines)


def render_json(report: DrillReport) -> str:
    return json.dumps(
        {
            "runId": report.run_id,
            "ok": report.ok,
            "interrupted": report.interrupted,
            "error": report.error,
            "leftoversDeleted": report.leftovers_deleted,
            "notCleaned": report.not_cleaned,
            "vms": [row.to_json() for row in report.rows],
        },
        indent=2,
    )
