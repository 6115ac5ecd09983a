"""The CNS bearer token of the local stack: a JWT like the one an admin gets for the real CNS."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt

ISSUER = "ens-local-push-sink"


def mint_token(lifetime: timedelta = timedelta(days=365), *, issuer: str = ISSUER) -> str:
    """A fresh HS256 JWT signed with a random key nobody keeps: the sink compares it, never verifies it."""
    now = datetime.now(UTC)
    claims = {"iss": issuer, "iat": now, "exp": now + lifetime, "jti": secrets.token_hex(8)}
    return jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256")
