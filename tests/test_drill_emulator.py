"""The emulator's restore path and managed-disk slice against the official examples vendored in
tests/emulator/examples/restore/ (see its MANIFEST.json for source paths and commits)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.seeding import item_path, protect, vm_ids, with_recovery_points
from protectedvm.ids import VaultRef, VmRef
from tests.helpers import SUB

EXAMPLES = Path(__file__).resolve().parent / "emulator" / "examples" / "restore"
VAULT = VaultRef(SUB, "rg-backup", "rsv-test")
STAGING = f"/subscriptions/{SUB}/resourceGroups/rg-drill"
API = "api-version=2025-02-01"
DISKS_API = "api-version=2024-03-02"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return document


@pytest.fixture
def vm(emu: Emulator) -> VmRef:
    [ref] = protect(emu, VAULT, vm_ids(SUB, "rg-app", 1))
    with_recovery_points(emu, [ref])
    return ref


def restore_request(vm: VmRef, rp: str, **changes: Any) -> dict[str, Any]:
    """The official request body, pointed at our VM, recovery point and staging group."""
    body = example("TriggerRestore_RestoreDisks_IaasVMRestoreRequest.json")["parameters"]["parameters"]
    props = body["properties"]
    props.update(
        recoveryPointId=rp,
        sourceResourceId=vm.vm_id,
        storageAccountId=f"{STAGING}/providers/Microsoft.Storage/storageAccounts/stdrill",
        targetResourceGroupId=STAGING,
        region="westeurope",
    )
    props.update(changes)
    return dict(body)


def post_restore(emu: Emulator, vm: VmRef, body: dict[str, Any], rp: str) -> tuple[int, Any]:
    path = f"{item_path(VAULT, vm.container_name, vm.protected_item_name)}/recoveryPoints/{rp}/restore?{API}"
    return emu.raw_request("POST", path, body)


def latest_rp(emu: Emulator, vm: VmRef) -> str:
    item = item_path(VAULT, vm.container_name, vm.protected_item_name)
    status, body = emu.raw_request("GET", f"{item}/recoveryPoints?{API}")
    assert status == 200
    return str(body["value"][0]["name"])


def test_the_official_restore_disks_request_is_accepted_with_the_examples_202_headers(emu: Emulator, vm: VmRef) -> None:
    rp = latest_rp(emu, vm)
    path = f"{item_path(VAULT, vm.container_name, vm.protected_item_name)}/recoveryPoints/{rp}/restore?{API}"
    conn = http.client.HTTPSConnection("127.0.0.1", emu.port, context=emu.ssl_context(), timeout=10)
    conn.request(
        "POST",
        path,
        body=json.dumps(restore_request(vm, rp)),
        headers={"Authorization": f"Bearer {emu.token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    response.read()
    conn.close()

    expected = example("TriggerRestore_RestoreDisks_IaasVMRestoreRequest.json")["responses"]
    assert [str(response.status)] == list(expected)
    headers = {k.lower() for k in expected["202"]["headers"]}
    assert headers <= {k.lower() for k in response.headers}
    assert "/operationsStatus/" in response.headers["Azure-AsyncOperation"]
    assert "/operationResults/" in response.headers["Location"]
    [job] = [j for j in emu.jobs if j.operation == "Restore"]
    assert (job.vm_name, job.status) == (vm.name, "InProgress")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"recoveryType": "Restoredisk"},
            "recoveryType 'Restoredisk' is not valid; allowed: Invalid, OriginalLocation, "
            "AlternateLocation, RestoreDisks, Offline.",
        ),
        ({"objectType": "IaasVMBackupRequest"}, "The restore request must have properties.objectType one of "
         "IaasVMRestoreRequest, IaasVMRestoreWithRehydrationRequest."),
        ({"recoveryPointId": "1"}, None),
        ({"storageAccountId": f"{STAGING}"}, "properties.storageAccountId must be a storage account id "
         "(/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/<name>)."),
        ({"targetResourceGroupId": None}, "properties.targetResourceGroupId must be a resource group id "
         "(/subscriptions/<id>/resourceGroups/<rg>) to restore managed disks."),
    ],
)
def test_bad_restore_requests_are_400s_naming_the_field(
    emu: Emulator, vm: VmRef, changes: dict[str, Any], message: str | None
) -> None:
    rp = latest_rp(emu, vm)
    status, body = post_restore(emu, vm, restore_request(vm, rp, **changes), rp)

    assert status == 400 and body["error"]["code"] == "BMSUserErrorInvalidInput"
    expected = message or f"recoveryPointId '1' does not match the recovery point '{rp}' of the URL."
    assert body["error"]["message"] == expected


def test_an_unknown_recovery_point_is_a_404(emu: Emulator, vm: VmRef) -> None:
    status, body = post_restore(emu, vm, restore_request(vm, "999"), "999")
    assert (status, body["error"]["code"]) == (404, "BMSUserErrorRecoveryPointNotFound")


def test_the_restore_job_names_its_target_and_its_disks_appear_in_the_staging_group(emu: Emulator, vm: VmRef) -> None:
    rp = latest_rp(emu, vm)
    assert post_restore(emu, vm, restore_request(vm, rp), rp)[0] == 202
    [job] = [j for j in emu.jobs if j.operation == "Restore"]
    status, running = emu.raw_request("GET", f"{VAULT.id}/backupJobs/{job.job_id}?{API}")
    assert status == 200 and running["properties"]["operation"] == "Restore"
    assert set(running["properties"]["extendedInfo"]["propertyBag"]) == {
        "Job Type", "Recovery point time ", "Target Storage Account Name", "Target resource group"
    }
    emu.clock.advance(60)  # type: ignore[attr-defined]

    _, done = emu.raw_request("GET", f"{VAULT.id}/backupJobs/{job.job_id}?{API}")
    bag = done["properties"]["extendedInfo"]["propertyBag"]
    assert done["properties"]["status"] == "Completed"
    assert bag["Job Type"] == "Recover disks" and bag["Target resource group"] == "rg-drill"
    assert bag["Template Blob Uri"].startswith("https://stdrill.blob.core.windows.net/")
    status, listed = emu.raw_request("GET", f"{STAGING}/providers/Microsoft.Compute/disks?{DISKS_API}")
    assert status == 200
    assert [d["name"] for d in listed["value"]] == sorted(emu.state.restored_disks(job.job_id))
    # Every key the emulator answers is one the official list example uses.
    official = example("Disk_ListByResourceGroup.json")["responses"]["200"]["body"]["value"][0]
    for disk in listed["value"]:
        assert set(disk) <= set(official) | {"tags"}
        assert set(disk["properties"]) <= set(official["properties"])


def test_a_scripted_restore_failure_carries_the_azure_code(emu: Emulator, vm: VmRef) -> None:
    emu.faults.fail_next_restore(vm.name, "UserErrorInstantRpNotFound")
    rp = latest_rp(emu, vm)
    post_restore(emu, vm, restore_request(vm, rp), rp)
    emu.clock.advance(60)  # type: ignore[attr-defined]

    [job] = [j for j in emu.jobs if j.operation == "Restore"]
    assert (job.status, job.error_code) == ("Failed", "UserErrorInstantRpNotFound")
    assert emu.state.compute.disks(SUB, "rg-drill") == []


def test_disk_tags_patch_get_and_delete_answer_as_the_examples(emu: Emulator) -> None:
    emu.state.compute.create_disk(SUB, "rg-drill", "d1", "westeurope", emu.state.now(), None)
    disk = f"{STAGING}/providers/Microsoft.Compute/disks/d1?{DISKS_API}"

    status, patched = emu.raw_request("PATCH", disk, {"tags": {"protectedvm-drill": "run"}})
    assert (status, patched["tags"]) == (200, {"protectedvm-drill": "run"})
    assert emu.raw_request("GET", disk)[1]["tags"] == {"protectedvm-drill": "run"}
    allowed = {int(code) for code in example("Disk_Delete.json")["responses"]}
    first, again = emu.raw_request("DELETE", disk)[0], emu.raw_request("DELETE", disk)[0]
    assert (first, again) == (200, 204) and {first, again} <= allowed
    status, body = emu.raw_request("GET", disk)
    assert (status, body["error"]["code"]) == (404, "ResourceNotFound")
    assert emu.raw_request("GET", f"{STAGING}/providers/Microsoft.Compute/disks?api-version=2025-02-01")[0] == 400


def test_the_source_vm_shows_its_disks(emu: Emulator, vm: VmRef) -> None:
    emu.state.compute.set_data_disks(vm.vm_id, vm.name, 3)
    status, body = emu.raw_request("GET", f"{vm.vm_id}?api-version=2024-07-01")
    profile = body["properties"]["storageProfile"]
    assert status == 200 and profile["osDisk"]["name"].startswith(f"{vm.name}_OsDisk_1_")
    assert [d["lun"] for d in profile["dataDisks"]] == [0, 1, 2]
    assert emu.raw_request("GET", f"{vm.vm_id[:-1]}x?api-version=2024-07-01")[0] == 404


def test_a_selective_disk_point_has_the_docs_disk_configuration_and_restores_only_its_included_disks(
    emu: Emulator,
) -> None:
    # docs selective-disk-backup-restore: a VM of 4 disks, data disk LUN 2 excluded; "recoverypoint list"
    # shows the counts with null disk lists, "recoverypoint show" lists {lun, name} with the OS disk at -1.
    [ref] = protect(emu, VAULT, vm_ids(SUB, "rg-app", 1), disk_exclusion={"diskLunList": [2], "isInclusionList": False})
    layout = emu.state.compute.set_data_disks(ref.vm_id, ref.name, 3)
    with_recovery_points(emu, [ref])
    item = item_path(VAULT, ref.container_name, ref.protected_item_name)

    status, listed = emu.raw_request("GET", f"{item}/recoveryPoints?{API}")
    [point] = listed["value"]
    assert status == 200 and point["properties"]["recoveryPointDiskConfiguration"] == {
        "excludedDiskList": None,
        "includedDiskList": None,
        "numberOfDisksAttachedToVm": 4,
        "numberOfDisksIncludedInBackup": 3,
    }
    status, one = emu.raw_request("GET", f"{item}/recoveryPoints/{point['name']}?{API}")
    assert status == 200 and one["properties"]["recoveryPointDiskConfiguration"] == {
        "excludedDiskList": [{"lun": 2, "name": layout.data_disks[2]}],
        "includedDiskList": [
            {"lun": -1, "name": layout.os_disk},
            {"lun": 0, "name": layout.data_disks[0]},
            {"lun": 1, "name": layout.data_disks[1]},
        ],
        "numberOfDisksAttachedToVm": 4,
        "numberOfDisksIncludedInBackup": 3,
    }

    assert post_restore(emu, ref, restore_request(ref, point["name"]), point["name"])[0] == 202
    emu.clock.advance(60)  # type: ignore[attr-defined]
    [job] = [j for j in emu.jobs if j.operation == "Restore"]
    restored = emu.state.restored_disks(job.job_id)
    assert [name.rsplit("-", 1)[0] for name in restored] == [layout.os_disk, *layout.data_disks[:2]]
    os_types = {d.name: d.os_type for d in emu.state.compute.disks(SUB, "rg-drill")}
    assert [os_types[name] for name in restored] == ["Linux", None, None]


def test_os_disk_only_points_hold_one_disk_and_full_disk_points_carry_no_disk_configuration(emu: Emulator) -> None:
    os_disk_only = {"diskLunList": [], "isInclusionList": True}
    [os_only] = protect(emu, VAULT, vm_ids(SUB, "rg-os", 1, prefix="os"), disk_exclusion=os_disk_only)
    [full] = protect(emu, VAULT, vm_ids(SUB, "rg-full", 1, prefix="full"))
    with_recovery_points(emu, [os_only, full])

    def listed(ref: VmRef) -> dict[str, Any]:
        item = item_path(VAULT, ref.container_name, ref.protected_item_name)
        [point] = emu.raw_request("GET", f"{item}/recoveryPoints?{API}")[1]["value"]
        return dict(point["properties"])

    disks = listed(os_only)["recoveryPointDiskConfiguration"]
    assert (disks["numberOfDisksAttachedToVm"], disks["numberOfDisksIncludedInBackup"]) == (2, 1)
    # As the official RecoveryPoints_List/Get examples: no recoveryPointDiskConfiguration without a selection.
    assert "recoveryPointDiskConfiguration" not in listed(full)
