"""The caller's public address, for the NSG rule that lets only the caller in."""

import ipaddress
import urllib.request

from provision.errors import ProvisionError

ECHO_SERVICES = ("https://api.ipify.org", "https://checkip.amazonaws.com")


def detect_public_ip(timeout: float = 5) -> str:
    """This machine's public IPv4 address as a /32, asked of a public echo service."""
    for url in ECHO_SERVICES:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                address = ipaddress.IPv4Address(response.read().decode().strip())
        except (OSError, ValueError):
            continue
        return f"{address}/32"
    raise ProvisionError(
        "could not detect your public IP address to allow SSH from it only; "
        "pass --allow-ip with your address (e.g. --allow-ip 203.0.113.7)"
    )
