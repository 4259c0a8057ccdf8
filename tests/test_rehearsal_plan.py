"""The rehearsal's plan table shows the settings a reviewer signs off on, read from the real program."""

from __future__ import annotations

from rehearsal.plan_table import render_plan
from rehearsal.table import render_table
from testing.mock_preview import evaluate_stack


def test_prod_plan_shows_vault_security_and_retention_ladder() -> None:
    text = render_plan(evaluate_stack("prod"))
    lines = text.splitlines()
    assert lines[0].split() == ["TYPE", "NAME", "KEY", "SETTINGS"]
    vault_line = next(line for line in lines if line.startswith("recoveryservices:Vault "))
    assert (
        "rsv-pvm-prod-weu in westeurope: GeoRedundant, CRR Enabled, soft delete AlwaysON (30d), "
        "immutability Locked, public access Disabled"
    ) in vault_line
    policy_line = next(line for line in lines if line.startswith("recoveryservices:ProtectionPolicy"))
    assert (
        "pol-vm-hourly-prod: Enhanced (V2), every 4h from 00:00 for 24h UTC, instant restore 7d, "
        "retention 30d / 12w / 12m / 7y"
    ) in policy_line
    items = [line for line in lines if line.startswith("recoveryservices:ProtectedItem")]
    assert len(items) == 3
    assert "vm-web-prod-01 (rg rg-app-prod) -> item vm;iaasvmcontainerv2;rg-app-prod;vm-web-prod-01" in text


def test_plan_lists_cloud_resources_in_dependency_order_without_components() -> None:
    lines = render_plan(evaluate_stack("dev")).splitlines()[2:]
    kinds = [line.split()[0] for line in lines]
    assert kinds[:2] == ["recoveryservices:Vault", "recoveryservices:ProtectionPolicy"]
    assert "BackupVault" not in "\n".join(lines)
    assert "Standard (V1), Daily at 22:00 UTC, instant restore 2d, retention 7d" in "\n".join(lines)


def test_table_pads_columns_to_the_widest_cell() -> None:
    assert render_table(("A", "BB"), [("xxx", "y"), ("z", None)]).splitlines() == [
        "A    BB",
        "---  --",
        "xxx  y",
        "z",
    ]
