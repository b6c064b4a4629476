"""Bearer-token check for inbound device connections (``--device-tokens FILE``).

S2 authenticates each WebSocket session with ``Authorization: Bearer <token>``. The token file
says which ids (and role) each token may connect as; a handshake without a known token is
refused with 401, a known token used for another role or id with 403, and each refusal becomes a
``connection_refused`` event. Tokens are kept only as SHA-256 digests and never logged.

Token file (JSON)::

    {"tokens": [
      {"sha256": "<hex SHA-256 of the token>", "role": "RM", "ids": ["rm-1"]},
      {"token": "<the token itself>", "role": "CEM", "ids": ["cem-1"], "peers": ["rm-1", "rm-2"]},
      {"sha256": "...", "role": "any", "ids": ["*"]}
    ]}

``role``: ``RM``, ``CEM`` or ``any``. ``ids``: the device's own ids (its rm_id when it connects
as RM, its cem_id as CEM); ``"*"`` allows any. ``peers`` (optional): the ids it may pair with.
"""

import hashlib
import hmac
import json

from autobahn.websocket.types import ConnectionDeny

from s2proxy import logs
from s2proxy.events import make_event

_log = logs.make_logger("s2proxy.auth")

ROLES = ("RM", "CEM", "any")


class TokenFileError(ValueError):
    """The token file cannot be used; the text names the file and the entry."""


def digest(token):
    """The SHA-256 hex digest a token file may hold instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class _Entry:
    __slots__ = ("digest", "role", "ids", "peers", "index")

    def __init__(self, digest_hex, role, ids, peers, index):
        self.digest = bytes.fromhex(digest_hex)
        self.role = role
        self.ids = ids
        self.peers = peers
        self.index = index

    def allows(self, role, own_id, peer_id):
        if self.role != "any" and self.role != role:
            return "this token is for a %s, not a %s" % (self.role, role)
        if "*" not in self.ids and own_id not in self.ids:
            return "this token may not connect as %s id %r" % (role, own_id)
        if self.peers is not None and "*" not in self.peers and peer_id not in self.peers:
            return "this token may not pair with %r" % (peer_id,)
        return None


def _id_list(value, where, key):
    if not isinstance(value, list) or not value or not all(isinstance(i, str) and i for i in value):
        raise TokenFileError("%s: %r must be a non-empty list of ids (\"*\" for any)" % (where, key))
    return frozenset(value)


class DeviceTokens:
    """The parsed token file: :meth:`check` says whether a token may open a connection."""

    def __init__(self, entries, source="token file"):
        self.entries = entries
        self.source = source

    @classmethod
    def load(cls, path):
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
        except OSError as e:
            raise TokenFileError("--device-tokens %s: %s" % (path, e.strerror or e))
        except ValueError as e:
            raise TokenFileError("--device-tokens %s: not JSON (%s)" % (path, e))
        return cls.parse(data, "--device-tokens %s" % path)

    @classmethod
    def parse(cls, data, source="token file"):
        if isinstance(data, dict):
            data = data.get("tokens")
        if not isinstance(data, list):
            raise TokenFileError('%s: expected {"tokens": [...]}' % source)
        entries = []
        for index, item in enumerate(data):
            where = "%s: tokens[%d]" % (source, index)
            if not isinstance(item, dict):
                raise TokenFileError("%s: expected an object" % where)
            unknown = set(item) - {"token", "sha256", "role", "ids", "peers", "comment"}
            if unknown:
                raise TokenFileError("%s: unknown keys %s" % (where, ", ".join(sorted(unknown))))
            if ("token" in item) == ("sha256" in item):
                raise TokenFileError("%s: give exactly one of \"token\" and \"sha256\"" % where)
            if "token" in item:
                if not isinstance(item["token"], str) or len(item["token"]) < 16:
                    raise TokenFileError("%s: \"token\" must be a string of at least 16 characters"
                                         % where)
                digest_hex = digest(item["token"])
            else:
                digest_hex = str(item["sha256"]).strip().lower()
                if len(digest_hex) != 64 or any(c not in "0123456789abcdef" for c in digest_hex):
                    raise TokenFileError("%s: \"sha256\" must be 64 hex digits" % where)
            role = item.get("role", "any")
            if role not in ROLES:
                raise TokenFileError("%s: role %r is not one of %s" % (where, role, ", ".join(ROLES)))
            ids = _id_list(item.get("ids"), where, "ids")
            peers = _id_list(item["peers"], where, "peers") if "peers" in item else None
            entries.append(_Entry(digest_hex, role, ids, peers, index))
        return cls(entries, source)

    def check(self, token, role, rm_id, cem_id):
        """Return None when ``token`` may connect as ``role`` for (rm_id, cem_id), else
        (status, reason) with 401 for a missing or unknown token and 403 for a token that is
        not allowed for this connection."""
        if not token:
            return 401, "missing Authorization: Bearer token"
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        own_id, peer_id = (rm_id, cem_id) if role == "RM" else (cem_id, rm_id)
        matched = None
        # Compare with every entry, so the time taken says nothing about which one matched.
        for entry in self.entries:
            if hmac.compare_digest(entry.digest, presented) and matched is None:
                matched = entry
        if matched is None:
            return 401, "unknown bearer token"
        refusal = matched.allows(role, own_id, peer_id)
        if refusal is not None:
            return 403, refusal
        return None


def bearer_token(request):
    """The token of an ``Authorization: Bearer`` header of an Autobahn ConnectionRequest."""
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def make_authorizer(tokens, hub):
    """The ``DeviceServerFactory.authorize`` hook: raise ConnectionDeny unless the token fits."""

    def authorize(request, role, rm_id, cem_id):
        refusal = tokens.check(bearer_token(request), role, rm_id, cem_id)
        if refusal is None:
            return
        status, reason = refusal
        peer = getattr(request, "peer", None)
        _log.warn("refused {role} connection rm_id={rm_id} cem_id={cem_id} from {peer}: "
                  "{status} {reason}", role=role, rm_id=rm_id, cem_id=cem_id, peer=peer,
                  status=status, reason=reason)
        hub.emit(make_event("connection_refused", None, origin=role, rm_id=rm_id, cem_id=cem_id,
                            peer=peer, direction="inbound", status=status, reason=reason))
        raise ConnectionDeny(status, reason)
    return authorize
