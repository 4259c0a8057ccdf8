"""The pack's policies and its default enforcement level, shared by ``__main__.py`` (which alone
constructs ``PolicyPack``: constructing it starts a gRPC server and blocks) and by the tests and
the offline runner, which call the same policy objects directly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pulumi_policy import EnforcementLevel, Policy

from policies.resource_policies import resource_policies
from policies.stack_policies import stack_policies

PACK_NAME: Final = "protected-vm-backup"
ENVIRONMENTS: Final[tuple[str, ...]] = ("dev", "staging", "prod")
#: Used only when the config file sets no level; unknown stacks get the strict one (fail closed).
DEFAULT_LEVELS: Final[dict[str, EnforcementLevel]] = {
    "dev": EnforcementLevel.ADVISORY,
    "staging": EnforcementLevel.MANDATORY,
    "prod": EnforcementLevel.MANDATORY,
}


@dataclass(frozen=True)
class PackDefinition:
    name: str
    policies: list[Policy]
    enforcement_level: EnforcementLevel


def enforcement_level_for(env: str | None) -> EnforcementLevel:
    """Advisory where mistakes are cheap (dev), mandatory everywhere else, including stacks we
    do not know: a typo in a stack name must not turn prod's gate into a warning."""
    return DEFAULT_LEVELS.get((env or "").rsplit("/", 1)[-1], EnforcementLevel.MANDATORY)


def build_policies() -> list[Policy]:
    return [*resource_policies(), *stack_policies()]


def pack_definition(env: str | None = None) -> PackDefinition:
    return PackDefinition(PACK_NAME, build_policies(), enforcement_level_for(env))
