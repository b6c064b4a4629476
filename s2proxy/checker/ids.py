"""Id equality (S2-PROTOCOL.md §6.0 X-1) and RFC 3339 timestamps as epoch seconds.

`id_key` gives the comparison key of an id: UUID-shaped ids in lower case, any other string as is.
Findings always quote the id as it was sent; only look-ups use the key.

Memory: a session refers to the same few actuator, mode and timer ids from many messages, and the
JSON parser makes a fresh string for every occurrence.  `shared_key` interns such keys (one object
per distinct id; an interned string costs a table entry, so message ids, which occur once, are not
interned), `same(raw, key)` gives the id as sent as the key object when they are equal, and
`compact()` copies the small JSON fragments a session keeps with shared dict keys and enum values.
"""

import re
import sys
from datetime import datetime, timezone
from functools import lru_cache

NIL_UUID = "00000000-0000-0000-0000-000000000000"
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z")


def id_key(value):
    """The comparison key of an id value (X-1); non-strings are returned unchanged."""
    if type(value) is str:
        low = value.lower()
        if low != value and len(value) == 36 and _UUID.match(value):
            value = low         # (a string without capitals is its own key: no regex needed)
    return value


_intern = sys.intern


def shared_key(value):
    """id_key(value), interned: for ids that many messages of a session repeat."""
    k = id_key(value)
    return _intern(k) if type(k) is str else k


def same(raw, key):
    """`raw` (an id as sent), as the object `key` when they are equal strings (saves a copy)."""
    return key if raw == key and type(raw) is str else raw


def compact(value):
    """A copy of a small JSON value with its dict keys and enum-like (upper-case) strings interned."""
    t = type(value)
    if t is str:
        return _intern(value) if value.isupper() else value
    if t is dict:
        return {_intern(k) if type(k) is str else k: compact(v) for k, v in value.items()}
    if t is list:
        return [compact(v) for v in value]
    return value


@lru_cache(maxsize=4096)
def parse_time(text):
    """Epoch seconds of an RFC 3339 date-time string, or None when it cannot be read.

    The validator has already asserted the grammar; this only has to read it.  A leap second
    (second 60) is read as the first instant of the next minute.
    """
    if type(text) is not str:
        return None
    s = text.upper()
    extra = 0.0
    if len(s) > 19 and s[17:19] == "60":
        s = s[:17] + "59" + s[19:]
        extra = 1.0
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:       # no offset: not RFC 3339, and local time would be a guess
        return None
    return dt.timestamp() + extra


def format_time(t):
    """Epoch seconds as an RFC 3339 UTC string with milliseconds (for finding texts and summaries)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
