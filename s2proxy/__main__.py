"""``python -m s2proxy COMMAND ...``: offline tools that share the proxy's analysis code.

Each command lives in its own module with a ``main(argv) -> int`` function; this file only
dispatches, so a new command is one line in COMMANDS. A command whose module is not installed
(``check`` before the checker's CLI exists) is left out of the help and refused.
"""

import importlib
import importlib.util
import sys

# name -> (module with main(argv), one-line description)
COMMANDS = {
    "validate": ("s2proxy.validate_cli", "check S2 messages (JSON lines) against the schemas (R-001..R-006)"),
    "check": ("s2proxy.checker.cli", "check recorded S2 conversations against the stateful rules"),
}

USAGE = "usage: python -m s2proxy COMMAND [ARGS...]   (python -m s2proxy COMMAND --help for details)"


def _available(module):
    try:
        return importlib.util.find_spec(module) is not None
    except Exception:  # the parent package is missing or broken: the command is not offered
        return False


def _help():
    lines = [USAGE, "", "commands:"]
    for name, (module, text) in COMMANDS.items():
        if _available(module):
            lines.append("  {:10s} {}".format(name, text))
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_help(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    entry = COMMANDS.get(name)
    if entry is None or not _available(entry[0]):
        print("s2proxy: unknown command {!r}\n\n{}".format(name, _help()), file=sys.stderr)
        return 2
    return importlib.import_module(entry[0]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
