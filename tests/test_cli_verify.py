"""``python -m protectedvm verify``: exit codes and the table, against the emulator via the env
overrides (``PROTECTED_VM_ARM_ENDPOINT`` / ``PROTECTED_VM_CA_BUNDLE``) a pipeline would not set."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.config import InitialBackupSettings
from emulator import Emulator, ManualClock
from emulator.seeding import emulator_clock, manual_sleep, protect, vm_ids
from protectedvm.azure_client import CA_BUNDLE_ENV, ENDPOINT_ENV, BackupApi
from protectedvm.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNHEALTHY, build_parser, main
from protectedvm.health import check_all, load_protected_vms
from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import InitialBackupVerifier
from tests.helpers import SUB

VAULT = VaultRef(SUB, "rg-backup", "rsv-test")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(job_duration=60.0, clock=ManualClock()) as emulator:
        monkeypatch.setenv(ENDPOINT_ENV, emulator.base_url)
        monkeypatch.setenv(CA_BUNDLE_ENV, emulator.ca_path)
        yield emulator


def back_up(emu: Emulator, vms: list[VmRef]) -> None:
    """Run the initial backup the way `pulumi up` would."""
    verifier = InitialBackupVerifier(
        BackupApi.for_vault(VAULT),
        InitialBackupSettings(),
        clock=emulator_clock(emu),
        sleep=manual_sleep(emu),
    )
    verifier.run(vms)


def stack_outputs(vms: list[VmRef]) -> dict[str, Any]:
    """The shape `pulumi stack output --json` prints for this program."""
    return {
        "vaultId": VAULT.id,
        "protectedVms": [
            {
                "vmId": vm.vm_id,
                "vmName": vm.name,
                "subscriptionId": vm.subscription_id,
                "containerName": vm.container_name,
                "protectedItemName": vm.protected_item_name,
                "protectedItemId": f"{VAULT.id}/backupFabrics/Azure/protectionContainers/{vm.container_name}"
                f"/protectedItems/{vm.protected_item_name}",
                "vaultId": VAULT.id,
                "vaultName": VAULT.name,
                "vaultResourceGroup": VAULT.resource_group,
                "policyId": f"{VAULT.id}/backupPolicies/DefaultPolicy",
            }
            for vm in vms
        ],
    }


def run(tmp_path: Path, outputs: dict[str, Any], *extra: str) -> tuple[int, str, str]:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    out, err = io.StringIO(), io.StringIO()
    code = main(["verify", "--stack-outputs", str(path), *extra], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_all_vms_backed_up_exits_0_with_a_table_of_ok_rows(emu: Emulator, tmp_path: Path) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 2))
    back_up(emu, vms)

    code, out, err = run(tmp_path, stack_outputs(vms))

    assert (code, err) == (EXIT_OK, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "VM",
        "VAULT",
        "STATE",
        "LAST",
        "BACKUP",
        "LAST",
        "BACKUP",
        "TIME",
        "LATEST",
        "RECOVERY",
        "POINT",
        "RESULT",
    ]
    assert lines[1].split()[:4] == ["vm001", "rsv-test", "Protected", "Completed"]
    assert lines[1].endswith("  OK")
    assert lines[-1] == "2 of 2 VM(s) healthy"


def test_vm_without_any_backup_exits_1_and_says_initial_backup_pending(emu: Emulator, tmp_path: Path) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 2))
    back_up(emu, vms[:1])

    code, out, _ = run(tmp_path, stack_outputs(vms))

    assert code == EXIT_UNHEALTHY
    row = next(line for line in out.splitlines() if line.startswith("vm002"))
    assert row.endswith(
        "FAIL: protection state IRPending (initial backup pending); last backup never ran; no recovery point"
    )
    assert out.splitlines()[-1] == "1 of 2 VM(s) healthy, 1 not"


def test_vm_whose_latest_backup_failed_exits_1_even_with_an_older_recovery_point(emu: Emulator, tmp_path: Path) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 1))
    back_up(emu, vms)
    emu.faults.fail_next_job("vm001", "UserErrorVmNotInDesirableState")
    emu.start_job("vm001")
    emu.clock.advance(120)  # type: ignore[attr-defined]

    code, out, _ = run(tmp_path, stack_outputs(vms))

    assert code == EXIT_UNHEALTHY
    assert out.splitlines()[1].endswith("FAIL: last backup Failed; health ActionRequired")


def test_vm_that_is_not_protected_at_all_exits_1(emu: Emulator, tmp_path: Path) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 1))
    back_up(emu, vms)
    stranger = VmRef.from_id(vm_ids(SUB, "rg-other", 1, prefix="db")[0])

    code, out, _ = run(tmp_path, stack_outputs([*vms, stranger]))

    assert code == EXIT_UNHEALTHY
    assert out.splitlines()[2].startswith("db001")
    assert out.splitlines()[2].endswith("FAIL: not protected: no protected item in the vault")


def test_json_format_lists_each_vm_with_healthy_flag(emu: Emulator, tmp_path: Path) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 2))
    back_up(emu, vms[1:])

    code, out, _ = run(tmp_path, stack_outputs(vms), "--format", "json")

    rows = json.loads(out)
    assert code == EXIT_UNHEALTHY
    assert [(r["vm_name"], r["healthy"], r["protection_state"]) for r in rows] == [
        ("vm001", False, "IRPending"),
        ("vm002", True, "Protected"),
    ]


def test_stack_outputs_from_stdin(emu: Emulator) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 1))
    back_up(emu, vms)
    out = io.StringIO()

    code = main(["verify", "--stack-outputs", "-"], stdin=io.StringIO(json.dumps(stack_outputs(vms))), stdout=out)

    assert code == EXIT_OK
    assert out.getvalue().splitlines()[-1] == "1 of 1 VM(s) healthy"


def test_outputs_without_protected_vms_exit_2_naming_the_missing_output(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, {"vaultId": VAULT.id})
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err == "error: the stack outputs have no non-empty 'protectedVms' list (outputs: vaultId)\n"


def test_unreadable_outputs_file_exits_2(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(["verify", "--stack-outputs", str(tmp_path / "missing.json")], stderr=err)
    assert code == EXIT_BAD_INPUT
    assert "missing.json" in err.getvalue()


def test_recovery_point_older_than_max_age_is_unhealthy(emu: Emulator) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 1))
    back_up(emu, vms)
    entries = load_protected_vms(stack_outputs(vms))
    later = emulator_clock(emu)() + dt.timedelta(hours=30)

    [stale] = check_all(entries, max_age=dt.timedelta(hours=24), now=later)
    [fresh] = check_all(entries, max_age=dt.timedelta(hours=36), now=later)

    assert stale.problem == "latest recovery point is older than 24 h"
    assert fresh.healthy


def test_parser_has_verify_as_a_subcommand_so_others_can_be_added() -> None:
    parser = build_parser()
    args = parser.parse_args(["verify", "--stack-outputs", "x.json", "--max-age-hours", "36"])
    assert (args.command, args.stack_outputs, args.max_age_hours, args.format) == ("verify", "x.json", 36.0, "table")
    with pytest.raises(SystemExit) as usage:
        parser.parse_args([])
    assert usage.value.code == 2


def test_python_dash_m_protectedvm_verify_exit_code_in_a_subprocess(emu: Emulator, tmp_path: Path) -> None:
    vms = protect(emu, VAULT, vm_ids(SUB, "rg-app", 2))
    back_up(emu, vms[:1])
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(stack_outputs(vms)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, "-m", "testing.emulator_run", "protectedvm", "verify", "--stack-outputs", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == EXIT_UNHEALTHY, done.stderr
    assert done.stdout.splitlines()[-1] == "1 of 2 VM(s) healthy, 1 not"


# --- Azure's own answers decide what "healthy" means ---------------------------------------------

EXAMPLES = ROOT / "tests" / "fixtures" / "azure_examples"


class _Model(dict[str, Any]):
    """A dict that also has the SDK model's ``id``/``name`` attributes (what BackupApi reads)."""

    @property
    def id(self) -> str:
        return str(self.get("id", ""))

    @property
    def name(self) -> str:
        return str(self.get("name", ""))


class _ExampleClient:
    """An SDK client stand-in answering with an official example body, so the real conversion
    in ``BackupApi.protected_item`` and the real ``check_vm`` judge Azure's published answer."""

    def __init__(self, item: dict[str, Any], points: list[dict[str, Any]]) -> None:
        self.protected_items = type("Items", (), {"get": staticmethod(lambda *a, **k: _Model(item))})()
        self.recovery_points = type("Points", (), {"list": staticmethod(lambda *a, **k: [_Model(p) for p in points])})()

    def close(self) -> None:
        return None


def _example_body(version: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / version / name).read_text())["responses"]["200"]["body"]
    return body


def _judge(item: dict[str, Any]) -> Any:
    point = _example_body("2024-10-01", "RecoveryPoints_Get.json")
    entry = load_protected_vms(stack_outputs(protect_refs()))[0]
    api = BackupApi(_ExampleClient(item, [point]), VAULT)  # type: ignore[arg-type]
    [row] = check_all([entry], lambda _vault: api, now=dt.datetime(2018, 1, 23, tzinfo=dt.UTC))
    return row


def protect_refs() -> list[VmRef]:
    return [VmRef.from_id(vm_ids(SUB, "rg-app", 1)[0])]


@pytest.mark.parametrize(
    ("version", "name"),
    [
        ("2024-10-01", "Compute_ProtectedItem_Get.json"),
        ("2024-10-01", "BackupProtectedItems_List.json"),
        ("2026-10-01", "BackupProtectedItems_List.json"),
    ],
)
def test_azures_own_example_of_a_backed_up_vm_is_healthy(version: str, name: str) -> None:
    body = _example_body(version, name)
    item = body["value"][0] if "value" in body else body

    row = _judge(item)

    assert (row.problem, row.protection_state, row.last_backup_status) == (None, "Protected", "Completed")
    assert row.last_backup_time == "2018-01-22T12:25:32.048723Z"


def test_never_backed_up_sentinel_time_reads_as_never_not_as_a_2001_backup() -> None:
    item = _example_body("2024-10-01", "Compute_ProtectedItem_Get.json")
    props = item["properties"] | {
        "protectionState": "IRPending",
        "lastBackupStatus": "",
        "lastBackupTime": "2001-01-01T00:00:00Z",
    }

    row = _judge(item | {"properties": props})

    assert row.last_backup_time is None
    assert row.problem == "protection state IRPending (initial backup pending); last backup never ran"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"lastBackupStatus": "Failed", "healthStatus": "ActionRequired"}, "last backup Failed; health ActionRequired"),
        ({"lastBackupStatus": "Healthy"}, "last backup Healthy"),
        ({"healthStatus": "Invalid"}, "health Invalid"),
        ({"lastBackupStatus": "CompletedWithWarnings", "healthStatus": "ActionSuggested"}, None),
    ],
)
def test_health_follows_azures_status_values(changes: dict[str, str], problem: str | None) -> None:
    item = _example_body("2024-10-01", "Compute_ProtectedItem_Get.json")
    assert _judge(item | {"properties": item["properties"] | changes}).problem == problem


def test_emulator_answers_the_never_backed_up_sentinel_before_the_first_backup(emu: Emulator) -> None:
    [vm] = protect(emu, VAULT, vm_ids(SUB, "rg-app", 1))
    path = (
        f"{VAULT.id}/backupFabrics/Azure/protectionContainers/{vm.container_name}"
        f"/protectedItems/{vm.protected_item_name}?api-version=2024-10-01"
    )
    status, body = emu.raw_request("GET", path)
    assert status == 200
    props = body["properties"]
    assert (props["lastBackupTime"], props["lastBackupStatus"]) == ("2001-01-01T00:00:00Z", "")
