"""Exchange adapter: mail metadata, unread counts and VIP contacts through EWS with exchangelib.

One service account per server impersonates each mailbox (ExchangeImpersonation plus X-AnchorMailbox,
which exchangelib sends). Version and auth are pinned and autodiscover is off, so every call here is
exactly the EWS requests it names; nothing is probed. exchangelib caches one protocol (and its
connection pool) per endpoint and credentials for the life of the container.

Exchange's answers become ENS's: ErrorServerBusy → ExchangeBusy (with the back-off Exchange asked
for); impersonation refused or mailbox unknown → AdminActionRequired; a vanished item → None in the
fetch result; anything transient (timeouts, connection errors, 5xx) → DependencyUnavailable.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from aws_lambda_powertools import Logger
from exchangelib import BASIC, IMPERSONATION, NTLM, Account, Configuration, Credentials, FailFast, Q, Version
from exchangelib import errors as ews_errors
from exchangelib.errors import SessionPoolMinSizeReached
from exchangelib.ewsdatetime import EWSDateTime
from exchangelib.fields import FieldPath, InvalidField, TextField
from exchangelib.folders import Contacts, Folder, FolderCollection, Inbox, Root
from exchangelib.items import ID_ONLY, Message
from exchangelib.properties import DistinguishedFolderId, HTMLBody, Mailbox
from exchangelib.protocol import BaseProtocol
from exchangelib.services import SubscribeToPush
from exchangelib.version import (
    EXCHANGE_2010_SP2,
    EXCHANGE_2013,
    EXCHANGE_2013_SP1,
    EXCHANGE_2016,
    EXCHANGE_2019,
    Build,
)
from lxml import etree
from lxml import html as lxml_html

from ens.core.exchange_servers import AuthType, ExchangeDirectory, ExchangeServer, ExchangeVersion
from ens.core.mail import Mail, ReceivedMail
from ens.core.registrations import DEFAULT_STATUS_FREQUENCY_MINUTES, SUBSCRIPTION_EVENT_TYPES
from ens.errors import AdminActionRequired, DependencyUnavailable, ExchangeBusy, WatermarkInvalid

logger = Logger(child=True)

_BUILDS: dict[ExchangeVersion, Build] = {
    ExchangeVersion.EXCHANGE_2010_SP2: EXCHANGE_2010_SP2,
    ExchangeVersion.EXCHANGE_2013: EXCHANGE_2013,
    ExchangeVersion.EXCHANGE_2013_SP1: EXCHANGE_2013_SP1,
    ExchangeVersion.EXCHANGE_2016: EXCHANGE_2016,
    ExchangeVersion.EXCHANGE_2019: EXCHANGE_2019,
}
_AUTH = {AuthType.NTLM: NTLM, AuthType.BASIC: BASIC}

# GetItem takes at most this many ids per request (exchangelib chunks at the same size).
GET_ITEM_BATCH = 100
# What the consumer needs of a mail, nothing more: EWS sends only these properties.
_MAIL_FIELDS = (
    "subject",
    "author",
    "datetime_received",
    "is_read",
    "importance",
    "message_id",
    "parent_folder_id",
)
_PREVIEW_FIELD = TextField(
    "preview", field_uri="item:Preview", is_read_only=True, supported_from=EXCHANGE_2013
)
_preview_lock = threading.Lock()
PREVIEW_CHARACTERS = 256  # what Exchange's item:Preview holds
# Exchange 2010 has neither item:Preview nor item:TextBody: the snippet comes from item:Body, which
# may be HTML. Parsed without network access; comments and processing instructions dropped.
_HTML_PARSER = lxml_html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)

# Impersonation refused, or no such mailbox: retrying cannot help, an admin must act.
_ADMIN_ERRORS: dict[type[Exception], str] = {
    ews_errors.ErrorImpersonateUserDenied: "impersonation_denied",
    ews_errors.ErrorImpersonationDenied: "impersonation_denied",
    ews_errors.ErrorNonExistentMailbox: "mailbox_unknown",
    ews_errors.ErrorMailboxMoveInProgress: "mailbox_moving",
    ews_errors.UnauthorizedError: "service_account_unauthorized",
}
_GONE_ERRORS = (
    ews_errors.ErrorItemNotFound,
    ews_errors.ErrorInvalidIdMalformed,
    ews_errors.ErrorMoveCopyFailed,
)


def ensure_preview_field() -> None:
    """Teach exchangelib item:Preview (it has no such field), once per process."""
    with _preview_lock:
        try:
            Message.get_field_by_fieldname("preview")
        except InvalidField:
            Message.add_field(_PREVIEW_FIELD, insert_after="unique_body")


class _TlsPerServerAdapter(requests.adapters.HTTPAdapter):
    """exchangelib takes one HTTP adapter class for every server: this one looks up each request's
    host in the registry to apply that server's CA bundle and minimum TLS version (1.2 unless the
    server's settings allow older)."""

    contexts: ClassVar[dict[tuple[str, int], ssl.SSLContext]] = {}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        context = self.contexts.get((host_params["host"], host_params["port"]))
        if context is not None and host_params["scheme"] == "https":
            pool_kwargs["ssl_context"] = context
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        return host_params, pool_kwargs


BaseProtocol.HTTP_ADAPTER_CLS = _TlsPerServerAdapter


def _keep_session_pool(protocol: BaseProtocol) -> None:
    """exchangelib shrinks a protocol's session pool on every ErrorServerBusy, holding the pool's lock
    while it waits for a session; with every session in use and the pool below its maximum, that
    wait calls increase_poolsize, which takes the same (non-reentrant) lock: the thread deadlocks,
    and every later request of the container with it (exchangelib 5.6, protocol.py). ENS caps its
    concurrent requests per server itself and backs off on ExchangeBusy, so the pool never shrinks."""
    raise SessionPoolMinSizeReached("ENS keeps its session pool; it caps concurrency per server itself")


BaseProtocol.decrease_poolsize = _keep_session_pool


def tls_context(server: ExchangeServer, ca_file: str | None) -> ssl.SSLContext:
    """The TLS policy ENS applies to a server: its CA file (else the public CAs), TLS 1.2 at least
    unless the server's settings allow older. Public so the admin CLI checks exactly this policy."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1 if server.allow_legacy_tls else ssl.TLSVersion.TLSv1_2
    if server.allow_legacy_tls:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def exchange_configuration(server: ExchangeServer, max_connections: int) -> Configuration:
    """exchangelib's Configuration for a server: pinned version and auth, no autodiscover, fail-fast
    (back-off is the caller's to decide, within its time, not a blocking sleep inside exchangelib)."""
    return Configuration(
        service_endpoint=str(server.ews_url),
        credentials=Credentials(server.username, server.password.get_secret_value()),
        auth_type=_AUTH[server.auth_type],
        version=Version(build=_BUILDS[server.version]),
        retry_policy=FailFast(),
        max_connections=max_connections,
    )


class _ServerConnection:
    """One Exchange server: its exchangelib Configuration, a cap on concurrent requests, accounts."""

    def __init__(self, server: ExchangeServer, max_concurrency: int) -> None:
        self.server = server
        self.slots = threading.BoundedSemaphore(max_concurrency)
        self.configuration = exchange_configuration(server, max_concurrency)
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()
        split = urlsplit(str(server.ews_url))
        if split.scheme == "https":
            ca_file = None
            if server.ca_bundle:
                # ssl wants a file; the secret holds PEM text. Written once per container, never logged.
                handle = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)  # noqa: SIM115
                with handle:
                    handle.write(server.ca_bundle)
                ca_file = handle.name
            _TlsPerServerAdapter.contexts[(split.hostname or "", split.port or 443)] = tls_context(
                server, ca_file
            )

    def account(self, mailbox: str) -> Account:
        with self._lock:
            account = self._accounts.get(mailbox)
            if account is None:
                account = Account(
                    primary_smtp_address=mailbox,
                    config=self.configuration,
                    autodiscover=False,
                    access_type=IMPERSONATION,
                    default_timezone=None,
                )
                self._accounts[mailbox] = account
            return account


def _utc(moment: Any) -> datetime:
    if moment is None:
        return datetime.fromtimestamp(0, UTC)
    return datetime.fromisoformat(moment.ewsformat().replace("Z", "+00:00")).astimezone(UTC)


class ExchangeMailSource:
    """What the consumer reads from Exchange, and the devices API's Subscribe. Thread-safe: mailboxes are fetched side by side."""

    def __init__(
        self,
        directory: ExchangeDirectory,
        *,
        max_concurrency_per_server: int,
        timeout_seconds: float = 10.0,
        vip_category: str = "VIP",
        on_request: Callable[[str, str, str], None] | None = None,
    ) -> None:
        ensure_preview_field()
        # exchangelib's default is 120 s per HTTP request, far beyond a Lambda's patience.
        BaseProtocol.TIMEOUT = timeout_seconds
        self._directory = directory
        self._max_concurrency = max_concurrency_per_server
        self._timeout = timeout_seconds
        self._vip_category = vip_category
        self._connections: dict[str, _ServerConnection] = {}
        self._lock = threading.Lock()
        self._on_request = on_request or (lambda server, operation, mailbox: None)

    def server_name(self, mailbox: str) -> str | None:
        server = self._directory.server_for(mailbox)
        return server.name if server else None

    def fetch(self, mailbox: str, items: Sequence[tuple[str, str | None]]) -> dict[str, Mail | None]:
        """The mails behind these ids; None for one that no longer exists (deleted or moved)."""
        connection = self._connection(mailbox)
        account = connection.account(mailbox)
        with_preview = connection.server.version.supports_preview
        root = _root(account, mailbox)
        fields = [*_MAIL_FIELDS, "preview" if with_preview else "body"]
        found: dict[str, Mail | None] = {}
        for start in range(0, len(items), GET_ITEM_BATCH):
            chunk = items[start : start + GET_ITEM_BATCH]
            with self._request(connection, "GetItem", mailbox):
                # A folder given up front spares the GetFolder exchangelib would make for the root.
                results = list(account.fetch(ids=list(chunk), folder=Folder(root=root), only_fields=fields))
            for (item_id, _), result in zip(chunk, results, strict=True):
                found[item_id] = self._mail(connection, mailbox, item_id, result, with_preview)
        return found

    def unread_count(self, mailbox: str, folder_id: str) -> int:
        connection = self._connection(mailbox)
        account = connection.account(mailbox)
        folder = Folder(root=_root(account, mailbox), id=folder_id)
        unread = FieldPath(field=Folder.get_field_by_fieldname("unread_count"))
        with self._request(connection, "GetFolder", mailbox):
            (result,) = list(
                FolderCollection(account=account, folders=[folder]).get_folders(additional_fields={unread})
            )
        if isinstance(result, Exception):
            self._raise(connection, mailbox, result)
        return int(result.unread_count or 0)

    def inbox_unread_count(self, mailbox: str) -> int:
        """The inbox's unread count, the inbox named by its distinguished id (no folder id needed):
        one impersonated GetFolder, what the admin CLI's check-exchange makes."""
        connection = self._connection(mailbox)
        account = connection.account(mailbox)
        inbox = Inbox(
            root=_root(account, mailbox),
            _distinguished_id=DistinguishedFolderId(id="inbox", mailbox=Mailbox(email_address=mailbox)),
        )
        unread = FieldPath(field=Folder.get_field_by_fieldname("unread_count"))
        with self._request(connection, "GetFolder", mailbox):
            (result,) = list(
                FolderCollection(account=account, folders=[inbox]).get_folders(additional_fields={unread})
            )
        if isinstance(result, Exception):
            self._raise(connection, mailbox, result)
        return int(result.unread_count or 0)

    def vip_addresses(self, mailbox: str) -> frozenset[str]:
        """Addresses of the mailbox's contacts in the VIP category (lower case).

        FindItem cannot return a contact's email addresses (a complex property), so this is one
        FindItem for the ids, then one GetItem per 100 of them for the addresses.
        """
        connection = self._connection(mailbox)
        account = connection.account(mailbox)
        root = _root(account, mailbox)
        contacts = Contacts(
            root=root,
            _distinguished_id=DistinguishedFolderId(id="contacts", mailbox=Mailbox(email_address=mailbox)),
        )
        with self._request(connection, "FindItem", mailbox):
            ids = [
                found  # (id, change key) with shape IdOnly
                for found in FolderCollection(account=account, folders=[contacts]).find_items(
                    Q(categories__contains=[self._vip_category]), shape=ID_ONLY, page_size=1000
                )
                if not isinstance(found, Exception)
            ]
        addresses: set[str] = set()
        for start in range(0, len(ids), GET_ITEM_BATCH):
            with self._request(connection, "GetItem", mailbox):
                contacts_found = list(
                    account.fetch(
                        ids=ids[start : start + GET_ITEM_BATCH],
                        folder=Folder(root=root),
                        only_fields=["email_addresses"],
                    )
                )
            for contact in contacts_found:
                if isinstance(contact, Exception):
                    continue  # deleted between the two requests
                for entry in contact.email_addresses or ():
                    if entry.email and "@" in entry.email:
                        addresses.add(entry.email.strip().lower())
        return frozenset(addresses)

    def mail_received_since(self, mailbox: str, since: datetime) -> list[ReceivedMail]:
        """Mails in the inbox received after `since`, oldest first: what reconcile queues after
        ErrorInvalidWatermark. FindItem pages of 1000 (ids, received time and folder only)."""
        connection = self._connection(mailbox)
        account = connection.account(mailbox)
        inbox = Inbox(
            root=_root(account, mailbox),
            _distinguished_id=DistinguishedFolderId(id="inbox", mailbox=Mailbox(email_address=mailbox)),
        )
        fields = {
            FieldPath(field=Message.get_field_by_fieldname(name))
            for name in ("datetime_received", "parent_folder_id")
        }
        with self._request(connection, "FindItem", mailbox):
            found = [
                item
                for item in FolderCollection(account=account, folders=[inbox]).find_items(
                    Q(datetime_received__gt=EWSDateTime.from_datetime(since.astimezone(UTC))),
                    shape=ID_ONLY,
                    additional_fields=fields,
                    page_size=1000,
                )
                if not isinstance(item, Exception)
            ]
        mails = [
            ReceivedMail(
                item_id=item.id,
                change_key=item.changekey,
                received_at=_utc(item.datetime_received),
                folder_id=item.parent_folder_id.id if item.parent_folder_id else None,
            )
            for item in found
            if item.datetime_received is not None
        ]
        return sorted(mails, key=lambda mail: mail.received_at)

    def subscribe_push(
        self,
        mailbox: str,
        callback_url: str,
        *,
        folders: Sequence[str] = ("inbox",),
        event_types: Sequence[str] = SUBSCRIPTION_EVENT_TYPES,
        status_frequency_minutes: int = DEFAULT_STATUS_FREQUENCY_MINUTES,
        watermark: str | None = None,
    ) -> tuple[str, str]:
        """Subscribe the mailbox's folders (distinguished names) to push: (SubscriptionId, watermark).

        One Subscribe request: the folders are named by DistinguishedFolderId with the mailbox, so
        exchangelib asks for no folder first (`account.inbox` would cost a GetFolder). With `watermark`
        Exchange resumes from it and replays every event after it; WatermarkInvalid when it cannot.
        """
        connection = self._connection(mailbox)
        account = connection.account(mailbox)
        folder_ids = [
            DistinguishedFolderId(id=name, mailbox=Mailbox(email_address=mailbox)) for name in folders
        ]
        with self._request(connection, "Subscribe", mailbox):
            subscription_id, watermark = SubscribeToPush(account=account).get(
                folders=folder_ids,
                event_types=list(event_types),
                watermark=watermark,
                status_frequency=status_frequency_minutes,
                url=callback_url,
            )
        return str(subscription_id), str(watermark)

    # -- helpers -------------------------------------------------------------------------------------

    def _connection(self, mailbox: str) -> _ServerConnection:
        server = self._directory.server_for(mailbox)
        if server is None:
            raise AdminActionRequired(
                "no_server", f"no Exchange server in the servers secret serves {mailbox}"
            )
        with self._lock:
            connection = self._connections.get(server.name)
            if connection is None:
                connection = _ServerConnection(server, server.max_concurrency or self._max_concurrency)
                if server.allow_legacy_tls:
                    logger.warning("Exchange server %s: TLS below 1.2 allowed by its settings", server.name)
                self._connections[server.name] = connection
            return connection

    @contextmanager
    def _request(self, connection: _ServerConnection, operation: str, mailbox: str) -> Iterator[None]:
        with connection.slots:
            self._on_request(connection.server.name, operation, mailbox)
            try:
                yield
            except (AdminActionRequired, DependencyUnavailable, WatermarkInvalid):
                raise
            except Exception as error:  # exchangelib raises a wide family; sort it into ours
                self._raise(connection, mailbox, error)

    def _raise(self, connection: _ServerConnection, mailbox: str, error: BaseException) -> None:
        name = connection.server.name
        if isinstance(error, ews_errors.ErrorInvalidWatermark):
            raise WatermarkInvalid(f"Exchange server {name} cannot resume {mailbox}: {error}") from error
        if isinstance(error, ews_errors.ErrorServerBusy):
            raise ExchangeBusy(name, float(error.back_off or 1.0)) from error
        for kind, code in _ADMIN_ERRORS.items():
            if isinstance(error, kind):
                raise AdminActionRequired(
                    code, f"Exchange server {name} refused {mailbox}: {error}"
                ) from error
        raise DependencyUnavailable(f"Exchange server {name}: {type(error).__name__}: {error}") from error

    def _mail(
        self, connection: _ServerConnection, mailbox: str, item_id: str, result: Any, with_preview: bool
    ) -> Mail | None:
        if isinstance(result, _GONE_ERRORS):
            return None
        if isinstance(result, Exception):
            self._raise(connection, mailbox, result)
        author = result.author
        preview = result.preview if with_preview else _body_preview(result.body)
        return Mail(
            item_id=item_id,
            received_at=_utc(result.datetime_received),
            is_read=bool(result.is_read),
            subject=result.subject,
            sender_name=author.name if author else None,
            sender_address=author.email_address.lower() if author and author.email_address else None,
            importance=result.importance,
            internet_message_id=result.message_id,
            folder_id=result.parent_folder_id.id if result.parent_folder_id else None,
            preview=preview,
        )


def _body_preview(body: Any) -> str | None:
    """What item:Preview would hold: the body as text, whitespace collapsed, its first 256 characters."""
    if not body:
        return None
    text = _html_text(str(body)) if isinstance(body, HTMLBody) else str(body)
    return " ".join(text.split())[:PREVIEW_CHARACTERS] or None


def _html_text(markup: str) -> str:
    try:
        document = lxml_html.document_fromstring(markup, parser=_HTML_PARSER)
    except (etree.ParserError, ValueError):
        return ""
    etree.strip_elements(document, "head", "script", "style", with_tail=False)
    return "".join(str(part) for part in document.itertext())


def _root(account: Account, mailbox: str) -> Root:
    """A Root that names msgfolderroot without asking Exchange for it (account.root costs a GetFolder)."""
    return Root(
        account=account,
        _distinguished_id=DistinguishedFolderId(id="msgfolderroot", mailbox=Mailbox(email_address=mailbox)),
    )
