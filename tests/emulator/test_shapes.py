"""Emulator bodies carry the keys and value types of Azure's official REST examples (2025-02-01).

Fixtures are copied verbatim from Azure/azure-rest-api-specs
(specification/recoveryservicesbackup/.../examples/2025-02-01 and
specification/recoveryservices/.../examples/2025-02-01). The full conformance suite over the
2024-10-01 and 2026-10-01 examples, with enum values compared and source commits recorded, is
``test_conformance.py``, which reuses ``shape_problems`` from here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator

from .conftest import JOB_SECONDS, SUB, VAULT, VAULT_RG, Env, container_for, item_for, op_id_from

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rest_examples"
VAULT_PATH = f"/subscriptions/{SUB}/resourceGroups/{VAULT_RG}/providers/Microsoft.RecoveryServices/vaults/{VAULT}"
API = "?api-version=2025-02-01"


def example(name: str, status: str = "200") -> Any:
    return json.loads((FIXTURES / name).read_text())["responses"][status]["body"]


def request_body(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())["parameters"]


def shape_problems(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Every key of the example must exist with the same JSON type; a ``null`` example value is optional."""
    if expected is None:
        return []
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if type(expected) is type(actual) else [f"{path}: {type(actual).__name__} != bool"]
    if isinstance(expected, (int, float)):
        return [] if isinstance(actual, (int, float)) else [f"{path}: expected number, got {actual!r}"]
    if isinstance(expected, str):
        return [] if isinstance(actual, str) else [f"{path}: expected string, got {actual!r}"]
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected list, got {actual!r}"]
        if not expected or not actual:
            return []
        return [
            p
            for i, item in enumerate(actual)
            for p in shape_problems(expected[min(i, len(expected) - 1)], item, f"{path}[{i}]")
        ]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected object, got {actual!r}"]
        problems = [f"{path}.{k}: missing" for k, v in expected.items() if k not in actual and v is not None]
        return problems + [
            p for k in expected if k in actual for p in shape_problems(expected[k], actual[k], f"{path}.{k}")
        ]
    raise AssertionError(f"unexpected example value at {path}: {expected!r}")


def get(emu: Emulator, path: str) -> Any:
    status, body = emu.raw_request("GET", path + API)
    assert status == 200, body
    return body


@pytest.fixture
def backed_up(env: Env) -> tuple[Env, str]:
    env.protect("web01")
    job_id = env.backup_job_id("web01")
    return env, job_id


def test_shape_checker_catches_missing_keys_and_wrong_types() -> None:
    assert sorted(shape_problems({"a": 1, "b": {"c": "x"}, "n": None}, {"a": "1", "b": {}})) == [
        "$.a: expected number, got '1'",
        "$.b.c: missing",
    ]


def test_vault_put_matches_example(emu: Emulator) -> None:
    status, body = emu.raw_request(
        "PUT",
        VAULT_PATH + API,
        request_body("PUTVault_WithRedundancySettings.json")["vault"]
        | {"tags": {"TestUpdatedKey": "TestUpdatedValue"}},
    )
    assert status == 201
    assert shape_problems(example("PUTVault_WithRedundancySettings.json", "201"), body) == []


@pytest.mark.parametrize("fixture", ["ProtectionPolicies_CreateOrUpdate_Complex.json", "IaaS_v2_hourly.json"])
def test_policy_put_matches_example(env: Env, fixture: str) -> None:
    status, body = env.emu.raw_request(
        "PUT", f"{VAULT_PATH}/backupPolicies/p1{API}", request_body(fixture)["parameters"]
    )
    assert status == 200
    assert shape_problems(example(fixture), body) == []
    assert body["properties"]["schedulePolicy"] == example(fixture)["properties"]["schedulePolicy"]


def test_in_progress_job_matches_get_job_details_example(backed_up: tuple[Env, str]) -> None:
    env, job_id = backed_up
    body = get(env.emu, f"{VAULT_PATH}/backupJobs/{job_id}")
    assert shape_problems(example("GetJobDetails.json"), body) == []
    assert body["properties"]["extendedInfo"]["tasksList"][0]["taskId"] == "Take Snapshot"


def test_job_list_matches_list_jobs_example(backed_up: tuple[Env, str]) -> None:
    env, _ = backed_up
    body = get(env.emu, f"{VAULT_PATH}/backupJobs")
    assert shape_problems(example("ListJobsWithAllSupportedFilters.json"), body) == []


def test_protected_item_matches_examples_after_first_backup(backed_up: tuple[Env, str]) -> None:
    env, _ = backed_up
    env.clock.advance(JOB_SECONDS)
    body = get(
        env.emu,
        f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/{container_for('web01')}/protectedItems/{item_for('web01')}",
    )
    assert shape_problems(example("Compute_ProtectedItem_Get.json"), body) == []
    assert shape_problems(example("ConfigureProtection.json"), body) == []


def test_operation_status_matches_example(env: Env) -> None:
    env.protect("web01")
    op = op_id_from(env.trigger("web01")["Azure-AsyncOperation"])
    body = get(env.emu, f"{VAULT_PATH}/backupOperations/{op}")
    assert shape_problems(example("ProtectedItemOperationStatus.json"), body) == []


def test_trigger_headers_match_example(env: Env) -> None:
    env.protect("web01")
    headers = env.trigger("web01")
    expected = json.loads((FIXTURES / "TriggerBackup_Post.json").read_text())["responses"]["202"]["headers"]
    assert set(expected) <= set(headers)
    assert int(headers["Retry-After"]) >= 0


def test_recovery_points_match_examples(backed_up: tuple[Env, str]) -> None:
    env, _ = backed_up
    env.clock.advance(JOB_SECONDS)
    base = (
        f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/{container_for('web01')}"
        f"/protectedItems/{item_for('web01')}"
    )
    listed = get(env.emu, f"{base}/recoveryPoints")
    expected_list = example("RecoveryPoints_List.json")
    # The second example point is a plain zonal Azure VM point; the third adds edge-zone extras,
    # and the first uses an older "Archive" readiness key.
    plain = expected_list["value"][1]
    assert shape_problems({"value": [plain]}, listed) == []
    one = get(env.emu, f"{base}/recoveryPoints/{listed['value'][0]['name']}")
    assert shape_problems(example("RecoveryPoints_Get.json"), one) == []
