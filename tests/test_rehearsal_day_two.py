"""``python -m rehearsal.day_two``: each day-two scenario against the emulator with the real
provider code, for a Locked (prod) and an Unlocked (dev) stack."""

from __future__ import annotations

import pytest

from rehearsal.day_two import main, run_day_two


def run(stack: str) -> tuple[int, list[str]]:
    chunks: list[str] = []
    code = run_day_two(stack, chunks.append)
    return code, "\n".join(chunks).splitlines()


def test_prod_day_two_loses_no_recovery_point_and_refuses_the_unlock_at_preview() -> None:
    code, lines = run("prod")
    assert code == 0, "\n".join(lines)
    text = "\n".join(lines)
    assert "2. remove vm-api-prod-01: deletes rg-app-prod-vm-api-prod-01, rg-app-prod-vm-api-prod-01-item, " in text
    assert "VmProtection: stopped protection, data retained; item ProtectionStopped" in text
    assert "4. unlock the Locked vault: preview fails: vault.immutability = 'Unlocked' is not allowed" in text
    table = lines[-7:-1]
    assert [row.split()[-1] for row in table[2:]] == ["ok", "ok", "ok", "ok"]
    assert "vm-api-prod-01: 1 -> 2" in table[3]
    assert lines[-1] == "result: OK: no recovery point or URN lost"


def test_dev_day_two_locks_the_unlocked_vault_in_a_separate_step() -> None:
    code, lines = run("dev")
    assert code == 0, "\n".join(lines)
    assert any(line.startswith("4. lock the vault: VaultLock: Unlocked -> Locked") for line in lines)
    assert any(
        line.startswith("1. add vm-web-dev-01 of rg-day-two: creates rg-day-two-vm-web-dev-01, ") for line in lines
    )


def test_cli_exit_code_is_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "staging"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("result: OK: no recovery point or URN lost")
