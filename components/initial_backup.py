"""``InitialBackup``: one Pulumi dynamic resource per vault that triggers and proves every VM's
first backup, and records the proof (job, status, recovery point) in stack state and outputs.

Why one dynamic resource per vault (not a resource hook or a resource per VM), and what preview,
create, update and delete do, is explained once, in ``docs/verification.md``.

The provider is a thin wrapper over :class:`protectedvm.verifier.InitialBackupVerifier`. It lives
in this importable module (dill pickles it by reference into state) and holds no client, lock or
credential: everything is built per call, so the serialized provider is tiny and secret-free.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi.dynamic as dyn

from components.config import InitialBackupSettings
from components.dynamic_pickling import pickler_restored
from components.engine_values import has_unknown, id_failures, is_unknown
from components.validation import ValidationError
from protectedvm.ids import INITIAL_BACKUP_TYPE

#: Property names as the engine, the policy pack and ``pulumi stack output`` see them.
VAULT_ID = "vaultId"
VM_IDS = "vmIds"
SETTINGS = "settings"
RESULTS = "results"
TYPE_TOKEN = INITIAL_BACKUP_TYPE

LogSink = Callable[[int, str], None]


_HOST_OUTPUT_LOCK = threading.Lock()


def pulumi_log_sink(level: int, message: str) -> None:
    """Progress of a long ``pulumi up``, made deliberate for where ``create()`` really runs.

    The engine runs this provider in the dynamic provider host (``python -u -m pulumi.dynamic``),
    which has no engine connection: ``pulumi.log`` there would drop debug messages and print the
    rest to stderr unflushed. The engine reads the host's stderr line by line and shows each
    non-empty line at once as an info diagnostic (``newPlugin``'s ``runtrace`` in pulumi/pulumi
    ``sdk/go/common/resource/plugin/plugin.go``: ``ctx.Diag.Infoerrf`` for dynamic provider
    binaries). So in the host each message is written as ONE flushed stderr line,
    ``<level>: <message>``, from any of the host's four gRPC threads without interleaving. Where
    an engine connection exists (a program-side caller), ``pulumi.log`` is used instead."""
    try:
        from pulumi.runtime.settings import get_engine

        if get_engine() is None:
            label = "error" if level >= logging.ERROR else "warning" if level >= logging.WARNING else "info"
            text = " | ".join(part for part in message.splitlines() if part.strip())
            with _HOST_OUTPUT_LOCK:
                sys.stderr.write(f"{label}: {text}\n")
                sys.stderr.flush()
        elif level >= logging.ERROR:
            pulumi.log.error(message)
        elif level >= logging.WARNING:
            pulumi.log.warn(message)
        else:
            pulumi.log.info(message)
    except Exception:  # logging must never fail a deployment
        logging.getLogger(__name__).log(level, message)


class _SinkAdapter(logging.LoggerAdapter[logging.Logger]):
    """Sends every record to ``sink`` and to the ``protectedvm.verifier`` logger, without touching
    global handlers (up to four create() calls share the provider process)."""

    def __init__(self, logger: logging.Logger, sink: LogSink, prefix: str) -> None:
        super().__init__(logger, {})
        self.sink = sink
        self.prefix = prefix

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        text = str(msg) % args if args else str(msg)
        self.sink(level, f"{self.prefix}{text}")
        self.logger.log(level, msg, *args, **kwargs)


def parse_props(props: Mapping[str, Any]) -> tuple[Any, list[Any], InitialBackupSettings]:
    """Inputs -> (VaultRef, [VmRef], settings); raises ValueError/ValidationError on bad input."""
    from protectedvm.ids import VaultRef, VmRef

    vault = VaultRef.from_id(str(props.get(VAULT_ID)))
    raw_vms = props.get(VM_IDS)
    if not isinstance(raw_vms, (list, tuple)):
        raise ValueError(f"{VM_IDS} must be a list of VM resource ids, got {raw_vms!r}")
    vms = [VmRef.from_id(str(vm_id)) for vm_id in raw_vms]
    raw_settings = props.get(SETTINGS) or {}
    if not isinstance(raw_settings, Mapping):
        raise ValueError(f"{SETTINGS} must be an object, got {raw_settings!r}")
    return vault, vms, InitialBackupSettings.from_dict(raw_settings)


class InitialBackupProvider(dyn.ResourceProvider):
    """Dynamic provider of :class:`InitialBackup`. All constructor arguments are for tests (and the
    offline rehearsal): defaults talk to Azure with ``DefaultAzureCredential``."""

    serialize_as_secret_always = False

    def __init__(
        self,
        api_factory: Callable[[Any], Any] | None = None,
        *,
        clock: Callable[[], Any] | None = None,
        sleep: Callable[[float], None] | None = None,
        log_sink: LogSink | None = None,
        trigger_workers: int | None = None,
    ) -> None:
        super().__init__()
        self.api_factory = api_factory
        self.clock = clock
        self.sleep = sleep
        self.log_sink = log_sink
        #: None: the process's shared trigger pool of ``protectedvm.verifier.TRIGGER_WORKERS`` threads.
        self.trigger_workers = trigger_workers

    # --- engine calls ---------------------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dyn.CheckResult:
        """Validate what is known; an unknown value (or element, or settings field) is checked
        once it is known, at ``up``. Unknowns are passed through unchanged."""
        from protectedvm.ids import VaultRef, VmRef

        failures = id_failures(VAULT_ID, news.get(VAULT_ID), VaultRef.from_id)
        vm_ids = news.get(VM_IDS)
        if isinstance(vm_ids, (list, tuple)):
            for index, vm_id in enumerate(vm_ids):
                failures += id_failures(f"{VM_IDS}[{index}]", vm_id, VmRef.from_id)
        elif not is_unknown(vm_ids):
            failures.append(dyn.CheckFailure(VM_IDS, f"must be a list of VM resource ids, got {vm_ids!r}"))
        settings = news.get(SETTINGS)
        if isinstance(settings, Mapping):
            known = {key: value for key, value in settings.items() if not has_unknown(value)}
            try:
                InitialBackupSettings.from_dict(known)
            except ValidationError as error:
                failures += [dyn.CheckFailure(SETTINGS, problem) for problem in error.problems]
        elif settings is not None and not is_unknown(settings):
            failures.append(dyn.CheckFailure(SETTINGS, f"must be an object, got {settings!r}"))
        return dyn.CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.DiffResult:
        """A different vault is a different set of protected items: replace. A changed VM list or
        settings is an update that works only on VMs not yet verified. An unknown vault id (its
        vault is being created or replaced in this preview) is reported as an update, never as a
        guessed replacement; any other unknown input is an update too."""
        old_vault, new_vault = olds.get(VAULT_ID), news.get(VAULT_ID)
        replaces: list[str] = []
        if not is_unknown(new_vault) and str(old_vault).lower() != str(new_vault).lower():
            replaces.append(VAULT_ID)
        new_vms, new_settings = news.get(VM_IDS), news.get(SETTINGS)
        changes = (
            bool(replaces)
            or has_unknown(new_vault)
            or has_unknown(new_vms)
            or has_unknown(new_settings)
            or _vm_key_set(olds.get(VM_IDS)) != _vm_key_set(new_vms)
            or _settings_key(olds.get(SETTINGS)) != _settings_key(new_settings)
        )
        return dyn.DiffResult(changes=changes, replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dyn.CreateResult:
        results = self._verify(props, previous=None)
        return dyn.CreateResult(f"{str(props[VAULT_ID]).lower()}/initialBackup", self._outs(props, results))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dyn.UpdateResult:
        from protectedvm.verifier import results_from_output

        return dyn.UpdateResult(self._outs(news, self._verify(news, previous=results_from_output(olds.get(RESULTS)))))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Deliberately nothing: backups outlive this record (see the module docstring)."""
        return None

    # --- the work -------------------------------------------------------------------------------

    def _verify(self, props: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
        from protectedvm.azure_client import BackupApi
        from protectedvm.verifier import InitialBackupVerifier

        vault, vms, settings = parse_props(props)
        sink = self.log_sink or pulumi_log_sink
        logger = _SinkAdapter(logging.getLogger("protectedvm.verifier"), sink, f"[{vault.name}] ")
        api = self.api_factory(vault) if self.api_factory else BackupApi.for_vault(vault)
        options: dict[str, Any] = {
            "vault_name": vault.name,
            "logger": logger,
        }
        if self.trigger_workers is not None:
            options["trigger_workers"] = self.trigger_workers
        if self.clock is not None:
            options["clock"] = self.clock
        if self.sleep is not None:
            options["sleep"] = self.sleep
        try:
            return InitialBackupVerifier(api, settings, **options).run(vms, previous)
        finally:
            if self.api_factory is None:
                api.close()

    @staticmethod
    def _outs(props: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
        from protectedvm.verifier import results_to_output

        return {
            VAULT_ID: props[VAULT_ID],
            VM_IDS: list(props[VM_IDS]),
            SETTINGS: dict(props.get(SETTINGS) or {}),
            RESULTS: results_to_output(results),
        }


def _vm_key_set(raw: object) -> frozenset[str] | None:
    if not isinstance(raw, (list, tuple)):
        return None
    return frozenset(str(v).lower() for v in raw)


def _settings_key(raw: object) -> dict[str, object] | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        return InitialBackupSettings.from_dict(raw).to_dict()
    except ValidationError:
        return dict(raw)


class InitialBackupArgs(TypedDict):
    """Inputs of :class:`InitialBackup`."""

    vault_id: pulumi.Input[str]
    """Resource id of the Recovery Services vault that holds every VM's backup item."""
    vm_ids: Sequence[pulumi.Input[str]]
    """Resource ids of the VMs whose first backup is triggered and proved, all in ``vault_id``, in
    one batched loop (one job-list call per poll). A VM removed from the list keeps its recovery
    points; only its record leaves ``results``."""
    settings: NotRequired[InitialBackupSettings]
    """How the proof is made. Absent: ``InitialBackupSettings()``, i.e. trigger a backup kept 30
    days, wait until its job has completed (at most 120 minutes, polling every 30 seconds), and
    fail the resource, naming every VM, when one fails or times out."""


class InitialBackup(dyn.Resource, module="protectedvm", name="InitialBackup"):
    """Triggers and verifies the initial backup of ``vm_ids`` in the vault ``vault_id``.

    Pass ``opts=ResourceOptions(depends_on=[...the ProtectedItems...])`` so it runs after protection
    is enabled; :meth:`components.backup_vault.BackupVault.verify_initial_backups` does that for the
    ProtectedVMs of a shared vault, and a ProtectedVM with its own vault registers its own.
    """

    # Outputs are attributes named after their (camelCase) properties.
    vaultId: pulumi.Output[str]
    """The vault's resource id (input echoed)."""
    vmIds: pulumi.Output[list[str]]
    """The VMs' resource ids (input echoed)."""
    settings: pulumi.Output[dict[str, Any]]
    """The settings as camelCase ``{verify, retainDays, timeoutMinutes, pollSeconds}``."""
    results: pulumi.Output[dict[str, Any]]
    """The proof, by lower-cased VM id: ``{vmName, jobId, status, recoveryPointId,
    recoveryPointTime, durationSeconds, triggeredAt, adopted}``; unknown at preview."""

    def __init__(
        self,
        resource_name: str,
        args: InitialBackupArgs,
        opts: pulumi.ResourceOptions | None = None,
        provider: InitialBackupProvider | None = None,
    ) -> None:
        settings = args.get("settings") or InitialBackupSettings()
        props: dict[str, Any] = {
            VAULT_ID: args["vault_id"],
            VM_IDS: list(args["vm_ids"]),
            SETTINGS: settings.to_dict(),
            RESULTS: None,
        }
        with pickler_restored():
            super().__init__(provider or InitialBackupProvider(), resource_name, props, opts)

    @property
    def vault_id(self) -> pulumi.Output[str]:
        return self.vaultId

    @property
    def vm_ids(self) -> pulumi.Output[list[str]]:
        return self.vmIds
