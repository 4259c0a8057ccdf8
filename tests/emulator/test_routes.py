"""Every route through the real SDK (or raw HTTPS where the SDK has no call), including ARM error shapes."""

from __future__ import annotations

import http.client
import json

import pytest
from azure.core import PipelineClient
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from emulator import Emulator

from .conftest import (
    SUB,
    VAULT,
    VAULT_RG,
    Env,
    container_for,
    item_for,
    op_id_from,
    policy_id,
    vm_id,
)

VAULT_PATH = f"/subscriptions/{SUB}/resourceGroups/{VAULT_RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"


def test_vault_put_stores_properties_and_get_returns_them_arm_shaped(emu: Emulator) -> None:
    created = emu.create_vault(
        SUB,
        VAULT_RG,
        VAULT,
        location="West Europe",
        sku={"name": "Standard"},
        redundancySettings={"standardTierStorageRedundancy": "ZoneRedundant", "crossRegionRestore": "Disabled"},
        securitySettings={
            "immutabilitySettings": {"state": "Unlocked"},
            "softDeleteSettings": {"softDeleteState": "AlwaysON"},
        },
        publicNetworkAccess="Disabled",
    )
    assert created["sku"] == {"name": "RS0", "tier": "Standard"}
    status, body = emu.raw_request("GET", f"{VAULT_PATH}?api-version=2024-10-01")
    assert status == 200
    assert body["id"] == VAULT_PATH
    assert body["type"] == "Microsoft.RecoveryServices/vaults"
    assert body["location"] == "westeurope"
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["publicNetworkAccess"] == "Disabled"
    assert body["properties"]["redundancySettings"]["standardTierStorageRedundancy"] == "ZoneRedundant"
    assert body["properties"]["securitySettings"]["immutabilitySettings"]["state"] == "Unlocked"
    assert emu.counts["vault.put"] == 1 and emu.counts["vault.get"] == 1


def test_vault_put_answers_201_first_then_200(emu: Emulator) -> None:
    body = {"location": "westeurope", "sku": {"name": "RS0", "tier": "Standard"}, "properties": {}}
    assert emu.raw_request("PUT", f"{VAULT_PATH}?api-version=2025-02-01", body)[0] == 201
    assert emu.raw_request("PUT", f"{VAULT_PATH}?api-version=2025-02-01", body)[0] == 200


def test_missing_vault_is_an_arm_404(emu: Emulator) -> None:
    client = emu.client(SUB)
    with pytest.raises(ResourceNotFoundError) as err:
        client.protection_policies.get(VAULT, VAULT_RG, "DefaultPolicy")
    assert err.value.error is not None and err.value.error.code == "ResourceNotFound"


def test_policy_put_then_get_round_trips_through_the_sdk(env: Env) -> None:
    props = {
        "backupManagementType": "AzureIaasVM",
        "policyType": "V2",
        "instantRpRetentionRangeInDays": 7,
        "schedulePolicy": {
            "schedulePolicyType": "SimpleSchedulePolicyV2",
            "scheduleRunFrequency": "Daily",
            "dailySchedule": {"scheduleRunTimes": ["2024-01-01T23:00:00Z"]},
        },
        "retentionPolicy": {
            "retentionPolicyType": "LongTermRetentionPolicy",
            "dailySchedule": {
                "retentionTimes": ["2024-01-01T23:00:00Z"],
                "retentionDuration": {"count": 14, "durationType": "Days"},
            },
        },
        "timeZone": "UTC",
    }
    put = env.client.protection_policies.create_or_update(VAULT, VAULT_RG, "daily-v2", {"properties": props})
    assert put is not None and put.name == "daily-v2"
    got = env.client.protection_policies.get(VAULT, VAULT_RG, "DAILY-V2")
    assert got.properties["policyType"] == "V2"
    assert got.properties["retentionPolicy"]["dailySchedule"]["retentionDuration"]["count"] == 14
    assert got.properties["protectedItemsCount"] == 0
    assert env.emu.counts["policy.put"] == 1 and env.emu.counts["policy.get"] == 1


def test_vault_comes_with_default_policy(env: Env) -> None:
    policy = env.client.protection_policies.get(VAULT, VAULT_RG, "DefaultPolicy")
    assert policy.properties["backupManagementType"] == "AzureIaasVM"


def test_item_put_answers_202_with_lro_headers_and_item_is_irpending(env: Env) -> None:
    body = {
        "properties": {
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "sourceResourceId": vm_id("web01"),
            "policyId": policy_id(),
        }
    }
    path = (
        f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/{container_for('web01')}"
        f"/protectedItems/{item_for('web01')}"
    )
    conn = http.client.HTTPSConnection("127.0.0.1", env.emu.port, context=env.emu.ssl_context())
    conn.request("PUT", path + "?api-version=2026-10-01", json.dumps(body), {"Authorization": "Bearer emulator-token"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 202
    assert "/operationsStatus/" in resp.headers["Azure-AsyncOperation"]
    assert "/operationResults/" in resp.headers["Location"]
    assert resp.headers["Retry-After"] == "0"  # this fixture's emulator; Azure's 60 is the default

    item = env.client.protected_items.get(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))
    props = item.properties
    assert props["protectionState"] == "IRPending"
    assert props["lastBackupStatus"] == ""
    assert props["healthStatus"] == "Passed"
    assert props["policyId"] == policy_id()
    assert props["sourceResourceId"] == vm_id("web01")
    assert props["virtualMachineId"] == vm_id("web01")
    assert props["friendlyName"] == "web01"


def test_protecting_an_unknown_vm_is_an_arm_404(env: Env) -> None:
    with pytest.raises(ResourceNotFoundError) as err:
        env.protect("ghost")
    assert err.value.error is not None and err.value.error.code == "ResourceNotFound"
    message = err.value.error.message
    assert message is not None and "ghost" in message


def test_protecting_with_a_malformed_container_name_is_rejected(env: Env) -> None:
    with pytest.raises(HttpResponseError) as err:
        env.client.protected_items.begin_create_or_update(
            VAULT,
            VAULT_RG,
            "Azure",
            "web01",
            item_for("web01"),
            {
                "properties": {
                    "protectedItemType": "Microsoft.Compute/virtualMachines",
                    "sourceResourceId": vm_id("web01"),
                    "policyId": policy_id(),
                }
            },
        )
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == "BMSUserErrorInvalidInput"


def test_item_get_of_unprotected_vm_is_404(env: Env) -> None:
    with pytest.raises(ResourceNotFoundError):
        env.client.protected_items.get(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))


def test_item_operation_status_and_result_for_protection(env: Env) -> None:
    poller = env.client.protected_items.begin_create_or_update(
        VAULT,
        VAULT_RG,
        "Azure",
        container_for("web01"),
        item_for("web01"),
        {
            "properties": {
                "protectedItemType": "Microsoft.Compute/virtualMachines",
                "sourceResourceId": vm_id("web01"),
                "policyId": policy_id(),
            }
        },
        polling=False,
    )
    op_id = op_id_from(poller.polling_method()._initial_response.http_response.headers["Azure-AsyncOperation"])
    status = env.client.protected_item_operation_statuses.get(
        VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"), op_id
    )
    assert status.status == "Succeeded"
    assert status.properties.object_type == "OperationStatusJobExtendedInfo"
    result = env.client.protected_item_operation_results.get(
        VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"), op_id
    )
    assert result is not None and result.name == "VM;iaasvmcontainerv2;rg-app;web01"
    assert env.emu.counts["item.operationsStatus.get"] == 1
    assert env.emu.counts["item.operationResults.get"] == 1


def test_operation_results_for_a_finished_trigger_is_204(env: Env) -> None:
    env.protect("web01")
    op_id = op_id_from(env.trigger("web01")["Location"])
    result = env.client.protected_item_operation_results.get(
        VAULT,
        VAULT_RG,
        "Azure",
        container_for("web01"),
        item_for("web01"),
        op_id,
        cls=lambda response, body, headers: response.http_response.status_code,
    )
    assert result == 204


def test_item_delete_soft_deletes_the_item_under_the_default_soft_delete(env: Env) -> None:
    """Soft delete is Enabled by default, so a DELETE keeps the item scheduled for deletion
    (tests/test_day_two_emulator.py covers the states); it is not gone at once."""
    env.protect("web01")
    env.client.protected_items.delete(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))
    item = env.client.protected_items.get(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"))
    assert item.properties.is_scheduled_for_deferred_delete is True
    assert env.emu.counts["item.delete"] == 1


def test_recovery_point_get_returns_the_listed_point(env: Env) -> None:
    env.protect("web01")
    env.backup_job_id("web01")
    env.clock.advance(10_000)
    listed = list(env.client.recovery_points.list(VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01")))
    got = env.client.recovery_points.get(
        VAULT, VAULT_RG, "Azure", container_for("web01"), item_for("web01"), listed[0].name
    )
    assert got.id == listed[0].id
    assert got.properties["objectType"] == "IaasVMRecoveryPoint"
    assert env.emu.counts["recoveryPoint.get"] == 1


def test_job_get_of_unknown_job_is_404(env: Env) -> None:
    with pytest.raises(ResourceNotFoundError):
        env.job("00000000-0000-0000-0000-000000000000")


def test_names_with_percent_encoded_semicolons_and_any_case_resolve_to_one_item(env: Env) -> None:
    env.protect("web01")
    upper = env.client.protected_items.get(
        VAULT.upper(),
        VAULT_RG.upper(),
        "AZURE",
        "IaasVMContainer;IaasVMContainerV2;RG-APP;WEB01",
        "VM;iaasvmcontainerv2;Rg-App;Web01",
    )
    assert upper.name == "VM;iaasvmcontainerv2;rg-app;web01"
    status, body = env.emu.raw_request(
        "GET",
        f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/iaasvmcontainer%3Biaasvmcontainerv2%3Brg-app%3Bweb01"
        "/protectedItems/vm%3Biaasvmcontainerv2%3Brg-app%3Bweb01?api-version=2026-10-01",
    )
    assert status == 200 and body["name"] == upper.name
    assert env.emu.trigger_count("VM;iaasvmcontainerv2;rg-app;WEB01") == 0


def test_unknown_route_is_an_arm_404(emu: Emulator) -> None:
    status, body = emu.raw_request(
        "GET", f"/subscriptions/{SUB}/providers/Microsoft.Nope/things?api-version=2025-02-01"
    )
    assert status == 404
    assert body["error"]["code"] == "NotFound"


def test_unsupported_api_version_is_rejected(env: Env) -> None:
    status, body = env.emu.raw_request("GET", f"{VAULT_PATH}?api-version=2016-12-01")
    assert status == 400
    assert body["error"]["code"] == "NoRegisteredProviderFound"
    assert "API version '2016-12-01' and type 'vaults'" in body["error"]["message"]
    client = env.emu.client(SUB, api_version="2019-05-13")
    with pytest.raises(HttpResponseError) as err:
        client.protection_policies.get(VAULT, VAULT_RG, "DefaultPolicy")
    assert err.value.error is not None and err.value.error.code == "NoRegisteredProviderFound"
    assert err.value.error.message == (
        "No registered resource provider found for API version '2019-05-13' and type 'vaults/backupPolicies'. "
        "The supported api-versions are '2026-10-01, 2025-08-01, 2025-02-01, 2024-10-01'."
    )


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "MissingApiVersionParameter"),
        ("?api-version=", "MissingApiVersionParameter"),
        ("?api-version=latest", "InvalidApiVersionParameter"),
    ],
)
def test_missing_or_malformed_api_version_gets_arms_codes(env: Env, query: str, code: str) -> None:
    status, body = env.emu.raw_request("GET", f"{VAULT_PATH}{query}")
    assert (status, body["error"]["code"]) == (400, code)


@pytest.mark.parametrize("version", ["2026-10-01", "2025-08-01", "2025-02-01", "2024-10-01"])
def test_supported_api_versions_are_accepted(env: Env, version: str) -> None:
    assert env.emu.raw_request("GET", f"{VAULT_PATH}?api-version={version}")[0] == 200


def test_request_without_bearer_token_gets_401_authentication_failed(env: Env) -> None:
    client: PipelineClient = PipelineClient(
        env.emu.base_url, transport=RequestsTransport(connection_verify=env.emu.ca_path)
    )
    response = client.send_request(
        HttpRequest("GET", f"{env.emu.base_url}{VAULT_PATH}/backupJobs?api-version=2026-10-01")
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationFailed"
    assert "Authorization" in response.json()["error"]["message"]
    status, body = env.emu.raw_request("GET", f"{VAULT_PATH}?api-version=2026-10-01", token=False)
    assert status == 401 and body["error"]["code"] == "AuthenticationFailed"


def test_wrong_bearer_token_gets_401_invalid_token(env: Env) -> None:
    status, body = env.emu.raw_request(
        "GET", f"{VAULT_PATH}?api-version=2026-10-01", headers={"Authorization": "Bearer stolen"}
    )
    assert status == 401 and body["error"]["code"] == "InvalidAuthenticationToken"


def test_trigger_with_past_or_unparseable_expiry_is_rejected(env: Env) -> None:
    env.protect("web01")
    for bad in ("2001-01-01T00:00:00Z", "next tuesday"):
        with pytest.raises(HttpResponseError) as err:
            env.client.backups.trigger(
                VAULT,
                VAULT_RG,
                "Azure",
                container_for("web01"),
                item_for("web01"),
                {"properties": {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": bad}},
            )
        assert err.value.status_code == 400
        assert err.value.error is not None and err.value.error.code == "BMSUserErrorInvalidInput"
    assert env.emu.jobs == tuple(j for j in env.emu.jobs if j.operation != "Backup")


def test_trigger_for_unprotected_item_is_404(env: Env) -> None:
    with pytest.raises(ResourceNotFoundError):
        env.trigger("web01")
