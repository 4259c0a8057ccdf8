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
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.validation import ValidationError
from protectedvm.ids import CONFIG_NAMESPACE as PROJECT
from protectedvm.ids import GET_PROTECTED_ITEM_TOKEN, GET_VAULT_TOKEN, ITEM_TYPE, POLICY_TYPE, VAULT_TYPE

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
    #: Registered in preview mode: ``id`` is what Azure will assign, not yet known to the engine.
    preview: bool = False
    #: The ``import_`` resource option: the id of an existing Azure object the engine adopts.
    import_id: str | None = None


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
    hands the program (structured values travel as JSON, as ``Config.get_object`` expects).

    A stack file that is not UTF-8, not YAML, not a mapping, or that repeats a key raises
    :class:`ValidationError` listing the problem(s): the rehearsal reports them like any other bad
    config (exit 2). Repeated keys are an error because YAML loaders silently keep the last one,
    so one of the two settings would be ignored without a word."""
    path = stack_file(stack, stacks_dir)
    if not path.exists():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in stacks_dir.glob("Pulumi.*.yaml"))
        raise FileNotFoundError(f"no stack file {path}: known stacks are {', '.join(known)}")
    name = path.name
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise ValidationError(
            [f"{name} is not UTF-8 text: byte 0x{error.object[error.start]:02x} on line {line} cannot be decoded"]
        ) from None
    except OSError as error:
        raise ValidationError([f"{name} cannot be read: {error.strerror or error}"]) from None
    loader = _UniqueKeyLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.YAMLError as error:
        raise ValidationError([f"{name} is not valid YAML: {_yaml_problem(error)}"]) from None
    except RecursionError:
        raise ValidationError([f"{name} is not valid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()
    problems = [f"{name}: {duplicate}" for duplicate in loader.duplicates]
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise ValidationError(
            [f"{name} must be a mapping with a 'config:' section, got a {_yaml_kind(document)} at the top level"]
        )
    raw = document.get("config")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValidationError([*problems, f"{name}: 'config' must be a mapping of settings, got a {_yaml_kind(raw)}"])
    flat: dict[str, str] = {}
    for raw_key, value in raw.items():
        key = _config_key(raw_key)
        if key is None:
            # pulumi/pulumi sdk/go/common/resource/config/key.go ParseKey: "configuration keys should
            # be of the form `<namespace>:<name>`" (or the legacy `<namespace>:config:<name>`).
            problems.append(
                f"{name}: config key {raw_key!r} is not of the form <namespace>:<name>, e.g. {PROJECT}:vault"
            )
            continue
        if isinstance(value, str):
            flat[key] = value
            continue
        try:
            # Unquoted dates are text to the engine, not timestamps: ``default=str`` keeps them so.
            flat[key] = json.dumps(value, default=str)
        except (TypeError, ValueError, RecursionError) as error:
            problems.append(f"{name}: config {key} cannot be read as a setting: {error}")
    if problems:
        raise ValidationError(problems)
    return flat


def _config_key(key: object) -> str | None:
    """The engine's ``ns:name`` for a stack-file key, or None when the engine would refuse it."""
    if not isinstance(key, str):
        return None
    parts = key.split(":")
    if len(parts) == 2 and all(parts):
        return key
    if len(parts) == 3 and parts[1] == "config" and parts[0] and parts[2]:
        return f"{parts[0]}:{parts[2]}"
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that records every key repeated in one mapping (merge keys ``<<``
    excepted) instead of silently keeping the last value."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it as a YAML error
            if first is not None:
                self.duplicates.append(
                    f"key {key!r} is repeated on line {key_node.start_mark.line + 1} "
                    f"(first on line {first.start_mark.line + 1}): YAML would silently keep only the last value"
                )
                continue
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def _arm_id(typ: str, inputs: Mapping[str, Any], subscription: str) -> str | None:
    rg = inputs.get("resourceGroupName")
    vault = inputs.get("vaultName")
    base = f"/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}"
    if typ == VAULT_TYPE:
        return base
    if typ == POLICY_TYPE:
        return f"{base}/backupPolicies/{inputs.get('policyName')}"
    if typ == ITEM_TYPE:
        return (
            f"{base}/backupFabrics/{inputs.get('fabricName')}/protectionContainers/"
            f"{inputs.get('containerName')}/protectedItems/{inputs.get('protectedItemName')}"
        )
    return None


_NAME_INPUTS = {
    VAULT_TYPE: "vaultName",
    POLICY_TYPE: "policyName",
    ITEM_TYPE: "protectedItemName",
}


#: ARM's 404 for a resource (or a resource under a vault) that does not exist; azure-native's
#: invoke wraps it as "request failed <id>: ..." (pulumi-azure-native provider.go ``Invoke``).
_NOT_FOUND = "ResourceNotFound: The Resource '{id}' was not found (404)"


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs (what Azure would echo back), with ARM ids and names.

    With ``preview=True`` it answers as the engine does for resources a new stack's first preview
    would create: no id and only the inputs as outputs, so every id and computed output (a vault's
    ``id`` and ``name``) is unknown to the program and to whatever consumes it. Recorded ids are
    still filled in, for the plan's readers.

    Invokes (the program's reads of Azure) are answered per token: ``getVault`` finds the vaults
    named in ``existing_vaults`` (None, the default: every vault, i.e. an existing stack; an empty
    set: a brand-new stack); ``getProtectedItem`` finds only the items whose ARM ids are in
    ``existing_items`` (compared case-insensitively, answered with the id as given: Azure's
    casing), i.e. by default no VM has a backup item kept from an earlier removal. Anything not
    found fails as azure-native's invoke does for Azure's 404."""

    def __init__(
        self,
        subscription: str = MOCK_SUBSCRIPTION,
        *,
        preview: bool = False,
        existing_vaults: Collection[str] | None = None,
        existing_items: Collection[str] = (),
    ) -> None:
        self.subscription = subscription
        self.preview = preview
        self.existing_vaults = None if existing_vaults is None else {v.lower() for v in existing_vaults}
        self.existing_items = {item.lower(): item for item in existing_items}
        self.resources: list[PlannedResource] = []
        #: Every invoke the program made: (token, arguments).
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        resource_id = _arm_id(args.typ, inputs, self.subscription) or f"{args.name}_id"
        outputs = dict(inputs)
        name_key = _NAME_INPUTS.get(args.typ)
        if name_key and name_key in inputs and not self.preview:
            outputs["name"] = inputs[name_key]
        identity = outputs.get("identity")
        if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
            # Azure answers a map keyed by identity id (PUTVault_WithCMK.json), not the input list.
            assigned: dict[str, dict[str, str]] = {key: {} for key in identity["userAssignedIdentities"]}
            outputs["identity"] = {**identity, "userAssignedIdentities": assigned}
        self.resources.append(
            PlannedResource(
                args.typ, args.name, inputs, resource_id, bool(args.custom), self.preview, args.resource_id or None
            )
        )
        return ("" if self.preview else resource_id), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        # Failures, not exceptions: the mock monitor returns them and the SDK raises them as the
        # invoke's error, as it does for a real provider's.
        arguments = dict(args.args)
        self.calls.append((args.token, arguments))
        vault_name = str(arguments.get("vaultName", ""))
        vault_known = self.existing_vaults is None or vault_name.lower() in self.existing_vaults
        if args.token == GET_VAULT_TOKEN:
            vault_id = _arm_id(VAULT_TYPE, arguments, self.subscription)
            if not vault_known:
                return {}, [("", _NOT_FOUND.format(id=vault_id))]
            return {"id": vault_id, "name": vault_name}, []
        if args.token == GET_PROTECTED_ITEM_TOKEN:
            item_id = str(_arm_id(ITEM_TYPE, arguments, self.subscription))
            found = self.existing_items.get(item_id.lower()) if vault_known else None
            if found is None:
                return {}, [("", _NOT_FOUND.format(id=item_id))]
            return {"id": found, "name": arguments.get("protectedItemName"), "type": _ITEM_TYPE}, []
        return {}, []


_ITEM_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"


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
    mocks = mocks or RecordingMocks(_subscription_from_config(config), preview=preview)
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
