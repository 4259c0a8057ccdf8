"""The program turns the event loop between batches of VMs (``components.program.run_ready_registrations``)
to bound its memory, and collects garbage less often while it registers (``fewer_collections``); what
it registers must not depend on either."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pulumi
import pytest

from components import program
from components.engine_values import is_unknown
from components.program import YOUNG_COLLECTION_THRESHOLD, deploy, fewer_collections, run_ready_registrations
from testing.mock_preview import Plan, evaluate, load_stack_config
from tests.helpers import SUB


def config_with(vms: int) -> dict[str, str]:
    config = load_stack_config("prod")
    vm = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-"
    config["protected-vm:vms"] = json.dumps([f"{vm}{i:03}" for i in range(vms)])
    return config


def registered(plan: Plan) -> list[tuple[str, str, Any, str | None]]:
    """By type and name: the mock monitor answers in threads, so the order of registrations that
    do not depend on each other varies from run to run with or without pacing. A preview's unknowns
    (one ``Unknown`` object each, equal only to itself) are compared as the same marker."""
    return sorted(
        ((r.type, r.name, marked(r.inputs), r.import_id) for r in plan.resources), key=lambda r: (r[0], r[1])
    )


def marked(value: Any) -> Any:
    if is_unknown(value):
        return "<unknown>"
    if isinstance(value, dict):
        return {key: marked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [marked(item) for item in value]
    return value


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_a_stack_registers_the_same_resources_with_the_same_inputs_whether_or_not_the_loop_turns(
    monkeypatch: pytest.MonkeyPatch, preview: bool
) -> None:
    config = config_with(12)
    monkeypatch.setattr(program, "REGISTRATION_BATCH", 10**9)
    unpaced = evaluate(deploy, config, "prod", preview=preview)
    turns: list[int] = []

    def counted(max_rounds: int = 1000) -> int:
        turns.append(run_ready_registrations(max_rounds))
        return turns[-1]

    monkeypatch.setattr(program, "REGISTRATION_BATCH", 5)
    monkeypatch.setattr(program, "run_ready_registrations", counted)
    paced = evaluate(deploy, config, "prod", preview=preview)
    assert len(turns) == 2 and all(turn > 0 for turn in turns), turns
    assert registered(paced) == registered(unpaced)
    assert len(paced.of_type("azure-native:recoveryservices:ProtectedItem")) == 12
    assert paced.outputs == unpaced.outputs


def test_turning_the_loop_runs_ready_callbacks_and_the_program_still_completes() -> None:
    seen: list[str] = []

    def body() -> None:
        loop = asyncio.get_event_loop()
        loop.call_soon(seen.append, "first")
        loop.call_soon(lambda: loop.call_soon(seen.append, "scheduled by a callback"))
        assert run_ready_registrations() >= 2
        assert seen == ["first", "scheduled by a callback"]
        pulumi.export("done", "yes")

    plan = evaluate(body, {}, "dev")
    assert plan.outputs == {"done": "yes"}


def test_outside_a_running_loop_it_does_nothing() -> None:
    assert run_ready_registrations() == 0


def test_the_program_collects_young_objects_less_often_while_it_registers_and_puts_the_setting_back() -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    def body() -> None:
        with fewer_collections():
            seen.append(gc.get_threshold())

    evaluate(body, {}, "dev")
    assert seen == [(YOUNG_COLLECTION_THRESHOLD, before[1], before[2])]
    assert gc.get_threshold() == before


def test_with_automatic_collection_switched_off_it_stays_off() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0)
    try:
        with fewer_collections():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


def test_what_is_left_for_the_outer_turn_of_the_loop_does_not_grow_with_each_batch() -> None:
    """The outer turn pops as many handles as were ready when the program's step began; refilling
    to everything that was ready at each batch (what ``_sync_await`` does) would add a batch's worth
    of stand-ins every time."""
    left: list[int] = []

    def body() -> None:
        loop = asyncio.get_event_loop()
        for _ in range(4):
            for _ in range(50):
                loop.call_soon(left.count, 0)
            run_ready_registrations()
            left.append(len(loop._ready))  # type: ignore[attr-defined]

    evaluate(body, {}, "dev")
    assert left[0] >= 50
    assert left == [left[0]] * 4
