"""ARM-shaped errors, so the SDK raises the same exception types it raises against Azure."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere in request handling; the server turns it into an ARM error response."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return arm_error_body(self.code, self.message)


def arm_error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def invalid_input(message: str) -> ApiError:
    return ApiError(400, "BMSUserErrorInvalidInput", message)


def resource_not_found(resource_type: str, name: str, resource_group: str) -> ApiError:
    # Wording follows ARM's own ResourceNotFound message.
    return ApiError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )
