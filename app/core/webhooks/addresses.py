"""Which URLs a webhook may call: http(s) only, and never a loopback, private, link-local or other
non-public address (the cloud metadata service, the database next door) unless
KILN_WEBHOOK_ALLOW_PRIVATE is set. Checked when a hook is made and again before every try, since
a name may come to resolve elsewhere."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedAddress(ValueError):
    pass


def check(url: str, *, allow_private: bool) -> None:
    """Raises RefusedAddress saying why ``url`` may not be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedAddress("a webhook URL is http:// or https:// with a host")
    if parts.username or parts.password:
        raise RefusedAddress("a webhook URL carries no credentials (the signature proves who sends)")
    if allow_private:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise RefusedAddress(f"the host {parts.hostname!r} does not resolve ({exc})") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not address.is_global:
            raise RefusedAddress(f"{parts.hostname} resolves to {address}, a private or loopback address "
                                 "(KILN_WEBHOOK_ALLOW_PRIVATE=1 allows it)")
