"""Which subscriber URLs are acceptable: http(s) only, no credentials inside, and optionally no private address."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

MAX_URL = 2048


class UnsafeUrl(ValueError):
    """A URL a webhook may not be sent to; the message says why (it never repeats the URL)."""


class Unresolved(UnsafeUrl):
    """The URL's host did not resolve: refused at subscription, but only a failed try when sending (a DNS
    outage passes, as a connection error does)."""


def check_url(url: str, *, block_private: bool, resolve=socket.getaddrinfo) -> str:
    """``url`` if a webhook may be sent to it; raises :class:`UnsafeUrl` otherwise."""
    if len(url) > MAX_URL:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("the URL cannot be parsed") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("only http and https URLs are accepted")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not accepted (put them in the receiver's check of the signature)")
    if block_private:
        for address in _addresses(parts.hostname, port or (443 if parts.scheme == "https" else 80), resolve):
            if not address.is_global:
                raise UnsafeUrl("the URL's host is a loopback, private, link-local or reserved address")
    return url


def _addresses(host: str, port: int, resolve) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = resolve(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        raise Unresolved("the URL's host does not resolve") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
