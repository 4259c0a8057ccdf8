"""Local HTTPS emulator of the Azure Recovery Services backup REST API.

Lets the real ``azure-mgmt-recoveryservicesbackup`` client be exercised end to end
(LROs, paging, throttling, failing jobs) without an Azure subscription.
"""

from .catalog import KNOWN_JOB_ERRORS, JobError
from .clock import Clock, ManualClock, MonotonicClock
from .credential import StaticTokenCredential
from .faults import ROUTES, Faults
from .routes import SUPPORTED_API_VERSIONS
from .server import Emulator
from .state import JobView

__all__ = [
    "KNOWN_JOB_ERRORS",
    "ROUTES",
    "SUPPORTED_API_VERSIONS",
    "Clock",
    "Emulator",
    "Faults",
    "JobError",
    "JobView",
    "ManualClock",
    "MonotonicClock",
    "StaticTokenCredential",
]
