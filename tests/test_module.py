"""The project as a module in someone else's program: what is installed, and ProtectedVM doing the
whole job (its own initial-backup proof standalone, one batched proof per shared vault)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi.output import Unknown

from components.backup_vault import BackupVault
from components.config import InitialBackupSettings, PolicySettings, VaultSettings
from components.initial_backup import TYPE_TOKEN, InitialBackupProvider
from components.protected_vm import ProtectedVM
from testing.mock_preview import RecordingMocks, evaluate
from tests.provider_host import ProviderHost

ROOT = Path(__file__).resolve().parent.parent
SUB = "6b0c1c5e-0f2a-4d8e-9a57-2f3c4d5e6f70"
ITEM = "azure-native:recoveryservices:ProtectedItem"
VAULT = "azure-native:recoveryservices:Vault"


def vm_id(name: str, rg: str = "rg-app") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def standalone(name: str = "solo", **extra: object) -> ProtectedVM:
    args = {
        "vm_id": vm_id(f"{name}-vm"),
        "vault": VaultSettings(name=f"rsv-{name}", resource_group="rg-backup", location="westeurope"),
        "policy": PolicySettings(name="daily"),
        **extra,
    }
    return ProtectedVM(name, args)  # type: ignore[arg-type]  # a dict literal built with **extra


def test_pyproject_installs_the_components_and_the_azure_side_with_requirements_and_a_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"] == ["components", "protectedvm"]
    assert project["tool"]["setuptools"]["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert project["project"]["scripts"] == {"protected-vm": "protectedvm.cli:main"}
    # The command's target exists and is the argparse main with verify and drill.
    from protectedvm.cli import build_parser

    choices = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert choices is not None and set(choices) == {"verify", "drill"}


def test_standalone_protected_vm_registers_its_own_initial_backup_after_its_item() -> None:
    def program() -> None:
        standalone()

    plan = evaluate(program, {})
    [proof] = plan.of_type(TYPE_TOKEN)
    [vault] = plan.of_type(VAULT)
    [item] = plan.of_type(ITEM)
    assert proof.name == "solo-initial-backup"
    assert proof.inputs["vaultId"] == vault.id
    assert proof.inputs["vmIds"] == [vm_id("solo-vm")]
    assert proof.inputs["settings"] == InitialBackupSettings().to_dict()
    types = [r.type for r in plan.resources]
    assert types.index(ITEM) < types.index(TYPE_TOKEN)
    assert item.inputs["vaultName"] == "rsv-solo"


def test_standalone_protected_vm_passes_its_initial_backup_settings_and_exports_the_proof() -> None:
    settings = InitialBackupSettings(verify="started", retain_days=7, timeout_minutes=60, poll_seconds=15)

    def program() -> None:
        vm = standalone(initial_backup=settings)
        assert vm.initial_backup is not None
        import pulumi

        pulumi.export("proofVms", vm.initial_backup.vm_ids)
        pulumi.export("policyName", vm.policy_name)
        pulumi.export("vaultName", vm.vault_name)

    plan = evaluate(program, {})
    [proof] = plan.of_type(TYPE_TOKEN)
    assert proof.inputs["settings"] == {"verify": "started", "retainDays": 7, "timeoutMinutes": 60, "pollSeconds": 15}
    assert plan.outputs == {"proofVms": [vm_id("solo-vm")], "policyName": "daily", "vaultName": "rsv-solo"}


@pytest.fixture(scope="module")
def host() -> Iterator[ProviderHost]:
    with ProviderHost(InitialBackupProvider()) as running:
        running.configure({})
        yield running


def test_standalone_initial_backup_at_first_preview_passes_the_provider_hosts_check(host: ProviderHost) -> None:
    def program() -> None:
        standalone()

    [proof] = evaluate(program, {}, preview=True).of_type(TYPE_TOKEN)
    assert isinstance(proof.inputs["vaultId"], Unknown)  # the vault is created by the same update
    urn = f"urn:pulumi:dev::protected-vm::protected-vm:index:ProtectedVM${TYPE_TOKEN}::solo-initial-backup"
    response = host.check(urn, {}, proof.inputs)
    assert [(f.property, f.reason) for f in response.failures] == []


def test_shared_vault_proves_all_its_vms_in_one_initial_backup() -> None:
    def program() -> None:
        vault = BackupVault(
            "backup",
            {"vault": VaultSettings(name="rsv-shared", resource_group="rg-backup"), "policy": PolicySettings(name="p")},
        )
        vms = [ProtectedVM(n, {"vm_id": vm_id(n), "backup_vault": vault}) for n in ("web-01", "web-02")]
        assert all(vm.initial_backup is None for vm in vms)
        vault.verify_initial_backups("initial-backup", vms)

    plan = evaluate(program, {})
    [proof] = plan.of_type(TYPE_TOKEN)
    assert proof.name == "initial-backup"
    assert proof.inputs["vmIds"] == [vm_id("web-01"), vm_id("web-02")]
    assert [r.type for r in plan.resources][-1] == TYPE_TOKEN


def test_shared_vault_refuses_to_prove_vms_of_another_vault_and_registers_nothing_for_no_vm() -> None:
    def program() -> None:
        a = BackupVault("a", {"vault": VaultSettings(name="rsv-a", resource_group="rg"), "policy": PolicySettings()})
        b = BackupVault("b", {"vault": VaultSettings(name="rsv-b", resource_group="rg"), "policy": PolicySettings()})
        vm = ProtectedVM("web-01", {"vm_id": vm_id("web-01"), "backup_vault": b})
        assert a.verify_initial_backups("none", []) is None
        with pytest.raises(ValueError) as error:
            a.verify_initial_backups("initial-backup-a", [vm])
        assert str(error.value) == (
            "BackupVault 'a': verify_initial_backups got VMs protected in another vault (web-01); "
            "call it on each vault with its own ProtectedVMs"
        )

    assert evaluate(program, {}).of_type(TYPE_TOKEN) == []


#: Runs a consumer's ``__main__.py`` under Pulumi's public mocks API and prints what it registered.
RUNNER = """
import json, runpy
import pulumi

class Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.registered = []

    def new_resource(self, args):
        self.registered.append({"type": args.typ, "name": args.name, "inputs": args.inputs})
        return f"/mock/{args.name}", dict(args.inputs)

    def call(self, args):
        if args.token == "azure-native:recoveryservices:getProtectedItem":
            return {}, [("", "ResourceNotFound: The Resource 'item' was not found (404)")]
        return {}, []

mocks = Mocks()
pulumi.runtime.set_mocks(mocks, project="team-app", stack="dev", preview=False)

@pulumi.runtime.test
def run():
    runpy.run_path("__main__.py", run_name="__main__")

run()
import components
print(json.dumps({"components": components.__path__[0], "registered": mocks.registered}, default=str))
"""


def readme_program(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- consumer:{marker} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no consumer:{marker} program"
    return match.group(1)


def run_consumer(tmp_path: Path, marker: str) -> dict[str, object]:
    """The README's program in a directory outside the repository, the module found on PYTHONPATH
    (as an installed package would be), never through the working directory."""
    program_dir = tmp_path / "team-app"
    program_dir.mkdir()
    (program_dir / "__main__.py").write_text(readme_program(marker))
    (program_dir / "run_mocks.py").write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "run_mocks.py"], cwd=program_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_readme_consumer_program_outside_the_repository_gets_the_initial_backup_proof(tmp_path: Path) -> None:
    assert not tmp_path.is_relative_to(ROOT)
    result = run_consumer(tmp_path, "standalone")
    assert result["components"] == str(ROOT / "components")
    registered = result["registered"]
    assert isinstance(registered, list)
    types = [r["type"] for r in registered]
    proofs = [r for r in registered if r["type"] == TYPE_TOKEN]
    assert [p["name"] for p in proofs] == ["app-01-initial-backup"]
    assert proofs[0]["inputs"]["vaultId"] == "/mock/app-01-backup-vault"
    assert proofs[0]["inputs"]["vmIds"] == [
        "/subscriptions/6b0c1c5e-0f2a-4d8e-9a57-2f3c4d5e6f70/resourceGroups/rg-app/providers/"
        "Microsoft.Compute/virtualMachines/app-01"
    ]
    assert types.index(ITEM) < types.index(TYPE_TOKEN)


def test_readme_shared_vault_program_outside_the_repository_gets_one_proof_for_its_vms(tmp_path: Path) -> None:
    registered = run_consumer(tmp_path, "shared")["registered"]
    assert isinstance(registered, list)
    proofs = [r for r in registered if r["type"] == TYPE_TOKEN]
    assert [(p["name"], len(p["inputs"]["vmIds"])) for p in proofs] == [("initial-backup", 2)]
    assert [r["type"] for r in registered].count(ITEM) == 2


#: What the deploying packages may import from this repository: each other, nothing else.
SHIPPED = ("components", "protectedvm")
TEST_TOOLING = ("emulator", "testing", "tests", "rehearsal", "bench", "policies")


def imported_modules(path: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_deploying_packages_import_no_test_tooling() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for package in SHIPPED
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[0] in TEST_TOOLING
    }
    assert offenders == set()
    # The walk sees imports inside functions too: the one the emulator switch used to make.
    assert "emulator" in imported_modules(ROOT / "testing" / "emulator_run.py")


@pytest.mark.parametrize(
    ("environ", "endpoint", "authority"),
    [
        ({}, "https://management.azure.com", "login.microsoftonline.com"),
        ({"ARM_ENVIRONMENT": "usgovernment"}, "https://management.usgovcloudapi.net", "login.microsoftonline.us"),
        ({"AZURE_ENVIRONMENT": "AzureChinaCloud"}, "https://management.chinacloudapi.cn", "login.chinacloudapi.cn"),
        ({"ARM_ENVIRONMENT": "public", "AZURE_ENVIRONMENT": "china"}, "https://management.azure.com", None),
    ],
)
def test_the_azure_side_follows_azure_natives_cloud_setting(
    environ: dict[str, str], endpoint: str, authority: str | None
) -> None:
    from protectedvm.azure_client import arm_cloud

    cloud = arm_cloud(environ)
    assert (cloud.arm_endpoint, cloud.scope) == (endpoint, f"{endpoint}/.default")
    if authority is not None:
        assert cloud.authority_host == authority


def test_an_unknown_cloud_name_is_refused_instead_of_verifying_in_the_public_cloud() -> None:
    from protectedvm.azure_client import arm_cloud

    with pytest.raises(ValueError) as error:
        arm_cloud({"ARM_ENVIRONMENT": "germany"})
    assert str(error.value) == (
        "ARM_ENVIRONMENT = 'germany' is not an Azure cloud azure-native knows: use public, usgovernment or china"
    )


def test_sdk_client_asks_the_configured_clouds_arm_with_its_token_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    from protectedvm.azure_client import ENDPOINT_ENV, make_sdk_client

    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    monkeypatch.setenv("ARM_ENVIRONMENT", "usgovernment")
    client = make_sdk_client("00000000-0000-0000-0000-000000000000")
    assert client._config.base_url == "https://management.usgovcloudapi.net"
    assert client._config.credential_scopes == ["https://management.usgovcloudapi.net/.default"]


def test_initial_backup_settings_with_a_shared_vault_are_refused_before_registration() -> None:
    mocks = RecordingMocks()

    def program() -> None:
        vault = BackupVault("b", {"vault": VaultSettings(name="rsv-b", resource_group="rg")})
        settings = InitialBackupSettings()
        ProtectedVM("web-01", {"vm_id": vm_id("web-01"), "backup_vault": vault, "initial_backup": settings})

    with pytest.raises(ValueError) as error:
        evaluate(program, {}, mocks=mocks)
    assert str(error.value) == (
        "ProtectedVM 'web-01': initial_backup is for a ProtectedVM with its own vault; with a shared vault, "
        "pass the settings to backup_vault.verify_initial_backups (one proof per shared vault)"
    )
    assert [r.type for r in mocks.resources if "ProtectedVM" in r.type or r.type == ITEM] == []


def test_a_protected_vm_given_two_vaults_is_refused_naming_both_before_registration() -> None:
    mocks = RecordingMocks()

    def program() -> None:
        settings = VaultSettings(name="rsv-b", resource_group="rg")
        vault = BackupVault("b", {"vault": settings, "policy": PolicySettings()})
        ProtectedVM(
            "web-01",
            {"vm_id": vm_id("web-01"), "backup_vault": vault, "vault_id": vault.vault_id, "policy_id": vault.policy_id},
        )

    with pytest.raises(ValueError) as error:
        evaluate(program, {}, mocks=mocks)
    assert str(error.value) == (
        "ProtectedVM 'web-01': pass backup_vault (a shared BackupVault), vault_id with policy_id (a shared vault by "
        "id) or both vault and policy settings (its own vault); got backup_vault and vault_id"
    )
    assert [r.type for r in mocks.resources if r.type == ITEM or "ProtectedVM" in r.type] == []
