"""Run the pack's policies without the Pulumi CLI: the offline rehearsal and the tests feed the
program's registered resources (from ``testing.mock_preview``) through the very policy
objects ``PolicyPack`` serves, with the config reconciled the way the CLI does it (schema
defaults, then ``all``, then each policy's own entry), and decide the exit code from the
enforcement levels: mandatory violations block, advisory ones are printed and pass.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from inspect import isawaitable
from pathlib import Path
from typing import Any, Final, Protocol

from pulumi.output import Unknown
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policies.pack import enforcement_level_for, pack_definition
from protectedvm.ids import CONFIG_NAMESPACE

POLICIES_DIR: Final = Path(__file__).resolve().parent
PROJECT: Final = CONFIG_NAMESPACE


class RegisteredResource(Protocol):
    """What the mock evaluator records per resource (``testing.mock_preview.PlannedResource``)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def inputs(self) -> Mapping[str, Any]: ...
    @property
    def id(self) -> str: ...


@dataclass(frozen=True)
class Violation:
    policy: str
    enforcement_level: str
    resource_type: str | None
    resource_name: str | None
    urn: str | None
    message: str

    @property
    def mandatory(self) -> bool:
        return self.enforcement_level == EnforcementLevel.MANDATORY.value

    def __str__(self) -> str:
        return f"[{self.enforcement_level}] {self.policy}: {self.message}"


@dataclass(frozen=True)
class PolicyRun:
    """One policy's reconciled enforcement level and config properties."""

    enforcement_level: EnforcementLevel
    config: dict[str, Any]


def config_path(env: str) -> Path:
    return POLICIES_DIR / f"config.{env}.json"


def load_env_config(env: str) -> dict[str, Any]:
    """The JSON the CLI receives as ``--policy-pack-config policies/config.<env>.json``."""
    path = config_path(env)
    if not path.exists():
        known = sorted(p.name.removeprefix("config.").removesuffix(".json") for p in POLICIES_DIR.glob("config.*.json"))
        raise FileNotFoundError(f"no policy config {path}: known environments are {', '.join(known)}")
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold a JSON object of policy name -> config")
    return loaded


def _split(key: str, value: object) -> tuple[EnforcementLevel | None, dict[str, Any]]:
    if isinstance(value, str):
        return EnforcementLevel(value), {}
    if not isinstance(value, Mapping):
        raise ValueError(f"policy config {key!r} = {value!r} must be an enforcement level or an object")
    props = dict(value)
    level = props.pop("enforcementLevel", None)
    return (EnforcementLevel(level) if level is not None else None), props


def reconcile_config(
    env_config: Mapping[str, Any], policies: Sequence[Policy], default_level: EnforcementLevel
) -> dict[str, PolicyRun]:
    """What the CLI hands each policy: schema defaults, overridden by ``all``'s level, then by the
    policy's own entry. Unlike the CLI, unknown policy names are errors: a typo would otherwise
    leave a policy on its defaults without anyone noticing."""
    names = {p.name for p in policies}
    unknown = sorted(set(env_config) - names - {"all"})
    if unknown:
        raise ValueError(f"policy config names unknown policies {unknown}: known are {', '.join(sorted(names))}")
    all_level, all_props = _split("all", env_config.get("all", {}))
    if all_props:
        raise ValueError(f"policy config 'all' may only set enforcementLevel, not {sorted(all_props)}")
    runs: dict[str, PolicyRun] = {}
    for policy in policies:
        schema = policy.config_schema.properties if policy.config_schema else {}
        config = {key: copy.deepcopy(spec["default"]) for key, spec in schema.items() if "default" in spec}
        level = all_level or policy.enforcement_level or default_level
        if policy.name in env_config:
            own_level, own_props = _split(policy.name, env_config[policy.name])
            level = own_level or level
            config.update(own_props)
        runs[policy.name] = PolicyRun(level, config)
    return runs


def urn_for(resource_type: str, name: str, stack: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}"


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def _settle(result: object) -> None:
    if isawaitable(result):

        async def wait() -> None:
            await result

        asyncio.run(wait())


def run_policies(
    resources: Iterable[RegisteredResource],
    env_config: Mapping[str, Any],
    *,
    stack: str = "dev",
    policies: Sequence[Policy] | None = None,
) -> list[Violation]:
    """Every violation the pack would report for these resources under ``env_config``.

    Resource policies see each resource's inputs (as at preview); the stack policy sees inputs
    plus the ``id`` Azure would report, which is how ProtectedItems name their VM and policy."""
    resources = list(resources)
    policies = list(policies) if policies is not None else pack_definition(stack).policies
    runs = reconcile_config(env_config, policies, enforcement_level_for(stack))
    violations: list[Violation] = []
    for policy in policies:
        run = runs[policy.name]
        if run.enforcement_level == EnforcementLevel.DISABLED:
            continue
        if isinstance(policy, ResourceValidationPolicy):
            violations.extend(_run_resource_policy(policy, run, resources, stack))
        elif isinstance(policy, StackValidationPolicy):
            violations.extend(_run_stack_policy(policy, run, resources, stack))
    return violations


def _level(run: PolicyRun) -> str:
    """Remediation is not run offline, and the SDK reports a still-failing remediation as mandatory."""
    if run.enforcement_level == EnforcementLevel.REMEDIATE:
        return EnforcementLevel.MANDATORY.value
    return run.enforcement_level.value


def _collector(messages: list[str]) -> ReportViolation:
    def report(message: str, urn: str | None = None) -> None:
        messages.append(message)

    return report


def _stack_collector(reports: list[tuple[str, str | None]]) -> ReportViolation:
    def report(message: str, urn: str | None = None) -> None:
        reports.append((message, urn))

    return report


def engine_view(value: Any) -> Any:
    """A deep copy of ``value`` as the analyzer receives it from the engine: ``pulumi.output.Unknown``
    (what a program evaluated under mocks in preview mode records for values not yet known) becomes
    the engine's unknown sentinel, which the SDK's proxies turn into ``UnknownValueError``."""
    if isinstance(value, Unknown):
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Mapping):
        return {key: engine_view(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [engine_view(item) for item in value]
    return copy.deepcopy(value)


def _run_resource_policy(
    policy: ResourceValidationPolicy, run: PolicyRun, resources: Sequence[RegisteredResource], stack: str
) -> list[Violation]:
    found: list[Violation] = []
    for resource in resources:
        urn = urn_for(resource.type, resource.name, stack)
        messages: list[str] = []
        args = ResourceValidationArgs(
            resource.type,
            unknown_checking_proxy(engine_view(dict(resource.inputs))),
            urn,
            resource.name,
            _options(),
            None,
            copy.deepcopy(run.config),
        )
        _settle(policy.validate(args, _collector(messages)))
        found.extend(Violation(policy.name, _level(run), resource.type, resource.name, urn, m) for m in messages)
    return found


def _run_stack_policy(
    policy: StackValidationPolicy, run: PolicyRun, resources: Sequence[RegisteredResource], stack: str
) -> list[Violation]:
    by_urn = {urn_for(r.type, r.name, stack): r for r in resources}
    stack_resources = [
        PolicyResource(
            r.type,
            unknown_checking_proxy({**engine_view(dict(r.inputs)), "id": _id_at(r)}),
            urn,
            r.name,
            _options(),
            None,
            None,
            [],
            {},
        )
        for urn, r in by_urn.items()
    ]
    reports: list[tuple[str, str | None]] = []
    args = StackValidationArgs(stack_resources, copy.deepcopy(run.config))
    _settle(policy.validate(args, _stack_collector(reports)))
    found: list[Violation] = []
    for message, urn in reports:
        resource = by_urn.get(urn) if urn else None
        found.append(
            Violation(
                policy.name,
                _level(run),
                resource.type if resource else None,
                resource.name if resource else None,
                urn,
                message,
            )
        )
    return found


def _id_at(resource: RegisteredResource) -> str:
    """A resource to be created has no id at preview; the plan records one for its readers."""
    return UNKNOWN_STRING_VALUE if getattr(resource, "preview", False) else resource.id


def blocking(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.mandatory]


def exit_code(violations: Iterable[Violation]) -> int:
    """1 when any violation is mandatory (the deployment would be refused), else 0."""
    return 1 if blocking(violations) else 0
