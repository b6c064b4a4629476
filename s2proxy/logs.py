"""Logging set-up shared by the daemon's modules: one level filter, set from LOG_LEVEL or a flag.

twistd installs its own observers before our service exists, so the level cannot be applied there.
Instead every s2proxy logger publishes through one filtering observer whose level is set at start-up
(``LOG_LEVEL`` as in s2-analyzer: DEBUG, INFO, WARNING, ERROR, CRITICAL; default INFO).
"""

import os

from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate, Logger,
                            globalLogPublisher)

LEVELS = {
    "DEBUG": LogLevel.debug,
    "INFO": LogLevel.info,
    "WARNING": LogLevel.warn,
    "WARN": LogLevel.warn,
    "ERROR": LogLevel.error,
    "CRITICAL": LogLevel.critical,
}

_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_observer = FilteringLogObserver(lambda event: globalLogPublisher(event), [_predicate])

# Cheap check for hot paths: building a debug event per message costs more than this lookup.
debug_enabled = False


def parse_level(name):
    """Return the LogLevel for a LOG_LEVEL name; raise ValueError naming the accepted values."""
    try:
        return LEVELS[name.strip().upper()]
    except KeyError:
        raise ValueError("unknown log level %r (use one of %s)" % (name, ", ".join(sorted(LEVELS))))


def set_level(name):
    global debug_enabled
    level = parse_level(name)
    _predicate.setLogLevelForNamespace(None, level)
    debug_enabled = level <= LogLevel.debug


def level_from_environment():
    return os.environ.get("LOG_LEVEL", "INFO")


def make_logger(namespace):
    return Logger(namespace=namespace, observer=_observer)
