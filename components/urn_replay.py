"""What the Pulumi engine would do with a program's URNs and aliases against an earlier state
(tests and ``python -m rehearsal.day_two``; nothing here runs in ``pulumi up``).

Under mocks nothing compares a run with the previous one, yet "adding a VM never renames an
existing resource" is a statement about exactly that. This helper records every registration the
real program sends to the mock monitor (URN, parent, alias specs) and then matches them against
a set of old URNs the way the engine's step generator does (pulumi/pulumi
``pkg/resource/deploy/step_generator.go``: ``generateAliases``, ``collapseAliasToUrn``,
``inheritedChildAlias`` and the "look up the URN first, then the aliases" loop of
``generateSteps``), including its two refusals: an alias naming a URN another resource already
has, and two resources claiming the same old URN. The mock monitor advertises ``aliasSpecs``, so
the SDK sends specs and the engine -- modelled here -- derives children's aliases from the alias
their parent actually matched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import mocks as pulumi_mocks

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


@dataclass(frozen=True)
class AliasSpec:
    name: str
    type: str
    parent_urn: str
    no_parent: bool
    urn: str


@dataclass(frozen=True)
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    aliases: tuple[AliasSpec, ...]
    retain_on_delete: bool = False
    dependencies: tuple[str, ...] = ()


@dataclass
class Outcome:
    """Per new URN, the old URN it continues (itself, an alias, or None for a create)."""

    matched: dict[str, str | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def created(self) -> list[str]:
        return [urn for urn, old in self.matched.items() if old is None]


@contextmanager
def recording() -> Iterator[list[Registration]]:
    """Record every RegisterResource the mock monitor receives while the block runs."""
    seen: list[Registration] = []
    engine_urns: dict[str, str] = {}  # the mock's URN -> the engine's
    original: Callable[..., Any] = pulumi_mocks.MockMonitor.RegisterResource

    def register(self: pulumi_mocks.MockMonitor, request: Any) -> Any:
        # The mock monitor qualifies top-level types with the stack's and keeps only the parent's
        # last type; the engine does neither (``generateURN``), so URNs are recomputed here.
        mock_urn = self.make_urn(request.parent, request.type, request.name)
        parent = engine_urns.get(request.parent, "") if request.parent else ""
        stack, project = _split(mock_urn)[:2]
        urn = create_urn(request.name, request.type, parent, project, stack)
        engine_urns[mock_urn] = urn
        specs = []
        for alias in request.aliases:
            if alias.HasField("spec"):
                spec = alias.spec
                parent_urn = engine_urns.get(spec.parentUrn, spec.parentUrn)
                specs.append(AliasSpec(spec.name, spec.type, parent_urn, spec.noParent, ""))
            else:
                specs.append(AliasSpec("", "", "", False, alias.urn))
        seen.append(
            Registration(
                urn,
                request.type,
                request.name,
                parent,
                bool(request.custom),
                tuple(specs),
                bool(request.retainOnDelete),
                tuple(engine_urns.get(d, d) for d in request.dependencies),
            )
        )
        return original(self, request)

    pulumi_mocks.MockMonitor.RegisterResource = register  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        pulumi_mocks.MockMonitor.RegisterResource = original  # type: ignore[method-assign]


def _split(urn: str) -> tuple[str, str, str, str]:
    """urn:pulumi:{stack}::{project}::{qualified type}::{name}"""
    head, project, qualified, name = urn.split("::", 3)
    return head.removeprefix("urn:pulumi:"), project, qualified, name


def create_urn(name: str, typ: str, parent: str, project: str, stack: str) -> str:
    """``resource.CreateURN``: the child's qualified type is the parent's type chain plus its own;
    the root stack contributes nothing."""
    qualified = typ
    if parent and _split(parent)[2] != ROOT_STACK_TYPE:
        parent_type = _split(parent)[2]
        qualified = f"{parent_type}${typ}"
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def match_against(old_urns: set[str], registrations: list[Registration]) -> Outcome:
    """Replay ``registrations`` (in order) against a state holding ``old_urns``."""
    outcome = Outcome()
    aliased: dict[str, str] = {}  # old URN -> new URN that claimed it
    parent_alias: dict[str, str] = {}  # new URN -> the old URN it matched through an alias
    seen: set[str] = set()
    for reg in registrations:
        if reg.type == ROOT_STACK_TYPE:
            seen.add(reg.urn)
            outcome.matched[reg.urn] = reg.urn if reg.urn in old_urns else None
            continue
        stack, project, _, _ = _split(reg.urn)
        candidates: list[str] = []

        def add(urn: str, candidates: list[str] = candidates) -> None:
            if urn not in candidates:
                candidates.append(urn)

        def collapse(spec: AliasSpec, reg: Registration = reg, stack: str = stack, project: str = project) -> str:
            if spec.urn:
                return spec.urn
            parent = spec.parent_urn or reg.parent
            if spec.parent_urn and spec.parent_urn in parent_alias:
                parent = parent_alias[spec.parent_urn]
            if spec.no_parent or (parent and _split(parent)[2] == ROOT_STACK_TYPE):
                parent = ""
            return create_urn(spec.name or reg.name, spec.type or reg.type, parent, project, stack)

        def inherited(child_type: str, child_name: str, parent_name: str, old_parent: str) -> str:
            alias_name = child_name
            if child_name.startswith(parent_name):
                alias_name = _split(old_parent)[3] + child_name[len(parent_name) :]
            old_stack, old_project, old_parent_type, _ = _split(old_parent)
            return f"urn:pulumi:{old_stack}::{old_project}::{old_parent_type}${child_type}::{alias_name}"

        for spec in reg.aliases:
            add(collapse(spec))
        if reg.parent and reg.parent in parent_alias:
            old_parent = parent_alias[reg.parent]
            parent_name = _split(reg.parent)[3]
            add(inherited(reg.type, reg.name, parent_name, old_parent))
            for spec in reg.aliases:
                child_alias = collapse(spec)
                _, _, qualified, name = _split(child_alias)
                add(inherited(qualified.split("$")[-1], name, parent_name, old_parent))

        if reg.urn in seen:
            outcome.errors.append(f"duplicate URN {reg.urn}")
        seen.add(reg.urn)
        if reg.urn in aliased:
            outcome.errors.append(f"{reg.urn} is already the alias of {aliased[reg.urn]}")
        found: str | None = None
        for urn in [reg.urn, *candidates]:
            if urn in old_urns:
                found = urn
                if urn != reg.urn:
                    if urn in seen:
                        outcome.errors.append(f"{reg.urn} aliases {urn}, which another resource registered")
                    if urn in aliased:
                        outcome.errors.append(f"{reg.urn} and {aliased[urn]} both alias {urn}")
                    aliased[urn] = reg.urn
                    parent_alias[reg.urn] = urn
                break
        outcome.matched[reg.urn] = found
    claimed = {old for old in outcome.matched.values() if old is not None}
    outcome.deleted = sorted(old_urns - claimed)
    return outcome


def urns(registrations: list[Registration], *, custom_only: bool = False) -> set[str]:
    return {r.urn for r in registrations if r.type != ROOT_STACK_TYPE and (r.custom or not custom_only)}


def by_type(registrations: list[Registration]) -> Mapping[str, list[str]]:
    out: dict[str, list[str]] = {}
    for reg in registrations:
        out.setdefault(reg.type, []).append(reg.urn)
    return out
