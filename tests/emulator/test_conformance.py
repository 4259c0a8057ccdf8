"""Conformance: every vendored official example is replayed against the emulator and compared.

The examples live in ``tests/fixtures/azure_examples/<api-version>/`` with their source path and commit
in ``manifest.json`` (Azure/azure-rest-api-specs). For each one the example's own request (its path
parameters, query and body) is sent, after the state the example presupposes was set up the way a
client would (vault, VM, policy, a finished backup...), and the answer is compared:

* the status code is one the example lists;
* the headers that matter (Location, Azure-AsyncOperation, Retry-After) are present, Retry-After has
  the example's value and each URL points at the same kind of resource (``operationsStatus``,
  ``backupOperations``...);
* every key of the example's body exists with the same JSON type (``null`` example values are
  optional), and enum-valued fields (``ENUM_FIELDS``) have the example's VALUE.

Anything else the emulator does differently must be in ``DIFFERENCES`` with its reason; an unlisted
difference fails, and so does a listed one that no longer happens (the list cannot go stale).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest

from emulator import Emulator, ManualClock

from .test_shapes import shape_problems

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "azure_examples"
MANIFEST: dict[str, Any] = json.loads((EXAMPLES / "manifest.json").read_text())
JOB_SECONDS = 600.0
PLACEHOLDER = "00000000-0000-0000-0000-000000000000"

#: Fields whose value is one of a fixed set (bms.json enums, or strings the examples fix), compared by value.
ENUM_FIELDS = frozenset(
    {
        "status",
        "protectionState",
        "protectionStatus",
        "lastBackupStatus",
        "healthStatus",
        "operation",
        "jobType",
        "objectType",
        "backupManagementType",
        "workloadType",
        "protectedItemType",
        "policyType",
        "schedulePolicyType",
        "scheduleRunFrequency",
        "retentionPolicyType",
        "retentionScheduleFormatType",
        "durationType",
        "snapshotConsistencyType",
        "recoveryPointType",
        "sourceVMStorageType",
        "virtualMachineVersion",
        "taskId",
        "provisioningState",
        "type",
    }
)
HEADERS = ("Location", "Azure-AsyncOperation", "Retry-After")

#: Deliberate differences: example file -> {problem as reported: reason}.
DIFFERENCES: dict[str, dict[str, str]] = {
    "2024-10-01/PUTVault.json": {
        "$.tags.TestUpdatedKey: missing": "the example's response carries a tag its request never sent; the "
        "emulator answers the tags that were PUT",
    },
    "2026-02-01/PUTVault_WithRedundancySettings.json": {
        "$.tags.TestUpdatedKey: missing": "the example's response carries a tag its request never sent; the "
        "emulator answers the tags that were PUT",
    },
    "2024-10-01/GETVault.json": {
        "$.properties.privateEndpointConnections: missing": "private endpoints are not modelled (the product "
        "disables public network access but creates no private endpoint)",
        "$.properties.privateEndpointStateForBackup: missing": "private endpoints are not modelled",
        "$.properties.privateEndpointStateForSiteRecovery: missing": "private endpoints are not modelled",
        "$.properties.secureScore: missing": "Azure's security score is computed by the service, not modelled",
        "$.properties.bcdrSecurityLevel: missing": "Azure's BCDR security level is computed by the service, not "
        "modelled",
    },
    "2024-10-01/ProtectionPolicies_CreateOrUpdate_Simple.json": {
        "$status: 400 not in [200, 202]": "the example keeps daily points 1 day; Azure now refuses daily retention "
        "below 7 days (azurerm backup_policy_vm docs: 'this value must now be at least 7'), and so does the emulator",
    },
    "2024-10-01/IaaS_v2_daily.json": {
        "$status: 400 not in [200, 202]": "the example's retention times (08:00) differ from its schedule time "
        "(10:00); azurerm records that they must be the same, and the emulator refuses the body",
    },
    "2026-10-01/IaaS_v2_daily.json": {
        "$status: 400 not in [200, 202]": "the example's retention times (08:00) differ from its schedule time "
        "(10:00); azurerm records that they must be the same, and the emulator refuses the body",
    },
    "2024-10-01/BackupProtectedItems_List.json": {
        "$.value[0].properties.protectedItemType: 'Microsoft.Compute/virtualMachines' != "
        "'Microsoft.ClassicCompute/virtualMachines'": "the list example is a classic VM; the product protects ARM "
        "VMs, whose type Compute_ProtectedItem_Get.json shows",
    },
    "2026-10-01/BackupProtectedItems_List.json": {
        "$.value[0].properties.protectedItemType: 'Microsoft.Compute/virtualMachines' != "
        "'Microsoft.ClassicCompute/virtualMachines'": "the list example is a classic VM; the product protects ARM "
        "VMs, whose type Compute_ProtectedItem_Get.json shows",
    },
    "2024-10-01/ProtectedItem_Delete.json": {
        "$headers.Azure-AsyncOperation: operationsStatus != backupOperations": "the emulator tracks a delete on the "
        "item's operationsStatus; Azure points at the vault's backupOperations (left to the soft-delete work on "
        "branch daytwo, which owns DELETE)",
        "$headers.Location: operationResults != backupOperationResults": "as above, for the Location header",
    },
    "2024-10-01/ListJobsWithStartTimeAndEndTimeFilters.json": {
        "$.nextLink: missing": "the service cut its first page after two jobs; the emulator's page (50) holds both",
    },
    "2024-10-01/RecoveryPoints_List.json": {
        "$.value[0].properties.recoveryPointMoveReadinessInfo.Archive: missing": "the example's first point uses an "
        "older readiness key; the emulator keys it ArchivedRP like the example's other points and "
        "RecoveryPoints_Get.json",
        "$.value[0].properties.recoveryPointTierDetails[0].status: 'Valid' != 'Deleted'": "a fresh point's "
        "snapshot (InstantRP) is still valid; the example's first point is past its instant-restore days",
    },
    "2024-10-01/RecoveryPoints_Get.json": {
        "$.properties.recoveryPointTierDetails[0].type: 'InstantRP' != 'HardenedRP'": "a fresh point also has its "
        "snapshot tier (InstantRP) for the instant-restore days; the example's point is older than that",
    },
}


# --- comparison -------------------------------------------------------------------------------


def value_problems(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Enum-valued fields whose value differs from the example's."""
    problems: list[str] = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, want in expected.items():
            if key not in actual:
                continue
            here = f"{path}.{key}"
            if key in ENUM_FIELDS and isinstance(want, str) and isinstance(actual[key], str):
                if actual[key] != want:
                    problems.append(f"{here}: {actual[key]!r} != {want!r}")
            else:
                problems += value_problems(want, actual[key], here)
    elif isinstance(expected, list) and isinstance(actual, list) and expected:
        for i, item in enumerate(actual[: len(expected)]):
            problems += value_problems(expected[i], item, f"{path}[{i}]")
    return problems


def header_problems(expected: dict[str, Any], actual: dict[str, str]) -> list[str]:
    lowered = {k.lower(): v for k, v in actual.items()}
    problems: list[str] = []
    for name in HEADERS:
        if name not in expected:
            continue
        got = lowered.get(name.lower())
        if got is None:
            problems.append(f"$headers.{name}: missing")
        elif name == "Retry-After":
            if got != str(expected[name]):
                problems.append(f"$headers.Retry-After: {got!r} != {str(expected[name])!r}")
        else:
            want_kind, got_kind = _url_kind(str(expected[name])), _url_kind(got)
            if want_kind != got_kind:
                problems.append(f"$headers.{name}: {got_kind} != {want_kind}")
    return problems


def _url_kind(url: str) -> str:
    """``.../backupOperations/{id}`` -> ``backupOperations``: which kind of resource the URL names."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    return parts[-2] if len(parts) >= 2 else url


def conformance_problems(example: dict[str, Any], status: int, headers: dict[str, str], body: Any) -> list[str]:
    responses: dict[str, Any] = example["responses"]
    codes = sorted(int(code) for code in responses)
    if str(status) not in responses:
        return [f"$status: {status} not in {codes}"]
    expected = responses[str(status)]
    problems = header_problems(expected.get("headers") or {}, headers)
    if "body" in expected:
        problems += shape_problems(expected["body"], body) + value_problems(expected["body"], body)
    return problems


def test_value_comparison_catches_a_wrong_enum_value_and_ignores_free_text() -> None:
    expected = {"properties": {"lastBackupStatus": "Completed", "friendlyName": "vm-a"}, "value": [{"status": "x"}]}
    actual = {"properties": {"lastBackupStatus": "Healthy", "friendlyName": "vm-b"}, "value": [{"status": "y"}]}
    assert value_problems(expected, actual) == [
        "$.properties.lastBackupStatus: 'Healthy' != 'Completed'",
        "$.value[0].status: 'y' != 'x'",
    ]


def test_header_comparison_checks_presence_value_and_url_kind() -> None:
    expected = {"Location": "https://h/a/backupOperationResults/1?x=1", "Retry-After": 60, "Azure-AsyncOperation": "u"}
    actual = {"location": "https://h/a/operationResults/1", "retry-after": "0"}
    assert header_problems(expected, actual) == [
        "$headers.Location: operationResults != backupOperationResults",
        "$headers.Azure-AsyncOperation: missing",
        "$headers.Retry-After: '0' != '60'",
    ]


# --- replay -------------------------------------------------------------------------------------


@dataclass
class Replay:
    """One emulator set up for one example, addressed with the example's own names."""

    emu: Emulator
    clock: ManualClock
    params: dict[str, Any]

    @property
    def sub(self) -> str:
        return str(self.params.get("subscriptionId", PLACEHOLDER))

    @property
    def vault_path(self) -> str:
        return (
            f"/subscriptions/{self.sub}/resourceGroups/{self.params['resourceGroupName']}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.params['vaultName']}"
        )

    @property
    def item_path(self) -> str:
        return (
            f"{self.vault_path}/backupFabrics/{self.params.get('fabricName', 'Azure')}/protectionContainers/"
            f"{quote(self.params['containerName'], safe=';')}/protectedItems/"
            f"{quote(self.params['protectedItemName'], safe=';')}"
        )

    def query(self, **extra: str) -> str:
        fields = {"api-version": self.params["api-version"]}
        if "$filter" in self.params:
            fields["$filter"] = self.params["$filter"]
        fields.update(extra)
        return "?" + urlencode(fields, quote_via=quote)

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        return self.emu.raw_exchange(method, path + self.query(), body)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, _, payload = self.send(method, path, body)
        assert status in (200, 201, 202, 204), (method, path, status, payload)
        return payload

    # -- the state an example presupposes --
    def vault(self) -> None:
        self.ok("PUT", self.vault_path, {"location": "westus", "sku": {"name": "Standard"}, "properties": {}})

    def vm_id(self) -> str:
        _, _, rg, vm = self.params["containerName"].split(";")
        return f"/subscriptions/{self.sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}"

    def policy(self, name: str, policy_type: str = "V1") -> str:
        time = "2018-01-24T02:00:00Z"
        if policy_type == "V2":
            schedule: dict[str, Any] = {
                "schedulePolicyType": "SimpleSchedulePolicyV2",
                "scheduleRunFrequency": "Daily",
                "dailySchedule": {"scheduleRunTimes": [time]},
            }
        else:
            schedule = {"schedulePolicyType": "SimpleSchedulePolicy", "scheduleRunFrequency": "Daily",
                        "scheduleRunTimes": [time]}
        retention = {"retentionTimes": [time], "retentionDuration": {"count": 7, "durationType": "Days"}}
        props = {
            "backupManagementType": "AzureIaasVM",
            "policyType": policy_type,
            "timeZone": "UTC",
            "schedulePolicy": schedule,
            "retentionPolicy": {"retentionPolicyType": "LongTermRetentionPolicy", "dailySchedule": retention},
        }
        self.ok("PUT", f"{self.vault_path}/backupPolicies/{name}", {"properties": props})
        return f"{self.vault_path}/backupPolicies/{name}"

    def protect(self, policy: str = "DefaultPolicy", policy_type: str = "V1") -> dict[str, str]:
        self.vault()
        if policy != "DefaultPolicy":
            self.policy(policy, policy_type)
        self.emu.add_vm(self.vm_id())
        props = {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "sourceResourceId": self.vm_id(),
            "policyId": f"{self.vault_path}/backupPolicies/{policy}",
        }
        status, headers, _ = self.send("PUT", self.item_path, {"properties": props})
        assert status == 202
        return headers

    def trigger(self) -> str:
        request = {"properties": {"objectType": "IaasVMBackupRequest"}}
        status, headers, _ = self.send("POST", f"{self.item_path}/backup", request)
        assert status == 202
        return urlsplit(headers["Azure-AsyncOperation"]).path.rsplit("/", 1)[-1]

    def job_id(self, op_id: str) -> str:
        body = self.ok("GET", f"{self.vault_path}/backupOperations/{op_id}")
        return str(body["properties"]["jobId"])

    def backed_up(self, policy: str = "DefaultPolicy", policy_type: str = "V1") -> str:
        """Protect the example's VM and let one backup complete; returns the trigger's operation id."""
        self.protect(policy, policy_type)
        op = self.trigger()
        self.clock.advance(JOB_SECONDS)
        return op


def params_for(example: dict[str, Any], **names: str) -> dict[str, Any]:
    """The example's parameters; a container/item-less example (lists, vault) borrows an Azure VM's names."""
    params = dict(example["parameters"])
    params.setdefault("containerName", "IaasVMContainer;iaasvmcontainerv2;netsdktestrg;netvmtestv2vm1")
    params.setdefault("protectedItemName", "VM;iaasvmcontainerv2;netsdktestrg;netvmtestv2vm1")
    params.update(names)
    return params


Scenario = Callable[[Replay, dict[str, Any]], tuple[int, dict[str, str], Any]]


def _vault_put(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    return r.send("PUT", r.vault_path, ex["parameters"]["vault"])


def _vault_get(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    props = ex["responses"]["200"]["body"]["properties"]
    keys = ("publicNetworkAccess", "monitoringSettings", "securitySettings", "redundancySettings")
    writable = {k: props[k] for k in keys}
    body = {"location": "West US", "sku": {"name": "Standard"}, "tags": {"TestUpdatedKey": "TestUpdatedValue"},
            "identity": {"type": "SystemAssigned"}, "properties": writable}
    r.ok("PUT", r.vault_path, body)
    return r.send("GET", r.vault_path)


def _policy_put(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.vault()
    path = f"{r.vault_path}/backupPolicies/{ex['parameters']['policyName']}"
    return r.send("PUT", path, ex["parameters"]["parameters"])


def _policy_get(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """PUT the policy the example shows (read-only fields dropped, daily retention raised to Azure's minimum
    of 7 and retention times aligned with the schedule, see DIFFERENCES), then GET it."""
    r.vault()
    props = {k: v for k, v in ex["responses"]["200"]["body"]["properties"].items()
             if k not in ("protectedItemsCount", "resourceGuardOperationRequests")}
    props = json.loads(json.dumps(props))
    schedule = props["schedulePolicy"]
    times = schedule.get("scheduleRunTimes") or schedule["dailySchedule"]["scheduleRunTimes"]
    daily = props["retentionPolicy"]["dailySchedule"]
    daily["retentionDuration"]["count"] = max(7, daily["retentionDuration"]["count"])
    daily["retentionTimes"] = list(times)
    path = f"{r.vault_path}/backupPolicies/{ex['parameters']['policyName']}"
    r.ok("PUT", path, {"properties": props})
    return r.send("GET", path)


def _item_put(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.vault()
    r.emu.add_vm(r.vm_id())
    body = ex["parameters"]["parameters"]
    # The example names its vault's DefaultPolicy with a differently cased id; the emulator's vault is
    # addressed by the example's own names, so the id is the same policy.
    return r.send("PUT", r.item_path, body)


def _item_operation_result(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    headers = r.protect()
    r.trigger()
    r.clock.advance(JOB_SECONDS)
    op = urlsplit(headers["Location"]).path.rsplit("/", 1)[-1]
    return r.send("GET", f"{r.item_path}/operationResults/{op}")


def _item_operation_status(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    op = r.trigger()
    return r.send("GET", f"{r.item_path}/operationsStatus/{op}")


def _item_get(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.backed_up("testPolicy1")
    return r.send("GET", r.item_path)


def _items_list(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    item = ex["responses"]["200"]["body"]["value"][0]["properties"]
    r.backed_up("testPolicy1", item.get("policyType", "V1"))
    return r.send("GET", f"{r.vault_path}/backupProtectedItems")


def _trigger(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    return r.send("POST", f"{r.item_path}/backup", ex["parameters"]["parameters"])


def _item_delete(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    return r.send("DELETE", r.item_path)


def _backup_operation_status(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    op = r.trigger()  # the emulator was made with a 30 s operation delay: still InProgress
    return r.send("GET", f"{r.vault_path}/backupOperations/{op}")


def _job_get(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    job = r.job_id(r.trigger())
    return r.send("GET", f"{r.vault_path}/backupJobs/{job}")


def _jobs_list(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    r.trigger()
    return r.send("GET", f"{r.vault_path}/backupJobs")


def _job_cancel(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    job = r.job_id(r.trigger())
    return r.send("POST", f"{r.vault_path}/backupJobs/{job}/cancel")


def _job_cancel_result(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.protect()
    job = r.job_id(r.trigger())
    _, headers, _ = r.send("POST", f"{r.vault_path}/backupJobs/{job}/cancel")
    r.clock.advance(r.emu.state.cancel_duration)
    return r.emu.raw_exchange("GET", urlsplit(headers["Location"]).path + r.query())


def _rp_list(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.emu.faults.warn_next_job(r.params["protectedItemName"])  # the example's points are CrashConsistent
    r.backed_up()
    return r.send("GET", f"{r.item_path}/recoveryPoints")


def _rp_get(r: Replay, ex: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    r.emu.faults.warn_next_job(r.params["protectedItemName"])  # the example's point is CrashConsistent
    r.backed_up()
    listed = r.ok("GET", f"{r.item_path}/recoveryPoints")
    return r.send("GET", f"{r.item_path}/recoveryPoints/{listed['value'][0]['name']}")


SCENARIOS: dict[str, Scenario] = {
    "Vaults_CreateOrUpdate": _vault_put,
    "Vaults_Get": _vault_get,
    "ProtectionPolicies_CreateOrUpdate": _policy_put,
    "ProtectionPolicies_Get": _policy_get,
    "ProtectedItems_CreateOrUpdate": _item_put,
    "ProtectedItemOperationResults_Get": _item_operation_result,
    "ProtectedItemOperationStatuses_Get": _item_operation_status,
    "ProtectedItems_Get": _item_get,
    "BackupProtectedItems_List": _items_list,
    "Backups_Trigger": _trigger,
    "ProtectedItems_Delete": _item_delete,
    "BackupOperationStatuses_Get": _backup_operation_status,
    "JobDetails_Get": _job_get,
    "BackupJobs_List": _jobs_list,
    "JobCancellations_Trigger": _job_cancel,
    "JobOperationResults_Get": _job_cancel_result,
    "RecoveryPoints_Get": _rp_get,
    "RecoveryPoints_List": _rp_list,
}
#: Examples whose request filters on 2016-2017 dates are replayed on a clock starting at their jobs' date.
EXAMPLE_EPOCH = dt.datetime(2017, 8, 3, 5, 30, tzinfo=dt.UTC)


@pytest.fixture
def replay_emulator() -> Iterator[Callable[..., Emulator]]:
    running: list[Emulator] = []

    def make(**options: Any) -> Emulator:
        emu = Emulator(job_duration=JOB_SECONDS, **options).start()
        running.append(emu)
        return emu

    yield make
    for emu in running:
        emu.stop()


def test_every_vendored_example_has_a_source_a_commit_and_a_replay() -> None:
    files = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("*/*.json"))
    assert files == sorted(MANIFEST["files"])
    for entry in MANIFEST["files"].values():
        assert entry["source"].startswith("specification/recoveryservices")
        assert len(entry["commit"]) == 40
        assert entry["operationId"] in SCENARIOS
    assert set(DIFFERENCES) <= set(MANIFEST["files"])


@pytest.mark.parametrize("name", sorted(MANIFEST["files"]))
def test_example_replayed_against_the_emulator_matches(name: str, replay_emulator: Callable[..., Emulator]) -> None:
    example = json.loads((EXAMPLES / name).read_text())
    operation = MANIFEST["files"][name]["operationId"]
    clock = ManualClock()
    options: dict[str, Any] = {"clock": clock}
    if "$filter" in example["parameters"] and "startTime" in example["parameters"]["$filter"]:
        options["start_time"] = EXAMPLE_EPOCH
    if operation == "BackupOperationStatuses_Get":
        options["operation_delay"] = 30.0
    replay = Replay(replay_emulator(**options), clock, params_for(example))

    status, headers, body = SCENARIOS[operation](replay, example)

    problems = conformance_problems(example, status, headers, body)
    assert sorted(problems) == sorted(DIFFERENCES.get(name, {})), json.dumps(body, indent=1)[:3000]
