"""What the simulator takes from outside: settings, deliveries, fault rules, control API bodies, demo file.

Python calls and the control API share these models: what the control API answers with 400, a Python call
refuses with pydantic's ValidationError (a ValueError).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from exchange_simulator import soap
from exchange_simulator.model import EMAIL_KEYS, Address, BodyType, Importance

FaultKind = Literal["server_busy", "latency", "connection_reset"]


def _as_utc(moment: datetime) -> datetime:
    # EWS reads a dateTime without offset as UTC (there is no TimeZoneContext here), so the simulator does too.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


NonEmptyText = Annotated[str, Field(min_length=1)]


class _Input(BaseModel):
    # An unknown key is a typo far more often than intent, and NaN or infinity is no time, share or count.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def explain(error: ValidationError) -> str:
    """One line naming each offending field and its problem, for a 400 answer or a settings error."""
    problems = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"])  # empty for the body as a whole
        problems.append(f"{where}: {problem['msg']}" if where else problem["msg"])
    return "; ".join(problems)


class ExchangeSimulatorSettings(_Input):
    """`ExchangeSimulator(settings=...)`, the [exchange_simulator] table; docs/exchange-simulator.md#settings."""

    server_version: Literal["Exchange2016", "Exchange2019"] = "Exchange2016"
    clock: Literal["system", "manual"] = "system"
    time_scale: PositiveFloat = 1.0
    dispatch: Literal["background", "manual"] = "background"
    auth: Annotated[tuple[Literal["basic", "ntlm"], ...], Field(min_length=1)] = ("basic", "ntlm")
    max_events_per_notification: PositiveInt = 50
    callback_timeout_seconds: PositiveFloat = 10.0
    fault_seed: int | None = None
    demo_file: FilePath | None = None

    @property
    def server_version_info(self) -> soap.ServerVersion:
        return soap.ServerVersion.named(self.server_version)


class Sender(_Input):
    """A sender spelled the way the control API lists it."""

    name: str = ""
    address: NonEmptyText = Field(validation_alias=AliasChoices("address", "email"))


class Delivery(_Input):
    """A message arriving as if over SMTP: `sim.deliver(...)`, `POST /_sim/mailboxes/{address}/messages`."""

    # "from" is a Python keyword: JSON and TOML say "from", Python callers from_= (or sender=).
    from_: str | Sender | None = Field(default=None, validation_alias=AliasChoices("from", "from_", "sender"))
    subject: str = ""
    body: str = ""
    body_type: BodyType = "Text"
    importance: Importance = "Normal"
    received: Annotated[datetime, AfterValidator(_as_utc)] | None = None
    folder: NonEmptyText = "inbox"
    internet_message_id: NonEmptyText | None = None
    is_read: bool = False

    @property
    def sender(self) -> Address:
        if isinstance(self.from_, Sender):
            return Address(name=self.from_.name or self.from_.address, email=self.from_.address)
        return Address.parse(self.from_ or "Postmaster <postmaster@simulator.invalid>")


class FaultSpec(_Input):
    """A fault rule: `sim.faults.add(...)`, `POST /_sim/faults`."""

    kind: FaultKind
    count: PositiveInt | None = None
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    operations: frozenset[str] | None = None
    back_off_ms: NonNegativeInt = 5000
    latency_ms: NonNegativeInt = 0

    @model_validator(mode="after")
    def _fires_one_way(self) -> Self:
        if self.count is not None and self.fraction is not None:
            raise ValueError("give count or fraction, not both")
        if self.kind == "latency" and self.latency_ms == 0:
            raise ValueError("a latency fault needs latency_ms > 0")
        if self.operations:
            from exchange_simulator.ews import KNOWN_OPERATIONS  # ews builds on these inputs

            unknown = self.operations - KNOWN_OPERATIONS
            if unknown:
                # A misspelt operation would make a rule that silently never fires.
                raise ValueError(
                    f"unknown EWS operation(s) {sorted(unknown)}; known: {sorted(KNOWN_OPERATIONS)}"
                )
        return self


EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]


class MailboxSpec(_Input):
    """`POST /_sim/mailboxes`, and a mailbox of the demo file."""

    address: EmailAddress
    display_name: NonEmptyText | None = None


class ContactSpec(_Input):
    """`POST /_sim/mailboxes/{address}/contacts`, and a contact of the demo file.

    One address as `email` or up to three as `emails` (a contact's EmailAddress1..3), not both.
    """

    display_name: NonEmptyText
    email: EmailAddress | None = None
    emails: Annotated[tuple[EmailAddress, ...], Field(max_length=len(EMAIL_KEYS))] = ()
    categories: tuple[NonEmptyText, ...] = ()

    @model_validator(mode="after")
    def _one_way_to_give_addresses(self) -> Self:
        if (self.email is None) == (not self.emails):
            raise ValueError("give email or emails (one to three addresses), not both and not neither")
        return self

    @property
    def addresses(self) -> list[str]:
        return [self.email] if self.email is not None else list(self.emails)


class ServiceAccountSpec(_Input):
    """`POST /_sim/service-accounts`, and a service account of the demo file."""

    username: NonEmptyText
    password: NonEmptyText
    can_impersonate: bool = True
    domain: NonEmptyText | None = None


class ReadFlag(_Input):
    """`POST /_sim/mailboxes/{address}/messages/{ref}/read`."""

    is_read: bool = True


class MoveTarget(_Input):
    """`POST /_sim/mailboxes/{address}/messages/{ref}/move`: a distinguished folder name or a FolderId."""

    folder: NonEmptyText


class ClockAdvance(_Input):
    """`POST /_sim/clock/advance`. Protocol time only moves forward, as the push schedule assumes."""

    seconds: NonNegativeFloat = 0.0
    minutes: NonNegativeFloat = 0.0


class DemoMailbox(MailboxSpec):
    messages: tuple[Delivery, ...] = ()
    contacts: tuple[ContactSpec, ...] = ()


class DemoOrganisation(_Input):
    """The file `load_demo()` reads: the packaged demo.toml or the demo_file setting."""

    service_accounts: tuple[ServiceAccountSpec, ...] = ()
    mailboxes: tuple[DemoMailbox, ...] = ()
