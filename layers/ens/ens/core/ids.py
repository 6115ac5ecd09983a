"""Stable, opaque identifiers derived from mailbox and item: for APNs, idempotency and logs."""

from __future__ import annotations

import hashlib
import json


def digest(*parts: str, length: int = 32) -> str:
    """Hex SHA-256 of the parts; JSON-framed so ("ab", "c") and ("a", "bc") never collide."""
    framed = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return hashlib.sha256(framed).hexdigest()[:length]
