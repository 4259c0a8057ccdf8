"""Turn the SDK's props into plain dicts and lists the pure rules can read.

The SDK wraps props in proxies that raise ``UnknownValueError`` on any value not known during
preview, which makes the SDK skip the whole policy with a "can't run during preview" note. We
would rather check everything that *is* known, so unknowns become :data:`policies.rules.UNKNOWN`
and each rule skips only what it cannot see. Plain dicts carrying the engine's sentinel strings
(tests, the offline runner) are normalised the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pulumi_policy import proxy

from policies.rules import UNKNOWN

_SENTINELS: Final[frozenset[str]] = frozenset(
    {
        proxy.UNKNOWN_BOOLEAN_VALUE,
        proxy.UNKNOWN_NUMBER_VALUE,
        proxy.UNKNOWN_STRING_VALUE,
        proxy.UNKNOWN_ARRAY_VALUE,
        proxy.UNKNOWN_ASSET_VALUE,
        proxy.UNKNOWN_ARCHIVE_VALUE,
        proxy.UNKNOWN_OBJECT_VALUE,
    }
)


def plain(value: Any) -> Any:
    """Deep-copy ``value`` into dicts/lists, replacing unknowns with UNKNOWN."""
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key in value:
            try:
                result[key] = plain(value[key])
            except proxy.UnknownValueError:
                result[key] = UNKNOWN
        return result
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except proxy.UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def plain_props(props: Mapping[str, Any]) -> dict[str, Any]:
    converted = plain(props)
    return converted if isinstance(converted, dict) else {}
