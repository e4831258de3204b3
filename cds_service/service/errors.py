"""Errors that become HTTP answers. Each carries a status and a message safe to show a caller (no patient data)."""

from __future__ import annotations


class ServiceError(Exception):
    status = 500
    code = "exception"  # FHIR OperationOutcome issue type

    def __init__(self, message: str, *, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequest(ServiceError):
    status = 400
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not-found"


class Unauthorized(ServiceError):
    """401 with no details in the body (CDS Hooks best practice); the reason goes to the log only."""

    status = 401
    code = "security"
    reason = "unauthenticated"  # one of a fixed list, for the metrics (cds_auth_failures); never in the response


class PayloadTooLarge(ServiceError):
    status = 413
    code = "too-costly"


class ServiceUnavailable(ServiceError):
    """A dependency (the database) failed; the client may retry."""

    status = 503
    code = "transient"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "not-supported"


class PreconditionFailed(ServiceError):
    """Required data could not be obtained (CDS Hooks 2.0 §Prefetch: SHALL answer 412)."""

    status = 412
    code = "incomplete"

    def __init__(self, message: str, *, missing: list[str] | None = None, details: list[str] | None = None):
        super().__init__(message, details=details)
        self.missing = missing or []
