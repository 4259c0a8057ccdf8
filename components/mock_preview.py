"""Evaluate the real program under Pulumi's mocks and record what it registers.

No Pulumi CLI or Azure is reachable from CI or a reviewer's laptop, yet tests, the offline
rehearsal, the policy-pack checks and the benchmarks all need "what would ``pulumi up`` create for
this stack file". This module runs :func:`components.program.deploy` (or any program) with
``pulumi.runtime.set_mocks``, feeding it the stack file's config exactly as the CLI would, and
returns the registered resources (type, name, camelCase inputs as the engine sees them) and the
resolved stack outputs. Mocks answer with ARM-shaped ids so outputs read like a real stack's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT = "protected-vm"
STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"
#: The subscription ARM ids get in mocks when no VM names one (vaults are created by our program).
MOCK_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class PlannedResource:
    type: str
    name: str
    inputs: Mapping[str, Any]
    id: str
    custom: bool


@dataclass
class Plan:
    stack: str
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[PlannedResource]:
        return [r for r in self.resources if r.type == type_token]


def stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> Path:
    return stacks_dir / f"Pulumi.{stack}.yaml"


def load_stack_config(stack: str, stacks_dir: Path = STACKS_DIR) -> dict[str, str]:
    """Turn ``stacks/Pulumi.<stack>.yaml`` into the flat ``ns:key -> string`` map the engine
    hands the program (structured values travel as JSON, as ``Config.get_object`` expects)."""
    path = stack_file(stack, stacks_dir)
    if not path.exists():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path}: known stacks are {', '.join(known)}")
    document = yaml.safe_load(path.read_text()) or {}
    raw: Mapping[str, Any] = document.get("config") or {}
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}


def _arm_id(typ: str, inputs: Mapping[str, Any], subscription: str) -> str | None:
    rg = inputs.get("resourceGroupName")
    vault = inputs.get("vaultName")
    base = f"/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}"
    if typ == "azure-native:recoveryservices:Vault":
        return base
    if typ == "azure-native:recoveryservices:ProtectionPolicy":
        return f"{base}/backupPolicies/{inputs.get('policyName')}"
    if typ == "azure-native:recoveryservices:ProtectedItem":
        return (
            f"{base}/backupFabrics/{inputs.get('fabricName')}/protectionContainers/"
            f"{inputs.get('containerName')}/protectedItems/{inputs.get('protectedItemName')}"
        )
    return None


_NAME_INPUTS = {
    "azure-native:recoveryservices:Vault": "vaultName",
    "azure-native:recoveryservices:ProtectionPolicy": "policyName",
    "azure-native:recoveryservices:ProtectedItem": "protectedItemName",
}


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs (what Azure would echo back), with ARM ids and names."""

    def __init__(self, subscription: str = MOCK_SUBSCRIPTION) -> None:
        self.subscription = subscription
        self.resources: list[PlannedResource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        resource_id = _arm_id(args.typ, inputs, self.subscription) or f"{args.name}_id"
        outputs = dict(inputs)
        name_key = _NAME_INPUTS.get(args.typ)
        if name_key and name_key in inputs:
            outputs["name"] = inputs[name_key]
        self.resources.append(PlannedResource(args.typ, args.name, inputs, resource_id, bool(args.custom)))
        return resource_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        # An empty answer, no failures (the mock monitor iterates them): e.g. the program's
        # get_vault invoke then reads "the vault exists", i.e. an existing stack.
        return {}, []


def evaluate(
    program: Callable[[], object],
    config: Mapping[str, str],
    stack: str = "dev",
    *,
    preview: bool = False,
    mocks: RecordingMocks | None = None,
) -> Plan:
    """Run ``program`` under mocks with ``config`` and return what it registered and exported.

    Each call starts from a fresh root stack, so several stacks can be evaluated in one process.
    Exceptions raised by the program (e.g. a config ValidationError) propagate unchanged.
    """
    mocks = mocks or RecordingMocks(_subscription_from_config(config))
    pulumi_settings.ROOT.set(None)
    pulumi.runtime.set_all_config(dict(config))
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview)
    plan = Plan(stack=stack)

    def body() -> None:
        program()
        root = pulumi_settings.get_root_resource()
        exported = dict(getattr(root, "outputs", {}) or {})
        resolved: dict[str, Any] | None = _sync_await(pulumi.Output.from_input(exported).future())
        plan.outputs = resolved or {}

    pulumi_settings.SETTINGS.rpc_manager.clear()
    pulumi_settings.SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(body))
    plan.resources = list(mocks.resources)
    return plan


def evaluate_stack(stack: str, program: Callable[[], object] | None = None, *, preview: bool = False) -> Plan:
    """Evaluate the real program against the real ``stacks/Pulumi.<stack>.yaml``."""
    if program is None:
        from components.program import deploy

        program = deploy
    return evaluate(program, load_stack_config(stack), stack, preview=preview)


def _subscription_from_config(config: Mapping[str, str]) -> str:
    """Vaults land in the subscription of the VMs they protect; mirror that in mock ids."""
    raw = config.get(f"{PROJECT}:vms")
    try:
        vms = json.loads(raw) if raw else []
        return str(vms[0]).split("/")[2] if vms else MOCK_SUBSCRIPTION
    except (ValueError, IndexError):
        return MOCK_SUBSCRIPTION
