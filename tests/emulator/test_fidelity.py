"""The emulator's Azure behaviours beyond body shapes: policy validation, asynchronous job
appearance, Cancelling, Retry-After, request ids, ARM throttling, and that the verifier copes.

Each behaviour is switchable (``Emulator(...)`` options) and cites its source where it is modelled.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from components.config import InitialBackupSettings
from emulator import Emulator, ManualClock
from emulator.seeding import emulator_clock, manual_sleep, protect, vm_ids
from emulator.throttle import ARM_LIMITS, BucketLimit, Throttle
from protectedvm.azure_client import BackupApi, RetrySettings, make_sdk_client
from protectedvm.ids import VaultRef
from protectedvm.verifier import InitialBackupVerifier

from .conftest import SUB, VAULT, VAULT_RG, Env, container_for, item_for, op_id_from

VAULT_PATH = f"/subscriptions/{SUB}/resourceGroups/{VAULT_RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"
API = "?api-version=2026-10-01"
T = "2018-01-24T22:00:00Z"

V1_DAILY: dict[str, Any] = {
    "backupManagementType": "AzureIaasVM",
    "policyType": "V1",
    "instantRpRetentionRangeInDays": 2,
    "schedulePolicy": {
        "schedulePolicyType": "SimpleSchedulePolicy",
        "scheduleRunFrequency": "Daily",
        "scheduleRunTimes": [T],
    },
    "retentionPolicy": {
        "retentionPolicyType": "LongTermRetentionPolicy",
        "dailySchedule": {"retentionTimes": [T], "retentionDuration": {"count": 7, "durationType": "Days"}},
    },
}
V2_HOURLY: dict[str, Any] = {
    "backupManagementType": "AzureIaasVM",
    "policyType": "V2",
    "instantRpRetentionRangeInDays": 7,
    "schedulePolicy": {
        "schedulePolicyType": "SimpleSchedulePolicyV2",
        "scheduleRunFrequency": "Hourly",
        "hourlySchedule": {
            "interval": 4,
            "scheduleWindowDuration": 12,
            "scheduleWindowStartTime": "2018-01-24T08:00:00Z",
        },
    },
    "retentionPolicy": {
        "retentionPolicyType": "LongTermRetentionPolicy",
        "dailySchedule": {
            "retentionTimes": ["2018-01-24T08:00:00Z"],
            "retentionDuration": {"count": 30, "durationType": "Days"},
        },
    },
}


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(base)
    node = body
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return body


def put_policy(env: Env, props: dict[str, Any]) -> tuple[int, Any]:
    return env.emu.raw_request("PUT", f"{VAULT_PATH}/backupPolicies/p1{API}", {"properties": props})


# --- policy validation --------------------------------------------------------------------------


@pytest.mark.parametrize("base", [V1_DAILY, V2_HOURLY], ids=["v1-daily", "v2-hourly"])
def test_valid_policies_are_accepted(env: Env, base: dict[str, Any]) -> None:
    status, body = put_policy(env, base)
    assert status == 200, body
    frequency = base["schedulePolicy"]["scheduleRunFrequency"]
    assert body["properties"]["schedulePolicy"]["scheduleRunFrequency"] == frequency


@pytest.mark.parametrize(
    ("base", "path", "value", "message"),
    [
        (V1_DAILY, "schedulePolicy.scheduleRunTimes", ["2018-01-24T22:15:00Z"],
         "Schedule time '2018-01-24T22:15:00Z' is not valid; backups can be scheduled only on the hour or half hour."),
        (V1_DAILY, "retentionPolicy.dailySchedule.retentionDuration.count", 6,
         "dailySchedule retention count 6 is not valid; allowed 7-9999 days."),
        (V1_DAILY, "retentionPolicy.dailySchedule.retentionDuration.count", 10000,
         "dailySchedule retention count 10000 is not valid; allowed 7-9999 days."),
        (V1_DAILY, "instantRpRetentionRangeInDays", 6,
         "instantRpRetentionRangeInDays 6 is not valid for policyType V1; allowed 1-5."),
        (V2_HOURLY, "instantRpRetentionRangeInDays", 31,
         "instantRpRetentionRangeInDays 31 is not valid for policyType V2; allowed 1-30."),
        (V2_HOURLY, "schedulePolicy.schedulePolicyType", "SimpleSchedulePolicy",
         "schedulePolicyType 'SimpleSchedulePolicy' is not valid for policyType V2; use 'SimpleSchedulePolicyV2'."),
        (V1_DAILY, "schedulePolicy.schedulePolicyType", "SimpleSchedulePolicyV2",
         "schedulePolicyType 'SimpleSchedulePolicyV2' is not valid for policyType V1; use 'SimpleSchedulePolicy'."),
        (V2_HOURLY, "schedulePolicy.hourlySchedule.interval", 5,
         "Hourly interval 5 is not valid; allowed values are 4, 6, 8, 12 hours."),
        (V2_HOURLY, "schedulePolicy.hourlySchedule.scheduleWindowDuration", 26,
         "Schedule window duration 26 is not valid; allowed values are 4-24 hours."),
        (V2_HOURLY, "schedulePolicy.hourlySchedule.scheduleWindowDuration", 10,
         "Schedule window duration 10 hours must be a multiple of the hourly interval 4."),
        (V2_HOURLY, "retentionPolicy.dailySchedule.retentionTimes", ["2018-01-24T09:00:00Z"],
         "dailySchedule retention time '2018-01-24T09:00:00Z' differs from the schedule time 08:00; "
         "retention times must match the schedule."),
        (V2_HOURLY, "retentionPolicy.dailySchedule", None, "A Hourly schedule needs daily retention (dailySchedule)."),
    ],
)
def test_policy_bodies_azure_refuses_get_its_400(
    env: Env, base: dict[str, Any], path: str, value: Any, message: str
) -> None:
    status, body = put_policy(env, changed(base, path, value))
    assert status == 400
    assert body == {"error": {"code": "BMSUserErrorInvalidPolicyInput", "message": message}}


def test_weekly_v1_policy_needs_weekly_retention_and_five_instant_restore_days(env: Env) -> None:
    weekly = changed(V1_DAILY, "schedulePolicy.scheduleRunFrequency", "Weekly")
    weekly["schedulePolicy"]["scheduleRunDays"] = ["Sunday"]
    weekly["instantRpRetentionRangeInDays"] = 5
    refused = put_policy(env, weekly)[1]["error"]["message"]
    assert refused == "A Weekly schedule cannot have daily retention (dailySchedule)."
    weekly["instantRpRetentionRangeInDays"] = 2
    weekly["retentionPolicy"] = {
        "retentionPolicyType": "LongTermRetentionPolicy",
        "weeklySchedule": {"daysOfTheWeek": ["Sunday"], "retentionTimes": [T],
                           "retentionDuration": {"count": 4, "durationType": "Weeks"}},
    }
    assert put_policy(env, weekly)[1]["error"]["message"] == (
        "instantRpRetentionRangeInDays must be 5 for a weekly V1 policy, not 2"
    )
    weekly["instantRpRetentionRangeInDays"] = 5
    assert put_policy(env, weekly)[0] == 200


def test_hourly_schedule_on_a_v1_policy_is_refused(env: Env) -> None:
    hourly_v1 = changed(V1_DAILY, "schedulePolicy.scheduleRunFrequency", "Hourly")
    assert put_policy(env, hourly_v1)[1]["error"]["message"] == "Hourly backups need an Enhanced (V2) policy."


def test_counts_sent_as_floats_by_the_engine_are_accepted(env: Env) -> None:
    assert put_policy(env, changed(V1_DAILY, "retentionPolicy.dailySchedule.retentionDuration.count", 7.0))[0] == 200


# --- LRO headers and request ids ----------------------------------------------------------------


def test_default_emulator_answers_azures_retry_after_of_60(clock: ManualClock) -> None:
    with Emulator(clock=clock) as emu:
        emu.create_vault(SUB, VAULT_RG, VAULT)
        emu.add_vm(f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/web01")
        status, headers, _ = emu.raw_exchange(
            "PUT",
            f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/{container_for('web01')}"
            f"/protectedItems/{item_for('web01')}{API}",
            {"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines",
                            "sourceResourceId": f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/"
                            "Microsoft.Compute/virtualMachines/web01",
                            "policyId": f"{VAULT_PATH}/backupPolicies/DefaultPolicy"}},
        )
    assert (status, headers["Retry-After"]) == (202, "60")


def test_every_response_has_its_own_request_id_and_echoes_the_client_id_separately(env: Env) -> None:
    client_id = str(uuid.uuid4())
    first = env.emu.raw_exchange("GET", VAULT_PATH + API, headers={"x-ms-client-request-id": client_id})[1]
    second = env.emu.raw_exchange("GET", VAULT_PATH + API, headers={"x-ms-client-request-id": client_id})[1]
    ids = {first["x-ms-request-id"], second["x-ms-request-id"]}
    assert len(ids) == 2 and client_id not in ids
    assert all(str(uuid.UUID(i)) == i for i in ids)
    assert first["x-ms-client-request-id"] == client_id
    assert first["x-ms-correlation-request-id"] != second["x-ms-correlation-request-id"]


# --- asynchronous job appearance ------------------------------------------------------------------


@pytest.fixture
def late_jobs(clock: ManualClock) -> Iterator[Env]:
    with Emulator(clock=clock, job_duration=600.0, job_appearance_delay=45.0, lro_retry_after=0) as emu:
        emu.create_vault(SUB, VAULT_RG, VAULT)
        env = Env(emu, clock, emu.client(SUB))
        env.add_vm("web01")
        env.protect("web01")
        yield env


def test_triggered_job_is_listed_only_after_its_operation_ran_a_while(late_jobs: Env) -> None:
    env = late_jobs
    op = op_id_from(env.trigger("web01")["Azure-AsyncOperation"])

    early = env.client.backup_operation_statuses.get(VAULT, VAULT_RG, op)
    listed_early = [j.properties.operation for j in env.client.backup_jobs.list(VAULT, VAULT_RG)]
    env.clock.advance(45)
    late = env.client.backup_operation_statuses.get(VAULT, VAULT_RG, op)
    listed_late = {j.name: j.properties.operation for j in env.client.backup_jobs.list(VAULT, VAULT_RG)}

    assert (early.status, early.properties) == ("InProgress", None)
    assert listed_early == ["ConfigureBackup"]
    assert late.status == "Succeeded"
    assert listed_late[late.properties.job_id] == "Backup"


def test_verifier_copes_with_jobs_that_appear_late(clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = VaultRef(SUB, "rg-backup", "rsv-late")
    with Emulator(clock=clock, job_duration=120.0, job_appearance_delay=45.0) as emu:
        monkeypatch.setenv("PROTECTED_VM_ARM_ENDPOINT", emu.base_url)
        monkeypatch.setenv("PROTECTED_VM_CA_BUNDLE", emu.ca_path)
        vms = protect(emu, vault, vm_ids(SUB, "rg-app", 3))
        fast = RetrySettings(sdk_total=3, backoff_factor=0.01, backoff_max=0.05, max_retry_after=5.0)
        api = BackupApi(make_sdk_client(SUB, retry=fast), vault, retry=fast, sleep=manual_sleep(emu))
        settings = InitialBackupSettings(verify="completed", retain_days=30, timeout_minutes=30, poll_seconds=30)
        verifier = InitialBackupVerifier(
            api, settings, vault_name=vault.name, clock=emulator_clock(emu), sleep=manual_sleep(emu)
        )

        results = verifier.run(vms)

        backups = {j.vm_name: j.job_id for j in emu.jobs if j.operation == "Backup"}
    assert {vm.name: (r.status, r.job_id) for vm, r in zip(vms, results.values(), strict=True)} == {
        name: ("Completed", job) for name, job in backups.items()
    }
    assert all(r.recovery_point_id for r in results.values())


# --- Cancelling -----------------------------------------------------------------------------------


def test_cancel_shows_cancelling_before_cancelled(env: Env) -> None:
    env.protect("web01")
    job_id = env.backup_job_id("web01")

    headers = env.emu.raw_exchange("POST", f"{VAULT_PATH}/backupJobs/{job_id}/cancel{API}")[1]
    during = env.job(job_id).properties.status
    result_during = env.emu.raw_exchange("GET", headers["Location"].split(env.emu.base_url, 1)[1])[0]
    env.clock.advance(env.emu.state.cancel_duration)
    after = env.job(job_id)
    result_after = env.emu.raw_exchange("GET", headers["Location"].split(env.emu.base_url, 1)[1])[0]

    assert (during, result_during) == ("Cancelling", 202)
    assert (after.properties.status, result_after) == ("Cancelled", 204)
    assert after.properties.end_time is not None


def test_job_cancelled_in_the_portal_passes_through_cancelling(env: Env) -> None:
    env.protect("web01")
    env.emu.faults.cancel_next_job("web01")
    job_id = env.backup_job_id("web01")
    statuses = [env.job(job_id).properties.status]
    for seconds in (595, 10):  # the job (600 s) is cancelled in its last cancel_duration (10 s)
        env.clock.advance(seconds)
        statuses.append(env.job(job_id).properties.status)
    assert statuses == ["InProgress", "Cancelling", "Cancelled"]


def test_cancelling_a_finished_job_is_refused(env: Env) -> None:
    env.protect("web01")
    job_id = env.backup_job_id("web01")
    env.clock.advance(600)
    status, body = env.emu.raw_request("POST", f"{VAULT_PATH}/backupJobs/{job_id}/cancel{API}")
    assert (status, body["error"]["message"]) == (400, f"Job '{job_id}' is Completed and cannot be cancelled.")


# --- protected items list ------------------------------------------------------------------------


def test_protected_items_list_carries_each_item_with_azures_values(env: Env) -> None:
    env.add_vm("web02")
    env.protect("web01")
    env.protect("web02")
    env.backup_job_id("web01")
    env.clock.advance(600)
    listed = env.client.backup_protected_items.list(VAULT, VAULT_RG)
    items = {i.properties["friendlyName"]: i.properties for i in listed}
    assert {name: (p["protectionState"], p["lastBackupStatus"]) for name, p in items.items()} == {
        "web01": ("Protected", "Completed"),
        "web02": ("IRPending", ""),
    }
    assert items["web02"]["lastBackupTime"] == "2001-01-01T00:00:00Z"


# --- ARM throttling ---------------------------------------------------------------------------------


def test_token_buckets_have_arms_published_sizes_and_refill_rates() -> None:
    clock = ManualClock()
    throttle = Throttle(clock, enforce=True)
    reads = [throttle.take(SUB, "GET")[1] for _ in range(250)]
    with pytest.raises(Exception) as refused:
        throttle.take(SUB, "GET")
    writes = throttle.take(SUB, "PUT")
    clock.advance(1)
    after_a_second = throttle.take(SUB, "GET")

    assert (reads[0], reads[-1]) == ("249", "0")
    assert refused.value.status == 429  # type: ignore[attr-defined]
    assert refused.value.headers["Retry-After"] == "1"  # type: ignore[attr-defined]
    assert writes == ("x-ms-ratelimit-remaining-subscription-writes", "199")
    assert after_a_second == ("x-ms-ratelimit-remaining-subscription-reads", "24")
    assert ARM_LIMITS["deletes"] == BucketLimit(200, 10.0)


def test_throttling_is_off_by_default_but_the_remaining_count_is_always_reported(env: Env) -> None:
    env.emu.throttle.limits["reads"] = BucketLimit(2, 1.0)
    answers = [env.emu.raw_exchange("GET", VAULT_PATH + API) for _ in range(3)]
    assert [(s, h["x-ms-ratelimit-remaining-subscription-reads"]) for s, h, _ in answers] == [
        (200, "1"),
        (200, "0"),
        (200, "0"),
    ]


def test_enforced_throttling_answers_429_with_retry_after_per_subscription(env: Env) -> None:
    env.emu.throttle.enforce = True
    env.emu.throttle.limits["reads"] = BucketLimit(2, 0.5)
    statuses = [env.emu.raw_exchange("GET", VAULT_PATH + API) for _ in range(3)]
    other_sub = env.emu.raw_request("GET", VAULT_PATH.replace(SUB, str(uuid.uuid4())) + API)[0]
    env.clock.advance(2)
    recovered = env.emu.raw_request("GET", VAULT_PATH + API)[0]

    _, headers, body = statuses[2]
    assert [s for s, _, _ in statuses] == [200, 200, 429]
    assert headers["Retry-After"] == "2"
    assert body["error"]["code"] == "SubscriptionRequestsThrottled"
    assert other_sub == 404  # its own bucket: not throttled, just no such vault
    assert recovered == 200


def test_the_sdk_client_the_product_uses_rides_out_enforced_throttling() -> None:
    """Real time: the SDK sleeps the 429's Retry-After (1 s here) and the bucket refills meanwhile."""
    with Emulator(throttling=True, lro_retry_after=0) as emu:
        emu.create_vault(SUB, VAULT_RG, VAULT)
        emu.throttle.limits["reads"] = BucketLimit(2, 2.0)
        client = emu.client(SUB)
        names = [client.protection_policies.get(VAULT, VAULT_RG, "DefaultPolicy").name for _ in range(4)]
        assert names == ["DefaultPolicy"] * 4
        assert emu.counts["policy.get"] > 4  # at least one 429 was answered and retried


def test_operation_result_still_running_repeats_the_examples_lro_headers(clock: ManualClock) -> None:
    from .test_conformance import EXAMPLES, header_problems

    example = json.loads((EXAMPLES / "2024-10-01" / "ProtectedItemOperationResults.json").read_text())
    with Emulator(clock=clock, operation_delay=30, lro_retry_after=60) as emu:
        emu.create_vault(SUB, VAULT_RG, VAULT)
        env = Env(emu, clock, emu.client(SUB))
        env.add_vm("web01")
        container = f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/{container_for('web01')}"
        item = f"{container}/protectedItems/{item_for('web01')}"
        body = {"properties": {"protectedItemType": "Microsoft.Compute/virtualMachines",
                               "sourceResourceId": f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/"
                               "Microsoft.Compute/virtualMachines/web01",
                               "policyId": f"{VAULT_PATH}/backupPolicies/DefaultPolicy"}}
        location = emu.raw_exchange("PUT", item + API, body)[1]["Location"]
        status, headers, _ = emu.raw_exchange("GET", location.split(emu.base_url, 1)[1])
    assert status == 202
    assert header_problems(example["responses"]["202"]["headers"], headers) == []
