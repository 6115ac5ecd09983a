"""Opaque identifiers in the shape Exchange uses (base64 blobs), decodable only by the simulator.

Every id carries the simulator instance's store number, so an id or watermark from a previous run is
recognised as foreign (ErrorItemNotFound / ErrorInvalidWatermark) instead of silently aliasing.
"""

from __future__ import annotations

import base64
import binascii
import enum
import struct

_MAGIC = b"ENSsim"


class IdKind(enum.Enum):
    ITEM = b"I"
    FOLDER = b"F"
    WATERMARK = b"W"
    SUBSCRIPTION = b"S"
    SYNC_STATE = b"Y"
    CONVERSATION = b"C"
    CHANGE_KEY = b"K"


class MalformedIdError(ValueError):
    """The text is not an id of the expected kind (EWS: ErrorInvalidIdMalformed)."""


def encode_id(kind: IdKind, store: int, *numbers: int) -> str:
    packed = _MAGIC + kind.value + struct.pack(f">I{len(numbers)}Q", store, *numbers)
    return base64.b64encode(packed).decode("ascii")


def decode_id(kind: IdKind, text: str, count: int) -> tuple[int, tuple[int, ...]]:
    """Return (store, numbers) or raise MalformedIdError."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise MalformedIdError(f"not base64: {text!r}") from e
    header = _MAGIC + kind.value
    expected_length = len(header) + 4 + 8 * count
    if not raw.startswith(header) or len(raw) != expected_length:
        raise MalformedIdError(f"not a {kind.name.lower()} id: {text!r}")
    store, *numbers = struct.unpack(f">I{count}Q", raw[len(header) :])
    return store, tuple(numbers)
