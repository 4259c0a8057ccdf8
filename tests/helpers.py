"""Constants shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

#: The subscription of the tests' made-up ARM ids. Tests that need ids in another subscription (the
#: fleet, re-add and import, throttling, the module's consumer program) keep their own.
SUB = "11111111-2222-3333-4444-555555555555"
