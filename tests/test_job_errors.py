"""Job ``errorDetails`` carry Azure's readable code into the verifier's message whichever field holds it.

bms.json (AzureIaaSVMErrorInfo) types ``errorCode`` as int32 and ``errorTitle`` as a free title; no
official example shows a failed job, so every arrangement seen or plausible is accepted.
"""

from __future__ import annotations

from typing import Any

import pytest

from protectedvm.azure_client import JobError, _job_errors


def details(**fields: Any) -> dict[str, Any]:
    return {"errorDetails": [fields]}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"errorCode": 400216, "errorTitle": "UserErrorGuestAgentStatusUnavailable", "errorString": "VM Agent down"},
            JobError("UserErrorGuestAgentStatusUnavailable", "VM Agent down"),
        ),
        (
            {"errorCode": "UserErrorVmNotInDesirableState", "errorTitle": "", "errorString": "VM failed"},
            JobError("UserErrorVmNotInDesirableState", "VM failed"),
        ),
        (
            {"errorCode": 400216, "errorTitle": "Virtual machine vm-web-01", "errorString": "VM Agent down"},
            JobError("AzureBackupError400216", "Virtual machine vm-web-01: VM Agent down"),
        ),
        ({"errorString": "something broke"}, JobError("Unknown", "something broke")),
        (
            {"errorCode": "400216", "errorTitle": "UserErrorGuestAgentStatusUnavailable", "recommendations": ["r1"]},
            JobError("UserErrorGuestAgentStatusUnavailable", "", ("r1",)),
        ),
    ],
)
def test_readable_code_is_found_in_error_code_or_title(fields: dict[str, Any], expected: JobError) -> None:
    assert _job_errors(details(**fields)) == (expected,)


def test_describe_names_the_code_first() -> None:
    [error] = _job_errors(details(errorCode=400216, errorTitle="UserErrorGuestAgentStatusUnavailable", errorString="x"))
    assert error.describe() == "UserErrorGuestAgentStatusUnavailable: x"
