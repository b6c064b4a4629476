"""Who may use the HTTP API and the live feeds: allowed networks, a bearer token, the Origin check.

Nobody outside may change anything by default: requests that change something pass only from an
allowed network (default loopback) or with ``Authorization: Bearer <--api-token>``. Browsers are
kept from being used as a relay by other web sites: a request with an ``Origin`` header must come
from the proxy's own origin or one listed in ``--api-origins``. See docs/history.md, "Access".
"""

import hmac
import ipaddress
from urllib.parse import urlsplit

DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")


class GuardConfigError(ValueError):
    """A bad --api-allow / --api-origins value (the text names the flag)."""


def parse_networks(values):
    """'127.0.0.1, 10.0.0.0/8' or a list -> tuple of ip_network; GuardConfigError on a bad one."""
    if isinstance(values, str):
        values = values.split(",")
    networks = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as e:
            raise GuardConfigError("--api-allow: %r is not a network (%s)" % (value, e))
    return tuple(networks)


def parse_origins(values):
    if isinstance(values, str):
        values = values.split(",")
    origins = set()
    for value in values:
        value = value.strip().rstrip("/")
        if not value:
            continue
        if value != "*":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise GuardConfigError("--api-origins: %r is not an origin like https://host:port" % value)
            value = "%s://%s" % (parts.scheme, parts.netloc.lower())
        origins.add(value)
    return frozenset(origins)


def _peer_ip(request):
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    if host is None:
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped or ip


def _header(request, name):
    value = request.getHeader(name)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value


class Denied(Exception):
    """Refused by the guard; ``status`` and ``text`` are the HTTP answer."""

    def __init__(self, status, text):
        Exception.__init__(self, text)
        self.status = status
        self.text = text


class ApiGuard:
    """Decides per request; plain Python over the twisted.web request interface."""

    def __init__(self, allow=DEFAULT_ALLOW, token=None, origins=(), guard_reads=False):
        self.networks = parse_networks(allow)
        self.token = token.encode("utf-8") if isinstance(token, str) and token else (token or None)
        self.origins = parse_origins(origins)
        self.guard_reads = guard_reads

    # -- pieces -----------------------------------------------------------------------------

    def address_allowed(self, request):
        ip = _peer_ip(request)
        return ip is not None and any(ip in net for net in self.networks)

    def token_state(self, request, query_token=False):
        """'ok', 'missing' or 'wrong' for the bearer token of this request."""
        presented = None
        header = _header(request, b"authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                presented = value.strip().encode("utf-8")
        if presented is None and query_token:
            values = request.args.get(b"access_token")
            if values:
                presented = values[0]
        if presented is None:
            return "missing"
        if self.token is not None and hmac.compare_digest(presented, self.token):
            return "ok"
        return "wrong"

    def origin_allowed(self, request):
        origin = _header(request, b"origin")
        if origin is None:
            return True  # not a browser (curl, scripts, devices)
        origin = origin.strip().rstrip("/")
        if "*" in self.origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme in ("http", "https") and parts.netloc:
            normal = "%s://%s" % (parts.scheme, parts.netloc.lower())
            if normal in self.origins:
                return True
            host = _header(request, b"host")
            if host is not None and parts.netloc.lower() == host.strip().lower():
                return True
        return False

    # -- decisions --------------------------------------------------------------------------

    def check(self, request, changes=False, browser_socket=False):
        """Raise Denied unless the request may go on.

        ``changes``: the request changes something (inject, connectors). ``browser_socket``: a
        live feed, which browsers open with an Origin header and without custom headers.
        """
        if (changes or browser_socket) and not self.origin_allowed(request):
            raise Denied(403, "origin %s is not allowed (the proxy's own origin or --api-origins)"
                         % (_header(request, b"origin"),))
        if not (changes or self.guard_reads):
            return
        if self.address_allowed(request):
            return
        state = self.token_state(request, query_token=browser_socket)
        if state == "ok":
            return
        if state == "wrong":
            raise Denied(403, "wrong API token")
        raise Denied(403, "not allowed from %s: connect from a network in --api-allow or send "
                          "'Authorization: Bearer <token>' (--api-token)" % (_peer_ip(request),))
