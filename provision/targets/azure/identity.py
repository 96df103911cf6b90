"""Who is signed in: the principal named in the ARM access token, for the `owner` tag and `gc`.

The token came from Azure AD (or the user) over TLS and is only read here, never trusted for
anything but naming: its payload is decoded without checking the signature, which ARM checks.
"""

import base64
import binascii
import json

from provision.errors import ProvisionError
from provision.plan import Owner

# Claims naming a user (v1 tokens: upn, unique_name; v2: preferred_username), then an application
# (service principals and managed identities carry no user name: v1 appid, v2 azp).
NAME_CLAIMS = ("upn", "unique_name", "preferred_username", "appid", "azp")


def owner_from_token(token: str, *, source: str) -> Owner:
    """The object id (`oid`) and a name from a JWT access token; `source` says where it came from.

    A token that is not a JWT with an `oid` is refused: tagging with anything else would let
    `gc` take another person's groups for yours, or never find yours.
    """
    claims = _payload(token)
    oid = claims.get("oid") if claims else None
    if not isinstance(oid, str) or not oid:
        raise ProvisionError(
            f"the ARM access token from {source} is not a JWT with an `oid` claim, so dsvm-kit cannot "
            "tell which Azure identity you are (it tags what it creates with it, and `gc` compares it); "
            "use an Azure AD token (`az account get-access-token`), or unset PROVISION_ARM_TOKEN to sign in"
        )
    name = next((claims[c] for c in NAME_CLAIMS if isinstance(claims.get(c), str) and claims[c]), "")
    return Owner(oid, name)


def _payload(token: str) -> dict | None:
    """The JWT's claims (header.payload.signature, base64url), or None if it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None
