"""What the Pulumi engine hands a dynamic provider or the program instead of a plain value:
unknown inputs (a new stack's first preview) and failed invokes. One home for both, so every
resource of ours reads them the same way."""

from __future__ import annotations

from collections.abc import Mapping


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


def is_not_found(error: BaseException) -> bool:
    """Whether a failed azure-native invoke means "Azure has no such resource".

    The SDK raises a plain ``Exception`` carrying the provider's error text; azure-native's
    ``Invoke`` wraps the ARM error as ``request failed <id>: <error>`` (pulumi-azure-native
    ``provider/pkg/provider/provider.go``), whose text carries the HTTP status and Azure's code
    (``ResourceNotFound`` for a missing vault, ``BMSUserErrorItemNotFound`` for a missing backup
    item). Anything else (no credentials, throttling) is not "absent" and must not be read so."""
    text = str(error)
    return "ResourceNotFound" in text or "404" in text or "NotFound" in text
