"""Bad input never ends in a traceback or a silent default (issue 14): every wrong key, type, shape
and encoding of the stack config and the stack file becomes one listed problem, with the exact
message a person reads."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from azure.core.exceptions import ServiceResponseError

from components.config import STACK_KEYS, InitialBackupSettings, StackSettings, parse_config_values
from components.program import StackConfigError, deploy, load_settings
from components.validation import ValidationError, check_backup_time, check_vm_id, parse_vault_id
from emulator import Emulator, ManualClock, StaticTokenCredential
from emulator.seeding import emulator_clock, manual_sleep, protect, vm_ids
from protectedvm.azure_client import CA_BUNDLE_ENV, ENDPOINT_ENV, BackupApi, RetrySettings, make_sdk_client
from protectedvm.cli import main as cli_main
from protectedvm.ids import VaultRef, VmRef
from protectedvm.verifier import InitialBackupError, InitialBackupVerifier, VmResult
from rehearsal.run import RehearsalOptions, rehearse
from testing.mock_preview import RecordingMocks, evaluate, load_stack_config
from tests.helpers import SUB

NS = "protected-vm"
VM = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web-01"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv-test"
VALID: dict[str, Any] = {
    "vault": {"name": "rsv-test", "resourceGroup": "rg-backup"},
    "policy": {"name": "pol-test", "type": "Standard", "retention": {"daily": 7}},
    "vms": [VM],
    "initialBackup": {"verify": "completed"},
    "onRemove": "retainData",
}
KNOWN = (
    "known settings are protected-vm:initialBackup, protected-vm:onRemove, protected-vm:policy, "
    "protected-vm:vault, protected-vm:vaults, protected-vm:vms"
)
VM_SHAPE = "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>"


def engine_config(**overrides: str | None) -> dict[str, str]:
    """The flat map the engine hands the program: structured values as JSON text; ``None`` drops a key."""
    config = {f"{NS}:{key}": json.dumps(value) for key, value in VALID.items()}
    config["azure-native:location"] = "westeurope"  # another namespace: never ours to judge
    for key, text in overrides.items():
        if text is None:
            config.pop(f"{NS}:{key}", None)
        else:
            config[f"{NS}:{key}"] = text
    return config


def problems_of(config: dict[str, str]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_config_values(config, NS)
    return caught.value.problems


def test_the_valid_engine_config_parses() -> None:
    settings = parse_config_values(engine_config(), NS)
    assert (settings.vault.name, settings.policy.policy_type, len(settings.vms)) == ("rsv-test", "V1", 1)


# --- 1. config: keys, types, shapes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"initialbackup": '{"verify": "none"}'},
            [f"protected-vm:initialbackup is not a known setting: {KNOWN}; did you mean protected-vm:initialBackup?"],
        ),
        (
            {"vmss": json.dumps([VM])},
            [f"protected-vm:vmss is not a known setting: {KNOWN}; did you mean protected-vm:vms?"],
        ),
        ({"Vault": "{}"}, [f"protected-vm:Vault is not a known setting: {KNOWN}; did you mean protected-vm:vault?"]),
        ({"retention": "7"}, [f"protected-vm:retention is not a known setting: {KNOWN}"]),
        (
            {"vault": json.dumps({**VALID["vault"], "softDeleteState": "Disabled"})},
            [
                "vault.softDeleteState is not a known setting: known settings are alerts, crossRegionRestore, "
                "encryption, existingId, immutability, location, lock, multiUserAuthorization, name, "
                "privateEndpoint, publicNetworkAccess, reports, resourceGroup, softDelete, "
                "softDeleteRetentionDays, storageRedundancy; did you mean softDelete?"
            ],
        ),
    ],
    ids=["initialbackup-lowercase", "vmss", "Vault-capitalised", "retention-at-top-level", "nested-typo"],
)
def test_unknown_keys_are_errors_with_a_did_you_mean_hint(overrides: dict[str, str], expected: list[str]) -> None:
    assert problems_of(engine_config(**overrides)) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"vault": "5"}, ["vault = 5 must be an object"]),
        ({"vault": '"rsv-test"'}, ["vault = 'rsv-test' must be an object"]),
        ({"policy": '["pol-test"]'}, ["policy = ['pol-test'] must be an object"]),
        ({"vms": VM}, [f"vms = {VM!r} must be a non-empty list of virtual machine resource ids"]),
        ({"vms": "[]"}, ["vms = [] must be a non-empty list of virtual machine resource ids"]),
        ({"vms": None}, ["vms is required: a non-empty list of virtual machine resource ids"]),
        ({"vms": "[5]"}, [f"vms[0] = 5 is not a virtual machine resource id: expected {VM_SHAPE}"]),
        (
            {"vms": json.dumps([VM + "\n"])},
            [f"vms[0] = {VM + chr(10)!r} is not a virtual machine resource id: expected {VM_SHAPE}"],
        ),
        ({"initialBackup": "completed"}, ["initialBackup = 'completed' must be an object"]),
        ({"initialBackup": "true"}, ["initialBackup = True must be an object"]),
        (
            {"vault": json.dumps({**VALID["vault"], "location": 5})},
            ["vault.location = 5 must be a string (an Azure region such as westeurope)"],
        ),
        (
            {"vault": '{"existingId": 5}'},
            [
                "vault.existingId = 5 is not a Recovery Services vault id: expected "
                "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.RecoveryServices/vaults/<name>"
            ],
        ),
        (
            {"vault": json.dumps({"existingId": VAULT_ID + "\n"})},
            [
                f"vault.existingId = {VAULT_ID + chr(10)!r} is not a Recovery Services vault id: expected "
                "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.RecoveryServices/vaults/<name>"
            ],
        ),
        (
            {"vault": json.dumps({**VALID["vault"], "name": 7})},
            ["vault.name = 7 must be a string"],
        ),
        (
            {"policy": json.dumps({**VALID["policy"], "schedule": "daily"})},
            ["policy.schedule = 'daily' must be an object"],
        ),
        (
            {"policy": json.dumps({**VALID["policy"], "schedule": {"time": "23:00\n"}})},
            ["policy.schedule.time = '23:00\\n' must be a time as HH:MM (on :00 or :30)"],
        ),
        (
            {"initialBackup": '{"timeoutMinutes": "60"}'},
            ["initialBackup.timeoutMinutes = '60' must be a whole number from 1 to 1440 minutes"],
        ),
        (
            {"initialBackup": '{"pollSeconds": NaN, "retainDays": 1e400}'},
            [
                "initialBackup.retainDays = inf must be a whole number from 1 to 36135 days",
                "initialBackup.pollSeconds = nan must be a whole number from 5 to 600 seconds",
            ],
        ),
        ({"policy": "[" * 100_000 + "]" * 100_000}, ["policy is nested too deeply to be a setting of this project"]),
    ],
    ids=[
        "vault-number",
        "vault-string",
        "policy-list",
        "vms-plain-string",
        "vms-empty",
        "vms-missing",
        "vms-number-item",
        "vm-id-trailing-newline",
        "initialBackup-plain-string",
        "initialBackup-bool",
        "vault-location-number",
        "vault-existingId-number",
        "vault-existingId-trailing-newline",
        "vault-name-number",
        "schedule-string",
        "time-trailing-newline",
        "timeout-as-text",
        "nan-and-inf",
        "deeply-nested",
    ],
)
def test_wrong_types_and_shapes_are_listed_problems_naming_the_setting(
    overrides: dict[str, str | None], expected: list[str]
) -> None:
    assert problems_of(engine_config(**overrides)) == expected


def test_id_and_time_patterns_reject_a_trailing_newline_that_dollar_would_accept() -> None:
    assert check_vm_id(VM) == []
    assert check_vm_id(VM + "\n") != []
    with pytest.raises(ValidationError):
        parse_vault_id(VAULT_ID + "\n")
    assert check_backup_time("23:00", "t") == []
    assert check_backup_time("23:00\n", "t") != []


def test_every_problem_of_every_section_is_listed_in_one_error() -> None:
    problems = problems_of(engine_config(vault="5", vmss="[]", initialBackup="completed"))
    assert problems == [
        f"protected-vm:vmss is not a known setting: {KNOWN}; did you mean protected-vm:vms?",
        "vault = 5 must be an object",
        "initialBackup = 'completed' must be an object",
    ]


def test_the_program_reads_every_key_of_the_namespace_and_fails_preview_with_one_clean_run_error() -> None:
    config = engine_config(initialbackup='{"verify": "none"}', vault="5")
    mocks = RecordingMocks()
    with pytest.raises(StackConfigError) as caught:
        evaluate(deploy, config, "dev", preview=True, mocks=mocks)
    # RunError: the language host prints str(error) alone, no traceback.
    assert isinstance(caught.value, pulumi.RunError) and isinstance(caught.value, ValidationError)
    assert str(caught.value) == (
        "invalid protected-vm configuration:\n"
        f"  - protected-vm:initialbackup is not a known setting: {KNOWN}; did you mean protected-vm:initialBackup?\n"
        "  - vault = 5 must be an object"
    )
    assert mocks.resources == []


def test_load_settings_takes_the_flat_map_directly() -> None:
    assert isinstance(load_settings(engine_config()), StackSettings)
    with pytest.raises(StackConfigError, match="vms is required"):
        load_settings(engine_config(vms=None))


# --- 1b. the rehearsal's stack-file reader -----------------------------------------------------

STACK_CASES: list[tuple[str, bytes, list[str]]] = [
    (
        "yaml-syntax",
        b"config:\n  protected-vm:vms: [\n",
        ["Pulumi.bad.yaml is not valid YAML: expected the node content, but found '<stream end>' at line 3, column 1"],
    ),
    (
        "tab-indent",
        b"config:\n\tprotected-vm:vms: []\n",
        ["Pulumi.bad.yaml is not valid YAML: found character '\\t' that cannot start any token at line 2, column 1"],
    ),
    (
        "not-utf8",
        b"config:\n  protected-vm:vault:\n    name: rsv-\xe9t\xe9\n",
        ["Pulumi.bad.yaml is not UTF-8 text: byte 0xe9 on line 3 cannot be decoded"],
    ),
    (
        "top-level-list",
        b"- config\n- vms\n",
        ["Pulumi.bad.yaml must be a mapping with a 'config:' section, got a list at the top level"],
    ),
    (
        "top-level-scalar",
        b"protected-vm\n",
        ["Pulumi.bad.yaml must be a mapping with a 'config:' section, got a string at the top level"],
    ),
    (
        "config-list",
        b"config:\n  - protected-vm:vms\n",
        ["Pulumi.bad.yaml: 'config' must be a mapping of settings, got a list"],
    ),
    (
        "duplicate-top-key",
        b"config:\n  protected-vm:vms: [a]\n  protected-vm:vms: [b]\n",
        [
            "Pulumi.bad.yaml: key 'protected-vm:vms' is repeated on line 3 (first on line 2): "
            "YAML would silently keep only the last value"
        ],
    ),
    (
        "duplicate-nested-key-and-no-namespace",
        b"config:\n  vault: {}\n  protected-vm:policy:\n    name: a\n    name: b\n",
        [
            "Pulumi.bad.yaml: key 'name' is repeated on line 5 (first on line 4): "
            "YAML would silently keep only the last value",
            "Pulumi.bad.yaml: config key 'vault' is not of the form <namespace>:<name>, e.g. protected-vm:vault",
        ],
    ),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in STACK_CASES], ids=[c[0] for c in STACK_CASES])
def test_stack_file_reader_lists_encoding_syntax_shape_and_duplicate_problems(
    tmp_path: Path, content: bytes, expected: list[str]
) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_bytes(content)
    with pytest.raises(ValidationError) as caught:
        load_stack_config("bad", tmp_path)
    assert caught.value.problems == expected


def test_stack_file_reader_accepts_merge_keys_and_the_legacy_config_key_form(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.ok.yaml").write_text(
        "base: &base {name: rsv-test}\n"
        "config:\n"
        "  protected-vm:config:vault: {<<: *base, resourceGroup: rg-backup}\n"
        "  protected-vm:note: 2024-01-31\n"
    )
    assert load_stack_config("ok", tmp_path) == {
        "protected-vm:vault": '{"name": "rsv-test", "resourceGroup": "rg-backup"}',
        "protected-vm:note": '"2024-01-31"',
    }


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in STACK_CASES[:3]], ids=[c[0] for c in STACK_CASES[:3]])
def test_rehearsal_exits_2_with_the_stack_file_problem_listed(
    tmp_path: Path, content: bytes, expected: list[str]
) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_bytes(content)
    out = _Out()
    report = rehearse(RehearsalOptions(stack="bad", stacks_dir=tmp_path), out)
    assert report.exit_code == 2
    assert f"stack bad has invalid configuration (1 problem(s)):\n  - {expected[0]}\n" in out.text


def test_rehearsal_exits_2_on_an_unknown_top_level_key(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.typo.yaml").write_text(
        "config:\n"
        "  protected-vm:vault: {name: rsv-test, resourceGroup: rg-backup}\n"
        "  protected-vm:policy: {name: pol, type: Standard, retention: {daily: 7}}\n"
        f"  protected-vm:vms: [{VM}]\n"
        "  protected-vm:initialbackup: {verify: none}\n"
    )
    out = _Out()
    report = rehearse(RehearsalOptions(stack="typo", stacks_dir=tmp_path), out)
    assert report.exit_code == 2
    assert (
        f"  - protected-vm:initialbackup is not a known setting: {KNOWN}; did you mean protected-vm:initialBackup?"
        in out.text
    )


class _Out(io.StringIO):
    @property
    def text(self) -> str:
        return self.getvalue()


# --- 4. fuzz: random shapes and types never raise anything but ValidationError -----------------


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "str", "list", "dict"] if depth < 4 else ["null", "int", "str"]
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 1, 5, 7, 30, 9999, 10**30, rng.randint(-(10**6), 10**6)])
    if kind == "float":
        return rng.choice([0.5, 7.0, -3.25, 1e308, float("inf"), float("nan")])
    if kind == "str":
        return rng.choice(["", " ", "Daily", "V2", "23:00", "completed", VM, VM + "\n", "\x00", "é", "x" * 300])
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["name", "type", "schedule", "retention", "daily", "weekly", "count", "days", "verify", "existingId", "zz"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _mutate(rng: random.Random, value: Any) -> Any:
    """Replace one random node of ``value`` (a valid section) with a random value."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        return {**value, key: _mutate(rng, value[key])}
    if isinstance(value, list) and value and rng.random() < 0.7:
        index = rng.randrange(len(value))
        return [*value[:index], _mutate(rng, value[index]), *value[index + 1 :]]
    return _random_value(rng)


def test_fuzzed_engine_config_only_ever_raises_validation_error() -> None:
    rng = random.Random(14)
    outcomes = {"parsed": 0, "rejected": 0}
    for _ in range(3000):
        config: dict[str, str] = {}
        for key in (k for k in STACK_KEYS if k in VALID):  # the fleet form: tests/test_fleet_config.py
            roll = rng.random()
            if roll < 0.05:
                continue
            value = VALID[key] if roll < 0.6 else _mutate(rng, VALID[key]) if roll < 0.9 else _random_value(rng)
            text = json.dumps(value) if rng.random() < 0.9 else str(value)
            config[f"{NS}:{key}"] = text
        if rng.random() < 0.1:
            config[f"{NS}:{rng.choice(['vmss', 'initialbackup', 'x'])}"] = "1"
        try:
            parse_config_values(config, NS)
            outcomes["parsed"] += 1
        except ValidationError as error:
            assert error.problems and all(isinstance(p, str) and p for p in error.problems)
            outcomes["rejected"] += 1
    # Both branches are exercised, so the loop proves something either way.
    assert outcomes["parsed"] > 100 and outcomes["rejected"] > 1500, outcomes


def test_fuzzed_stack_files_only_ever_raise_validation_error(tmp_path: Path) -> None:
    rng = random.Random(1414)
    original = (Path(__file__).resolve().parent.parent / "stacks" / "Pulumi.prod.yaml").read_bytes()
    path = tmp_path / "Pulumi.fuzz.yaml"
    rejected = 0
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(data))
            data[position : position + rng.randint(0, 3)] = bytes(
                rng.choice(b":-[]{}&*!|>'\"#%@`\t\n \xff\xc3ab0") for _ in range(rng.randint(0, 3))
            )
        path.write_bytes(bytes(data))
        try:
            load_stack_config("fuzz", tmp_path)
        except ValidationError as error:
            assert error.problems
            rejected += 1
    assert rejected > 30


# --- 2. CLI: bad arguments and input files exit 2 with one error line; unhealthy VMs exit 1 -----

CLI_PROG = "python -m protectedvm verify"


def _verify(argv: list[str], stdin: str = "", **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(["verify", *argv], stdin=io.StringIO(stdin), stdout=out, stderr=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def _outputs_entry(vm: VmRef, vault: VaultRef) -> dict[str, str]:
    return {"vmId": vm.vm_id, "vaultId": vault.id}


CLI_VM = VmRef.from_id(VM)
CLI_VAULT = VaultRef.from_id(VAULT_ID)
GOOD_ENTRY = json.dumps({"protectedVms": [_outputs_entry(CLI_VM, CLI_VAULT)]})

FILE_CASES: list[tuple[str, bytes | None, str]] = [
    ("missing-file", None, "error: cannot read {path}: No such file or directory"),
    ("not-json", b"Outputs:\n  vaultId: x\n", "error: {path} is not JSON: Expecting value at line 1 column 1"),
    ("not-utf8", b'{"protectedVms": "\xff"}', "error: {path} is not UTF-8 text: byte 0xff at offset 18"),
    (
        "deeply-nested",
        b"[" * 100_000 + b"]" * 100_000,
        "error: {path} is nested too deeply to be `pulumi stack output --json`",
    ),
    (
        "huge-integer",
        b'{"n": ' + b"7" * 5000 + b"}",
        "error: {path} is not usable JSON: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit",
    ),
    (
        "top-level-list",
        b"[]",
        "error: {path} must hold a JSON object (the output of `pulumi stack output --json`), got a list",
    ),
    (
        "no-protectedVms",
        b'{"vaultId": "x"}',
        "error: the stack outputs have no non-empty 'protectedVms' list (outputs: vaultId)",
    ),
    (
        "entry-not-object",
        b'{"protectedVms": [5]}',
        "error: protectedVms[0] must be an object with vmId and vaultId, got 5",
    ),
    ("entry-without-vaultId", b'{"protectedVms": [{"vmId": "x"}]}', "error: protectedVms[0] has no vaultId"),
    (
        "vm-id-trailing-newline",
        json.dumps({"protectedVms": [{"vmId": VM + "\n", "vaultId": VAULT_ID}]}).encode(),
        f"error: protectedVms[0] is not usable: {VM + chr(10)!r} is not a virtual machine id: expected "
        "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>",
    ),
    (
        "vault-id-number",
        json.dumps({"protectedVms": [{"vmId": VM, "vaultId": 5}]}).encode(),
        "error: protectedVms[0] is not usable: 5 is not a Recovery Services vault id: expected "
        "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.RecoveryServices/vaults/<name>",
    ),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_unusable_stack_outputs_file_exits_2_with_one_error_line(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "outputs.json"
    if content is not None:
        path.write_bytes(content)
    code, out, err = _verify(["--stack-outputs", str(path)])
    assert (code, out, err) == (2, "", expected.format(path=path) + "\n")


def test_unusable_stdin_is_named_as_stdin() -> None:
    assert _verify(["--stack-outputs", "-"], stdin="nope") == (
        2,
        "",
        "error: stdin is not JSON: Expecting value at line 1 column 1\n",
    )


def test_a_directory_given_as_the_outputs_file_exits_2(tmp_path: Path) -> None:
    assert _verify(["--stack-outputs", str(tmp_path)]) == (2, "", f"error: cannot read {tmp_path}: Is a directory\n")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--max-age-hours", "nan"],
            "argument --max-age-hours: 'nan' is out of range: allowed more than 0 and at most 876000",
        ),
        (
            ["--max-age-hours", "inf"],
            "argument --max-age-hours: 'inf' is out of range: allowed more than 0 and at most 876000",
        ),
        (
            ["--max-age-hours", "1e308"],
            "argument --max-age-hours: '1e308' is out of range: allowed more than 0 and at most 876000",
        ),
        (
            ["--max-age-hours", "-1"],
            "argument --max-age-hours: '-1' is out of range: allowed more than 0 and at most 876000",
        ),
        (
            ["--max-age-hours", "0"],
            "argument --max-age-hours: '0' is out of range: allowed more than 0 and at most 876000",
        ),
        (["--max-age-hours", "a day"], "argument --max-age-hours: 'a day' is not a number of hours"),
        (["--workers", "0"], "argument --workers: 0 is out of range: allowed 1-256"),
        (["--workers", "many"], "argument --workers: 'many' is not a whole number"),
        (["--format", "yaml"], "argument --format: invalid choice: 'yaml' (choose from 'table', 'json')"),
    ],
    ids=["nan", "inf", "1e308", "negative", "zero", "text", "workers-0", "workers-text", "format"],
)
def test_bad_arguments_exit_2_with_one_error_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _verify(["--stack-outputs", "-", *argv])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.splitlines()[-1] == f"{CLI_PROG}: error: {expected}"
    assert err.count("error:") == 1 and "Traceback" not in err


def test_bad_argument_in_a_real_process_prints_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "protectedvm", "verify", "--stack-outputs", "-", "--max-age-hours", "nan"],
        input="{}",
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(f"{CLI_PROG}: error: argument --max-age-hours: 'nan'")
    assert "Traceback" not in done.stderr


@pytest.fixture
def cli_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(job_duration=60.0, clock=ManualClock()) as emulator:
        monkeypatch.setenv(ENDPOINT_ENV, emulator.base_url)
        monkeypatch.setenv(CA_BUNDLE_ENV, emulator.ca_path)
        yield emulator


def test_missing_vault_is_reported_as_a_missing_vault_not_a_missing_item(cli_emu: Emulator) -> None:
    gone = VaultRef(SUB, "rg-backup", "rsv-gone")
    code, out, _ = _verify(["--stack-outputs", "-"], stdin=json.dumps({"protectedVms": [_outputs_entry(CLI_VM, gone)]}))
    assert code == 1
    assert out.splitlines()[1].endswith(
        f"FAIL: vault missing: rsv-gone not found in resource group rg-backup (subscription {SUB}); "
        "check vaultId in the stack outputs"
    )


def test_missing_item_in_an_existing_vault_is_reported_as_not_protected(cli_emu: Emulator) -> None:
    cli_emu.create_vault(SUB, "rg-backup", "rsv-test")
    code, out, _ = _verify(["--stack-outputs", "-"], stdin=GOOD_ENTRY)
    assert code == 1
    assert out.splitlines()[1].endswith("FAIL: not protected: no protected item in the vault")


def test_unreachable_endpoint_names_the_host() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    fast = RetrySettings(sdk_total=0, backoff_factor=0.01, backoff_max=0.01)

    def factory(vault: VaultRef) -> BackupApi:
        client = make_sdk_client(
            vault.subscription_id, StaticTokenCredential(), retry=fast, base_url=f"https://127.0.0.1:{port}"
        )
        return BackupApi(client, vault, retry=fast)

    code, out, _ = _verify(["--stack-outputs", "-"], stdin=GOOD_ENTRY, api_factory=factory)
    assert code == 1
    assert out.splitlines()[1].endswith(
        f"FAIL: protected item unreadable: cannot reach 127.0.0.1:{port}: Connection refused"
    )


def test_a_client_that_cannot_be_built_is_an_unhealthy_row_not_a_traceback() -> None:
    def factory(vault: VaultRef) -> BackupApi:
        raise ValueError("AZURE_CLIENT_ID is set but AZURE_TENANT_ID is not")

    code, out, _ = _verify(["--stack-outputs", "-"], stdin=GOOD_ENTRY, api_factory=factory)
    assert code == 1
    assert out.splitlines()[1].endswith(
        "FAIL: no client for vault rsv-test: ValueError: AZURE_CLIENT_ID is set but AZURE_TENANT_ID is not"
    )


# --- 3. verifier: persistent faults name the failing call; lost triggers adopt; Retry-After -----

TB_SUB = "11111111-2222-3333-4444-555555555555"
TB_VAULT = VaultRef(TB_SUB, "rg-backup", "rsv-test")
TB_FAST = RetrySettings(sdk_total=2, backoff_factor=0.001, backoff_max=0.002, max_retry_after=5.0, trigger_attempts=2)


@pytest.fixture
def vemu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(job_duration=120.0, clock=ManualClock(), page_size=20) as emulator:
        monkeypatch.setenv(ENDPOINT_ENV, emulator.base_url)
        monkeypatch.setenv(CA_BUNDLE_ENV, emulator.ca_path)
        yield emulator


class LostResponseApi(BackupApi):
    """The real client, but the trigger's answer never arrives: ``processed`` says whether the POST
    reached Azure first (a job started) or not. The emulator can only drop a request before
    handling it, so the "handled, then the connection dropped" half is simulated here."""

    def __init__(self, emu: Emulator, *, processed: bool) -> None:
        super().__init__(make_sdk_client(TB_SUB, retry=TB_FAST), TB_VAULT, retry=TB_FAST, sleep=manual_sleep(emu))
        self.processed = processed

    def trigger_backup(self, vm: VmRef, expiry: dt.datetime) -> str:
        if self.processed:
            super().trigger_backup(vm, expiry)
        raise ServiceResponseError("('Connection aborted.', RemoteDisconnected('Remote end closed connection'))")


def _run_verifier(
    emu: Emulator, timeout_minutes: int, api: BackupApi | None = None, sleeps: list[float] | None = None
) -> dict[str, VmResult]:
    advance = manual_sleep(emu)

    def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        advance(seconds)

    [vm] = protect(emu, TB_VAULT, vm_ids(TB_SUB, "rg-app", 1))
    emu.reset_counts()
    api = api or BackupApi(make_sdk_client(TB_SUB, retry=TB_FAST), TB_VAULT, retry=TB_FAST, sleep=advance)
    settings = InitialBackupSettings(
        verify="completed", retain_days=30, timeout_minutes=timeout_minutes, poll_seconds=30
    )
    verifier = InitialBackupVerifier(api, settings, vault_name="rsv-test", clock=emulator_clock(emu), sleep=sleep)
    return verifier.run([vm])


def _job_id(emu: Emulator) -> str:
    [job] = [j for j in emu.jobs if j.operation == "Backup"]
    return str(job.job_id)


FAILING = (
    "initial backup of 1 of 1 VM(s) in vault rsv-test did not succeed (0 succeeded):\n"
    "  not verified within timeoutMinutes=10 because an Azure call kept failing (1); the next `pulumi up` resumes "
    "without triggering again where a job exists:\n"
)
FAILED = "initial backup of 1 of 1 VM(s) in vault rsv-test did not succeed (0 succeeded):\n  failed (1):\n"

VERIFIER_CASES: list[tuple[str, Callable[[Emulator], None], str]] = [
    (
        "job-list-503-until-timeout",
        lambda emu: emu.faults.http("jobs.list", 503, times=10_000),
        FAILING + "    - vm001 (job {job}, last status unknown): BackupJobs_List: HTTP 503 ServiceUnavailable: "
        "The service is temporarily unavailable. Please retry the request.",
    ),
    (
        "job-list-429-until-timeout",
        lambda emu: emu.faults.http("jobs.list", 429, times=10_000),
        FAILING + "    - vm001 (job {job}, last status unknown): BackupJobs_List: HTTP 429 TooManyRequests: "
        "The request is being throttled as the limit has been reached for operation type.",
    ),
    (
        "job-list-dropped-until-timeout",
        lambda emu: emu.faults.drop("jobs.list", times=10_000),
        FAILING + "    - vm001 (job {job}, last status unknown): BackupJobs_List: no response from {host} "
        "(connection dropped after the request was sent): Remote end closed connection without response",
    ),
    (
        "recovery-points-500-until-timeout",
        lambda emu: emu.faults.http("recoveryPoints.list", 500, times=10_000),
        FAILING + "    - vm001 (job {job}, last status Completed): RecoveryPoints_List: HTTP 500 InternalServerError: "
        "The server encountered an internal error. Please retry the request.",
    ),
    (
        "trigger-dropped-every-time",
        lambda emu: emu.faults.drop("backup.trigger", times=10_000),
        FAILED + "    - vm001 (no job): ServiceResponseError: Backups_Trigger: no response from {host} (connection "
        "dropped after the request was sent): Remote end closed connection without response; and no backup job of "
        "the VM appeared in the 2 job lists after it, so the trigger did not start one",
    ),
    (
        "trigger-retry-after-beyond-the-budget",
        lambda emu: emu.faults.http("backup.trigger", 429, retry_after=3600),
        FAILED + "    - vm001 (no job): TooManyRequests: Backups_Trigger failed: HTTP 429 TooManyRequests: The request "
        "is being throttled as the limit has been reached for operation type. (Azure asked to retry after 3600 s, "
        "more than the 600 s left of timeoutMinutes=10)",
    ),
    (
        "trigger-throttled-again-until-the-budget-is-spent",
        lambda emu: emu.faults.http("backup.trigger", 429, times=10_000, retry_after=300),
        FAILED + "    - vm001 (no job): TooManyRequests: Backups_Trigger failed: HTTP 429 TooManyRequests: The request "
        "is being throttled as the limit has been reached for operation type. (Azure asked to retry after 300 s, "
        "more than the 300 s left of timeoutMinutes=10)",
    ),
]


@pytest.mark.parametrize(("fault", "expected"), [c[1:] for c in VERIFIER_CASES], ids=[c[0] for c in VERIFIER_CASES])
def test_the_final_error_names_the_call_that_kept_failing(
    vemu: Emulator, fault: Callable[[Emulator], None], expected: str
) -> None:
    fault(vemu)
    sleeps: list[float] = []
    with pytest.raises(InitialBackupError) as caught:
        _run_verifier(vemu, timeout_minutes=10, sleeps=sleeps)
    jobs = [j for j in vemu.jobs if j.operation == "Backup"]
    host = vemu.base_url.removeprefix("https://").rstrip("/")
    assert str(caught.value) == expected.format(job=jobs[0].job_id if jobs else None, host=host)
    assert sum(sleeps) <= 600  # never waits past timeoutMinutes


def test_retry_after_within_the_budget_is_waited_out_and_the_vm_verified(vemu: Emulator) -> None:
    vemu.faults.http("backup.trigger", 429, retry_after=300)
    start = vemu.state.now()

    [result] = _run_verifier(vemu, timeout_minutes=30).values()

    assert (result.status, result.job_id, result.adopted) == ("Completed", _job_id(vemu), False)
    assert result.triggered_at is not None
    assert dt.datetime.fromisoformat(result.triggered_at) - start >= dt.timedelta(seconds=300)
    assert vemu.counts["backup.trigger"] == 2 and vemu.trigger_count("vm001") == 1


def test_a_lost_trigger_response_that_started_a_job_is_reported_as_adopted(vemu: Emulator) -> None:
    [result] = _run_verifier(vemu, timeout_minutes=10, api=LostResponseApi(vemu, processed=True)).values()

    assert (result.status, result.job_id, result.adopted) == ("Completed", _job_id(vemu), True)
    assert result.recovery_point_id
    assert vemu.trigger_count("vm001") == 1


def test_a_lost_trigger_response_without_a_job_fails_naming_the_lost_call(vemu: Emulator) -> None:
    with pytest.raises(InitialBackupError) as caught:
        _run_verifier(vemu, timeout_minutes=10, api=LostResponseApi(vemu, processed=False))
    assert str(caught.value) == FAILED + (
        "    - vm001 (no job): ServiceResponseError: Backups_Trigger: no response from the Azure endpoint "
        "(connection dropped after the request was sent): Remote end closed connection; and no backup job of the VM "
        "appeared in the 2 job lists after it, so the trigger did not start one"
    )


def test_the_apis_own_retry_never_sleeps_past_the_deadline(vemu: Emulator) -> None:
    # BackupApi would sleep on a Retry-After up to 100 s itself; 90 s does not fit a 1-minute budget.
    patient = RetrySettings(sdk_total=0, backoff_factor=0.001, backoff_max=0.002, max_retry_after=100.0)
    api_sleeps: list[float] = []
    advance = manual_sleep(vemu)

    def api_sleep(seconds: float) -> None:
        api_sleeps.append(seconds)
        advance(seconds)

    api = BackupApi(make_sdk_client(TB_SUB, retry=patient), TB_VAULT, retry=patient, sleep=api_sleep)
    vemu.faults.http("backup.trigger", 429, retry_after=90)

    with pytest.raises(InitialBackupError) as caught:
        _run_verifier(vemu, timeout_minutes=1, api=api)

    assert api_sleeps == []
    assert caught.value.failures[0].message.endswith(
        "(Azure asked to retry after 90 s, more than the 60 s left of timeoutMinutes=1)"
    )


def test_rehearsal_of_a_stack_without_a_policy_config_exits_2_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.qa.yaml").write_bytes(
        (Path(__file__).resolve().parent.parent / "stacks/Pulumi.dev.yaml").read_bytes()
    )
    out = _Out()
    report = rehearse(RehearsalOptions(stack="qa", stacks_dir=tmp_path), out)
    assert report.exit_code == 2
    assert (
        "error: no policy config " in out.text
        and "config.qa.json: known environments are dev, fleet, prod, staging" in out.text
    )


def test_fuzzed_engine_settings_of_the_initial_backup_resource_only_ever_raise_validation_error() -> None:
    rng = random.Random(1415)
    keys = ["verify", "retainDays", "timeoutMinutes", "pollSeconds", "x"]
    parsed = 0
    for _ in range(2000):
        raw = {rng.choice(keys): _random_value(rng) for _ in range(rng.randint(0, 5))}
        try:
            InitialBackupSettings.from_dict(raw)
            parsed += 1
        except ValidationError as error:
            assert error.problems
    assert parsed > 10


def test_a_job_list_throttled_with_a_long_retry_after_is_not_polled_again_before_it(vemu: Emulator) -> None:
    # The two pre-trigger looks and the first poll are throttled; Azure asks for 300 s.
    vemu.faults.http("jobs.list", 429, times=3, retry_after=300)
    sleeps: list[float] = []

    [result] = _run_verifier(vemu, timeout_minutes=30, sleeps=sleeps).values()

    assert result.status == "Completed"
    assert sleeps[0] == 300.0
    assert vemu.counts["jobs.list"] == 4  # the three throttled calls, then one poll after 300 s
