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
from protectedvm.azure_client import CA_BUNDLE_ENV, ENDPOINT_ENV, BackupApi
from protectedvm.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNHEALTHY, build_parser, main
from protectedvm.emulated import emulator_clock, manual_sleep, protect, vm_ids
from protectedvm.health import check_all, load_protected_vms
from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import InitialBackupVerifier

SUB = "11111111-2222-3333-4444-555555555555"
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
        [sys.executable, "-m", "protectedvm", "verify", "--stack-outputs", str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == EXIT_UNHEALTHY, done.stderr
    assert done.stdout.splitlines()[-1] == "1 of 2 VM(s) healthy, 1 not"
