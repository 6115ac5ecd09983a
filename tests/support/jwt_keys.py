"""Key material and token minting for the devices API's tests (never used outside tests)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.contoso.example/"
AUDIENCE = "ens-devices-api"
HS_SECRET = "test-hs256-secret-of-at-least-32-bytes!"


@dataclass(frozen=True)
class KeyPair:
    private: Any
    public_pem: str
    kid: str


@cache
def rsa_pair(kid: str = "rsa-1") -> KeyPair:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return KeyPair(private, _pem(private), kid)


@cache
def ec_pair(kid: str = "ec-1") -> KeyPair:
    private = ec.generate_private_key(ec.SECP256R1())
    return KeyPair(private, _pem(private), kid)


def _pem(private: Any) -> str:
    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def jwk(pair: KeyPair) -> dict[str, Any]:
    """The public JWK of a pair, with its kid."""
    key = (
        jwt.algorithms.RSAAlgorithm.to_jwk(pair.private.public_key(), as_dict=True)
        if isinstance(pair.private, rsa.RSAPrivateKey)
        else jwt.algorithms.ECAlgorithm.to_jwk(pair.private.public_key(), as_dict=True)
    )
    return {**key, "kid": pair.kid}


def key_secret(*, hs: bool = True, pem: bool = True, jwks: bool = True) -> str:
    """The JWT key secret (docs/devices-api.md): the HS secret, the RSA key as PEM, the EC key in a JWKS."""
    document: dict[str, Any] = {}
    if hs:
        document["hs256_secret"] = HS_SECRET
    if pem:
        document["public_keys"] = [rsa_pair().public_pem]
    if jwks:
        document["jwks"] = {"keys": [jwk(ec_pair())]}
    return json.dumps(document)


def claims(sub: str = "alice@contoso.example", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def hs_token(secret: str | bytes = HS_SECRET, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), secret, algorithm="HS256")


def rs_token(pair: KeyPair | None = None, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    pair = pair or rsa_pair()
    return jwt.encode(claims(**overrides), pair.private, algorithm="RS256", headers=headers)


def es_token(pair: KeyPair | None = None, **overrides: Any) -> str:
    pair = pair or ec_pair()
    return jwt.encode(claims(**overrides), pair.private, algorithm="ES256", headers={"kid": pair.kid})


def unsigned_token(**overrides: Any) -> str:
    """alg none: a header and claims with an empty signature."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims(**overrides))}."


def hmac_with_public_key_token(pem: str, **overrides: Any) -> str:
    """The key-confusion attack: HS256 signed with the RSA public key's PEM text as the HMAC secret.

    PyJWT refuses to sign with a PEM as an HMAC key, so the signature is computed by hand.
    """
    import hashlib
    import hmac

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims(**overrides))}"
    signature = hmac.new(pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
