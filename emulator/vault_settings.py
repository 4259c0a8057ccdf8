"""The vault settings issue 17 deploys on the vault PUT: ``monitoringSettings`` and ``encryption``.

Shapes and values follow the official examples vendored in tests/emulator/examples/operations/
(PUTVault_WithMonitoringSettings.json, PUTVault_WithCMK.json, api-version 2024-10-01) and the
REST spec's enums ``AlertsState`` and ``InfrastructureEncryptionState`` (both Enabled/Disabled;
the same values azure-native's recoveryservices enums carry). Which error code the Recovery
Services RP answers for a bad value is not documented: ``BadRequest`` below is our stand-in, and
only the status (400) and the named property are claimed.

The other operations resources (locks, action groups, alert processing rules, diagnostic
settings, Resource Guards, private endpoints) live in other resource providers; the rehearsal
shows them in its plan and the policy pack checks them, but the emulator does not serve them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .errors import ApiError

STATES: Final[tuple[str, ...]] = ("Enabled", "Disabled")
_MONITOR_SWITCHES: Final[dict[str, tuple[str, ...]]] = {
    "azureMonitorAlertSettings": (
        "alertsForAllJobFailures",
        "alertsForAllReplicationIssues",
        "alertsForAllFailoverIssues",
    ),
    "classicAlertSettings": ("alertsForCriticalOperations", "emailNotificationsForSiteRecovery"),
}


def _bad(path: str, message: str) -> ApiError:
    return ApiError(400, "BadRequest", f"properties.{path}: {message}")


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(path, "must be an object")
    return value


def check_vault_settings(props: Mapping[str, Any], identity: object) -> None:
    """Refuse what Azure would refuse (or what could never work) in the two settings."""
    monitoring = props.get("monitoringSettings")
    if monitoring is not None:
        for section, switches in _MONITOR_SWITCHES.items():
            raw = _object(monitoring, "monitoringSettings").get(section)
            if raw is None:
                continue
            body = _object(raw, f"monitoringSettings.{section}")
            for switch in switches:
                value = body.get(switch)
                if value is not None and value not in STATES:
                    raise _bad(
                        f"monitoringSettings.{section}.{switch}",
                        f"{value!r} is not a valid value: choose one of {', '.join(STATES)}",
                    )
    encryption = props.get("encryption")
    if encryption is not None:
        _check_encryption(_object(encryption, "encryption"), identity)


def _check_encryption(encryption: Mapping[str, Any], identity: object) -> None:
    key_uri = _object(encryption.get("keyVaultProperties") or {}, "encryption.keyVaultProperties").get("keyUri")
    if not isinstance(key_uri, str) or not key_uri.startswith("https://"):
        raise _bad("encryption.keyVaultProperties.keyUri", "a Key Vault key URI (https://...) is required")
    infra = encryption.get("infrastructureEncryption")
    if infra is not None and infra not in STATES:
        raise _bad(
            "encryption.infrastructureEncryption", f"{infra!r} is not a valid value: choose one of {', '.join(STATES)}"
        )
    kek = _object(encryption.get("kekIdentity") or {}, "encryption.kekIdentity")
    user = kek.get("userAssignedIdentity")
    system = kek.get("useSystemAssignedIdentity") is True
    ident = identity if isinstance(identity, Mapping) else {}
    kind = str(ident.get("type", "")).lower()
    if user and system:
        raise _bad("encryption.kekIdentity", "set userAssignedIdentity or useSystemAssignedIdentity, not both")
    if system and "systemassigned" not in kind:
        raise _bad("encryption.kekIdentity.useSystemAssignedIdentity", "the vault has no system-assigned identity")
    if not user and not system:
        raise _bad("encryption.kekIdentity", "an identity to read the key with is required")
    if user:
        # PUTVault_WithCMK.json: the key's identity is one of the vault's userAssignedIdentities
        # (a map keyed by the identity's ARM id, compared case-insensitively as ARM ids are).
        assigned = ident.get("userAssignedIdentities") or {}
        known = {str(k).lower() for k in (assigned if isinstance(assigned, Mapping) else {})}
        if "userassigned" not in kind or str(user).lower() not in known:
            raise _bad(
                "encryption.kekIdentity.userAssignedIdentity",
                f"{user} is not assigned to the vault (identity.userAssignedIdentities)",
            )
