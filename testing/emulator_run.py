"""``python -u -m testing.emulator_run <module> [args...]``: run ``python -m <module>`` with the
emulator's static token as the Azure credential, e.g. ``pulumi.dynamic`` (the dynamic provider
host the engine starts) or ``protectedvm verify ...``.

The deploying code always builds ``DefaultAzureCredential`` (in the cloud ``ARM_ENVIRONMENT``
names); the emulator accepts only its own token. Test processes install that token explicitly
here instead of production code switching credentials on an environment variable, so nothing that
ships honours a test token. The endpoint and CA still come from ``PROTECTED_VM_ARM_ENDPOINT`` /
``PROTECTED_VM_CA_BUNDLE``."""

from __future__ import annotations

import runpy
import sys

from azure.core.credentials import TokenCredential

from emulator import StaticTokenCredential
from protectedvm import azure_client


def emulator_credential(cloud: azure_client.ArmCloud | None = None) -> TokenCredential:
    """What ``default_credential`` answers in a test process: the emulator's token."""
    return StaticTokenCredential()


def install_emulator_credential() -> None:
    azure_client.default_credential = emulator_credential


def run_module(argv: list[str]) -> None:
    """``python -m argv[0] argv[1:]`` in this process, after installing the emulator credential."""
    if not argv:
        raise SystemExit("usage: python -m testing.emulator_run <module> [args...]")
    install_emulator_credential()
    sys.argv = argv
    # run_module, not an import: pulumi.dynamic's host serves as soon as its __main__ is imported.
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    run_module(sys.argv[1:])
