"""The machine side of dsvm-kit: everything done over one connection to a host.

It knows a host, a port, a user, a key and a host key; nothing of Azure or of
the `provision` package.
"""
