"""Mint a demo bearer token for the local devices API, from the settings file's demo HS256 secret.

    python -m ens_local.tokens --sub alice@contoso.example [--admin] [--minutes 60] [--config FILE]

Reads the issuer, audience, algorithms and key secret name from the file's [parameters] (or the
template's defaults) and the key from its [secrets], so a token minted here is one the local stack
accepts. Demo only: a deployment's tokens come from its identity provider.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import jwt

from ens_local.config import DEFAULT_CONFIG, ConfigError, Settings, load_settings
from ens_local.template import Template, secret_name_from_arn


def mint(settings: Settings, subject: str, *, admin: bool = False, minutes: int = 60) -> str:
    parameters = {**Template.load(settings.stack.template).parameter_defaults(), **settings.parameters}
    if "HS256" not in parameters["JwtAlgorithms"].upper().split(","):
        raise ConfigError("JwtAlgorithms does not include HS256: no demo token can be minted")
    # The template takes the key secret's ARN; the settings file's [secrets] name it.
    secret_name = secret_name_from_arn(parameters["JwtKeySecretArn"])
    if secret_name not in settings.secrets:
        raise ConfigError(f"[secrets] has no {secret_name!r} with an hs256_secret")
    secret = json.loads(settings.secrets[secret_name]).get("hs256_secret")
    if not secret:
        raise ConfigError(f"[secrets] {secret_name!r} has no hs256_secret")
    now = int(time.time())
    claims: dict[str, object] = {
        parameters["JwtMailboxClaim"]: subject,
        "iss": parameters["JwtIssuer"],
        "aud": parameters["JwtAudience"],
        "iat": now,
        "exp": now + minutes * 60,
    }
    if admin:
        claims["scope"] = parameters["JwtAdminScope"]
    return jwt.encode(claims, secret, algorithm="HS256")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ens_local.tokens", description=__doc__.split("\n")[0])
    parser.add_argument("--sub", required=True, help="the caller's mailbox, e.g. alice@contoso.example")
    parser.add_argument("--admin", action="store_true", help="add the admin scope (act for any mailbox)")
    parser.add_argument("--minutes", type=int, default=60, help="lifetime of the token (default 60)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="the local stack's settings file")
    arguments = parser.parse_args(argv)
    try:
        token = mint(
            load_settings(arguments.config), arguments.sub, admin=arguments.admin, minutes=arguments.minutes
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
