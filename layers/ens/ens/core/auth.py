"""Bearer-token (JWT) verification for the devices API: pure, given the keys.

The key a token is checked with is chosen by the *configured* algorithm family, never by what the
token's header claims: an HS256 token is only ever checked against the shared secret, an RS256 or
ES256 token only against public keys of that type. So a token signed with HMAC using the RSA public
key as its secret (the classic key-confusion attack) finds no HMAC key to pass, and `alg: none` or
any algorithm the site did not configure is refused before any key is touched. The secret's format
is documented in docs/devices-api.md ("Authentication").
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from ens.core.registrations import Caller

LEEWAY_SECONDS = 30  # clock skew tolerated on exp and nbf
MAX_TOKEN_LENGTH = 8192  # far above any sane JWT; keeps a hostile header from costing parse time

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512"})
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | RSA_ALGORITHMS | EC_ALGORITHMS


class AuthFailure(enum.StrEnum):
    """Why a request was not authenticated: the metric dimension and the log's reason."""

    MISSING = "missing"
    MALFORMED = "malformed"
    ALGORITHM = "algorithm"
    UNKNOWN_KEY = "unknown_key"
    SIGNATURE = "signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUER = "issuer"
    AUDIENCE = "audience"
    CLAIMS = "claims"


class Unauthenticated(Exception):
    """No usable bearer token. `description` is safe to send back (RFC 6750 error_description)."""

    def __init__(self, reason: AuthFailure, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


class KeySecretInvalid(ValueError):
    """The key secret is not in the documented format (a configuration error, not a client's)."""


@dataclass(frozen=True)
class JwtPolicy:
    issuer: str
    audience: str
    algorithms: frozenset[str]
    mailbox_claim: str = "sub"
    admin_scope: str = "ens:admin"
    leeway_seconds: int = LEEWAY_SECONDS

    def __post_init__(self) -> None:
        unknown = self.algorithms - SUPPORTED_ALGORITHMS
        if unknown or not self.algorithms:
            raise ValueError(
                f"JWT algorithms must be some of {sorted(SUPPORTED_ALGORITHMS)}, not {sorted(unknown) or 'none'}"
            )

    @classmethod
    def parse_algorithms(cls, text: str) -> frozenset[str]:
        return frozenset(part.strip().upper() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class JwtKeys:
    """The verification keys, by family. `by_kid` holds the JWKS keys that carry a kid."""

    hmac_secret: bytes | None = None
    rsa: tuple[RSAPublicKey, ...] = ()
    ec: tuple[EllipticCurvePublicKey, ...] = ()
    by_kid: Mapping[str, RSAPublicKey | EllipticCurvePublicKey] = field(default_factory=dict)

    @classmethod
    def from_json(cls, text: str) -> JwtKeys:
        """`{"hs256_secret": "...", "public_keys": ["-----BEGIN PUBLIC KEY-----..."], "jwks": {"keys": [...]}}`."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError:
            raise KeySecretInvalid("the JWT key secret is not JSON") from None
        if not isinstance(document, dict):
            raise KeySecretInvalid("the JWT key secret must be a JSON object")
        unknown = set(document) - {"hs256_secret", "public_keys", "jwks"}
        if unknown:
            raise KeySecretInvalid(f"unknown key(s) in the JWT key secret: {sorted(unknown)}")
        secret = document.get("hs256_secret")
        if secret is not None and (not isinstance(secret, str) or len(secret.encode()) < 32):
            # RFC 7518 section 3.2: an HS256 key at least as long as the hash output.
            raise KeySecretInvalid("hs256_secret must be a string of at least 32 bytes")
        public: list[RSAPublicKey | EllipticCurvePublicKey] = []
        for pem in _list(document.get("public_keys", []), "public_keys"):
            public.append(_pem_key(pem))
        by_kid: dict[str, RSAPublicKey | EllipticCurvePublicKey] = {}
        jwks = document.get("jwks") or {"keys": []}
        if not isinstance(jwks, dict):
            raise KeySecretInvalid("jwks must be a JWK Set object")
        for entry in _list(jwks.get("keys", []), "jwks.keys"):
            key = _jwk_key(entry)
            kid = entry.get("kid")
            if isinstance(kid, str) and kid:
                by_kid[kid] = key
            else:
                public.append(key)
        return cls(
            hmac_secret=secret.encode() if secret else None,
            rsa=tuple(k for k in public if isinstance(k, RSAPublicKey)),
            ec=tuple(k for k in public if isinstance(k, EllipticCurvePublicKey)),
            by_kid=by_kid,
        )

    def candidates(self, algorithm: str, kid: str | None) -> Sequence[Any]:
        """The keys a token of the configured `algorithm` may be checked with: the family's, only."""
        if algorithm in HMAC_ALGORITHMS:
            return [self.hmac_secret] if self.hmac_secret else []
        family: type = RSAPublicKey if algorithm in RSA_ALGORITHMS else EllipticCurvePublicKey
        if kid is not None and kid in self.by_kid:
            key = self.by_kid[kid]
            return [key] if isinstance(key, family) else []
        keys: Iterable[Any] = self.rsa if family is RSAPublicKey else self.ec
        if kid is None:
            # No kid: any key of the family (a site rotating PEM keys lists old and new).
            keys = [*keys, *(k for k in self.by_kid.values() if isinstance(k, family))]
        return list(keys)


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise KeySecretInvalid(f"{name} must be a list")
    return value


def _pem_key(pem: Any) -> RSAPublicKey | EllipticCurvePublicKey:
    if not isinstance(pem, str):
        raise KeySecretInvalid("public_keys must hold PEM strings")
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        raise KeySecretInvalid("a public_keys entry is not a PEM public key") from None
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        raise KeySecretInvalid("public_keys entries must be RSA or EC public keys")
    return key


def _jwk_key(entry: Any) -> RSAPublicKey | EllipticCurvePublicKey:
    if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
        raise KeySecretInvalid("jwks keys must be RSA or EC public JWKs")
    if "d" in entry:
        raise KeySecretInvalid("a jwks entry holds a private key: publish only public keys")
    try:
        key = jwt.PyJWK(entry).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError):
        raise KeySecretInvalid("a jwks entry is not a usable public key") from None
    if not isinstance(key, RSAPublicKey | EllipticCurvePublicKey):
        raise KeySecretInvalid("jwks keys must be RSA or EC public keys")
    return key


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if authorization is None or not authorization.strip():
        raise Unauthenticated(AuthFailure.MISSING, "no bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(AuthFailure.MALFORMED, "the Authorization header is not a Bearer token")
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated(AuthFailure.MALFORMED, "the token is too long")
    return token


def verify(token: str, policy: JwtPolicy, keys: JwtKeys) -> Caller:
    """The caller a token names, or Unauthenticated saying why not."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise Unauthenticated(AuthFailure.MALFORMED, "the token is not a JWT") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in policy.algorithms:
        raise Unauthenticated(AuthFailure.ALGORITHM, "the token's algorithm is not accepted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Unauthenticated(AuthFailure.MALFORMED, "the token's kid is not a string")
    candidates = keys.candidates(algorithm, kid)
    if not candidates:
        raise Unauthenticated(AuthFailure.UNKNOWN_KEY, "no key is known for the token")
    claims: dict[str, Any] | None = None
    for key in candidates:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],  # the one configured algorithm the key family was chosen for
                audience=policy.audience,
                issuer=policy.issuer,
                leeway=policy.leeway_seconds,
                options={"require": ["exp", "iss", "aud"], "verify_iat": False},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(AuthFailure.EXPIRED, "the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated(AuthFailure.NOT_YET_VALID, "the token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(AuthFailure.ISSUER, "the token's issuer is not accepted") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(AuthFailure.AUDIENCE, "the token is not meant for this API") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(AuthFailure.CLAIMS, f"the token has no {error.claim} claim") from None
        except (InvalidSubjectError, InvalidJTIError):
            raise Unauthenticated(AuthFailure.CLAIMS, "the token's claims are not valid") from None
        except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError):
            raise Unauthenticated(AuthFailure.ALGORITHM, "the token's algorithm is not accepted") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated(AuthFailure.MALFORMED, "the token is not a valid JWT") from None
    if claims is None:
        raise Unauthenticated(AuthFailure.SIGNATURE, "the token's signature does not verify")
    return _caller(claims, policy)


def _caller(claims: Mapping[str, Any], policy: JwtPolicy) -> Caller:
    subject = claims.get(policy.mailbox_claim)
    if not isinstance(subject, str) or "@" not in subject or len(subject) > 254:
        raise Unauthenticated(
            AuthFailure.CLAIMS, f"the token's {policy.mailbox_claim} claim is not a mailbox address"
        )
    scopes: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.update(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        scopes.update(item for item in scp if isinstance(item, str))
    elif isinstance(scp, str):
        scopes.update(scp.split())
    return Caller(subject=subject.strip().lower(), is_admin=policy.admin_scope in scopes)
