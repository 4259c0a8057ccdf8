"""Every test talks to the emulator or to mocks, never to Azure: code that builds its own client
(the CLI, the dynamic providers in-process) gets the emulator's token instead of
``DefaultAzureCredential``, the same way the test provider host does (``testing.emulator_run``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import Emulator, ManualClock
from protectedvm import azure_client
from testing.emulator_run import emulator_credential


@pytest.fixture(autouse=True)
def _emulator_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure_client, "default_credential", emulator_credential)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """One emulator per test on a ManualClock, backup jobs lasting 60 s. A test module that needs other
    settings (job duration, page size, endpoint variables, module scope) defines its own ``emu``."""
    with Emulator(job_duration=60.0, clock=ManualClock()) as running:
        yield running



#: Test files left out of ``make test-fast`` (``make test`` runs them): they start subprocesses (the
#: benchmarks' smoke runs, ``python -m rehearsal``, programs outside the repository, the CLIs
#: runs), rehearse whole stacks end to end, or evaluate whole stacks under Pulumi mocks; each of the
#: latter takes a few seconds, and together they are what makes the suite slow. Every file not listed
#: here or in HOST_FILES is fast: e.g. test_verifier_states.py (the verifier against an in-memory fake).
SLOW_FILES = frozenset(
    {
        "test_bad_input.py",
        "test_bench_smoke.py",
        "test_cli_verify.py",
        "test_day_two_urns.py",
        "test_drill_rehearsal.py",
        "test_dynamic_pickling.py",
        "test_fleet.py",
        "test_module.py",
        "test_policies_pack.py",
        "test_preview.py",
        "test_program.py",
        "test_readd_import.py",
        "test_rehearsal_day_two.py",
        "test_rehearsal_run.py",
        "test_vault_operations.py",
    }
)
#: The emulator's own conformance and fidelity suite (tests/emulator/): hundreds of tests, each starting
#: an HTTPS emulator; it proves the stand-in, not the product, so the fast loop leaves it out.
SLOW_DIRS = frozenset({Path(__file__).parent / "emulator"})
#: Test files that drive the real dynamic-provider host over gRPC (``tests/provider_host.py``).
HOST_FILES = frozenset({"test_day_two_provider_host.py", "test_provider_host.py"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent == Path(__file__).parent and item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        if item.path.parent in SLOW_DIRS:
            item.add_marker(pytest.mark.slow)
        if item.path.name in HOST_FILES:
            item.add_marker(pytest.mark.host)
