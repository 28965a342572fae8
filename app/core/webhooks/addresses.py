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
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # both parse, and may refuse ("[" without an IPv6 address, a port past 65535)
    except ValueError as exc:
        raise RefusedAddress(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RefusedAddress("a webhook URL is http:// or https:// with a host")
    if parts.username or parts.password:
        raise RefusedAddress("a webhook URL carries no credentials (the signature proves who sends)")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise RefusedAddress(f"the host {host!r} does not resolve ({exc})") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not address.is_global:
            raise RefusedAddress(f"{host} resolves to {address}, a private or loopback address "
                                 "(KILN_WEBHOOK_ALLOW_PRIVATE=1 allows it)")
