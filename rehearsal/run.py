"""The offline rehearsal: what ``pulumi up`` of a stack would do, shown end to end without Azure
or the Pulumi CLI (a PR pipeline has neither credentials nor a cloud to touch).

1. **Plan**: the real program (:func:`components.program.deploy`) evaluated under Pulumi's mocks
   against ``stacks/Pulumi.<stack>.yaml``; the registered resources as a table.
2. **Policy**: the CrossGuard rules over those resources with ``policies/config.<stack>.json``; a
   mandatory violation stops here with exit 1, exactly where ``pulumi up`` would stop.
3. **Deploy + initial backup**: the plan's vault, policy and protected items PUT into the embedded
   HTTPS emulator with the plan's own request bodies, then the *real* ``InitialBackupProvider.create``
   (the code ``pulumi up`` runs) triggers and verifies every VM's first backup through the real SDK,
   printing progress live; a summary table; then ``update`` again to show a re-run triggers nothing.

Time: the emulator's clock runs ``speed`` times faster than the wall clock and the verifier sleeps on
that clock, so the stack's real ``pollSeconds``/``timeoutMinutes`` apply unchanged while a "90 s" job
takes 3 wall seconds. ``--realistic`` runs at speed 1 with 10-minute jobs.

Exit codes: 0 all good; 1 a mandatory policy violation or a failed/timed-out backup; 2 bad stack
config (the same errors ``pulumi preview`` prints).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from components.validation import ValidationError
from protectedvm.ids import FABRIC_NAME, ITEM_TYPE, POLICY_TYPE, VAULT_TYPE
from protectedvm.ids import INITIAL_BACKUP_TYPE as INITIAL
from rehearsal.plan_table import render_plan
from rehearsal.table import render_table
from testing.mock_preview import STACKS_DIR, Plan, evaluate, load_stack_config

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

#: What pulumi-azure-native 3.x sends for recoveryservices resources.
PROVIDER_API_VERSION = "2024-10-01"
JOB_OUTCOMES = ("hang", "cancel", "warn")


@dataclass(frozen=True)
class JobFault:
    """``VM=CODE``: the VM's next backup job fails with Azure error CODE, or ``hang``/``cancel``/``warn``."""

    vm: str
    outcome: str

    @staticmethod
    def parse(text: str) -> JobFault:
        vm, sep, outcome = text.partition("=")
        if not sep or not vm.strip() or not outcome.strip():
            raise ValueError(
                f"--fault {text!r} must be VM=OUTCOME, OUTCOME an Azure error code such as "
                f"UserErrorGuestAgentStatusUnavailable or one of {', '.join(JOB_OUTCOMES)}"
            )
        return JobFault(vm.strip(), outcome.strip())


@dataclass(frozen=True)
class HttpFault:
    """``ROUTE=STATUS[xTIMES]``: the next TIMES requests to ROUTE answer STATUS (0 = drop the connection)."""

    route: str
    status: int
    times: int = 1

    @staticmethod
    def parse(text: str) -> HttpFault:
        from emulator import ROUTES

        route, sep, rest = text.partition("=")
        status_text, _, times_text = rest.partition("x")
        try:
            status, times = int(status_text), int(times_text or "1")
        except ValueError:
            status, times = -1, -1
        if not sep or route not in ROUTES or status not in (0, 429, 500, 502, 503, 504) or times < 1:
            raise ValueError(
                f"--http-fault {text!r} must be ROUTE=STATUS[xTIMES] with STATUS one of 0 (dropped connection), "
                f"429, 500, 502, 503, 504 and ROUTE one of {', '.join(ROUTES)}"
            )
        return HttpFault(route, status, times)


@dataclass(frozen=True)
class RehearsalOptions:
    stack: str = "dev"
    #: Emulated duration of every backup job, in emulated seconds.
    job_seconds: float = 90.0
    #: Emulated seconds per wall-clock second.
    speed: float = 30.0
    job_faults: tuple[JobFault, ...] = ()
    http_faults: tuple[HttpFault, ...] = ()
    #: Overrides the stack's initialBackup.timeoutMinutes (e.g. to see a hung job time out sooner).
    timeout_minutes: int | None = None
    rerun: bool = True
    stacks_dir: Path = STACKS_DIR
    #: Run the restore drill of every VM after the pipeline check (``--no-drill`` skips it).
    drill: bool = True
    #: ``VM=CODE``: the VM's restore job fails with Azure error CODE (``hang`` never ends).
    drill_faults: tuple[JobFault, ...] = ()


@dataclass
class RehearsalReport:
    exit_code: int
    plan: Plan | None = None
    violations: list[Any] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    triggers: int = 0
    rerun_triggers: int | None = None


class _Printer:
    """Lines with the wall time since the rehearsal started, flushed at once (pipelines buffer)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def progress(self, _level: int, message: str) -> None:
        self.line(f"  [{time.monotonic() - self.started:6.1f}s] {message}")

    def heading(self, text: str) -> None:
        self.line()
        self.line(f"== {text} ==")


def rehearse(options: RehearsalOptions, out: TextIO | None = None) -> RehearsalReport:
    """Run the three steps of the module docstring; returns what happened (the CLI exits with
    ``exit_code``)."""
    printer = _Printer(out or sys.stdout)
    report = RehearsalReport(EXIT_OK)

    printer.heading(f"1/3 plan: stack {options.stack} (the program under Pulumi mocks; nothing is deployed)")
    try:
        config = load_stack_config(options.stack, options.stacks_dir)
        from components.program import deploy

        report.plan = plan = evaluate(deploy, config, options.stack)
    except ValidationError as error:
        printer.line(f"stack {options.stack} has invalid configuration ({len(error.problems)} problem(s)):")
        for problem in error.problems:
            printer.line(f"  - {problem}")
        report.exit_code, report.error = EXIT_BAD_CONFIG, str(error)
        return report
    except FileNotFoundError as error:
        printer.line(f"error: {error}")
        report.exit_code, report.error = EXIT_BAD_CONFIG, str(error)
        return report
    printer.line(render_plan(plan))

    try:
        policies_passed = _check_policies(options, plan, report, printer)
    except (OSError, ValueError) as error:  # a missing or malformed policies/config.<stack>.json
        printer.line(f"error: {error}")
        report.exit_code, report.error = EXIT_BAD_CONFIG, str(error)
        return report
    if not policies_passed:
        return report

    printer.heading("3/3 deploy to the embedded Azure emulator, then trigger and verify the initial backups")
    _deploy_and_verify(options, plan, report, printer)
    return report


# --- step 2 -------------------------------------------------------------------------------------


def _check_policies(options: RehearsalOptions, plan: Plan, report: RehearsalReport, printer: _Printer) -> bool:
    from policies.runner import blocking, config_path, load_env_config, run_policies

    path = config_path(options.stack)
    printer.heading(f"2/3 policy pack with {path.relative_to(path.parent.parent)}")
    violations = run_policies(plan.resources, load_env_config(options.stack), stack=options.stack)
    report.violations = violations
    if not violations:
        printer.line("no violations")
        return True
    for violation in violations:
        printer.line(f"  {violation}")
    stopping = blocking(violations)
    if stopping:
        printer.line(f"{len(stopping)} mandatory violation(s): `pulumi up` would stop here, before any change.")
        report.exit_code, report.error = EXIT_FAILED, f"{len(stopping)} mandatory policy violation(s)"
        return False
    printer.line(f"{len(violations)} advisory violation(s): reported, not blocking in this environment.")
    return True


# --- step 3 -------------------------------------------------------------------------------------


@dataclass
class _VaultRun:
    """One vault's InitialBackup of the plan: its inputs, the vault and its VMs."""

    props: dict[str, Any]
    vault: Any
    vms: list[Any]
    outs: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None


def _vault_runs(plan: Plan, options: RehearsalOptions) -> list[_VaultRun]:
    from protectedvm.ids import VaultRef, VmRef

    runs = []
    for initial in plan.of_type(INITIAL):
        props: dict[str, Any] = {key: value for key, value in initial.inputs.items() if key != "results"}
        if options.timeout_minutes is not None:
            props["settings"] = {**props["settings"], "timeoutMinutes": options.timeout_minutes}
        vault = VaultRef.from_id(str(props["vaultId"]))
        runs.append(_VaultRun(props, vault, [VmRef.from_id(str(vm_id)) for vm_id in props["vmIds"]]))
    if not runs:
        raise RuntimeError(f"expected an {INITIAL} per vault in the plan, found none")
    return runs


def _create_all(provider: Any, runs: Sequence[_VaultRun], update: bool = False) -> None:
    """Every vault's create() (or update()) at once, as the engine runs up to 4 dynamic creates
    concurrently in one `pulumi up` (the provider host's ThreadPoolExecutor(max_workers=4))."""
    from concurrent.futures import ThreadPoolExecutor

    def one(run: _VaultRun) -> None:
        try:
            if update:
                run.outs = dict(provider.update(f"{run.vault.id}/initialBackup", run.outs, run.props).outs)
            else:
                run.outs = dict(provider.create(run.props).outs)
        except Exception as error:  # reported per vault by the caller
            run.error = error

    for run in runs:
        run.error = None
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, runs))


def _deploy_and_verify(options: RehearsalOptions, plan: Plan, report: RehearsalReport, printer: _Printer) -> None:
    from emulator import Emulator
    from emulator.seeding import emulator_clock

    runs = _vault_runs(plan, options)
    vms = [vm for run in runs for vm in run.vms]
    mode = str(runs[0].props["settings"].get("verify"))

    with Emulator(job_duration=options.job_seconds, time_scale=options.speed, page_size=50) as emu:
        printer.line(
            f"emulator at {emu.base_url} (HTTPS, test CA); backup jobs take {options.job_seconds:g} emulated s; "
            f"clock x{options.speed:g}"
        )
        client = _sdk_client(emu, runs[0].vault.subscription_id)
        _seed(emu, plan, runs, printer, client)
        _inject(emu, options, printer)
        provider = _provider(client, printer, emulator_clock(emu), _scaled_sleep(options.speed))
        try:
            printer.line()
            where = f" in {len(runs)} vaults at once" if len(runs) > 1 else ""
            printer.line(f"InitialBackup create() for {len(vms)} VM(s){where}, verify={mode}: what `pulumi up` runs")
            _create_all(provider, runs)
            failed = [run for run in runs if run.error is not None]
            if failed:
                _report_failures(emu, client, runs, failed, report, printer)
                return
            report.results = {key: value for run in runs for key, value in dict(run.outs["results"]).items()}
            report.triggers = _triggers(emu, vms)
            for run in runs:
                _summary(client, run.vault, run.vms, report.results, printer)
            if options.rerun:
                printer.line()
                printer.line("re-run: `pulumi up` again with the same stack (update() with the recorded results)")
                _create_all(provider, runs, update=True)
                report.rerun_triggers = _triggers(emu, vms) - report.triggers
                printer.line(f"new backup triggers on re-run: {report.rerun_triggers}")
            if mode != "completed":
                printer.line()
                printer.line(
                    f"verify={mode} lets `pulumi up` finish here; the rehearsal waits on the same jobs for the "
                    "recovery points (no new trigger), as the pipeline's verify step would later find them"
                )
                for run in runs:
                    run.props = {**run.props, "settings": {**run.props["settings"], "verify": "completed"}}
                _create_all(provider, runs, update=True)
                failed = [run for run in runs if run.error is not None]
                if failed:
                    _report_failures(emu, client, runs, failed, report, printer)
                    return
                report.results = {key: value for run in runs for key, value in dict(run.outs["results"]).items()}
                for run in runs:
                    _summary(client, run.vault, run.vms, report.results, printer)
        finally:
            client.close()
        healthy = _pipeline_check(emu, plan, printer)
        if healthy and options.drill and not _restore_drill(emu, plan, options, printer):
            report.exit_code, report.error = EXIT_FAILED, "the restore drill failed"
            printer.line("result: FAILED (the scheduled restore drill would exit 1)")
            return
    if not healthy:
        report.exit_code, report.error = EXIT_FAILED, "the pipeline check found an unhealthy VM"
        printer.line("result: FAILED (the pipeline's verify step would exit 1)")
        return
    printer.line(
        f"result: OK: {len(report.results)} VM(s) with a verified recovery point"
        + (f" in {len(runs)} vaults" if len(runs) > 1 else "")
        + f", {report.triggers} backup(s) triggered in all"
    )


def _report_failures(
    emu: Any,
    client: Any,
    runs: Sequence[_VaultRun],
    failed: Sequence[_VaultRun],
    report: RehearsalReport,
    printer: _Printer,
) -> None:
    """A vault whose InitialBackup failed fails `pulumi up`; the other vaults' results stand."""
    from protectedvm.verifier import InitialBackupError

    vms = [vm for run in runs for vm in run.vms]
    report.results = {}
    for run in runs:
        if run.error is None:
            report.results.update(dict(run.outs.get("results") or {}))
    unsettled: dict[str, tuple[str, str | None]] = {}
    messages = []
    for run in failed:
        error = run.error
        if not isinstance(error, InitialBackupError):
            raise cast(Exception, error)
        report.results.update({key: value.to_output() for key, value in error.results.items()})
        unsettled |= {f.vm_id.lower(): (f"Failed: {f.code}", f.job_id) for f in error.failures}
        unsettled |= {t.vm_id.lower(): (f"timed out ({t.status or 'unknown'})", t.job_id) for t in error.timeouts}
        messages.append(str(error))
    report.exit_code, report.error = EXIT_FAILED, "\n".join(messages)
    report.triggers = _triggers(emu, vms)
    for message in messages:
        printer.line()
        printer.line(message)
    for run in runs:
        _summary(client, run.vault, run.vms, report.results, printer, unsettled)
    printer.line("result: FAILED (`pulumi up` would fail the InitialBackup resource with the message above)")


def _pipeline_check(emu: Any, plan: Plan, printer: _Printer) -> bool:
    """``python -m protectedvm verify`` on the stack outputs, against the emulator."""
    from protectedvm.azure_client import BackupApi
    from protectedvm.health import check_all, load_protected_vms, render_table

    printer.line()
    printer.line("pipeline check: `pulumi stack output --json | python -m protectedvm verify --stack-outputs -`")
    entries = load_protected_vms(plan.outputs)
    rows = check_all(entries, lambda vault: BackupApi(_sdk_client(emu, vault.subscription_id), vault))
    printer.line(render_table(rows))
    return all(row.healthy for row in rows)


def _sdk_client(emu: Any, subscription_id: str) -> Any:
    from protectedvm.azure_client import make_sdk_client

    return make_sdk_client(subscription_id, emu.credential(), base_url=emu.base_url, connection_verify=emu.ca_path)


def _provider(client: Any, printer: _Printer, clock: Callable[[], dt.datetime], sleep: Callable[[float], None]) -> Any:
    from components.initial_backup import InitialBackupProvider
    from protectedvm.azure_client import BackupApi

    return InitialBackupProvider(
        lambda vault: BackupApi(client, vault, sleep=sleep),
        clock=clock,
        sleep=sleep,
        log_sink=printer.progress,
    )


def _scaled_sleep(speed: float) -> Callable[[float], None]:
    """The verifier sleeps in emulated seconds; the wall clock sleeps ``speed`` times less."""

    def sleep(seconds: float) -> None:
        time.sleep(max(0.0, seconds) / speed)

    return sleep


def _vault_of(inputs: Mapping[str, Any], runs: Sequence[_VaultRun]) -> Any:
    """The vault a planned vault, policy or item belongs to, by its vault name and resource group."""
    name, group = str(inputs.get("vaultName", "")).lower(), str(inputs.get("resourceGroupName", "")).lower()
    for run in runs:
        if (run.vault.name.lower(), run.vault.resource_group.lower()) == (name, group):
            return run.vault
    return runs[0].vault


def _seed(emu: Any, plan: Plan, runs: Sequence[_VaultRun], printer: _Printer, client: Any) -> None:
    """PUT what the plan registers, with its own bodies, the way pulumi-azure-native would; a
    vault or policy the stack reuses (not in the plan) is created as if it already existed."""
    import copy

    from components.vault_lock import VaultLockProvider
    from emulator.seeding import item_path
    from protectedvm.azure_client import BackupApi

    planned = {id(_vault_of(v.inputs, runs)): v for v in plan.of_type(VAULT_TYPE)}
    for run in runs:
        vault = run.vault
        found = planned.get(id(vault))
        if found is None:
            emu.create_vault(vault.subscription_id, vault.resource_group, vault.name)
            printer.line(f"vault {vault.name}: existing (reused by the stack), emulated with defaults")
            continue
        inputs = found.inputs
        properties = copy.deepcopy(dict(inputs.get("properties") or {}))
        immutability = (properties.get("securitySettings") or {}).get("immutabilitySettings") or {}
        wanted = immutability.get("state")
        if wanted == "Locked":  # a new vault: Azure refuses Locked at creation (VaultLock locks it)
            immutability["state"] = "Unlocked"
        identity = dict(inputs.get("identity") or {})
        if isinstance(identity.get("userAssignedIdentities"), list):  # azure-native's list; ARM's map
            identity["userAssignedIdentities"] = {i: {} for i in identity["userAssignedIdentities"]}
        created = emu.create_vault(
            vault.subscription_id,
            vault.resource_group,
            vault.name,
            location=inputs.get("location") or "westeurope",
            sku=dict(inputs.get("sku") or {"name": "RS0", "tier": "Standard"}),
            properties=properties,
            **({"identity": identity} if identity else {}),
        )
        printer.line(f"vault {vault.name}: created from the plan")
        _print_vault_operations(created, vault.name, printer)
        if wanted == "Locked":
            soft = ((properties.get("securitySettings") or {}).get("softDeleteSettings") or {}).get("softDeleteState")
            done = VaultLockProvider.apply(BackupApi(client, vault), "Locked", str(soft or ""))
            printer.line(f"vault {vault.name}: created Unlocked, then locked by VaultLock ({done})")
    for policy in plan.of_type(POLICY_TYPE):
        vault = _vault_of(policy.inputs, runs)
        name = str(policy.inputs.get("policyName"))
        _put(emu, f"{vault.id}/backupPolicies/{name}", {"properties": dict(policy.inputs.get("properties") or {})})
        printer.line(f"policy {name}: created from the plan")
    items = plan.of_type(ITEM_TYPE)
    linked: dict[tuple[str, str], Any] = {}
    for item in items:
        vault = _vault_of(item.inputs, runs)
        linked.setdefault((vault.id, str((item.inputs.get("properties") or {}).get("policyId", ""))), vault)
    for (_, policy_id), vault in linked.items():
        _ensure_policy(emu, vault, policy_id, printer)
    for item in items:
        properties = _integers(dict(item.inputs.get("properties") or {}))
        emu.add_vm(str(properties["sourceResourceId"]))
        path = item_path(
            _vault_of(item.inputs, runs),
            str(item.inputs["containerName"]),
            str(item.inputs["protectedItemName"]),
            str(item.inputs.get("fabricName") or FABRIC_NAME),
        )
        _put(emu, path, {"properties": properties})
    for run in runs:
        api = BackupApi(client, run.vault)
        if len(runs) == 1:
            for vm in run.vms:
                state = api.protected_item(vm).protection_state
                printer.line(f"protection of {vm.name}: {state} (Azure shows 'Warning (initial backup pending)')")
            continue
        states: dict[str, int] = {}
        for vm in run.vms:
            state = str(api.protected_item(vm).protection_state)
            states[state] = states.get(state, 0) + 1
        shown = ", ".join(f"{count} {state}" for state, count in states.items())
        printer.line(f"protection in {run.vault.name}: {shown} (Azure shows 'Warning (initial backup pending)')")


def _integers(value: Any) -> Any:
    """The engine carries every number as a float (LUN ``3.0``); azure-native sends the schema's
    integers as integers, so the emulator receives what Azure would."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    return value


def _print_vault_operations(created: Mapping[str, Any], name: str, printer: _Printer) -> None:
    """The alert switches and encryption as the emulator accepted them (it validates both)."""
    props = created.get("properties") or {}
    monitoring = props.get("monitoringSettings") or {}
    if monitoring:
        job = (monitoring.get("azureMonitorAlertSettings") or {}).get("alertsForAllJobFailures")
        classic = (monitoring.get("classicAlertSettings") or {}).get("alertsForCriticalOperations")
        printer.line(f"vault {name}: monitoringSettings accepted: job failure alerts {job}, classic alerts {classic}")
    encryption = props.get("encryption") or {}
    if encryption:
        key = (encryption.get("keyVaultProperties") or {}).get("keyUri")
        infra = encryption.get("infrastructureEncryption")
        printer.line(f"vault {name}: encryption accepted: key {key}, infrastructure encryption {infra}")


def _ensure_policy(emu: Any, vault: Any, policy_id: str, printer: _Printer) -> None:
    name = policy_id.rstrip("/").rsplit("/", 1)[-1]
    status, _ = emu.raw_request("GET", f"{vault.id}/backupPolicies/{name}?api-version={PROVIDER_API_VERSION}")
    if status == 200:
        return
    _, default = emu.raw_request("GET", f"{vault.id}/backupPolicies/DefaultPolicy?api-version={PROVIDER_API_VERSION}")
    _put(emu, f"{vault.id}/backupPolicies/{name}", {"properties": default["properties"]})
    printer.line(f"policy {name}: existing (reused by the stack), emulated as a copy of DefaultPolicy")


def _put(emu: Any, path: str, body: Mapping[str, Any]) -> None:
    status, payload = emu.raw_request("PUT", f"{path}?api-version={PROVIDER_API_VERSION}", dict(body))
    if status not in (200, 201, 202):
        raise RuntimeError(f"PUT {path} failed in the emulator: {status} {payload}")


def _inject(emu: Any, options: RehearsalOptions, printer: _Printer) -> None:
    for fault in options.job_faults:
        if fault.outcome == "hang":
            emu.faults.hang_next_job(fault.vm)
        elif fault.outcome == "cancel":
            emu.faults.cancel_next_job(fault.vm)
        elif fault.outcome == "warn":
            emu.faults.warn_next_job(fault.vm)
        else:
            emu.faults.fail_next_job(fault.vm, fault.outcome)
        printer.line(f"fault injected: next backup job of {fault.vm} -> {fault.outcome}")
    for http in options.http_faults:
        if http.status == 0:
            emu.faults.drop(http.route, times=http.times)
        else:
            emu.faults.http(http.route, http.status, times=http.times, retry_after=1 if http.status == 429 else None)
        printer.line(f"fault injected: next {http.times} {http.route} request(s) -> {http.status or 'dropped'}")


def _triggers(emu: Any, vms: Sequence[Any]) -> int:
    return sum(int(emu.trigger_count(vm.name)) for vm in vms)


def _summary(
    client: Any,
    vault: Any,
    vms: Sequence[Any],
    results: Mapping[str, Any],
    printer: _Printer,
    unsettled: Mapping[str, tuple[str, str | None]] | None = None,
) -> None:
    """One row per VM: the proof from ``results``, or why there is none; plus Azure's item view."""
    from protectedvm.azure_client import BackupApi

    api = BackupApi(client, vault)
    rows = []
    for vm in vms:
        result = results.get(vm.key) or {}
        status, job_id = (unsettled or {}).get(vm.key, (result.get("status") or "not verified", result.get("jobId")))
        item = api.protected_item(vm)
        duration = result.get("durationSeconds")
        rows.append(
            (
                vm.name,
                str(status),
                str(job_id or "-"),
                str(result.get("recoveryPointTime") or "-"),
                f"{duration:.0f}s" if isinstance(duration, (int, float)) else "-",
                "adopted" if result.get("adopted") else ("triggered" if result else "-"),
                f"{item.protection_state}/{item.last_backup_status or '-'}",
            )
        )
    printer.line()
    printer.line(
        render_table(
            ("VM", "STATUS", "JOB", "RECOVERY POINT", "DURATION", "JOB ORIGIN", "ITEM STATE/LAST BACKUP"), rows
        )
    )


# --- the restore drill (issue 18) ---------------------------------------------------------------


def _restore_drill(emu: Any, plan: Plan, options: RehearsalOptions, printer: _Printer) -> bool:
    """``python -m protectedvm drill`` of every VM of the stack against the emulator: restore, verify
    the disks, delete them; True if every VM was restored and nothing the drill created is left."""
    from emulator.seeding import emulator_clock
    from protectedvm.azure_client import BackupApi, ComputeApi
    from protectedvm.drill import RestoreDrill, Staging, render_table
    from protectedvm.health import load_protected_vms

    entries = load_protected_vms(plan.outputs)
    subscription = entries[0].vault.subscription_id
    group = f"rg-pvm-drill-{options.stack}"
    staging = Staging.parse(
        group,
        f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/"
        f"stpvmdrill{options.stack}",
    )
    printer.line()
    printer.line(
        f"restore drill: `python -m protectedvm drill --stack-outputs - --staging-resource-group {group} "
        f"--staging-storage-account ... --sample {len(entries)}` (the weekly scheduled job drills a rotating sample)"
    )
    for fault in options.drill_faults:
        if fault.outcome == "hang":
            emu.faults.hang_next_restore(fault.vm)
        else:
            emu.faults.fail_next_restore(fault.vm, fault.outcome)
        printer.line(f"fault injected: next restore job of {fault.vm} -> {fault.outcome}")
    client = _sdk_client(emu, subscription)
    try:
        drill = RestoreDrill(
            lambda vault: BackupApi(client, vault),
            ComputeApi(client),
            staging,
            poll_seconds=30,
            timeout_minutes=max(10.0, 4 * options.job_seconds / 60),
            clock=emulator_clock(emu),
            sleep=_scaled_sleep(options.speed),
            log=lambda message: printer.progress(0, message),
        )
        report = drill.run(entries)
    finally:
        client.close()
    printer.line()
    printer.line(render_table(report))
    emu.state.settle()
    left = [disk.name for disk in emu.state.compute.disks(subscription, group)]
    printer.line(f"disks left in {group} after the drill: {len(left)}" + (f" ({', '.join(left)})" if left else ""))
    return report.ok and not left
