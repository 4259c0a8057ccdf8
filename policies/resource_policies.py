"""Resource policies: each one reads its environment's requirements from config and reports the
pure rules' problems against one resource, prefixed with the resource's type and name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policies import rules
from policies.props import plain_props
from policies.thresholds import (
    INITIAL_BACKUP_SCHEMA,
    RETENTION_SCHEMA,
    SCHEDULE_SCHEMA,
    TIERS_SCHEMA,
    VAULT_SCHEMA,
    InitialBackupRequirements,
    PolicyConfigError,
    RetentionRequirements,
    ScheduleRequirements,
    TierRequirements,
    VaultRequirements,
)

RETENTION_POLICY: Final = "backup-retention"
SCHEDULE_POLICY: Final = "backup-schedule"
VAULT_POLICY: Final = "vault-security"
INITIAL_BACKUP_POLICY: Final = "initial-backup-retention"
TIER_POLICY: Final = "backup-tiers"

Req = TypeVar("Req")


def resource_label(resource_type: str, name: str, props: Mapping[str, object]) -> str:
    """The logical name, plus the Azure name when the props carry one: a plan shows the first,
    the portal the second, and whoever fixes the violation may be looking at either."""
    base = rules.label(resource_type, name)
    for key in ("policyName", "vaultName"):
        azure_name = props.get(key)
        if isinstance(azure_name, str) and azure_name != name:
            return f"{base} ({azure_name})"
    return base


def _validator(
    policy: str,
    resource_type: str | Callable[[str], bool],
    parse: Callable[[Mapping[str, Any] | None, str], Req],
    check: Callable[[Mapping[str, object], Req], list[str]],
    applies: Callable[[Mapping[str, object]], bool] = lambda props: True,
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    """Wire a pure rule into the SDK; a broken config is itself reported, never silently ignored."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        matches = resource_type(args.resource_type) if callable(resource_type) else args.resource_type == resource_type
        if not matches:
            return
        props = plain_props(args.props)
        if not applies(props):
            return
        subject = resource_label(args.resource_type, args.name, props)
        try:
            requirements = parse(args.get_config(), policy)
        except PolicyConfigError as err:
            report_violation(f"{subject}: not checked: {err}", None)
            return
        for problem in check(props, requirements):
            report_violation(f"{subject}: {problem}", None)

    return validate


def retention_policy() -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=RETENTION_POLICY,
        description="VM backup policies keep each retention tier within Azure's limits and the environment's bounds.",
        validate=_validator(
            RETENTION_POLICY,
            rules.POLICY_TYPE,
            RetentionRequirements.from_config,
            rules.retention_problems,
            rules.is_vm_backup_policy,
        ),
        config_schema=PolicyConfigSchema(RETENTION_SCHEMA),
        remediation_steps="Change protected-vm:policy.retention in stacks/Pulumi.<env>.yaml.",
    )


def schedule_policy() -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=SCHEDULE_POLICY,
        description=(
            "VM backup policies have a valid schedule (Enhanced for hourly) meeting the environment's RPO, "
            "and instant-restore days within Azure's limits and the environment's minimum."
        ),
        validate=_validator(
            SCHEDULE_POLICY,
            rules.POLICY_TYPE,
            ScheduleRequirements.from_config,
            rules.schedule_problems,
            rules.is_vm_backup_policy,
        ),
        config_schema=PolicyConfigSchema(SCHEDULE_SCHEMA),
        remediation_steps="Change protected-vm:policy.schedule / instantRestoreDays / type in the stack file.",
    )


def vault_policy() -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=VAULT_POLICY,
        description=(
            "Recovery Services vaults keep soft delete, immutability, private access and the redundancy "
            "the environment requires."
        ),
        validate=_validator(VAULT_POLICY, rules.VAULT_TYPE, VaultRequirements.from_config, rules.vault_problems),
        config_schema=PolicyConfigSchema(VAULT_SCHEMA),
        remediation_steps="Change protected-vm:vault in the stack file.",
    )


def initial_backup_policy() -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=INITIAL_BACKUP_POLICY,
        description="The initial on-demand backup is retained at least the environment's minimum days.",
        validate=_validator(
            INITIAL_BACKUP_POLICY,
            rules.is_dynamic_type,
            InitialBackupRequirements.from_config,
            rules.initial_backup_problems,
            lambda props: rules.initial_backup_settings(props) is not None,
        ),
        config_schema=PolicyConfigSchema(INITIAL_BACKUP_SCHEMA),
        remediation_steps="Change protected-vm:initialBackup.retainDays / verify in the stack file.",
    )


def tier_policy() -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=TIER_POLICY,
        description=(
            "Each VM backup policy meets its tier's rules (its protected-vm-tier tag) and the rules every "
            "tier must meet ('*')."
        ),
        validate=_validator(
            TIER_POLICY,
            rules.POLICY_TYPE,
            TierRequirements.from_config,
            rules.tier_problems,
            rules.is_vm_backup_policy,
        ),
        config_schema=PolicyConfigSchema(TIERS_SCHEMA),
        remediation_steps="Change the policy under protected-vm:vaults.<vault>.policies.<name> in the stack file.",
    )


def resource_policies() -> list[ResourceValidationPolicy]:
    return [retention_policy(), schedule_policy(), vault_policy(), initial_backup_policy(), tier_policy()]
