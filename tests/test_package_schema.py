"""The multi-language package (``components/package.py``, ``provider/``): its schema, generated from
the classes by Pulumi's own analyzer without the CLI; the settings it takes being the stack file's
mappings; the TypeScript and YAML examples in docs/examples checked against that schema; and the
components built through the provider's own ``construct`` (what a Construct call runs) under mocks."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pytest
import yaml
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from components import backup_vault, config, package, protected_vm, vault_operations
from components.initial_backup import TYPE_TOKEN
from components.program import StackConfigError
from components.tiers import RETENTION_TIERS
from components.validation import ValidationError
from testing.mock_preview import MOCK_SUBSCRIPTION, Plan, RecordingMocks, evaluate
from tests.component_host import FakeEngine
from tests.helpers import SUB
from tests.provider_host import deserialize, serialize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
ITEM = "azure-native:recoveryservices:ProtectedItem"
VAULT = "azure-native:recoveryservices:Vault"
POLICY = "azure-native:recoveryservices:ProtectionPolicy"


#: The subscription the examples in docs/examples use.
EXAMPLE_SUB = "6b0c1c5e-0f2a-4d8e-9a57-2f3c4d5e6f70"


def vm_id(name: str, rg: str = "rg-app", sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return package.schema()


def signature(prop: Mapping[str, Any]) -> str:
    """A schema property as one readable string: ``plain`` when the SDKs take a plain value (no
    Output), then the type (a ``$ref`` by its type name)."""
    if "$ref" in prop:
        ref = str(prop["$ref"])
        base = "any" if ref == "pulumi.json#/Any" else ref.rsplit(":", 1)[-1]
    elif prop["type"] == "array":
        base = f"list<{signature(prop['items'])}>"
    elif prop["type"] == "object":
        base = f"map<{signature(prop['additionalProperties'])}>"
    else:
        base = str(prop["type"])
    return ("plain " if prop.get("plain") else "") + base


def table(properties: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {name: signature(prop) for name, prop in properties.items()}


# --- the schema ---------------------------------------------------------------------------------


def test_the_schema_names_the_package_and_the_types_existing_urns_carry(schema: dict[str, Any]) -> None:
    assert (schema["name"], schema["version"]) == ("protected-vm", package.package_version())
    assert list(schema["resources"]) == [
        "protected-vm:index:BackupVault",
        "protected-vm:index:ProtectedVM",
        "protected-vm:index:VaultInitialBackup",
    ]
    assert all(r["isComponent"] for r in schema["resources"].values())


def test_every_input_and_output_of_the_components_has_its_type(schema: dict[str, Any]) -> None:
    vault = schema["resources"]["protected-vm:index:BackupVault"]
    assert table(vault["inputProperties"]) == {
        "vault": "plain VaultConfig",
        "policy": "plain PolicyConfig",
        "location": "plain string",
        "tags": "plain map<plain string>",
    }
    assert vault["requiredInputs"] == ["policy", "vault"]
    assert table(vault["properties"]) == {
        "vaultId": "string",
        "vaultName": "string",
        "resourceGroupName": "string",
        "policyId": "string",
        "policyName": "string",
        "location": "string",
    }
    assert vault["required"] == ["policyId", "policyName", "resourceGroupName", "vaultId", "vaultName"]

    vm = schema["resources"]["protected-vm:index:ProtectedVM"]
    assert table(vm["inputProperties"]) == {
        "vmId": "plain string",
        "vaultId": "string",
        "policyId": "string",
        "vault": "plain VaultConfig",
        "policy": "plain PolicyConfig",
        "initialBackup": "plain InitialBackupConfig",
        "location": "plain string",
        "tags": "plain map<plain string>",
        "onRemove": "plain string",
        "disks": "plain DisksConfig",
    }
    assert vm["requiredInputs"] == ["vmId"]
    assert table(vm["properties"]) == {
        "vmId": "string",
        "vmName": "string",
        "containerName": "string",
        "protectedItemName": "string",
        "protectedItemId": "string",
        "vaultId": "string",
        "vaultName": "string",
        "policyId": "string",
        "policyName": "string",
        "initialBackups": "map<any>",
    }
    # initialBackups exists only with the component's own vault.
    assert vm["required"] == sorted(set(vm["properties"]) - {"initialBackups"})

    proof = schema["resources"]["protected-vm:index:VaultInitialBackup"]
    assert table(proof["inputProperties"]) == {
        "vaultId": "string",
        "vmIds": "plain list<plain string>",
        "protectedItemIds": "plain list<string>",
        "initialBackup": "plain InitialBackupConfig",
    }
    assert proof["requiredInputs"] == ["protectedItemIds", "vaultId", "vmIds"]
    assert table(proof["properties"]) == {"vaultId": "string", "vmIds": "list<string>", "initialBackups": "map<any>"}
    assert proof["required"] == ["initialBackups", "vaultId", "vmIds"]


def test_every_settings_type_has_its_property_types(schema: dict[str, Any]) -> None:
    types = {token.rsplit(":", 1)[-1]: t for token, t in schema["types"].items()}
    found = {name: (table(t["properties"]), t.get("required", [])) for name, t in types.items()}
    s, i, b = "plain string", "plain integer", "plain boolean"
    strings, ints = "plain list<plain string>", "plain list<plain integer>"
    assert found == {
        "VaultConfig": (
            {
                "name": s,
                "resourceGroup": s,
                "location": s,
                "existingId": s,
                "storageRedundancy": s,
                "crossRegionRestore": b,
                "softDelete": s,
                "softDeleteRetentionDays": i,
                "immutability": s,
                "publicNetworkAccess": s,
                "lock": b,
                "alerts": "plain AlertsConfig",
                "reports": "plain ReportsConfig",
                "multiUserAuthorization": "plain MultiUserAuthorizationConfig",
                "encryption": "plain EncryptionConfig",
                "privateEndpoint": "plain PrivateEndpointConfig",
            },
            [],
        ),
        "AlertsConfig": ({"jobFailureAlerts": b, "classicAlerts": b, "actionGroup": "plain ActionGroupConfig"}, []),
        "ActionGroupConfig": ({"existingId": s, "name": s, "shortName": s, "emails": strings}, []),
        "ReportsConfig": ({"workspaceId": s, "workspaceName": s, "retentionDays": i}, []),
        "MultiUserAuthorizationConfig": ({"resourceGuardId": s, "resourceGuardName": s}, []),
        "EncryptionConfig": ({"keyUri": s, "identityId": s, "infrastructureEncryption": b}, ["identityId", "keyUri"]),
        "PrivateEndpointConfig": ({"subnetId": s, "privateDnsZoneIds": strings}, ["subnetId"]),
        "PolicyConfig": (
            {
                "name": s,
                "existingId": s,
                "type": s,
                "timeZone": s,
                "instantRestoreDays": i,
                "schedule": "plain ScheduleConfig",
                "retention": "plain RetentionConfig",
            },
            [],
        ),
        "ScheduleConfig": (
            {"frequency": s, "time": s, "weekdays": strings, "hourlyInterval": i, "hourlyWindowHours": i},
            [],
        ),
        "RetentionConfig": (
            {
                "daily": i,
                "weekly": "plain WeeklyRetentionConfig",
                "monthly": "plain MonthlyRetentionConfig",
                "yearly": "plain YearlyRetentionConfig",
            },
            [],
        ),
        "WeeklyRetentionConfig": ({"count": i, "days": strings}, ["count"]),
        "MonthlyRetentionConfig": ({"count": i, "weeksOfMonth": strings, "days": strings}, ["count"]),
        "YearlyRetentionConfig": ({"count": i, "months": strings, "weeksOfMonth": strings, "days": strings}, ["count"]),
        "InitialBackupConfig": ({"verify": s, "retainDays": i, "timeoutMinutes": i, "pollSeconds": i}, []),
        "DisksConfig": ({"include": ints, "exclude": ints, "osDiskOnly": b}, []),
    }


def test_every_input_output_and_setting_is_documented(schema: dict[str, Any]) -> None:
    undocumented = [
        f"{token}.{name}"
        for token, resource in schema["resources"].items()
        for section in ("inputProperties", "properties")
        for name, prop in resource[section].items()
        if not prop.get("description")
    ] + [
        f"{token}.{name}"
        for token, settings in schema["types"].items()
        for name, prop in settings["properties"].items()
        if not prop.get("description")
    ]
    assert undocumented == []


def test_the_settings_have_the_stack_files_keys_webhooks_aside() -> None:
    """One shape for a setting wherever it is written: stack file, Python, TypeScript, YAML."""
    keys = {name: set(typ.__annotations__) for name, typ in vars(package).items() if name.endswith("Config")}
    assert keys == {
        "VaultConfig": config._VAULT_KEYS,
        "AlertsConfig": vault_operations._ALERT_KEYS,
        "ActionGroupConfig": vault_operations._ACTION_GROUP_KEYS - {"webhooks"},
        "ReportsConfig": vault_operations._REPORT_KEYS,
        "MultiUserAuthorizationConfig": vault_operations._MUA_KEYS,
        "EncryptionConfig": vault_operations._ENCRYPTION_KEYS,
        "PrivateEndpointConfig": vault_operations._PRIVATE_ENDPOINT_KEYS,
        "PolicyConfig": config._POLICY_KEYS,
        "ScheduleConfig": config._SCHEDULE_KEYS,
        "RetentionConfig": config._RETENTION_KEYS,
        # Each tier of the registry (components.tiers): its count and its selectors' keys.
        **{
            f"{tier.key.capitalize()}RetentionConfig": {"count", *(selector.key for selector in tier.selectors)}
            for tier in RETENTION_TIERS
            if tier.selectors
        },
        "InitialBackupConfig": config._INITIAL_BACKUP_KEYS,
        "DisksConfig": set(config._DISK_KEYS),
    }


def attribute_docs(cls: type) -> dict[str, str]:
    """Docstrings of a class's annotated attributes, as the analyzer reads them."""
    docs: dict[str, str] = {}
    body = ast.parse(inspect.getsource(cls).strip()).body[0]
    assert isinstance(body, ast.ClassDef)
    for node, after in zip(body.body, [*body.body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr):
            value = after.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                docs[node.target.id] = value.value
    return docs


@pytest.mark.parametrize(
    ("hosted", "python"),
    [(package.BackupVault, backup_vault.BackupVault), (package.ProtectedVM, protected_vm.ProtectedVM)],
)
def test_the_packages_outputs_are_the_python_components_outputs_in_type_and_words(hosted: type, python: type) -> None:
    """The analyzer reads descriptions from the hosted class's own source, so the outputs are
    declared there again; this keeps them the Python class's (policy: always given in the package)."""
    assert inspect.get_annotations(hosted) == inspect.get_annotations(python)
    expected = attribute_docs(python)
    if python is backup_vault.BackupVault:
        expected["policy_id"] = "Resource id of the policy (created or reused)."
        expected["policy_name"] = "Name of the policy."
    assert attribute_docs(hosted) == expected


# --- the examples in docs/examples ---------------------------------------------------------------


class Literal:
    """A value the example writes out (string, number, bool, list, object)."""

    def __init__(self, value: object) -> None:
        self.value = value


class Reference:
    """An output of another resource of the example (``shared.vaultId``, ``${backup.vaultId}``)."""

    def __init__(self, resource: str, output: str) -> None:
        self.resource, self.output = resource, output


class Expression:
    """Any other expression: a plain value computed by the program (a template string)."""


def check_value(
    value: object, prop: Mapping[str, Any], where: str, schema: Mapping[str, Any], types_of: Mapping[str, str]
) -> list[str]:
    """What is wrong with one property value of an example: unknown names, missing required
    settings, a literal of the wrong type, an output of another type or given to a plain input."""
    if isinstance(value, Reference):
        resource = schema["resources"][types_of[value.resource]]
        output = resource["properties"].get(value.output)
        if output is None:
            return [f"{where}: {value.resource} has no output {value.output}"]
        problems = [f"{where}: a plain input cannot take the output {value.output}"] if prop.get("plain") else []
        if signature(output) != signature({**prop, "plain": False}):
            problems.append(f"{where}: output {value.output} is {signature(output)}, the input {signature(prop)}")
        return problems
    if isinstance(value, Expression):
        return [] if prop.get("type") == "string" else [f"{where}: an expression where {signature(prop)} is expected"]
    raw = value.value if isinstance(value, Literal) else value
    if "$ref" in prop:
        settings = schema["types"][prop["$ref"].removeprefix("#/types/")]
        if not isinstance(raw, dict):
            return [f"{where}: {raw!r} is not an object"]
        return check_object(raw, settings["properties"], settings.get("required", []), where, schema, types_of)
    kind = prop["type"]
    if kind == "array":
        if not isinstance(raw, list):
            return [f"{where}: {raw!r} is not a list"]
        items = prop["items"]
        return [p for n, item in enumerate(raw) for p in check_value(item, items, f"{where}[{n}]", schema, types_of)]
    if kind == "object":
        if not isinstance(raw, dict):
            return [f"{where}: {raw!r} is not a map"]
        values = prop["additionalProperties"]
        return [p for k, v in raw.items() for p in check_value(v, values, f"{where}.{k}", schema, types_of)]
    python_types: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
    }
    python_type = python_types[kind]
    if (isinstance(raw, bool) and kind != "boolean") or not isinstance(raw, python_type):
        return [f"{where}: {raw!r} is not a {kind}"]
    return []


def check_object(
    values: Mapping[str, object],
    properties: Mapping[str, Any],
    required: list[str],
    where: str,
    schema: Mapping[str, Any],
    types_of: Mapping[str, str],
) -> list[str]:
    problems = [f"{where}.{name} is required" for name in required if name not in values]
    for name, value in values.items():
        prop = properties.get(name)
        if prop is None:
            problems.append(f"{where}.{name} is not an input of the schema")
        else:
            problems.extend(check_value(value, prop, f"{where}.{name}", schema, types_of))
    return problems


# A TypeScript object literal as the examples write it: keys, strings, numbers, booleans, lists,
# nested objects, `x.output` references and template strings.
TOKEN = re.compile(
    r"\s*(?:(?P<punct>[{}\[\],:])|(?P<string>\"[^\"]*\"|'[^']*')|(?P<template>`[^`]*`)"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*))"
)


def ts_tokens(text: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(text.rstrip()):
        match = TOKEN.match(text, position)
        assert match and match.lastgroup, f"cannot read the example at {text[position:position + 40]!r}"
        position = match.end()
        yield match.lastgroup, match.group(match.lastgroup)


def ts_value(tokens: list[tuple[str, str]], at: int) -> tuple[object, int]:
    kind, text = tokens[at]
    if text == "{":
        values: dict[str, object] = {}
        at += 1
        while tokens[at][1] != "}":
            key = tokens[at][1].strip("\"'")
            assert tokens[at + 1][1] == ":", f"expected ':' after {key}"
            values[key], at = ts_value(tokens, at + 2)
            if tokens[at][1] == ",":
                at += 1
        return values, at + 1
    if text == "[":
        items: list[object] = []
        at += 1
        while tokens[at][1] != "]":
            item, at = ts_value(tokens, at)
            items.append(item)
            if tokens[at][1] == ",":
                at += 1
        return items, at + 1
    if kind == "string":
        return Literal(text[1:-1]), at + 1
    if kind == "template":
        return Expression(), at + 1
    if kind == "number":
        return Literal(float(text) if "." in text else int(text)), at + 1
    if text in ("true", "false"):
        return Literal(text == "true"), at + 1
    resource, _, output = text.partition(".")
    return Reference(resource, output), at + 1


def unwrap(value: object) -> object:
    """Literal wrappers off, recursively (objects and lists stay containers)."""
    if isinstance(value, Literal):
        return value.value
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def typescript_example() -> tuple[dict[str, str], list[tuple[str, str, dict[str, object]]], list[Reference]]:
    """The example's resources (variable -> type token, and each constructor's args) and the
    outputs it reads."""
    text = (EXAMPLES / "typescript" / "index.ts").read_text()
    assert 'import * as protectedVm from "@pulumi/protected-vm";' in text
    types_of: dict[str, str] = {}
    calls: list[tuple[str, str, dict[str, object]]] = []
    for match in re.finditer(r"const (\w+) = new protectedVm\.(\w+)\(\"([\w-]+)\", (\{.*?\n\}\));", text, re.S):
        variable, component, _name, literal = match.groups()
        types_of[variable] = f"protected-vm:index:{component}"
        tokens = list(ts_tokens(literal[:-1]))
        args, end = ts_value(tokens, 0)
        assert end == len(tokens) and isinstance(args, dict)
        calls.append((variable, types_of[variable], args))
    exported = [
        Reference(resource, output)
        for line in text.splitlines()
        if line.startswith("export const")
        for resource, output in re.findall(r"\b(\w+)\.(\w+)\b", line.split("=", 1)[1])
    ]
    return types_of, calls, exported


def test_the_typescript_example_uses_only_what_the_schema_has(schema: dict[str, Any]) -> None:
    types_of, calls, exported = typescript_example()
    assert [(variable, token.rsplit(":", 1)[-1]) for variable, token, _ in calls] == [
        ("app", "ProtectedVM"),
        ("shared", "BackupVault"),
        ("web01", "ProtectedVM"),
        ("db01", "ProtectedVM"),
        ("sharedProof", "VaultInitialBackup"),
    ]
    problems = []
    for variable, token, args in calls:
        resource = schema["resources"][token]
        problems += check_object(
            args, resource["inputProperties"], resource.get("requiredInputs", []), variable, schema, types_of
        )
    problems += [
        f"export: {ref.resource} has no output {ref.output}"
        for ref in exported
        if ref.output not in schema["resources"][types_of[ref.resource]]["properties"]
    ]
    assert problems == []
    assert len(exported) == 6
    # And the settings pass the stack file's parser: the example would preview.
    for _variable, _token, args in calls:
        settings = {key: unwrap(args[key]) for key in ("vault", "policy", "disks") if key in args}
        initial, removal = unwrap(args.get("initialBackup")), unwrap(args.get("onRemove"))
        package.parse_args(**settings, initial_backup=initial, on_remove=removal)


YAML_REF = re.compile(r"^\$\{([\w-]+)\.(\w+)\}$")


def yaml_value(value: object) -> object:
    if isinstance(value, str) and (match := YAML_REF.match(value)):
        return Reference(match[1], match[2])
    if isinstance(value, dict):
        return {k: yaml_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [yaml_value(v) for v in value]
    return Literal(value)


def yaml_example() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / "yaml" / "Pulumi.yaml").read_text())
    return loaded


def test_the_yaml_example_uses_only_what_the_schema_has_and_loads_the_package_from_this_checkout(
    schema: dict[str, Any],
) -> None:
    program = yaml_example()
    [plugin] = program["plugins"]["providers"]
    assert plugin["name"] == schema["name"]
    assert ((EXAMPLES / "yaml" / plugin["path"]).resolve() / "PulumiPlugin.yaml").is_file()
    types_of = {name: r["type"] for name, r in program["resources"].items()}
    problems = []
    for name, resource in program["resources"].items():
        spec = schema["resources"].get(resource["type"])
        assert spec is not None, f"{name}: {resource['type']} is not a resource of the package"
        args = yaml_value(resource["properties"])
        assert isinstance(args, dict)
        problems += check_object(
            args, spec["inputProperties"], spec.get("requiredInputs", []), name, schema, types_of
        )
    for key, text in program["outputs"].items():
        ref = yaml_value(text)
        assert isinstance(ref, Reference), key
        if ref.output not in schema["resources"][types_of[ref.resource]]["properties"]:
            problems.append(f"outputs.{key}: {ref.resource} has no output {ref.output}")
    assert problems == []


def test_the_checker_finds_a_misspelt_key_a_plain_input_given_an_output_and_a_missing_setting(
    schema: dict[str, Any],
) -> None:
    """The example checks above can fail: the same checker on broken arguments."""
    vm = schema["resources"]["protected-vm:index:ProtectedVM"]
    args = {
        "vmId": Reference("backup", "vaultId"),
        "vault": {"name": Literal("rsv"), "resourceGroupName": Literal("rg"), "lock": Literal("yes")},
        "policy": {"retention": {"weekly": {"days": [Literal("Sunday")]}}},
        "policyId": Reference("backup", "policyNme"),
    }
    types_of = {"backup": "protected-vm:index:BackupVault"}
    assert check_object(args, vm["inputProperties"], vm["requiredInputs"], "vm", schema, types_of) == [
        "vm.vmId: a plain input cannot take the output vaultId",
        "vm.vault.resourceGroupName is not an input of the schema",
        "vm.vault.lock: 'yes' is not a boolean",
        "vm.policy.retention.weekly.count is required",
        "vm.policyId: backup has no output policyNme",
    ]


# --- the components through the provider's construct, under mocks --------------------------------


def construct_yaml_example(mocks: RecordingMocks) -> dict[str, Any]:
    """Every resource of the YAML example built as the provider host builds it on Construct
    (``ComponentProvider.construct``: schema names mapped to the Python args, numbers as the
    engine sends them, as floats); an ``${a.b}`` reference is the output ``b`` of ``a``'s result."""
    provider = ComponentProvider(package.COMPONENTS, package.PACKAGE_NAME, version=package.package_version())
    states: dict[str, Any] = {}

    def engine_value(value: object) -> object:
        if isinstance(value, str) and (match := YAML_REF.match(value)):
            return states[match[1]][match[2]]
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, dict):
            return {k: engine_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [engine_value(v) for v in value]
        return value

    def program() -> None:
        for name, resource in yaml_example()["resources"].items():
            inputs = engine_value(resource["properties"])
            assert isinstance(inputs, dict)
            states[name] = provider.construct(name, resource["type"], inputs, pulumi.ResourceOptions()).state

    evaluate(program, {}, mocks=mocks)
    return states


def test_the_yaml_example_constructs_through_the_provider_with_its_proof_and_shared_vault() -> None:
    mocks = RecordingMocks()
    states = construct_yaml_example(mocks)
    assert set(states) == {"app-01", "backup", "web-01", "initial-backup"}
    assert set(states["app-01"]) == set(package.schema()["resources"]["protected-vm:index:ProtectedVM"]["properties"])
    assert "initialBackups" not in states["web-01"]
    proofs = [r for r in mocks.resources if r.type == TYPE_TOKEN]
    app_vm, web_vm = vm_id("app-01", sub=EXAMPLE_SUB), vm_id("web-01", "rg-web", EXAMPLE_SUB)
    assert {p.name: p.inputs["vmIds"] for p in proofs} == {
        "app-01-initial-backup": [app_vm],
        "initial-backup": [web_vm],
    }
    shared_vault = next(r for r in mocks.resources if r.type == VAULT and r.name == "backup-vault")
    assert next(p for p in proofs if p.name == "initial-backup").inputs["vaultId"] == shared_vault.id
    # Registered once the item it waits for exists.
    order = [(r.type, r.name) for r in mocks.resources]
    assert order.index((ITEM, "web-01-item")) < order.index((TYPE_TOKEN, "initial-backup"))
    shared_policy = next(r for r in mocks.resources if r.type == POLICY and r.name == "backup-policy")
    assert shared_policy.inputs["properties"]["schedulePolicy"]["hourlySchedule"] == {
        "interval": 4,
        "scheduleWindowDuration": 12,
        "scheduleWindowStartTime": "2024-01-01T08:00:00Z",
    }
    web_item = next(r for r in mocks.resources if r.type == ITEM and r.name == "web-01-item")
    # Joined by id: the vault's name and group are read from the shared vault's id.
    assert (web_item.inputs["vaultName"], web_item.inputs["resourceGroupName"]) == ("rsv-shared", "rg-backup")
    assert web_item.inputs["properties"]["extendedProperties"] == {
        "diskExclusionProperties": {"diskLunList": [], "isInclusionList": True}
    }


def test_package_and_python_components_register_the_same_resources_under_the_same_names() -> None:
    """Same type tokens, names and inputs: the package is the components, not a copy."""
    settings: package.VaultConfig = {
        "name": "rsv-solo",
        "resourceGroup": "rg-backup",
        "location": "westeurope",
        "softDeleteRetentionDays": 30,
    }

    def hosted() -> None:
        policy: package.PolicyConfig = {"name": "daily", "retention": {"daily": 30}}
        package.ProtectedVM("solo", {"vm_id": vm_id("solo-vm"), "vault": settings, "policy": policy})

    def python() -> None:
        vault = config.VaultSettings(
            name="rsv-solo", resource_group="rg-backup", location="westeurope", soft_delete_retention_days=30
        )
        protected_vm.ProtectedVM(
            "solo", {"vm_id": vm_id("solo-vm"), "vault": vault, "policy": config.PolicySettings(name="daily")}
        )

    a, b = evaluate(hosted, {}), evaluate(python, {})
    def registered(plan: Plan) -> list[tuple[str, str, dict[str, Any]]]:
        return [(r.type, r.name, dict(r.inputs)) for r in plan.resources]

    assert registered(a) == registered(b)
    assert "protected-vm:index:ProtectedVM" in [r.type for r in a.resources]


def test_bad_package_settings_fail_with_every_problem_named_and_nothing_registered() -> None:
    mocks = RecordingMocks()

    def program() -> None:
        package.ProtectedVM(
            "app",
            {
                "vm_id": vm_id("app"),
                # A Python caller can misspell a key (a typed SDK cannot): refused by name like a stack file's.
                "vault": {"name": "rsv-app", "resourceGroup": "rg", "softDeleteRetentionDays": 500, "softdelete": "On"},  # type: ignore[typeddict-unknown-key]
                "policy": {"name": "p", "schedule": {"frequency": "Hourly"}, "type": "Standard"},
                "disks": {"include": [64]},
                "on_remove": "keep",
            },
        )

    with pytest.raises(StackConfigError) as error:  # a pulumi.RunError: printed without a traceback
        evaluate(program, {}, mocks=mocks)
    assert error.value.problems == [
        "vault.softdelete is not a known setting: known settings are alerts, crossRegionRestore, encryption, "
        "existingId, immutability, location, lock, multiUserAuthorization, name, privateEndpoint, "
        "publicNetworkAccess, reports, resourceGroup, softDelete, softDeleteRetentionDays, storageRedundancy; "
        "did you mean softDelete?",
        "vault.softDeleteRetentionDays = 500 is out of range: allowed 14-180 days",
        "policy.schedule.frequency = 'Hourly' requires an Enhanced (V2) policy; policy type is Standard (V1)",
        "policy.retention.daily is required with a Hourly schedule",
        "onRemove = 'keep' is not allowed: use retainData (default: stop protection and keep the recovery points) "
        "or deleteData (stop protection and delete the backup data)",
        "disks.include[0] = 64 is not a data disk LUN: a whole number 0-63",
    ]
    assert mocks.resources == []


def test_python_vms_joined_by_the_vaults_id_share_its_one_proof() -> None:
    def program() -> None:
        policy: package.PolicyConfig = {"name": "p", "retention": {"daily": 7}}
        shared: package.VaultConfig = {"name": "rsv-shared", "resourceGroup": "rg-backup"}
        vault = package.BackupVault("backup", {"vault": shared, "policy": policy})
        vms = [
            package.ProtectedVM(n, {"vm_id": vm_id(n), "vault_id": vault.vault_id, "policy_id": vault.policy_id})
            for n in ("web-01", "web-02")
        ]
        vault.verify_initial_backups("initial-backup", vms)

    plan = evaluate(program, {})
    [proof] = plan.of_type(TYPE_TOKEN)
    assert proof.inputs["vmIds"] == [vm_id("web-01"), vm_id("web-02")]
    assert [r.inputs["vaultName"] for r in plan.of_type(ITEM)] == ["rsv-shared", "rsv-shared"]


def test_a_malformed_vault_id_is_refused_before_registration() -> None:
    mocks = RecordingMocks()
    policy = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v/backupPolicies/p"

    def program() -> None:
        package.ProtectedVM("web-01", {"vm_id": vm_id("web-01"), "vault_id": "rsv-shared", "policy_id": policy})

    with pytest.raises(ValidationError) as error:
        evaluate(program, {}, mocks=mocks)
    assert error.value.problems == [
        "vault_id = 'rsv-shared' is not a Recovery Services vault id: expected "
        "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.RecoveryServices/vaults/<name>"
    ]
    assert mocks.resources == []


def test_a_vault_id_without_a_policy_id_is_refused_before_registration() -> None:
    mocks = RecordingMocks()

    def program() -> None:
        package.ProtectedVM("web-01", {"vm_id": vm_id("web-01"), "vault_id": "/subscriptions/x"})

    with pytest.raises(ValueError) as error:
        evaluate(program, {}, mocks=mocks)
    assert str(error.value) == "ProtectedVM 'web-01': vault_id needs policy_id (the policy of that vault to use)"
    assert mocks.resources == []


# --- the plugin as the engine starts it ----------------------------------------------------------


def test_the_plugin_directory_is_a_python_source_plugin_that_installs_this_repository() -> None:
    """``pulumi package add .../provider`` reads the runtime here, creates ``provider/venv`` and runs
    ``pip install -r requirements.txt`` in this directory (pulumi ``sdk/python/toolchain/pip.go``:
    ``pipCmd.Dir = cwd``), so ``..`` is this repository, distributed under the package's name."""
    import tomllib

    plugin = ROOT / "provider"
    assert yaml.safe_load((plugin / "PulumiPlugin.yaml").read_text()) == {"runtime": "python"}
    lines = [line for line in (plugin / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert lines == [".."]
    project = tomllib.loads(((plugin / "..").resolve() / "pyproject.toml").read_text())["project"]
    assert (project["name"], project["version"]) == (package.PACKAGE_NAME, package.package_version())
    assert "from components.package import main" in (plugin / "__main__.py").read_text()


@pytest.fixture(scope="module")
def plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, FakeEngine]]:
    """``python <repo>/provider <engine address>``, what the Python language host runs for a
    source-based plugin, from a consumer's directory with the repository on PYTHONPATH as an
    installed package would be; the engine and resource monitor it talks to are
    :class:`tests.component_host.FakeEngine`'s."""
    import os

    with FakeEngine(project="team-app", stack="dev") as engine:
        process = subprocess.Popen(
            [sys.executable, "-u", str(ROOT / "provider"), engine.address],
            cwd=tmp_path_factory.mktemp("team-app"),
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            port = process.stdout.readline().decode().strip()
            assert port.isdigit(), process.stderr.read().decode() if process.stderr else port
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                yield provider_pb2_grpc.ResourceProviderStub(channel), engine
        finally:
            process.kill()
            process.wait(timeout=30)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


@pytest.mark.host
def test_the_plugin_serves_the_schema_over_grpc(plugin: tuple[Any, FakeEngine], schema: dict[str, Any]) -> None:
    import json

    stub, _ = plugin
    served = json.loads(stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=30).schema)
    assert served == schema


def construct(stub: Any, engine: FakeEngine, token: str, name: str, inputs: dict[str, Any]) -> Any:
    """A Construct call as the engine makes it for a component in a consumer's program."""
    request = provider_pb2.ConstructRequest(
        project="team-app",
        stack="dev",
        dryRun=False,
        parallel=4,
        monitorEndpoint=engine.address,
        type=token,
        name=name,
        inputs=serialize(inputs),
    )
    return stub.Construct(request, timeout=120)


@pytest.mark.host
def test_the_plugin_constructs_a_protected_vm_with_its_own_vault_and_proof_over_grpc(
    plugin: tuple[Any, FakeEngine],
) -> None:
    stub, engine = plugin
    app = yaml_example()["resources"]["app-01"]["properties"]
    response = construct(stub, engine, "protected-vm:index:ProtectedVM", "app-01", app)
    assert response.urn == "urn:pulumi:dev::team-app::protected-vm:index:ProtectedVM::app-01"
    state = deserialize(response.state)
    item_id = (
        f"/subscriptions/{MOCK_SUBSCRIPTION}/resourceGroups/rg-app-backup/providers/"
        "Microsoft.RecoveryServices/vaults/rsv-app/backupFabrics/Azure/protectionContainers/"
        "iaasvmcontainer;iaasvmcontainerv2;rg-app;app-01/protectedItems/vm;iaasvmcontainerv2;rg-app;app-01"
    )
    assert (state["vmName"], state["vaultName"], state["policyName"], state["protectedItemId"]) == (
        "app-01",
        "rsv-app",
        "daily-30",
        item_id,
    )
    registered = {(r.type, r.name): r for r in engine.mocks.resources}
    assert set(registered) >= {
        ("protected-vm:index:ProtectedVM", "app-01"),
        ("protected-vm:index:BackupVault", "app-01-backup"),
        (VAULT, "app-01-backup-vault"),
        (POLICY, "app-01-backup-policy"),
        (ITEM, "app-01-item"),
        (TYPE_TOKEN, "app-01-initial-backup"),
    }
    # The retention arrived as the engine sends numbers (30.0) and was read as the whole number 30.
    retention = registered[(POLICY, "app-01-backup-policy")].inputs["properties"]["retentionPolicy"]
    assert retention["dailySchedule"]["retentionDuration"] == {"count": 30, "durationType": "Days"}
    assert registered[(TYPE_TOKEN, "app-01-initial-backup")].inputs["vmIds"] == [
        vm_id("app-01", sub=EXAMPLE_SUB)
    ]


@pytest.mark.host
def test_the_plugin_refuses_bad_settings_over_grpc_naming_them(plugin: tuple[Any, FakeEngine]) -> None:
    stub, engine = plugin
    before = len(engine.mocks.resources)
    args = {"vmId": vm_id("bad"), "vault": {"name": "rsv-bad", "resourceGroup": "rg"}, "policy": {"name": "p"}}
    with pytest.raises(grpc.RpcError) as error:
        construct(stub, engine, "protected-vm:index:ProtectedVM", "bad", args)
    assert "policy.retention.daily is required with a Daily schedule" in str(error.value.details())
    assert engine.mocks.resources[before:] == []
