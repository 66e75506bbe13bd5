"""The container's health check: `python -m core.healthcheck` (exit 0 when /healthz answers).

It asks with a Host header the app accepts (the first ALLOWED_HOSTS entry), because Django
answers 400 to any other host, which would mark a working container unhealthy. Plain Python,
no Django: it runs every 30 s.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def host_header(allowed_hosts: str) -> str:
    """A host name the app accepts, from ALLOWED_HOSTS as the environment gives it."""
    for entry in (part.strip() for part in allowed_hosts.split(",")):
        if entry and entry != "*":
            return entry.lstrip(".")  # ".example.com" allows example.com and its subdomains
    return "localhost"


def main() -> int:
    port = os.environ.get("PORT", "8000")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz",
        headers={"Host": host_header(os.environ.get("ALLOWED_HOSTS", "localhost"))},
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310 - loopback
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
