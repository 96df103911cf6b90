"""Access tokens shaped as Azure AD issues them (header.payload.signature, base64url JSON), unsigned.

The fake ARM does not check signatures; the kit reads the payload's principal claims (`oid`,
`upn`, `appid`...), as listed in Azure AD's access token claims reference.
"""

import base64
import json

TEST_OID = "00000000-0000-0000-0000-00000000a11c"
TEST_UPN = "alice@contoso.example"


def _part(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def access_token(oid: str = TEST_OID, **claims: str) -> str:
    """A JWT-shaped ARM access token for principal `oid` with the given extra claims."""
    header = {"typ": "JWT", "alg": "RS256", "kid": "fake"}
    payload = {"aud": "https://management.azure.com", "iss": "https://sts.windows.net/fake/", "oid": oid, **claims}
    return f"{_part(header)}.{_part(payload)}.fake-signature"


def user_token(oid: str = TEST_OID, upn: str = TEST_UPN) -> str:
    return access_token(oid, upn=upn, unique_name=upn)


def claims_of(token: str) -> dict:
    """The payload of a JWT-shaped token ({} when it is not one: the fake then knows no principal)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        return json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
