"""check-exchange and check-cns: each a list of steps, run in order until one fails.

Every step says in plain words what it found; a failed step carries a `failure` kind a script can
match (dns, refused, timeout, tls, unauthorized, impersonation_denied, mailbox_unknown, no_server,
exchange_error, token_expired, unreachable) and stops the steps after it.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from ens.adapters.exchange import ExchangeMailSource, tls_context
from ens.adapters.push import CnsToken
from ens.core.exchange_servers import ExchangeDirectory, ExchangeServer, ServersConfigError
from ens.errors import AdminActionRequired, DependencyUnavailable

CONNECT_TIMEOUT_SECONDS = 5.0
CNS_TOKEN_WARNING_DAYS = 14  # the consumer warns this far ahead too (docs/configuration.md)

# What the Exchange adapter's AdminActionRequired codes mean to an operator.
_ADMIN_FAILURES = {
    "service_account_unauthorized": (
        "unauthorized",
        "HTTP 401: Exchange refused the service account's user name or password (or its auth type)",
    ),
    "impersonation_denied": (
        "impersonation_denied",
        "impersonation denied: the service account lacks ApplicationImpersonation for this mailbox "
        "(check the management role assignment and its scope)",
    ),
    "mailbox_unknown": ("mailbox_unknown", "mailbox unknown: Exchange has no mailbox with this address"),
    "mailbox_moving": ("mailbox_moving", "the mailbox is being moved: try again once the move is done"),
}


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    failure: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    command: str
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def failure(self) -> str | None:
        return next((step.failure for step in self.steps if not step.ok), None)

    def add(
        self, name: str, ok: bool, detail: str, failure: str | None = None, data: dict[str, Any] | None = None
    ) -> bool:
        self.steps.append(Step(name, ok, detail, None if ok else failure, data or {}))
        return ok


# -- check-exchange --------------------------------------------------------------------------------


def check_exchange(servers_secret: str, mailbox: str, *, timeout: float = CONNECT_TIMEOUT_SECONDS) -> Report:
    report = Report("check-exchange", facts={"mailbox": mailbox})
    try:
        directory = ExchangeDirectory.from_json(servers_secret)
    except ServersConfigError as error:
        report.add("server", False, str(error), "servers_secret_invalid")
        return report
    server = directory.server_for(mailbox)
    if server is None:
        report.add(
            "server",
            False,
            f"no server in the Exchange servers secret serves {mailbox}: list it (or its domain) "
            "under a server's mailboxes/domains, or mark one server default",
            "no_server",
        )
        return report
    url = urlsplit(str(server.ews_url))
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    report.facts |= {"server": server.name, "ews_url": str(server.ews_url)}
    report.add("server", True, f"{server.name} ({_routing(server, mailbox)}), EWS {server.ews_url}")
    addresses = _resolve(report, host, port)
    if addresses is None or not _connect(report, host, port, timeout):
        return report
    if url.scheme == "https":
        if not _handshake(report, server, host, port, timeout):
            return report
    else:
        report.add("tls", True, "skipped: the EWS URL is plain http (no TLS to check)")
    _impersonate(report, directory, mailbox, timeout)
    return report


def _routing(server: ExchangeServer, mailbox: str) -> str:
    address = mailbox.strip().lower()
    if address in server.mailboxes:
        return "listed in its mailboxes"
    if address.rpartition("@")[2] in server.domains:
        return "its domain"
    return "the default server"


def _resolve(report: Report, host: str, port: int) -> list[str] | None:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        report.add("dns", False, f"DNS: the host {host} does not resolve ({error.strerror})", "dns")
        return None
    addresses = sorted({str(entry[4][0]) for entry in found})
    report.add("dns", True, f"{host} resolves to {', '.join(addresses)}", data={"addresses": addresses})
    return addresses


def _connect(report: Report, host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        return report.add(
            "tcp",
            False,
            f"connection refused on {host}:{port}: nothing listens there (or a firewall rejects)",
            "refused",
        )
    except TimeoutError:
        return report.add(
            "tcp",
            False,
            f"no answer from {host}:{port} within {timeout:g} s: a firewall drops it?",
            "timeout",
        )
    except OSError as error:
        return report.add(
            "tcp", False, f"cannot connect to {host}:{port}: {error.strerror or error}", "refused"
        )
    return report.add("tcp", True, f"connected to {host}:{port}")


@contextmanager
def _ca_file(pem: str | None) -> Iterator[str | None]:
    if pem is None:
        yield None
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as handle:
        handle.write(pem)
        handle.flush()
        yield handle.name


def _handshake(report: Report, server: ExchangeServer, host: str, port: int, timeout: float) -> bool:
    trust = "the server's ca_bundle" if server.ca_bundle else "the system CAs"
    with _ca_file(server.ca_bundle) as ca_file:
        context = tls_context(server, ca_file)
        try:
            with (
                socket.create_connection((host, port), timeout=timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                certificate = tls.getpeercert() or {}
                cipher = tls.cipher()
                version = tls.version()
        except ssl.SSLCertVerificationError as error:
            return report.add(
                "tls",
                False,
                f"TLS: the certificate is not trusted against {trust}: {error.verify_message}; "
                "put the issuing CA in the server's ca_bundle",
                "tls",
            )
        except (ssl.SSLError, OSError) as error:
            return report.add("tls", False, f"TLS handshake failed: {error}", "tls")
    details = {
        "version": version,
        "cipher": cipher[0] if cipher else None,
        "subject": _name(certificate.get("subject", ())),
        "issuer": _name(certificate.get("issuer", ())),
        "not_after": certificate.get("notAfter"),
        "verified_against": trust,
    }
    return report.add(
        "tls",
        True,
        f"{version} {details['cipher']}; certificate {details['subject']} issued by {details['issuer']}, "
        f"valid until {details['not_after']}; chain verified against {trust}",
        data=details,
    )


def _name(parts: Any) -> str:
    return ", ".join(f"{key}={value}" for rdn in parts for key, value in rdn)


def _impersonate(report: Report, directory: ExchangeDirectory, mailbox: str, timeout: float) -> None:
    source = ExchangeMailSource(directory, max_concurrency_per_server=1, timeout_seconds=timeout)
    try:
        unread = source.inbox_unread_count(mailbox)
    except AdminActionRequired as error:
        failure, words = _ADMIN_FAILURES.get(error.code, (error.code, error.detail))
        report.add("impersonation", False, f"{words} ({error.detail})", failure)
        return
    except DependencyUnavailable as error:
        report.add("impersonation", False, f"Exchange could not be asked: {error}", "exchange_error")
        return
    report.facts["unread"] = unread
    report.add(
        "impersonation",
        True,
        f"impersonated {mailbox}: {unread} unread in the inbox",
        data={"unread": unread},
    )


# -- check-cns ---------------------------------------------------------------------------------------


def check_cns(
    token_secret: str,
    cns_url: str | None,
    *,
    ca_bundle: str | None = None,
    now: datetime | None = None,
    timeout: float = CONNECT_TIMEOUT_SECONDS,
) -> Report:
    """The token's expiry and a probe that sends no push: TLS to the CNS host, then a HEAD of its base
    URL (any HTTP answer means it is reachable; a payload is never POSTed)."""
    report = Report("check-cns", facts={"cns_url": cns_url})
    token = CnsToken.parse(token_secret)
    moment = now or datetime.now(UTC)
    days = token.days_left(moment)
    if token.expires_at is None:
        report.add(
            "token", True, "the token carries no expiry (not a JWT with exp): CNS decides whether it is valid"
        )
    elif days is not None and days <= 0:
        report.add(
            "token",
            False,
            f"the CNS token expired at {token.expires_at.isoformat()}: renew the secret",
            "token_expired",
        )
    else:
        warning = (
            f" (less than {CNS_TOKEN_WARNING_DAYS} days: renew it soon)"
            if days is not None and days < CNS_TOKEN_WARNING_DAYS
            else ""
        )
        report.add(
            "token",
            True,
            f"the CNS token expires at {token.expires_at.isoformat()}, in {days:.1f} days{warning}",
            data={"expires_at": token.expires_at.isoformat(), "days_left": round(days or 0, 1)},
        )
    report.facts["token_expires_at"] = token.expires_at.isoformat() if token.expires_at else None
    if cns_url is None:
        report.add("probe", False, "no CNS URL known: pass --cns-url", "no_cns_url")
        return report
    url = urlsplit(cns_url)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    if _resolve(report, host, port) is None or not _connect(report, host, port, timeout):
        return report
    if url.scheme == "https":
        trust = "the CA bundle given" if ca_bundle else "the system CAs"
        context = ssl.create_default_context(cafile=ca_bundle)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            with (
                socket.create_connection((host, port), timeout=timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                certificate = tls.getpeercert() or {}
                version, cipher = tls.version(), tls.cipher()
        except ssl.SSLCertVerificationError as error:
            report.add(
                "tls",
                False,
                f"TLS: the certificate is not trusted against {trust}: {error.verify_message}",
                "tls",
            )
            return report
        except (ssl.SSLError, OSError) as error:
            report.add("tls", False, f"TLS handshake failed: {error}", "tls")
            return report
        report.add(
            "tls",
            True,
            f"{version} {cipher[0] if cipher else ''}; certificate {_name(certificate.get('subject', ()))} "
            f"valid until {certificate.get('notAfter')}; verified against {trust}",
        )
    base = f"{url.scheme}://{url.netloc}/"
    try:
        response = requests.head(base, timeout=timeout, verify=ca_bundle or True, allow_redirects=False)
    except requests.RequestException as error:
        report.add("http", False, f"HEAD {base} failed: {type(error).__name__}: {error}", "unreachable")
        return report
    report.add(
        "http",
        True,
        f"HEAD {base} answered HTTP {response.status_code}: CNS is reachable (nothing was pushed)",
    )
    return report
