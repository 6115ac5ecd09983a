"""ens.core.auth: every way a bearer token can be wrong is refused with a reason; a good one names its caller."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ens.core.auth import (
    AuthFailure,
    JwtKeys,
    JwtPolicy,
    KeySecretInvalid,
    Unauthenticated,
    bearer_token,
    verify,
)
from support.jwt_keys import (
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    KeyPair,
    ec_pair,
    es_token,
    hmac_with_public_key_token,
    hs_token,
    jwk,
    key_secret,
    rs_token,
    rsa_pair,
    unsigned_token,
)

pytestmark = pytest.mark.unit

ALL = frozenset({"HS256", "RS256", "ES256"})


def policy(algorithms: frozenset[str] = ALL, **kwargs: str) -> JwtPolicy:
    return JwtPolicy(issuer=ISSUER, audience=AUDIENCE, algorithms=algorithms, **kwargs)


@pytest.fixture(scope="module")
def keys() -> JwtKeys:
    return JwtKeys.from_json(key_secret())


def refused(token: str, keys: JwtKeys, rules: JwtPolicy | None = None) -> AuthFailure:
    with pytest.raises(Unauthenticated) as raised:
        verify(token, rules or policy(), keys)
    return raised.value.reason


@pytest.mark.parametrize("make", [hs_token, rs_token, es_token], ids=["HS256", "RS256", "ES256"])
def test_a_valid_token_of_each_configured_algorithm_names_its_lower_cased_mailbox(
    make, keys: JwtKeys
) -> None:
    caller = verify(make(sub="Alice@Contoso.Example"), policy(), keys)

    assert caller.subject == "alice@contoso.example"
    assert not caller.is_admin


def test_alg_none_is_refused_even_when_everything_else_is_right(keys: JwtKeys) -> None:
    assert refused(unsigned_token(), keys) is AuthFailure.ALGORITHM


def test_an_algorithm_the_site_did_not_configure_is_refused(keys: JwtKeys) -> None:
    assert refused(hs_token(), keys, policy(frozenset({"RS256"}))) is AuthFailure.ALGORITHM
    assert refused(rs_token(), keys, policy(frozenset({"HS256"}))) is AuthFailure.ALGORITHM


def test_hs256_signed_with_the_rsa_public_key_is_refused_when_both_families_are_configured(
    keys: JwtKeys,
) -> None:
    token = hmac_with_public_key_token(rsa_pair().public_pem)

    assert refused(token, keys) is AuthFailure.SIGNATURE


def test_hs256_signed_with_the_rsa_public_key_finds_no_key_when_no_hmac_secret_is_configured() -> None:
    rsa_only = JwtKeys.from_json(key_secret(hs=False))
    token = hmac_with_public_key_token(rsa_pair().public_pem)

    assert refused(token, rsa_only) is AuthFailure.UNKNOWN_KEY


def test_a_token_signed_with_another_key_is_refused(keys: JwtKeys) -> None:
    stranger = KeyPair(rsa.generate_private_key(public_exponent=65537, key_size=2048), "", "")

    assert refused(hs_token(secret="another-secret-of-at-least-32-bytes!!"), keys) is AuthFailure.SIGNATURE
    assert refused(rs_token(stranger), keys) is AuthFailure.SIGNATURE


def test_an_expired_token_is_refused_beyond_the_30_second_leeway(keys: JwtKeys) -> None:
    now = int(time.time())

    assert refused(hs_token(exp=now - 31), keys) is AuthFailure.EXPIRED
    assert verify(hs_token(exp=now - 20), policy(), keys).subject == "alice@contoso.example"


def test_a_token_not_yet_valid_is_refused_beyond_the_leeway(keys: JwtKeys) -> None:
    now = int(time.time())

    assert refused(hs_token(nbf=now + 60), keys) is AuthFailure.NOT_YET_VALID
    assert verify(hs_token(nbf=now + 20), policy(), keys).subject == "alice@contoso.example"


def test_a_token_of_another_issuer_is_refused(keys: JwtKeys) -> None:
    assert refused(hs_token(iss="https://evil.example/"), keys) is AuthFailure.ISSUER


def test_a_token_for_another_audience_is_refused(keys: JwtKeys) -> None:
    assert refused(hs_token(aud="another-api"), keys) is AuthFailure.AUDIENCE


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
def test_a_token_missing_a_required_claim_is_refused(claim: str, keys: JwtKeys) -> None:
    assert refused(hs_token(**{claim: None}), keys) is AuthFailure.CLAIMS


def test_a_mailbox_claim_that_is_no_address_is_refused(keys: JwtKeys) -> None:
    assert refused(hs_token(sub="not-a-mailbox"), keys) is AuthFailure.CLAIMS
    assert refused(hs_token(sub=42), keys) is AuthFailure.CLAIMS


@pytest.mark.parametrize(
    "garbage", ["", "x", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "💥.💥.💥"]
)
def test_garbage_is_refused_as_malformed(garbage: str, keys: JwtKeys) -> None:
    # Whatever part gives way first, the token is refused; none passes to a key it could fool.
    assert refused(garbage, keys) in (AuthFailure.MALFORMED, AuthFailure.ALGORITHM, AuthFailure.SIGNATURE)


def test_a_kid_selects_its_jwks_key_and_an_unknown_kid_finds_none(keys: JwtKeys) -> None:
    assert verify(es_token(), policy(), keys).subject == "alice@contoso.example"
    stranger = ec_pair("ec-unknown")

    assert refused(es_token(stranger), keys) is AuthFailure.UNKNOWN_KEY


def test_a_kid_naming_a_key_of_another_family_finds_none(keys: JwtKeys) -> None:
    # An RS256 token whose kid names the EC key: the kid cannot move a token to another key type.
    assert refused(rs_token(headers={"kid": ec_pair().kid}), keys) is AuthFailure.UNKNOWN_KEY


def test_the_configured_claim_names_the_mailbox_and_the_admin_scope_comes_from_scope_or_scp(
    keys: JwtKeys,
) -> None:
    rules = policy(mailbox_claim="upn", admin_scope="ens:admin")

    by_scope = verify(hs_token(upn="Admin@Contoso.Example", scope="openid ens:admin"), rules, keys)
    by_scp = verify(hs_token(upn="ops@contoso.example", scp=["read", "ens:admin"]), rules, keys)
    neither = verify(hs_token(upn="bob@contoso.example", scope="ens:administrator"), rules, keys)

    assert (by_scope.subject, by_scope.is_admin) == ("admin@contoso.example", True)
    assert by_scp.is_admin
    assert not neither.is_admin


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, AuthFailure.MISSING),
        ("", AuthFailure.MISSING),
        ("Basic abc", AuthFailure.MALFORMED),
        ("Bearer", AuthFailure.MALFORMED),
        ("Bearer " + "a" * 9000, AuthFailure.MALFORMED),
    ],
)
def test_an_authorization_header_without_a_bearer_token_is_refused(
    header: str | None, reason: AuthFailure
) -> None:
    with pytest.raises(Unauthenticated) as raised:
        bearer_token(header)

    assert raised.value.reason is reason


def test_the_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc.def.ghi") == "abc.def.ghi"


@pytest.mark.parametrize(
    "secret",
    [
        "not json",
        "[]",
        json.dumps({"hs256_secret": "short"}),
        json.dumps({"public_keys": ["not a pem"]}),
        json.dumps({"jwks": {"keys": [{"kty": "oct", "k": "abc"}]}}),
        json.dumps({"jwks": {"keys": [{**jwk(rsa_pair()), "d": "private"}]}}),
        json.dumps({"hs256_secret": HS_SECRET, "extra": 1}),
    ],
)
def test_a_key_secret_not_in_the_documented_format_is_a_configuration_error(secret: str) -> None:
    with pytest.raises(KeySecretInvalid):
        JwtKeys.from_json(secret)


def test_a_policy_without_algorithms_or_with_an_unknown_one_is_refused() -> None:
    with pytest.raises(ValueError, match="algorithms"):
        policy(frozenset())
    with pytest.raises(ValueError, match="algorithms"):
        policy(frozenset({"none"}))
