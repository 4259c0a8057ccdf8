"""The Azure side of protected-vm: trigger and prove each VM's initial backup, and re-check health.

* :mod:`protectedvm.ids` -- vault/VM ARM ids and the backup names Azure derives from them;
* :mod:`protectedvm.azure_client` -- the thin SDK wrapper (the only module that touches SDK models);
* :mod:`protectedvm.verifier` -- the batched, idempotent trigger-and-verify core;
* :mod:`protectedvm.health` -- the post-deploy health check behind ``python -m protectedvm verify``;
* :mod:`protectedvm.cli` -- the command line (argparse subcommands).

Nothing here imports Pulumi, so the core is testable on its own and usable from pipelines.
"""

from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import InitialBackupError, InitialBackupVerifier, VmResult, verify_initial_backups

__all__ = [
    "InitialBackupError",
    "InitialBackupVerifier",
    "VaultRef",
    "VmRef",
    "VmResult",
    "verify_initial_backups",
]
