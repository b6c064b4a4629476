"""The analysis worker process (``python -m s2proxy.analysis_worker``), started by the daemon.

Reads length-prefixed pickled batches of commands on stdin (the first frame is the
configuration), runs them through :class:`s2proxy.analysis.AnalysisCore`, and writes one frame
per batch on stdout: ``(results, rule_errors)``. It exits when stdin closes. Only its parent
writes to it, through a pipe; it reads nothing else.
"""

import pickle
import sys

from s2proxy.analysis import _HEADER, AnalysisCore, pack


def _read_exactly(stream, size):
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(stream):
    header = _read_exactly(stream, 4)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    data = _read_exactly(stream, size)
    if data is None:
        return None
    return pickle.loads(data)


def build_core(config, errors):
    from s2proxy.validation import Validator
    validator = Validator(config.get("schemas"), strict=config.get("strict", False))
    checker_factory = None
    try:
        from s2proxy.checker import Checker, CheckerConfig
    except ImportError:
        Checker = None
    if Checker is not None and config.get("checker", True):
        options = dict(config.get("checker_options") or {})
        options["strict"] = config.get("strict", False)
        options["on_error"] = lambda rule, exc: errors.append((str(rule), repr(exc)))
        checker_config = CheckerConfig(**options)
        checker_factory = lambda: Checker(checker_config)  # noqa: E731
    return AnalysisCore(validator, checker_factory,
                        on_error=lambda where, exc: errors.append((where, repr(exc))))


def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    config = read_frame(stdin)
    if config is None:
        return 0
    errors = []
    core = build_core(config, errors)
    while True:
        batch = read_frame(stdin)
        if batch is None:
            return 0
        results = []
        for cmd in batch:
            try:
                result, _ = core.handle(cmd)
            except Exception as exc:
                errors.append((cmd[0], repr(exc)))
                result = None
            results.append(result)
        stdout.write(pack((results, errors[:])))
        stdout.flush()
        del errors[:]


if __name__ == "__main__":
    sys.exit(main())
