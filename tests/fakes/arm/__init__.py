"""A fake Azure Resource Manager over HTTPS for the real azure-mgmt clients (in the spirit of moto).

    with FakeARM(booter=RecordingBooter()) as arm:
        compute = ComputeManagementClient(credential, arm.subscription_id, **arm.client_kwargs())

`credential` is anything whose get_token returns an AccessToken (the fake accepts any bearer
token unless FakeARM(token=...) names one).
"""

from .boot import Booter, BootSpec, RecordingBooter
from .fake import FAST, FakeARM
from .faults import Fault
from .routes import LoggedRequest
from .tokens import TEST_OID, TEST_UPN, access_token, user_token

__all__ = [
    "FAST",
    "TEST_OID",
    "TEST_UPN",
    "BootSpec",
    "Booter",
    "FakeARM",
    "Fault",
    "LoggedRequest",
    "RecordingBooter",
    "access_token",
    "user_token",
]
