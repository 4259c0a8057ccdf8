"""A credential for the emulator: the SDK insists on a TokenCredential and HTTPS."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken

EMULATOR_TOKEN = "emulator-token"


class StaticTokenCredential:
    """Hands out one fixed token that the emulator accepts; no Azure AD round-trip exists offline."""

    def __init__(self, token: str = EMULATOR_TOKEN) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        # Far in the future so azure-core never tries to refresh during a test.
        return AccessToken(self.token, int(time.time()) + 10 * 365 * 24 * 3600)

    def close(self) -> None:
        return None

    def __enter__(self) -> StaticTokenCredential:
        return self

    def __exit__(self, *args: object) -> None:
        return None
