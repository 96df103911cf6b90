"""ARM errors: each carries the HTTP status and the error code Azure uses for that case.

Serialized as ARM's envelope: {"error": {"code", "message", "target"?, "details"?}}.
"""

from __future__ import annotations


class ArmError(Exception):
    status = 400
    code = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        target: str | None = None,
        details: list[dict] | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.target = target
        self.details = details

    def body(self) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return error

    def envelope(self) -> dict:
        return {"error": self.body()}


class AuthenticationFailed(ArmError):
    status = 401
    code = "AuthenticationFailed"


class InvalidAuthenticationToken(ArmError):
    status = 401
    code = "InvalidAuthenticationToken"


class SubscriptionNotFound(ArmError):
    status = 404
    code = "SubscriptionNotFound"

    def __init__(self, subscription_id: str):
        super().__init__(f"The subscription '{subscription_id}' could not be found.")


class ResourceGroupNotFound(ArmError):
    status = 404
    code = "ResourceGroupNotFound"

    def __init__(self, group: str):
        super().__init__(f"Resource group '{group}' could not be found.")


class ResourceGroupBeingDeleted(ArmError):
    status = 409
    code = "ResourceGroupBeingDeleted"

    def __init__(self, group: str):
        super().__init__(f"The resource group '{group}' is in deprovisioning state and cannot perform this operation.")


class ResourceNotFound(ArmError):
    status = 404
    code = "ResourceNotFound"

    def __init__(self, kind: str, name: str, group: str):
        super().__init__(
            f"The Resource '{kind}/{name}' under resource group '{group}' was not found. For more "
            "details please go to https://aka.ms/ARMResourceNotFoundFix"
        )


class NotFound(ArmError):
    """A catalog entry (image, operation) that does not exist."""

    status = 404
    code = "NotFound"


class InvalidResourceReference(ArmError):
    code = "InvalidResourceReference"

    def __init__(self, referenced_id: str, referencing_id: str):
        super().__init__(
            f"Resource {referenced_id} referenced by resource {referencing_id} was not found. Please make sure "
            "that the referenced resource exists, and that both resources are in the same region.",
            details=[{"code": "NotFound", "message": f"Resource {referenced_id} not found."}],
        )


class InvalidParameter(ArmError):
    code = "InvalidParameter"


class InvalidRequestContent(ArmError):
    code = "InvalidRequestContent"


class InUse(ArmError):
    """Deleting something another resource still uses (NicInUse, PublicIPAddressCannotBeDeleted, ...)."""


class Conflict(ArmError):
    """409s such as OperationNotAllowed (quota) and SkuNotAvailable."""

    status = 409


class NotImplementedInFake(ArmError):
    """A request the fake does not serve: loud (501, never retried) rather than a misleading 404."""

    status = 501
    code = "NotImplementedInFakeARM"
