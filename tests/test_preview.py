"""The program's own preview path: each stack evaluated under mocks in preview mode, where every
resource to be created has no id and no computed outputs yet (a new stack's first ``pulumi preview``).

The plan must be complete, the InitialBackup's inputs (with the vault id unknown) must pass the
real provider host's Check, and the policy pack must judge the preview exactly as it judges ``up``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pulumi.output import Unknown

from components.initial_backup import TYPE_TOKEN, InitialBackupProvider
from policies.runner import load_env_config, run_policies
from testing.mock_preview import evaluate_stack
from tests.provider_host import ProviderHost

STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def host() -> Iterator[ProviderHost]:
    with ProviderHost(InitialBackupProvider()) as running:
        running.configure({})
        yield running


@pytest.mark.parametrize("stack", STACKS)
def test_preview_registers_every_resource_that_up_registers(stack: str) -> None:
    preview = evaluate_stack(stack, preview=True)
    up = evaluate_stack(stack)
    # Registration order follows the event loop; the set of resources is what must not differ.
    assert sorted((r.type, r.name) for r in preview.resources) == sorted((r.type, r.name) for r in up.resources)
    assert all(r.preview for r in preview.resources)
    assert preview.outputs == {}  # every stack output depends on an id nobody knows yet


@pytest.mark.parametrize("stack", STACKS)
def test_preview_initial_backup_has_an_unknown_vault_and_passes_the_hosts_check(
    stack: str, host: ProviderHost
) -> None:
    (initial,) = evaluate_stack(stack, preview=True).of_type(TYPE_TOKEN)
    assert isinstance(initial.inputs["vaultId"], Unknown)
    assert all(isinstance(vm_id, str) for vm_id in initial.inputs["vmIds"])  # VM ids come from config
    response = host.check(f"urn:pulumi:{stack}::protected-vm::{TYPE_TOKEN}::initial-backup", {}, initial.inputs)
    assert [(f.property, f.reason) for f in response.failures] == []


@pytest.mark.parametrize("stack", STACKS)
def test_preview_of_each_stack_passes_its_own_environments_policies(stack: str) -> None:
    plan = evaluate_stack(stack, preview=True)
    assert run_policies(plan.resources, load_env_config(stack), stack=stack) == []


@pytest.mark.parametrize("stack", ["dev", "staging"])
def test_policy_pack_reports_the_same_violations_at_preview_as_at_up(stack: str) -> None:
    preview = run_policies(evaluate_stack(stack, preview=True).resources, load_env_config("prod"), stack="prod")
    up = run_policies(evaluate_stack(stack).resources, load_env_config("prod"), stack="prod")
    assert [v.message for v in preview] == [v.message for v in up]
    assert len(up) > 0
