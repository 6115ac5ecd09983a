"""Which Exchange server serves a mailbox, and how ENS reaches it: the servers secret, validated.

The secret (Secrets Manager in AWS, `[secrets]` locally) is one JSON document:

    {"servers": [{"name": "ex2019", "ews_url": "https://mail.contoso.com/EWS/Exchange.asmx",
                  "auth_type": "NTLM", "version": "2016", "username": "CONTOSO\\\\svc-ens",
                  "password": "...", "domains": ["contoso.com"], "mailboxes": [], "default": true}]}

A mailbox is routed by its explicit `mailboxes` entry first, then by its domain, then to the one
server marked `default`. Pure: no network; the Exchange adapter turns a server into a connection.
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Self

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator


class AuthType(enum.StrEnum):
    NTLM = "NTLM"  # the on-premises default
    BASIC = "Basic"


class ExchangeVersion(enum.StrEnum):
    """The server version ENS pins, so that exchangelib never probes for it."""

    EXCHANGE_2010_SP2 = "2010_SP2"  # no item:Preview: the snippet comes from the text body
    EXCHANGE_2013 = "2013"
    EXCHANGE_2013_SP1 = "2013_SP1"
    EXCHANGE_2016 = "2016"
    EXCHANGE_2019 = "2019"

    @property
    def supports_preview(self) -> bool:
        """item:Preview exists from Exchange 2013 on."""
        return self is not ExchangeVersion.EXCHANGE_2010_SP2


_Address = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
_Domain = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")]


class ExchangeServer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    ews_url: AnyHttpUrl
    auth_type: AuthType = AuthType.NTLM
    version: ExchangeVersion = ExchangeVersion.EXCHANGE_2016
    username: Annotated[str, Field(min_length=1, max_length=256)]
    password: SecretStr
    # PEM text of the CA that issued the server's certificate (on-premises Exchange usually has an
    # internal CA). Verification is always on; without this, the public CAs (certifi) are trusted.
    ca_bundle: str | None = None
    # TLS 1.0/1.1 only for a server that cannot do better, and only when asked for by name here.
    allow_legacy_tls: bool = False
    domains: frozenset[_Domain] = frozenset()
    mailboxes: frozenset[_Address] = frozenset()
    default: bool = False
    # Concurrent EWS requests ENS makes to this server at most (Exchange's EWSMaxConcurrency is 27
    # per account by default); None: the consumer's configured default.
    max_concurrency: Annotated[int, Field(ge=1, le=100)] | None = None

    @model_validator(mode="after")
    def _lower_case(self) -> Self:
        object.__setattr__(self, "domains", frozenset(domain.lower() for domain in self.domains))
        object.__setattr__(self, "mailboxes", frozenset(address.lower() for address in self.mailboxes))
        return self

    @property
    def host(self) -> str:
        return self.ews_url.host or ""


class ServersDocument(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    servers: Annotated[tuple[ExchangeServer, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _unambiguous(self) -> Self:
        names = [server.name for server in self.servers]
        if len(set(names)) != len(names):
            raise ValueError("server names must be unique")
        if sum(server.default for server in self.servers) > 1:
            raise ValueError("at most one server may be the default")
        for attribute in ("domains", "mailboxes"):
            seen: dict[str, str] = {}
            for server in self.servers:
                for value in getattr(server, attribute):
                    if value in seen:
                        raise ValueError(
                            f"{value} is listed in {attribute} of both {seen[value]} and {server.name}"
                        )
                    seen[value] = server.name
        return self


class ServersConfigError(ValueError):
    """The servers secret is not valid; the message names each field at fault, never a password."""


class ExchangeDirectory:
    """Routes mailboxes to servers."""

    def __init__(self, document: ServersDocument) -> None:
        self.servers = document.servers
        self._by_mailbox = {address: server for server in self.servers for address in server.mailboxes}
        self._by_domain = {domain: server for server in self.servers for domain in server.domains}
        self._default = next((server for server in self.servers if server.default), None)

    @classmethod
    def from_json(cls, text: str) -> ExchangeDirectory:
        try:
            return cls(ServersDocument.model_validate(json.loads(text)))
        except json.JSONDecodeError as error:
            raise ServersConfigError(f"the Exchange servers secret is not JSON: {error.msg}") from None
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or '(document)'}: {problem['msg']}"
                for problem in error.errors(include_input=False)
            )
            raise ServersConfigError(f"the Exchange servers secret is invalid: {problems}") from None

    def server_for(self, mailbox: str) -> ExchangeServer | None:
        address = mailbox.strip().lower()
        explicit = self._by_mailbox.get(address)
        if explicit is not None:
            return explicit
        return self._by_domain.get(address.rpartition("@")[2], self._default)
