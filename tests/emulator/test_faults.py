"""Request-level faults observed through the SDK's own retry policy."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from emulator import Emulator

from .conftest import VAULT, VAULT_RG, Env, container_for, item_for


def _get_item(env: Env) -> object:
    return env.client.protected_items.get(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))


def test_throttled_get_is_retried_by_the_sdk_honouring_retry_after(env: Env) -> None:
    env.protect("web01")
    job_id = env.backup_job_id("web01")
    env.emu.reset_counts()
    env.emu.faults.http("job.get", 429, retry_after=0)
    assert env.job(job_id).properties.status == "InProgress"
    assert env.emu.counts["job.get"] == 2


def test_throttle_with_nonzero_retry_after_still_succeeds(env: Env) -> None:
    env.protect("web01")
    env.emu.reset_counts()
    env.emu.faults.http("item.get", 429, retry_after=1)
    assert _get_item(env) is not None
    assert env.emu.counts["item.get"] == 2


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_on_get_are_retried(env: Env, status: int) -> None:
    env.protect("web01")
    env.emu.reset_counts()
    env.emu.faults.http("item.get", status)
    assert _get_item(env) is not None
    assert env.emu.counts["item.get"] == 2


def test_throttled_trigger_post_with_retry_after_is_retried(env: Env) -> None:
    # azure-core retries any method when Retry-After is present.
    env.protect("web01")
    env.emu.faults.http("backup.trigger", 429, retry_after=0)
    env.trigger("web01")
    assert env.emu.counts["backup.trigger"] == 2
    assert env.emu.trigger_count("web01") == 1


def test_throttled_trigger_post_without_retry_after_surfaces_429(env: Env) -> None:
    # Without Retry-After, azure-core does not retry a POST on 429: callers must handle it.
    env.protect("web01")
    env.emu.faults.http("backup.trigger", 429)
    with pytest.raises(HttpResponseError) as err:
        env.trigger("web01")
    assert err.value.status_code == 429
    assert err.value.error is not None and err.value.error.code == "TooManyRequests"
    assert env.emu.counts["backup.trigger"] == 1
    assert env.emu.trigger_count("web01") == 0


def test_503_on_trigger_post_is_retried_by_the_sdk(env: Env) -> None:
    env.protect("web01")
    env.emu.faults.http("backup.trigger", 503)
    env.trigger("web01")
    assert env.emu.counts["backup.trigger"] == 2
    assert env.emu.trigger_count("web01") == 1


def test_custom_error_code_reaches_the_caller(env: Env) -> None:
    env.emu.faults.http("policy.get", 400, code="BMSUserErrorSomethingOdd", message="odd")
    with pytest.raises(HttpResponseError) as err:
        env.client.protection_policies.get(VAULT, VAULT_RG, "DefaultPolicy")
    assert err.value.error is not None
    assert (err.value.error.code, err.value.error.message) == ("BMSUserErrorSomethingOdd", "odd")


def test_faults_exhaust_after_the_requested_number_of_times(env: Env) -> None:
    env.emu.faults.http("policy.get", 400, times=2)
    for _ in range(2):
        with pytest.raises(HttpResponseError):
            env.client.protection_policies.get(VAULT, VAULT_RG, "DefaultPolicy")
    assert env.client.protection_policies.get(VAULT, VAULT_RG, "DefaultPolicy").name == "DefaultPolicy"
    assert env.emu.counts["policy.get"] == 3


def test_dropped_connection_on_get_is_retried_by_the_sdk(env: Env) -> None:
    env.protect("web01")
    env.emu.reset_counts()
    env.emu.faults.drop("item.get")
    assert _get_item(env) is not None
    assert env.emu.counts["item.get"] == 2


def test_dropped_connection_on_trigger_post_raises_a_connection_error(env: Env) -> None:
    env.protect("web01")
    env.emu.faults.drop("backup.trigger")
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        env.trigger("web01")
    assert env.emu.counts["backup.trigger"] == 1


def test_unknown_route_name_in_a_fault_is_a_test_bug(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown route"):
        emu.faults.http("jobs.get", 500)
