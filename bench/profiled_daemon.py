"""Run ``python -m twisted ...`` (twist) under cProfile and write the profile when it stops.

Used by ``bench/run.py --profile``:  python bench/profiled_daemon.py OUT.prof s2analyzer --port ...
twist re-raises the SIGTERM that stopped the reactor (so the exit status tells the signal), which
would end the process before ``python -m cProfile`` writes anything; here the profile is written
first. cProfile adds per-call overhead, so read the result for *where* time goes, not how fast.
"""

import cProfile
import sys

from twisted.application.twist import _twist


def main():
    out = sys.argv[1]
    profile = cProfile.Profile()
    original_exit = _twist._exitWithSignal

    def dump():
        profile.disable()
        profile.dump_stats(out)

    def exit_with_signal(sig):
        dump()
        original_exit(sig)
    _twist._exitWithSignal = exit_with_signal
    profile.enable()
    try:
        _twist.Twist.main([sys.argv[0]] + sys.argv[2:])
    finally:
        dump()


if __name__ == "__main__":
    main()
