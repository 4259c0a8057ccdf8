"""The ``InitialBackup`` dynamic resource: its provider's check/diff/create/update/delete called
directly against the emulator, and the resource itself under Pulumi mocks."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import dill
import pulumi
import pytest
from pulumi.runtime import rpc

from components.backup_vault import BackupVault
from components.config import InitialBackupSettings, PolicySettings, VaultSettings
from components.initial_backup import TYPE_TOKEN, InitialBackup, InitialBackupProvider
from components.protected_vm import ProtectedVM
from emulator import Emulator, ManualClock
from emulator.seeding import emulator_clock, manual_sleep, protect, vm_ids
from policies.rules import initial_backup_settings
from protectedvm.azure_client import CA_BUNDLE_ENV, ENDPOINT_ENV, BackupApi, RetrySettings, make_sdk_client
from protectedvm.ids import VaultRef
from protectedvm.verifier import InitialBackupError
from testing.mock_preview import evaluate
from tests.helpers import SUB

VAULT = VaultRef(SUB, "rg-backup", "rsv-test")
FAST = RetrySettings(sdk_total=5, backoff_factor=0.01, backoff_max=0.05, max_retry_after=5.0, trigger_attempts=4)
RESULT_KEYS = {
    "vmName",
    "jobId",
    "status",
    "recoveryPointId",
    "recoveryPointTime",
    "durationSeconds",
    "triggeredAt",
    "adopted",
}


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(job_duration=120.0, clock=ManualClock()) as emulator:
        monkeypatch.setenv(ENDPOINT_ENV, emulator.base_url)
        monkeypatch.setenv(CA_BUNDLE_ENV, emulator.ca_path)
        yield emulator


def provider(emu: Emulator, log: list[tuple[int, str]] | None = None) -> InitialBackupProvider:
    def api(vault: VaultRef) -> BackupApi:
        return BackupApi(make_sdk_client(vault.subscription_id, retry=FAST), vault, retry=FAST)

    return InitialBackupProvider(
        api,
        clock=emulator_clock(emu),
        sleep=manual_sleep(emu),
        log_sink=(lambda level, message: log.append((level, message))) if log is not None else (lambda *_: None),
    )


def props(ids: list[str], verify: str = "completed", vault_id: str = VAULT.id) -> dict[str, Any]:
    settings = InitialBackupSettings(verify=verify, retain_days=30, timeout_minutes=30, poll_seconds=30)  # type: ignore[arg-type]
    return {"vaultId": vault_id, "vmIds": ids, "settings": settings.to_dict(), "__provider": "serialized"}


def seed(emu: Emulator, count: int, prefix: str = "VM") -> list[str]:
    ids = vm_ids(SUB, "RG-App", count, prefix=prefix)
    protect(emu, VAULT, ids)
    emu.reset_counts()
    return ids


# --- create / update / delete against the emulator -------------------------------------------


def test_create_verifies_every_vm_and_outputs_results_keyed_by_lower_cased_vm_id(emu: Emulator) -> None:
    ids = seed(emu, 3)
    created = provider(emu).create(props(ids))

    assert created.id == f"{VAULT.id.lower()}/initialBackup"
    outs = created.outs or {}
    assert outs["vaultId"] == VAULT.id
    assert outs["vmIds"] == ids
    assert outs["settings"] == {"verify": "completed", "retainDays": 30, "timeoutMinutes": 30, "pollSeconds": 30}
    results = outs["results"]
    assert sorted(results) == sorted(i.lower() for i in ids)
    first = results[ids[0].lower()]
    assert set(first) == RESULT_KEYS
    job = next(j for j in emu.jobs if j.vm_name == "VM001" and j.operation == "Backup")
    assert first["vmName"] == "VM001"
    assert first["jobId"] == job.job_id
    assert first["status"] == "Completed"
    item = f"{VAULT.id}/backupFabrics/Azure/protectionContainers/iaasvmcontainer;iaasvmcontainerv2;rg-app;vm001"
    assert (
        first["recoveryPointId"].lower().startswith(f"{item}/protectedItems/vm;iaasvmcontainerv2;rg-app;vm001/".lower())
    )
    assert first["recoveryPointTime"] == job.start_time.isoformat().replace("+00:00", "Z")
    assert first["durationSeconds"] == 120.0
    assert first["adopted"] is False
    assert emu.counts["backup.trigger"] == 3


def test_update_with_an_added_vm_triggers_only_that_vm_and_keeps_earlier_results_verbatim(emu: Emulator) -> None:
    ids = seed(emu, 3)
    p = provider(emu)
    olds = {**props(ids[:2]), **(p.create(props(ids[:2])).outs or {})}
    emu.reset_counts()

    updated = p.update("id", olds, props(ids)).outs or {}

    results = updated["results"]
    assert results[ids[0].lower()] == olds["results"][ids[0].lower()]
    assert results[ids[1].lower()] == olds["results"][ids[1].lower()]
    assert results[ids[2].lower()]["status"] == "Completed"
    assert [emu.trigger_count(i.rsplit("/", 1)[-1]) for i in ids] == [1, 1, 1]
    assert emu.counts["backup.trigger"] == 1
    assert emu.counts["recoveryPoints.list"] == 1


def test_update_with_a_removed_vm_drops_its_result_and_calls_nothing(emu: Emulator) -> None:
    ids = seed(emu, 2)
    p = provider(emu)
    olds = {**props(ids), **(p.create(props(ids)).outs or {})}
    emu.reset_counts()

    updated = p.update("id", olds, props(ids[:1])).outs or {}

    assert list(updated["results"]) == [ids[0].lower()]
    assert sum(emu.counts.values()) == 0


def test_update_from_started_to_completed_resumes_the_same_jobs_without_triggering(emu: Emulator) -> None:
    ids = seed(emu, 2)
    p = provider(emu)
    olds = {**props(ids, "started"), **(p.create(props(ids, "started")).outs or {})}
    assert {r["status"] for r in olds["results"].values()} == {"InProgress"}

    updated = p.update("id", olds, props(ids, "completed")).outs or {}

    assert {r["status"] for r in updated["results"].values()} == {"Completed"}
    assert [updated["results"][i.lower()]["jobId"] for i in ids] == [olds["results"][i.lower()]["jobId"] for i in ids]
    assert [emu.trigger_count(i.rsplit("/", 1)[-1]) for i in ids] == [1, 1]


def test_create_failure_names_each_failed_vm_with_job_code_and_recommendations(emu: Emulator) -> None:
    ids = seed(emu, 3)
    emu.faults.fail_next_job("VM002", "UserErrorGuestAgentStatusUnavailable")

    with pytest.raises(InitialBackupError) as caught:
        provider(emu).create(props(ids))

    job = next(j.job_id for j in emu.jobs if j.vm_name == "VM002" and j.operation == "Backup")
    message = str(caught.value)
    assert f"VM002 (job {job}): UserErrorGuestAgentStatusUnavailable: VM Agent unable to communicate" in message
    assert "recommendations: Ensure that the VM agent is installed" in message
    assert "1 of 3 VM(s) in vault rsv-test did not succeed (2 succeeded)" in message


def test_progress_goes_to_the_injected_pulumi_log_sink_prefixed_with_the_vault(emu: Emulator) -> None:
    ids = seed(emu, 2)
    log: list[tuple[int, str]] = []
    provider(emu, log).create(props(ids))

    messages = [message for _, message in log]
    assert messages[0] == "[rsv-test] VM001: queued"
    assert "[rsv-test] rsv-test: 0 of 2 completed, 0 failed, 2 in progress" in messages
    assert messages[-1] == "[rsv-test] rsv-test: 2 of 2 completed, 0 failed, 0 in progress"
    assert {level for level, _ in log} == {logging.INFO}
    assert not any("emulator-token" in m or "Bearer" in m for m in messages)


def test_delete_leaves_backups_alone_and_calls_nothing(emu: Emulator) -> None:
    ids = seed(emu, 1)
    p = provider(emu)
    outs = p.create(props(ids)).outs or {}
    emu.reset_counts()

    p.delete("id", outs)

    assert sum(emu.counts.values()) == 0


# --- diff and check (no Azure) ---------------------------------------------------------------

IDS = vm_ids(SUB, "rg-app", 3)


def test_diff_same_vms_in_another_order_and_casing_is_no_change() -> None:
    diff = InitialBackupProvider().diff("id", props(IDS), props([i.upper() for i in reversed(IDS)]))
    assert (diff.changes, diff.replaces) == (False, [])


def test_diff_added_vm_is_an_update_not_a_replacement() -> None:
    diff = InitialBackupProvider().diff("id", props(IDS[:2]), props(IDS))
    assert (diff.changes, diff.replaces) == (True, [])


def test_diff_changed_settings_is_an_update() -> None:
    diff = InitialBackupProvider().diff("id", props(IDS, "started"), props(IDS, "completed"))
    assert (diff.changes, diff.replaces) == (True, [])


def test_diff_another_vault_replaces() -> None:
    other = VaultRef(SUB, "rg-backup", "rsv-other").id
    diff = InitialBackupProvider().diff("id", props(IDS), props(IDS, vault_id=other))
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, ["vaultId"], False)


def test_diff_vault_id_casing_is_no_change() -> None:
    diff = InitialBackupProvider().diff("id", props(IDS), props(IDS, vault_id=VAULT.id.upper()))
    assert (diff.changes, diff.replaces) == (False, [])


def test_diff_unknown_vault_during_preview_reports_a_change_without_guessing_a_replacement() -> None:
    diff = InitialBackupProvider().diff("id", props(IDS), props(IDS, vault_id=rpc.UNKNOWN))
    assert (diff.changes, diff.replaces) == (True, [])


def test_check_names_each_bad_input() -> None:
    news = props([IDS[0], "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/disks/d1"], vault_id="rsv")
    news["settings"] = {**news["settings"], "verify": "maybe"}
    result = InitialBackupProvider().check({}, news)
    assert [(f.property, f.reason.split(":")[0]) for f in result.failures] == [
        ("vaultId", "'rsv' is not a Recovery Services vault id"),
        (
            "vmIds[1]",
            "'/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/disks/d1' is not a virtual machine id",
        ),
        ("settings", "initialBackup.verify = 'maybe' is not allowed"),
    ]


def test_check_passes_unknown_values_through_during_preview() -> None:
    news = props([rpc.UNKNOWN], vault_id=rpc.UNKNOWN)
    result = InitialBackupProvider().check({}, news)
    assert result.failures == []
    assert result.inputs == news


def engine_settings(verify: str = "completed") -> dict[str, Any]:
    """What the engine hands a dynamic provider: every number a float (protobuf Struct)."""
    return {"verify": verify, "retainDays": 30.0, "timeoutMinutes": 30.0, "pollSeconds": 30.0}


def test_check_accepts_whole_numbers_the_engine_sends_as_floats() -> None:
    news = {**props(IDS), "settings": engine_settings()}
    assert InitialBackupProvider().check({}, news).failures == []


def test_check_rejects_a_fractional_retain_days_naming_the_setting_and_range() -> None:
    news = {**props(IDS), "settings": {**engine_settings(), "retainDays": 7.5}}
    failures = InitialBackupProvider().check({}, news).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("settings", "initialBackup.retainDays = 7.5 must be a whole number from 1 to 36135 days")
    ]


def test_diff_ints_from_the_program_against_floats_from_state_is_no_change() -> None:
    olds = {**props(IDS), "settings": engine_settings()}
    assert InitialBackupProvider().diff("id", olds, props(IDS)).changes is False


def test_create_with_engine_float_settings_verifies_and_keeps_the_settings(emu: Emulator) -> None:
    ids = seed(emu, 2)
    outs = provider(emu).create({**props(ids), "settings": engine_settings()}).outs or {}
    assert [r["status"] for r in outs["results"].values()] == ["Completed", "Completed"]
    assert outs["settings"] == engine_settings()


# --- the resource under mocks -----------------------------------------------------------------


def test_initial_backup_under_mocks_registers_one_dynamic_resource_with_its_inputs() -> None:
    settings = InitialBackupSettings(verify="started", retain_days=7, timeout_minutes=60, poll_seconds=15)

    def program() -> None:
        vault_id = pulumi.Output.from_input(VAULT.id)
        ib = InitialBackup("initial-backup", {"vault_id": vault_id, "vm_ids": IDS, "settings": settings})
        pulumi.export("initialBackups", ib.results)
        pulumi.export("ibVault", ib.vault_id)
        pulumi.export("ibVms", ib.vm_ids)

    plan = evaluate(program, {})

    [resource] = plan.of_type(TYPE_TOKEN)
    assert resource.name == "initial-backup"
    assert resource.custom is True
    assert resource.inputs["vaultId"] == VAULT.id
    assert resource.inputs["vmIds"] == IDS
    assert resource.inputs["settings"] == {
        "verify": "started",
        "retainDays": 7,
        "timeoutMinutes": 60,
        "pollSeconds": 15,
    }
    provider = dill.loads(base64.b64decode(resource.inputs["__provider"]))
    assert type(provider) is InitialBackupProvider
    assert provider.api_factory is None  # nothing environment-specific or secret is pickled into state
    assert plan.outputs["ibVault"] == VAULT.id
    assert plan.outputs["ibVms"] == IDS
    assert plan.outputs.get("initialBackups") is None  # mocks echo inputs; the real value comes from create()
    # The policy pack recognises it and reads the same settings.
    assert initial_backup_settings(resource.inputs) == resource.inputs["settings"]


def test_initial_backup_wired_after_protected_vms_of_a_shared_vault_under_mocks() -> None:
    def program() -> None:
        vault = BackupVault(
            "backup",
            {
                "vault": VaultSettings(name="rsv-test", resource_group="rg-backup", location="westeurope"),
                "policy": PolicySettings(name="daily"),
            },
        )
        vms = [ProtectedVM(f"vm{i}", {"vm_id": vm_id, "backup_vault": vault}) for i, vm_id in enumerate(IDS)]
        vault.verify_initial_backups("initial-backup", vms)

    plan = evaluate(program, {})

    [resource] = plan.of_type(TYPE_TOKEN)
    assert resource.inputs["vaultId"] == VAULT.id.replace(SUB, "00000000-0000-0000-0000-000000000000")
    assert resource.inputs["vmIds"] == IDS
    assert [r.type for r in plan.resources].index(TYPE_TOKEN) == len(plan.resources) - 1
