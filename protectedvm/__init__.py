"""The Azure side of protected-vm: trigger and prove each VM's initial backup, and re-check health.

* :mod:`protectedvm.ids` -- vault/VM ARM ids and the backup names Azure derives from them;
* :mod:`protectedvm.azure_client` -- the thin SDK wrapper (the only module that touches SDK models);
* :mod:`protectedvm.verifier` -- the batched, idempotent trigger-and-verify core;
* :mod:`protectedvm.health` -- the post-deploy health check behind ``python -m protectedvm verify``;
* :mod:`protectedvm.cli` -- the command line (argparse subcommands).

Nothing here imports Pulumi, so the core is testable on its own and usable from pipelines.
The names below are imported on first use: the policy pack imports :mod:`protectedvm.ids` in a
virtualenv without the Azure SDKs, which importing this package must not then require.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protectedvm.ids import VaultRef, VmRef
    from protectedvm.verifier import InitialBackupError, InitialBackupVerifier, VmResult, verify_initial_backups

_LAZY = {
    "VaultRef": "protectedvm.ids",
    "VmRef": "protectedvm.ids",
    "InitialBackupError": "protectedvm.verifier",
    "InitialBackupVerifier": "protectedvm.verifier",
    "VmResult": "protectedvm.verifier",
    "verify_initial_backups": "protectedvm.verifier",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'protectedvm' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


# A library does not decide where its log records go: without this, Python's last-resort handler
# would print every warning a second time on the provider host's stderr, beside the progress line
# the InitialBackup provider already writes there (components/initial_backup.py).
logging.getLogger("protectedvm").addHandler(logging.NullHandler())

__all__ = [
    "InitialBackupError",
    "InitialBackupVerifier",
    "VaultRef",
    "VmRef",
    "VmResult",
    "verify_initial_backups",
]
