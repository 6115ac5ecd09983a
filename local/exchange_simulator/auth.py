"""Service accounts and how they authenticate: Basic, and NTLM (NTLMv2 responses only).

NTLM is connection-oriented: the challenge and the authenticated user belong to one TCP connection,
so each HTTP connection handler owns an `NtlmConnection`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from dataclasses import dataclass

# Private module: pyspnego has no public API for the server side of raw NTLM; requirements/dev.txt pins it.
from spnego._ntlm_raw.crypto import ntowfv1, ntowfv2
from spnego._ntlm_raw.messages import (
    Authenticate,
    AvId,
    Challenge,
    FileTime,
    Negotiate,
    NegotiateFlags,
    TargetInfo,
)

NETBIOS_DOMAIN = "SIMULATOR"
DNS_DOMAIN = "simulator.invalid"


@dataclass
class ServiceAccount:
    username: str
    password: str
    can_impersonate: bool = True
    domain: str = NETBIOS_DOMAIN

    def login_names(self) -> set[str]:
        """Every spelling Windows accepts (lower-cased): user, DOMAIN\\user, and user@domain when the user is a UPN.

        DOMAIN is the account's NetBIOS domain (SIMULATOR unless set). A username given as a UPN
        (svc-ens@contoso.example) logs on as itself, and its part before the @ is the account name: svc-ens
        and SIMULATOR\\svc-ens. A plain username (ensbot) logs on as ensbot and SIMULATOR\\ensbot; the
        simulator invents no UPN for it.
        """
        upn = self.username.lower()
        user = upn.partition("@")[0]
        return {upn, user, f"{self.domain.lower()}\\{user}"}

    def describe(self) -> dict[str, object]:
        return {"username": self.username, "can_impersonate": self.can_impersonate, "domain": self.domain}


class Accounts:
    def __init__(self) -> None:
        self._accounts: dict[str, ServiceAccount] = {}

    def add(self, account: ServiceAccount) -> ServiceAccount:
        self._accounts[account.username.lower()] = account
        return account

    def all(self) -> list[ServiceAccount]:
        return list(self._accounts.values())

    def find(self, login: str) -> ServiceAccount | None:
        login = login.lower()
        # An exact username wins: two UPNs may share the part before the @, which Windows' unique
        # account names never do.
        if login in self._accounts:
            return self._accounts[login]
        for account in self._accounts.values():
            if login in account.login_names():
                return account
        return None

    def basic(self, authorization: str) -> ServiceAccount | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            login, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        account = self.find(login)
        if account is None or not hmac.compare_digest(account.password.encode(), password.encode()):
            return None
        return account


class NtlmConnection:
    """Server side of one NTLM handshake: NEGOTIATE -> CHALLENGE, then verify AUTHENTICATE."""

    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts
        self._server_challenge: bytes | None = None
        self.account: ServiceAccount | None = None

    def step(self, token_b64: str) -> tuple[str | None, ServiceAccount | None]:
        """Return (challenge token to send back with a 401, authenticated account)."""
        try:
            token = base64.b64decode(token_b64.strip(), validate=True)
        except binascii.Error:
            return None, None
        message_type = int.from_bytes(token[8:12], "little") if len(token) >= 12 else 0
        if message_type == 1:
            return self._challenge(Negotiate.unpack(token)), None
        if message_type == 3 and self._server_challenge is not None:
            self.account = self._verify(Authenticate.unpack(token))
            self._server_challenge = None
            return None, self.account
        return None, None

    def _challenge(self, negotiate: Negotiate) -> str:
        self._server_challenge = os.urandom(8)
        wanted = (
            NegotiateFlags.unicode
            | NegotiateFlags.ntlm
            | NegotiateFlags.always_sign
            | NegotiateFlags.extended_session_security
            | NegotiateFlags.target_info
            | NegotiateFlags.request_target
            | NegotiateFlags.key_128
            | NegotiateFlags.key_56
            | NegotiateFlags.key_exch
            | NegotiateFlags.sign
            | NegotiateFlags.seal
        )
        flags = (negotiate.flags & wanted) | NegotiateFlags.unicode | NegotiateFlags.target_info
        flags |= NegotiateFlags.target_type_domain
        target_info = TargetInfo()
        target_info[AvId.nb_domain_name] = NETBIOS_DOMAIN
        target_info[AvId.nb_computer_name] = "EXCH01"
        target_info[AvId.dns_domain_name] = DNS_DOMAIN
        target_info[AvId.dns_computer_name] = f"exch01.{DNS_DOMAIN}"
        target_info[AvId.timestamp] = FileTime.now()
        challenge = Challenge(
            flags=flags,
            server_challenge=self._server_challenge,
            target_name=NETBIOS_DOMAIN,
            target_info=target_info,
        )
        return base64.b64encode(challenge.pack()).decode("ascii")

    def _verify(self, authenticate: Authenticate) -> ServiceAccount | None:
        assert self._server_challenge is not None
        user = authenticate.user_name or ""
        domain = authenticate.domain_name or ""
        account = self._accounts.find(f"{domain}\\{user}" if domain else user)
        response = authenticate.nt_challenge_response or b""
        if account is None or len(response) <= 24:
            # 24-byte responses are NTLMv1, which Exchange 2016+ installations refuse too.
            return None
        proof, blob = response[:16], response[16:]
        key = ntowfv2(user, ntowfv1(account.password), domain)
        expected = hmac.new(key, self._server_challenge + blob, "md5").digest()
        return account if hmac.compare_digest(proof, expected) else None
