"""A fake Azure Resource Manager over HTTPS for the real azure-mgmt clients (in the spirit of moto).

    with FakeARM(booter=None) as arm:
        client = ComputeManagementClient(credential, arm.subscription_id, **arm.client_kwargs())
"""

from .boot import Booter, BootSpec
from .fake import FakeARM
from .faults import Fault
from .routes import LoggedRequest

__all__ = ["BootSpec", "Booter", "FakeARM", "Fault", "LoggedRequest"]
