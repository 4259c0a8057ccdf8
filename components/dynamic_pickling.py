"""A workaround for pulumi's dynamic-provider serialization, shared by every dynamic resource
this program registers (``VmProtection``, ``VaultLock``, ``InitialBackup``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def pickler_restored() -> Iterator[None]:
    """Undo what ``pulumi.dynamic.dynamic.serialize_provider`` leaves behind.

    It patches ``pickle._Pickler._batch_setitems`` (wrapping the current one) and ``save_dict``
    on every dynamic resource it serializes and restores only ``pickle.Pickler``, so each
    registration nests one more wrapper: at about 980 dynamic resources in one program run
    (pulumi 3.272) pickling fails with RecursionError. With one ``VmProtection`` per VM that is a
    stack of ~980 VMs, so each registration here puts the two attributes back."""
    import pickle

    pickler: Any = pickle._Pickler
    saved = (pickler.__dict__.get("_batch_setitems"), pickler.__dict__.get("save_dict"))
    try:
        yield
    finally:
        for name, value in zip(("_batch_setitems", "save_dict"), saved, strict=True):
            if value is not None:
                setattr(pickler, name, value)
