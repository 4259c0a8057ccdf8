"""Job failure texts close to what Azure Backup reports, so error handling is tested on realistic data.

``AzureIaaSVMErrorInfo.errorCode`` is an int32 in bms.json (2024-10-01, 2026-10-01) and ``errorTitle``
is described there as "typically, the entity that the error pertains to"; no official example shows a
failed job. The numbers here are emulator stand-ins and the well-known string code (what the portal
shows) is placed in ``errorTitle``: a belief, which is why the product's reader
(``protectedvm.azure_client._job_errors``) finds the readable code in either field and still names a
bare number. Codes, messages and recommendations follow Azure Backup's troubleshooting docs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobError:
    code: str
    message: str
    recommendations: list[str] = field(default_factory=list)
    numeric_code: int = 400000


KNOWN_JOB_ERRORS: dict[str, JobError] = {
    "UserErrorGuestAgentStatusUnavailable": JobError(
        "UserErrorGuestAgentStatusUnavailable",
        "VM Agent unable to communicate with Azure Backup",
        [
            "Ensure that the VM agent is installed, running and up to date on the virtual machine.",
            "Ensure that the VM has outbound network connectivity to Azure Storage and Azure Backup endpoints.",
            "Please refer to https://aka.ms/guestagent-status-unavailable for more information.",
        ],
        400216,
    ),
    "UserErrorVmNotInDesirableState": JobError(
        "UserErrorVmNotInDesirableState",
        "VM is not in a state that allows backups.",
        [
            "The backup operation failed because the VM is in Failed state. For a successful backup, the VM state "
            "should be Running, Stopped, or Stopped (deallocated).",
            "If the VM is in a transient state between Running and Shut down, wait for the state to change and "
            "then trigger the backup job.",
        ],
        400112,
    ),
    "UserErrorBackupOperationInProgress": JobError(
        "UserErrorBackupOperationInProgress",
        "Unable to perform the operation as another backup operation is currently in progress on this item.",
        ["Wait for the current backup operation to complete and then retry the operation."],
        400130,
    ),
}


def job_error(code: str, message: str | None = None, recommendations: list[str] | None = None) -> JobError:
    """Known codes get Azure's wording; any other code is accepted so tests can model new failures."""
    known = KNOWN_JOB_ERRORS.get(code)
    base = known or JobError(code, f"The backup operation failed with error {code}.", [], 400000)
    return JobError(
        code,
        message if message is not None else base.message,
        list(recommendations) if recommendations is not None else list(base.recommendations),
        base.numeric_code,
    )


IN_PROGRESS_ERROR = KNOWN_JOB_ERRORS["UserErrorBackupOperationInProgress"]


#: Restore job failures for the restore drill's fault injection. Codes, messages and the advice are
#: Azure Backup's ("Restore" section of MicrosoftDocs azure-docs articles/backup/
#: backup-azure-vms-troubleshoot.md at 0819162b1c58a137cff387b5058f7b3e692f35d9); the numbers are
#: emulator stand-ins like those above.
KNOWN_RESTORE_ERRORS: dict[str, JobError] = {
    "UserErrorInstantRpNotFound": JobError(
        "UserErrorInstantRpNotFound",
        "Restore failed because the snapshot of the VM was not found. The snapshot could have been deleted, "
        "please check.",
        ["Try to restore the VM from a different restore point."],
        400000,
    ),
    "UserErrorCrossSubscriptionRestoreInvalidTargetSubscription": JobError(
        "UserErrorCrossSubscriptionRestoreInvalidTargetSubscription",
        "Operation failed as the target subscription specified for restore is not registered to the Azure "
        "Recovery Services Resource Provider.",
        [
            "Ensure that the target subscription is registered to the Recovery Services Resource Provider before "
            "you attempt a cross subscription restore."
        ],
        400000,
    ),
}
