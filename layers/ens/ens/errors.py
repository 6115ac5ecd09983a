"""Exceptions shared between the service modules and the adapters.

Three kinds, because the caller's answer differs: retry later (transient), tell an admin (permanent),
or record that the thing no longer exists (gone, usually returned as a value rather than raised).
"""


class DependencyUnavailable(Exception):
    """An outside system failed in a way that may pass: the caller should be asked to retry."""


class AdminActionRequired(Exception):
    """An outside system refused us in a way retrying cannot fix (impersonation denied, a mailbox no
    server serves, CNS refusing our credentials): an admin must act. `code` names the cause."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class ExchangeBusy(DependencyUnavailable):
    """ErrorServerBusy: Exchange asks us to wait `back_off_seconds` before the next request."""

    def __init__(self, server: str, back_off_seconds: float) -> None:
        super().__init__(f"Exchange server {server} is busy; back off {back_off_seconds:.1f} s")
        self.server = server
        self.back_off_seconds = back_off_seconds


class WatermarkInvalid(Exception):
    """ErrorInvalidWatermark: Exchange cannot resume a subscription from this watermark (older than
    about 30 days, or lost). Subscribe fresh and reconcile instead."""


class DeviceTokenRejected(Exception):
    """The push relay says this device token will never work again (APNs BadDeviceToken / Unregistered)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"the push relay refused the device token: HTTP {status} {reason}")
        self.status = status
        self.reason = reason


class DeviceNotFound(Exception):
    """No device with this id is registered (for a mailbox the caller may see)."""

    def __init__(self, device_id: str) -> None:
        super().__init__(f"no device {device_id!r} is registered")
        self.device_id = device_id


class Forbidden(Exception):
    """The caller may not act for this mailbox, or the device id belongs to another mailbox."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
