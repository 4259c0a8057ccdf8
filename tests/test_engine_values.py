"""``components/engine_values.py``: how the program reads what the engine hands it."""

from __future__ import annotations

import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc

from components.engine_values import has_unknown, is_not_found, is_unknown

ITEM = (
    "/subscriptions/a4041404-0000-4040-8404-000000000404/resourceGroups/rg/providers/Microsoft.RecoveryServices"
    "/vaults/v/backupFabrics/Azure/protectionContainers/c/protectedItems/i"
)


def test_both_shapes_of_an_unknown_count_and_nested_ones_are_found() -> None:
    assert is_unknown(Unknown()) and is_unknown(rpc.UNKNOWN)
    assert not is_unknown("westeurope") and not is_unknown(None)
    assert has_unknown({"a": [1, {"b": rpc.UNKNOWN}]}) and not has_unknown({"a": [1, {"b": "x"}]})


@pytest.mark.parametrize(
    "text",
    [
        f'request failed {ITEM}: autorest/azure: Service returned an error. Status=404 Code="ResourceNotFound" '
        "Message=\"The Resource 'Microsoft.RecoveryServices/vaults/v' under resource group 'rg' was not found.\"",
        f"request failed {ITEM}: GET https://management.azure.com{ITEM}\n"
        "RESPONSE 404: 404 Not Found\nERROR CODE: BMSUserErrorItemNotFound",
        f'request failed {ITEM}: Status=404 Code="ResourceGroupNotFound" Message="Resource group \'rg\' could not '
        'be found."',
    ],
)
def test_azures_404_in_either_client_form_is_not_found(text: str) -> None:
    assert is_not_found(Exception(text))


def test_a_403_whose_ids_contain_404_is_not_not_found() -> None:
    text = (
        f'request failed {ITEM}: Status=403 Code="AuthorizationFailed" Message="The client does not have '
        "authorization to perform action 'Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
        "protectedItems/read'\""
    )
    assert not is_not_found(Exception(text))


def test_vault_exists_reads_only_azures_not_found_as_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new vault is created Unlocked first: misreading a 403 as "absent" would send Unlocked to a
    Locked vault, so only Azure's 404 counts and anything else stops the program."""
    from components import backup_vault

    def answer(text: str) -> object:
        def get_vault(**_: object) -> object:
            raise Exception(text)

        return get_vault

    monkeypatch.setattr(backup_vault.rs, "get_vault", answer('request failed v: Status=404 Code="ResourceNotFound"'))
    assert backup_vault.vault_exists("rg", "v") is False
    forbidden = f'request failed {ITEM}: Status=403 Code="AuthorizationFailed" Message="denied"'
    monkeypatch.setattr(backup_vault.rs, "get_vault", answer(forbidden))
    with pytest.raises(Exception, match="AuthorizationFailed"):
        backup_vault.vault_exists("rg", "v")
