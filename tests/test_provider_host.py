"""``InitialBackupProvider`` through the real dynamic provider host over gRPC, as the engine calls it.

The in-process tests (tests/test_initial_backup.py) cover the logic; these prove the wiring: the
pickled provider is found and imported by a host started in the project directory, unknowns arrive
as ``pulumi.output.Unknown`` on a new stack's first preview, numbers as floats, errors come back as
gRPC errors, and progress reaches the host's stderr (which the engine shows as diagnostics).
Against the embedded emulator on the real clock, with jobs that finish at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from components.config import InitialBackupSettings
from components.initial_backup import TYPE_TOKEN, InitialBackupProvider
from emulator import Emulator, StaticTokenCredential
from emulator.seeding import protect, vm_ids
from protectedvm.azure_client import CA_BUNDLE_ENV, ENDPOINT_ENV, BackupApi, make_sdk_client
from protectedvm.ids import VaultRef, VmRef
from tests.helpers import SUB
from tests.provider_host import ProviderHost

VAULT = VaultRef(SUB, "rg-backup", "rsv-host")
URN = f"urn:pulumi:dev::protected-vm::{TYPE_TOKEN}::initial-backup"
SETTINGS = InitialBackupSettings(verify="completed", retain_days=30, timeout_minutes=5, poll_seconds=5).to_dict()
DIFF_NONE, DIFF_SOME = provider_pb2.DiffResponse.DIFF_NONE, provider_pb2.DiffResponse.DIFF_SOME
IDS = vm_ids(SUB, "rg-app", 3, prefix="vm-host-")


def inputs(ids: list[Any], vault_id: Any = VAULT.id, settings: Any = SETTINGS) -> dict[str, Any]:
    """The resource's inputs as ``InitialBackup.__init__`` registers them."""
    return {"vaultId": vault_id, "vmIds": ids, "settings": settings, "results": None}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(job_duration=0.0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def host(emu: Emulator) -> Iterator[ProviderHost]:
    env = {ENDPOINT_ENV: emu.base_url, CA_BUNDLE_ENV: emu.ca_path}
    with ProviderHost(InitialBackupProvider(), env=env) as running:
        info = running.get_plugin_info()
        assert info.version  # the host answers before anything else is asked
        running.configure({})
        yield running


# --- preview: Check and Diff with what a new stack's first preview sends ------------------------


def test_check_on_a_new_stack_first_preview_accepts_an_unknown_vault_id_and_keeps_it_unknown(
    host: ProviderHost,
) -> None:
    response = host.check(URN, {}, inputs(IDS, vault_id=rpc.UNKNOWN))
    assert list(response.failures) == []
    assert response.inputs.fields["vaultId"].string_value == rpc.UNKNOWN


def test_check_accepts_unknown_vm_ids_whole_or_per_element_and_unknown_settings(host: ProviderHost) -> None:
    cases = [
        inputs(rpc.UNKNOWN),  # type: ignore[arg-type]
        inputs([IDS[0], rpc.UNKNOWN]),
        inputs(IDS, settings=rpc.UNKNOWN),
        inputs(IDS, settings={**SETTINGS, "retainDays": rpc.UNKNOWN}),
    ]
    assert [list(host.check(URN, {}, case).failures) for case in cases] == [[], [], [], []]


def test_check_still_names_each_bad_known_input_through_the_host(host: ProviderHost) -> None:
    news = inputs([rpc.UNKNOWN, "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/disks/d"])
    news["vaultId"] = "rsv"
    news["settings"] = {**SETTINGS, "retainDays": 7.5}
    failures = [(f.property, f.reason) for f in host.check(URN, {}, news).failures]
    assert [prop for prop, _ in failures] == ["vaultId", "vmIds[1]", "settings"]
    assert failures[2][1] == "initialBackup.retainDays = 7.5 must be a whole number from 1 to 36135 days"


def test_check_accepts_the_settings_numbers_the_sdk_sends_as_floats(host: ProviderHost) -> None:
    wire = host._with_provider(inputs(IDS))
    assert wire.fields["settings"].struct_value.fields["retainDays"].HasField("number_value")
    assert list(host.check(URN, {}, inputs(IDS)).failures) == []


def test_diff_with_the_vault_id_unknown_is_an_update_never_a_replacement(host: ProviderHost) -> None:
    response = host.diff(URN, "id", inputs(IDS), inputs(IDS, vault_id=rpc.UNKNOWN))
    assert (response.changes, list(response.replaces)) == (DIFF_SOME, [])


def test_diff_with_an_unknown_vm_id_is_an_update(host: ProviderHost) -> None:
    response = host.diff(URN, "id", inputs(IDS), inputs([*IDS[:2], rpc.UNKNOWN]))
    assert (response.changes, list(response.replaces)) == (DIFF_SOME, [])


def test_diff_unchanged_inputs_from_state_floats_and_all_is_no_change(host: ProviderHost) -> None:
    reordered = [IDS[2].upper(), IDS[0], IDS[1]]
    response = host.diff(URN, "id", inputs(IDS), inputs(reordered))
    assert (response.changes, list(response.replaces)) == (DIFF_NONE, [])


def test_diff_changed_vm_list_is_an_update_and_another_vault_a_replacement(host: ProviderHost) -> None:
    added = host.diff(URN, "id", inputs(IDS[:2]), inputs(IDS))
    other_vault = host.diff(URN, "id", inputs(IDS), inputs(IDS, vault_id=VaultRef(SUB, "rg-backup", "rsv-other").id))
    assert (added.changes, list(added.replaces)) == (DIFF_SOME, [])
    assert (other_vault.changes, list(other_vault.replaces)) == (DIFF_SOME, ["vaultId"])


# --- up: Create, Update, Delete against the emulator ---------------------------------------------


def test_create_update_delete_through_the_host_trigger_each_vm_once_and_delete_nothing(
    emu: Emulator, host: ProviderHost
) -> None:
    vault = VaultRef(SUB, "rg-backup", "rsv-host-lifecycle")
    ids = vm_ids(SUB, "rg-app", 3, prefix="vm-life-")
    protect(emu, vault, ids)

    resource_id, outs = host.create(URN, inputs(ids[:2], vault_id=vault.id))
    assert resource_id == f"{vault.id.lower()}/initialBackup"
    assert sorted(outs["results"]) == sorted(i.lower() for i in ids[:2])
    assert {r["status"] for r in outs["results"].values()} == {"Completed"}
    assert all(r["recoveryPointId"] for r in outs["results"].values())
    assert outs["settings"]["retainDays"] == 30.0  # what state keeps: numbers as floats

    updated = host.update(URN, resource_id, outs, inputs(ids, vault_id=vault.id))
    assert updated["results"][ids[0].lower()] == outs["results"][ids[0].lower()]
    assert updated["results"][ids[2].lower()]["status"] == "Completed"
    assert [emu.state.trigger_count(vm.rsplit("/", 1)[-1]) for vm in ids] == [1, 1, 1]

    host.delete(URN, resource_id, updated)
    assert [emu.state.trigger_count(vm.rsplit("/", 1)[-1]) for vm in ids] == [1, 1, 1]
    client = make_sdk_client(SUB, StaticTokenCredential(), base_url=emu.base_url, connection_verify=emu.ca_path)
    api = BackupApi(client, vault)
    try:  # the record is gone from state; Azure's items and recovery points are not
        assert [api.protected_item(VmRef.from_id(vm)).protection_state for vm in ids] == ["Protected"] * 3
        assert all(api.recovery_points(VmRef.from_id(vm)) for vm in ids)
    finally:
        api.close()
    stderr = host.stderr_text
    assert f"info: [{vault.name}] vm-life-001: verified: job " in stderr
    assert f"info: [{vault.name}] {vault.name}: 3 of 3 completed, 0 failed, 0 in progress" in stderr


def test_a_failed_backup_is_a_grpc_error_naming_vm_job_and_code_and_a_second_create_retriggers_only_it(
    emu: Emulator, host: ProviderHost
) -> None:
    vault = VaultRef(SUB, "rg-backup", "rsv-host-failure")
    ids = vm_ids(SUB, "rg-app", 2, prefix="vm-fail-")
    protect(emu, vault, ids)
    emu.faults.fail_next_job("vm-fail-002", "UserErrorGuestAgentStatusUnavailable")

    with pytest.raises(grpc.RpcError) as failed:
        host.create(URN, inputs(ids, vault_id=vault.id))
    details = failed.value.details() or ""
    assert failed.value.code() == grpc.StatusCode.UNKNOWN
    assert "initial backup of 1 of 2 VM(s) in vault rsv-host-failure did not succeed (1 succeeded)" in details
    job_line = next(line for line in details.splitlines() if "vm-fail-002 (job " in line)
    assert job_line.strip().startswith("- vm-fail-002 (job ")
    assert ": UserErrorGuestAgentStatusUnavailable: " in job_line
    assert "error: [rsv-host-failure] vm-fail-002 (job " in host.stderr_text

    # Dynamic providers keep no partial state: the engine calls Create again on the next `up`.
    _, outs = host.create(URN, inputs(ids, vault_id=vault.id))
    assert [emu.state.trigger_count(vm.rsplit("/", 1)[-1]) for vm in ids] == [1, 2]
    first = outs["results"][ids[0].lower()]
    assert (first["status"], first["adopted"]) == ("Completed", True)
    assert outs["results"][ids[1].lower()]["status"] == "Completed"
