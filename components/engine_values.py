"""What the Pulumi engine hands a dynamic provider or the program instead of a plain value:
unknown inputs (a new stack's first preview) and failed invokes. One home for both, so every
resource of ours reads them the same way."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pulumi.dynamic as dyn


def is_unknown(value: object) -> bool:
    """Whether an input is not known yet (preview of a stack whose vault is still to be created).

    The engine marks unknowns with the sentinel string ``rpc.UNKNOWN`` on the wire; the dynamic
    provider host deserializes Check and Diff properties with ``keep_unknowns=True``, which turns
    that sentinel into a :class:`pulumi.output.Unknown` instance (``pulumi/dynamic/__main__.py``).
    Both shapes occur, so both count; never try to parse either."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def has_unknown(value: object) -> bool:
    """``value`` or anything nested in it (a list element, a settings field) is unknown."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_unknown(v) for v in value)
    return False


def id_failures(prop: str, value: object, parse: Callable[[str], object]) -> list[dyn.CheckFailure]:
    """A Check failure naming ``prop`` when a known ``value`` is not the id ``parse`` accepts (its
    ``ValueError`` says what is expected); nothing while the value is unknown."""
    if is_unknown(value):
        return []
    try:
        parse(str(value))
    except ValueError as error:
        return [dyn.CheckFailure(prop, str(error))]
    return []


#: Azure's "no such resource", as azure-native's error text carries it: the HTTP status in the
#: autorest form (``Status=404 Code="ResourceNotFound"``) or the azcore form (``RESPONSE 404: 404
#: Not Found`` / ``ERROR CODE: ResourceNotFound``), or an ARM/Backup error code ending in NotFound
#: (``ResourceNotFound``, ``ResourceGroupNotFound``; ``BMSUserErrorItemNotFound`` is the emulator's
#: code for a missing item, an assumption: no Microsoft example of that 404 found). A bare "404"
#: is not enough: the ids in the same text hold GUIDs, and a subscription ``...-4041-...`` must
#: not turn a 403 into "absent".
_NOT_FOUND = re.compile(
    r"\bStatus(?:Code)?=404\b|\bRESPONSE 404\b|\b404 Not Found\b"
    r"|\b(?:Resource|ResourceGroup|BMSUserErrorItem)NotFound\b"
)


def is_not_found(error: BaseException) -> bool:
    """Whether a failed azure-native invoke means "Azure has no such resource".

    The SDK raises a plain ``Exception`` carrying the provider's error text; azure-native's
    ``Invoke`` wraps the ARM error as ``request failed <id>: <error>`` (pulumi-azure-native
    ``provider/pkg/provider/provider.go``). Anything else (no permission, throttling) is not
    "absent" and must not be read so."""
    return _NOT_FOUND.search(str(error)) is not None
