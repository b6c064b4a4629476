"""Small editing helpers for the §7 transcripts in the checker tests (lines are dicts)."""

import copy
from datetime import datetime, timezone

from s2proxy.checker.ids import parse_time
from tests.checker_replay import load


def frbc():
    return load("frbc_example")


def pebc():
    return load("pebc_example")


def mid(prefix, n):
    """The §7 message id with letter `prefix` and counter n: mid("b", 4)."""
    return "%s0000000-0000-4000-8000-%012d" % (prefix, n)


def at(lines, message_id):
    """Index of the line whose message has this message_id."""
    for i, line in enumerate(lines):
        if isinstance(line["message"], dict) and line["message"].get("message_id") == message_id:
            return i
    raise KeyError(message_id)


def rs_of(lines, message_id):
    """Index of the ReceptionStatus answering message_id."""
    for i, line in enumerate(lines):
        m = line["message"]
        if isinstance(m, dict) and m.get("subject_message_id") == message_id:
            return i
    raise KeyError(message_id)


def fmt(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def shift(line, seconds):
    line["time"] = fmt(parse_time(line["time"]) + seconds)
    return line


def rs(sender, subject, status="OK", time=None):
    line = {"sender": sender, "message": {"message_type": "ReceptionStatus",
                                          "subject_message_id": subject, "status": status}}
    if time is not None:
        line["time"] = time
    return line


def insert(lines, index, sender, message, status="OK", gap=0.001):
    """Insert `message` after line `index` (and its answer `status` unless None), 1 ms apart."""
    t = parse_time(lines[index]["time"])
    new = [{"time": fmt(t + gap), "sender": sender, "message": message}]
    if status is not None:
        new.append(rs("CEM" if sender == "RM" else "RM", message["message_id"], status,
                      fmt(t + 2 * gap)))
    lines[index + 1:index + 1] = new
    return index + 1


def drop(lines, message_id, keep_status=False):
    """Remove the message and (unless keep_status) its ReceptionStatus."""
    i = at(lines, message_id)
    if not keep_status:
        del lines[rs_of(lines, message_id)]
    del lines[i]


def clone(obj):
    return copy.deepcopy(obj)
