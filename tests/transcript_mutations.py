"""Load the per-control-type transcript fixtures and apply the mutations of mutations.json.

A transcript is JSON lines {"time", "sender", "message"} (the format of S2-PROTOCOL.md §7).
A mutation names a base transcript and a list of edit operations; the tests replay the mutated
transcript (tests/checker_replay.py) and expect the mutation's rule to fire with its severity.  Messages are addressed as "RM:4" (the line
of that sender whose message_id ends in the 12-digit counter 4) or by their full message_id.

Operations:
  set     msg, path, value    replace a value (a list index equal to the length appends)
  remove  msg, path           delete a key or list element
  copy    msg, src, path      deep-copy the value at src to path (append when index == length)
  drop    msg                 remove the line and the ReceptionStatus lines answering it
  insert  after, sender, message [, status]
                              new line after `after` (and after its ReceptionStatus); answered with
                              `status` (default "OK"; null for no answer) 1 ms later
  status  msg, value          change the status of the ReceptionStatus answering msg
  answer_after  msg, after    move the ReceptionStatus answering msg to 1 ms after the line `after`
                              (to make a message cross another one in flight, X-4)
"""

import copy
import datetime
import json
import os

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "transcripts", "types")


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def format_time(epoch):
    t = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % round(t.microsecond / 1000)


def load(name):
    with open(os.path.join(HERE, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def mutations():
    with open(os.path.join(HERE, "mutations.json")) as f:
        return json.load(f)


def _find(lines, ref):
    if ":" in ref and len(ref) < 12:
        sender, n = ref.split(":")
        suffix = "%012d" % int(n)
        hits = [i for i, line in enumerate(lines) if line["sender"] == sender
                and str(line["message"].get("message_id", "")).endswith(suffix)]
    else:
        hits = [i for i, line in enumerate(lines) if line["message"].get("message_id") == ref]
    if len(hits) != 1:
        raise KeyError("mutation target %r matches %d lines" % (ref, len(hits)))
    return hits[0]


def _answers(lines, i):
    mid = lines[i]["message"].get("message_id")
    return [j for j, line in enumerate(lines) if j > i
            and line["message"].get("message_type") == "ReceptionStatus"
            and line["message"].get("subject_message_id") == mid]


def _walk(obj, path):
    for key in path[:-1]:
        obj = obj[key]
    return obj, path[-1]


def _put(obj, path, value):
    parent, key = _walk(obj, path)
    if isinstance(parent, list) and key == len(parent):
        parent.append(value)
    else:
        parent[key] = value


def apply(lines, ops):
    lines = copy.deepcopy(lines)
    for op in ops:
        kind = op["op"]
        if kind in ("set", "remove", "copy"):
            msg = lines[_find(lines, op["msg"])]["message"]
            if kind == "set":
                _put(msg, op["path"], copy.deepcopy(op["value"]))
            elif kind == "copy":
                src_parent, src_key = _walk(msg, op["src"])
                _put(msg, op["path"], copy.deepcopy(src_parent[src_key]))
            else:
                parent, key = _walk(msg, op["path"])
                del parent[key]
        elif kind == "drop":
            i = _find(lines, op["msg"])
            for j in sorted([i] + _answers(lines, i), reverse=True):
                del lines[j]
        elif kind == "status":
            i = _find(lines, op["msg"])
            for j in _answers(lines, i):
                lines[j]["message"]["status"] = op["value"]
        elif kind == "answer_after":
            i = _find(lines, op["msg"])
            answer = lines.pop(_answers(lines, i)[0])
            j = _find(lines, op["after"])
            answer["time"] = format_time(parse_time(lines[j]["time"]) + 0.001)
            lines.insert(j + 1, answer)
        elif kind == "insert":
            i = _find(lines, op["after"])
            answers = _answers(lines, i)
            pos = max([i] + answers)
            # Place after everything already inserted behind the anchor in the same millisecond slot.
            base = parse_time(lines[pos]["time"])
            while pos + 1 < len(lines) and lines[pos + 1].get("_inserted"):
                pos += 1
                base = parse_time(lines[pos]["time"])
            t = base + 0.001
            new = [{"time": format_time(t), "sender": op["sender"], "message": copy.deepcopy(op["message"]),
                    "_inserted": True}]
            status = op.get("status", "OK")
            if status is not None:
                new.append({"time": format_time(t + 0.001), "sender": "CEM" if op["sender"] == "RM" else "RM",
                            "message": {"message_type": "ReceptionStatus",
                                        "subject_message_id": op["message"]["message_id"], "status": status},
                            "_inserted": True})
            lines[pos + 1:pos + 1] = new
        else:
            raise ValueError("unknown mutation op %r" % kind)
    for line in lines:
        line.pop("_inserted", None)
    return lines

