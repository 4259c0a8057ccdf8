"""Every test talks to the emulator or to mocks, never to Azure: code that builds its own client
(the CLI, the dynamic providers in-process) gets the emulator's token instead of
``DefaultAzureCredential``, the same way the test provider host does (``testing.emulator_run``)."""

from __future__ import annotations

import pytest

from protectedvm import azure_client
from testing.emulator_run import emulator_credential


@pytest.fixture(autouse=True)
def _emulator_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azure_client, "default_credential", emulator_credential)
