"""The vault PUT accepts the official monitoringSettings and CMK examples and refuses values
Azure's enums do not have (issue 17, deliverable 6). Bodies: tests/emulator/examples/operations/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from tests.emulator.conftest import SUB

EXAMPLES = Path(__file__).resolve().parent / "examples" / "operations"
VAULT_PATH = f"/subscriptions/{SUB}/resourceGroups/rg-ops/providers/Microsoft.RecoveryServices/vaults/rsv-ops"
API = "?api-version=2024-10-01"


def request(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / name).read_text())["parameters"]["vault"]
    return body


def test_the_official_monitoring_settings_put_is_stored_and_echoed(emu: Emulator) -> None:
    body = request("PUTVault_WithMonitoringSettings.json")
    status, answer = emu.raw_request("PUT", VAULT_PATH + API, body)
    assert status == 201, answer
    expected = json.loads((EXAMPLES / "PUTVault_WithMonitoringSettings.json").read_text())["responses"]["201"]
    assert answer["properties"]["monitoringSettings"] == expected["body"]["properties"]["monitoringSettings"]
    status, again = emu.raw_request("GET", VAULT_PATH + API)
    monitoring = again["properties"]["monitoringSettings"]
    assert monitoring["azureMonitorAlertSettings"]["alertsForAllJobFailures"] == "Enabled"
    assert monitoring["classicAlertSettings"]["alertsForCriticalOperations"] == "Disabled"


def test_the_official_cmk_put_is_stored_with_its_user_assigned_identity(emu: Emulator) -> None:
    body = request("PUTVault_WithCMK.json")
    status, answer = emu.raw_request("PUT", VAULT_PATH + API, body)
    assert status == 201, answer
    assert answer["properties"]["encryption"]["keyVaultProperties"]["keyUri"] == (
        "https://cmk2xkv.vault.azure.net/keys/Key1/0767b348bb1a4c07baa6c4ec0055d2b3"
    )
    assert answer["properties"]["encryption"]["infrastructureEncryption"] == "Enabled"
    assert answer["identity"]["type"] == "UserAssigned"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures",
            "On",
            "properties.monitoringSettings.azureMonitorAlertSettings.alertsForAllJobFailures: "
            "'On' is not a valid value: choose one of Enabled, Disabled",
        ),
        (
            "monitoringSettings.classicAlertSettings.alertsForCriticalOperations",
            "disabled",
            "properties.monitoringSettings.classicAlertSettings.alertsForCriticalOperations: "
            "'disabled' is not a valid value: choose one of Enabled, Disabled",
        ),
    ],
)
def test_alert_switches_outside_azures_alertsstate_enum_are_a_400_naming_the_property(
    emu: Emulator, path: str, value: str, message: str
) -> None:
    body = copy.deepcopy(request("PUTVault_WithMonitoringSettings.json"))
    node = body["properties"]
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    status, answer = emu.raw_request("PUT", VAULT_PATH + API, body)
    assert status == 400
    assert answer["error"]["message"] == message
    assert emu.raw_request("GET", VAULT_PATH + API)[0] == 404  # nothing half-created


def test_cmk_whose_kek_identity_is_not_assigned_to_the_vault_is_a_400(emu: Emulator) -> None:
    body = copy.deepcopy(request("PUTVault_WithCMK.json"))
    body["identity"] = {"type": "SystemAssigned"}
    status, answer = emu.raw_request("PUT", VAULT_PATH + API, body)
    assert status == 400
    assert answer["error"]["message"] == (
        "properties.encryption.kekIdentity.userAssignedIdentity: /subscriptions/85bf5e8c-3084-4f42-add2-746ebb7e97b2"
        "/resourcegroups/defaultrg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/examplemsi is not "
        "assigned to the vault (identity.userAssignedIdentities)"
    )


def test_cmk_infrastructure_encryption_outside_its_enum_is_a_400(emu: Emulator) -> None:
    body = copy.deepcopy(request("PUTVault_WithCMK.json"))
    body["properties"]["encryption"]["infrastructureEncryption"] = True
    status, answer = emu.raw_request("PUT", VAULT_PATH + API, body)
    assert status == 400
    assert answer["error"]["message"] == (
        "properties.encryption.infrastructureEncryption: True is not a valid value: choose one of Enabled, Disabled"
    )


def test_a_patch_with_a_bad_alert_switch_is_refused_and_the_vault_keeps_its_settings(emu: Emulator) -> None:
    assert emu.raw_request("PUT", VAULT_PATH + API, request("PUTVault_WithMonitoringSettings.json"))[0] == 201
    patch = {"properties": {"monitoringSettings": {"azureMonitorAlertSettings": {"alertsForAllJobFailures": "Yes"}}}}
    status, _ = emu.raw_request("PATCH", VAULT_PATH + API, patch)
    assert status == 400
    _, vault = emu.raw_request("GET", VAULT_PATH + API)
    monitoring = vault["properties"]["monitoringSettings"]
    assert monitoring["azureMonitorAlertSettings"]["alertsForAllJobFailures"] == "Enabled"
