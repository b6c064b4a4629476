"""``python -m s2proxy validate``: the format rules R-001..R-006 applied offline to files of messages.

Input is JSON lines: one S2 message per line. Output is one JSON line per message with the same
findings the proxy would attach to the frame. Exit status: 0 every message valid, 1 at least one
invalid (an error-severity finding), 2 usage or I/O problems (bad flag, unreadable file, no schemas).
"""

import argparse
import json
import os
import sys

from s2proxy.schemas import SchemaDirError

DESCRIPTION = """\
Validate S2 messages against the S2 JSON schemas (format rules R-001..R-006 of the rule catalogue).

Each FILE holds JSON lines: one S2 message per line ('-' reads standard input). Blank lines (only
whitespace) are skipped but still counted, so line numbers match the file. For every other line one
JSON object is written to standard output:
  {"file": ..., "line": N, "message_type": ..., "message_id": ..., "valid": true|false,
   "errors": [{"rule": "R-004", "severity": "error", "path": "$.values[0].value", "text": ...}]}
"errors" lists every format finding, warnings included; "valid" is false exactly when one of them has
severity "error".

exit status: 0 all messages valid, 1 at least one invalid, 2 usage or I/O error."""


def _parser():
    parser = argparse.ArgumentParser(prog="python -m s2proxy validate", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines file, or - for standard input")
    parser.add_argument("--schemas", "--s2-json-schemas-dir", dest="schemas", metavar="DIR", default=None,
                        help="the s2-json-schema folder of an s2-ws-json checkout (default: the copy "
                             "shipped with s2proxy, else the checkout's s2-ws-json submodule)")
    parser.add_argument("--strict", action="store_true",
                        help="report ids that are not UUIDs (R-006) as errors instead of warnings")
    return parser


def _open_all(names, stdin):
    """Open every input before writing anything, so a typo fails cleanly (exit 2) without output."""
    handles = []
    for name in names:
        if name == "-":
            handles.append((name, stdin))
            continue
        try:
            handles.append((name, open(name, "rb")))
        except OSError as e:
            for _, handle in handles:
                if handle is not stdin:
                    handle.close()
            raise OSError("cannot read {}: {}".format(name, e.strerror or e))
    return handles


def main(argv=None, stdin=None, stdout=None, stderr=None):
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    args = _parser().parse_args(argv)

    from s2proxy.validation import Validator  # after parsing: --help needs no schemas
    try:
        validator = Validator(args.schemas, strict=args.strict)
    except SchemaDirError as e:
        print("s2proxy validate: {}".format(e), file=stderr)
        return 2
    try:
        handles = _open_all(args.files, stdin)
    except OSError as e:
        print("s2proxy validate: {}".format(e), file=stderr)
        return 2

    invalid = 0
    try:
        for name, handle in handles:
            try:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    # A trailing CR/LF is JSON whitespace, but keep it out of error offsets.
                    analysis = validator.analyse(line.rstrip(b"\r\n"))
                    if not analysis.valid:
                        invalid += 1
                    stdout.write(json.dumps({
                        "file": name, "line": number, "message_type": analysis.message_type,
                        "message_id": analysis.message_id, "valid": analysis.valid,
                        "errors": [{"rule": f["rule"], "severity": f["severity"], "path": f["path"],
                                    "text": f["text"]} for f in analysis.findings],
                    }) + "\n")
                    if handle is stdin:
                        stdout.flush()  # usable as a filter in a pipe
            except OSError as e:
                print("s2proxy validate: cannot read {}: {}".format(name, e.strerror or e), file=stderr)
                return 2
            finally:
                if handle is not stdin:
                    handle.close()
        stdout.flush()
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing more to say to it, and nothing at exit either
        # (the interpreter's final flush of sys.stdout would otherwise complain on stderr).
        if stdout is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1 if invalid else 0
    return 1 if invalid else 0
