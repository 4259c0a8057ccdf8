"""Entry point the Pulumi CLI runs (working directory ``policies/``).

Only this file constructs ``PolicyPack``: construction starts the analyzer's gRPC server and
blocks, so everything testable lives in importable modules. The repo root goes on ``sys.path``
first, so the pack imports ``policies.*`` and ``components.validation`` exactly as the tests do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from pulumi_policy import PolicyPack  # noqa: E402

from policies.pack import pack_definition  # noqa: E402

# The CLI tells the analyzer which stack it checks; the per-env JSON config still has the last word.
definition = pack_definition(os.environ.get("PULUMI_STACK"))

PolicyPack(
    name=definition.name,
    policies=definition.policies,
    enforcement_level=definition.enforcement_level,
    description="Every Azure VM is backed up in a secure vault with a policy that meets the environment's retention.",
    provider="azure",
    tags=["backup", "azure", "recoveryservices"],
)
