"""The stack policy: no VM in the stack (or named in config) goes without a backup that passes
the environment's rules. Resource policies cannot see this: a VM and its ProtectedItem are two
resources, and a missing ProtectedItem is a resource that is never sent to a resource policy."""

from __future__ import annotations

from typing import Final

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies import rules
from policies.props import plain_props
from policies.thresholds import (
    COVERAGE_SCHEMA,
    OPERATIONS_SCHEMA,
    CoverageRequirements,
    OperationsRequirements,
    PolicyConfigError,
)

COVERAGE_POLICY: Final = "vm-backup-coverage"
OPERATIONS_POLICY: Final = "vault-operations"


def stack_resource(resource: PolicyResource) -> rules.StackResource:
    return rules.StackResource(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=plain_props(resource.props),
        property_dependencies={
            prop: [dep.urn for dep in deps] for prop, deps in (resource.property_dependencies or {}).items()
        },
    )


def validate_coverage(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    try:
        requirements = CoverageRequirements.from_config(args.get_config(), COVERAGE_POLICY)
    except PolicyConfigError as err:
        report_violation(f"not checked: {err}", None)
        return
    resources = [stack_resource(r) for r in args.resources]
    for problem in rules.coverage_problems(resources, requirements):
        report_violation(problem.message, problem.urn)


def coverage_policy() -> StackValidationPolicy:
    return StackValidationPolicy(
        name=COVERAGE_POLICY,
        description=(
            "Every VM in the stack or in requiredVmIds has a ProtectedItem whose backup policy passes "
            "the environment's retention and schedule rules."
        ),
        validate=validate_coverage,
        config_schema=PolicyConfigSchema(COVERAGE_SCHEMA),
        remediation_steps="Add the VM id to protected-vm:vms in the stack file, or fix its backup policy.",
    )


def validate_operations(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    try:
        requirements = OperationsRequirements.from_config(args.get_config(), OPERATIONS_POLICY)
    except PolicyConfigError as err:
        report_violation(f"not checked: {err}", None)
        return
    resources = [stack_resource(r) for r in args.resources]
    for problem in rules.vault_operations_problems(resources, requirements):
        report_violation(problem.message, problem.urn)


def operations_policy() -> StackValidationPolicy:
    return StackValidationPolicy(
        name=OPERATIONS_POLICY,
        description=(
            "Every vault the stack creates has the delete lock, alert routing, backup reports and multi-user "
            "authorization the environment requires."
        ),
        validate=validate_operations,
        config_schema=PolicyConfigSchema(OPERATIONS_SCHEMA),
        remediation_steps=(
            "Set protected-vm:vault.lock / alerts.actionGroup / reports / multiUserAuthorization in the stack file."
        ),
    )


def stack_policies() -> list[StackValidationPolicy]:
    return [coverage_policy(), operations_policy()]
