"""``twistd s2analyzer``: command-line options and the service they build.

Imported by twistd only when the s2analyzer plugin is chosen, so ``twistd --help`` stays cheap.
Every bad value stops start-up with a message that names the flag.
"""

import json
import os

from twisted.python import usage

from s2proxy import logs

MIB = 1024 * 1024


def _positive_int(name):
    def parse(value):
        try:
            number = int(value)
        except ValueError:
            raise usage.UsageError("--%s: %r is not an integer" % (name, value))
        if number < 0:
            raise usage.UsageError("--%s: must not be negative, got %d" % (name, number))
        return number
    return parse


def _seconds(name):
    def parse(value):
        try:
            number = float(value)
        except ValueError:
            raise usage.UsageError("--%s: %r is not a number of seconds" % (name, value))
        if number < 0:
            raise usage.UsageError("--%s: must not be negative, got %s" % (name, value))
        return number
    return parse


def _worker_count(value):
    if value not in ("0", "1"):
        raise usage.UsageError("--analysis-workers: use 0 (in the forwarding thread) or 1 (a worker "
                               "process), got %r" % value)
    return int(value)


def _store_writer(value):
    if value not in ("thread", "process"):
        raise usage.UsageError("--store-writer: use thread or process, got %r" % value)
    return value


def endpoint_string(value):
    """A bare port number means all interfaces over TCP, as in s2-analyzer."""
    value = value.strip()
    if value.isdigit():
        return "tcp:%s" % value
    return value


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "s2proxy: an analysing proxy for S2 (EN 50491-12-2). RMs connect to "
        "ws://HOST:PORT/backend/rm/{rm_id}/cem/{cem_id}/ws and CEMs to "
        "ws://HOST:PORT/backend/cem/{cem_id}/rm/{rm_id}/ws; every message is forwarded unchanged "
        "and checked against the S2 JSON schemas and the conversation rules. The environment "
        "variable LOG_LEVEL (DEBUG, INFO, WARNING, ERROR) sets the log level."
    )

    optFlags = [
        ["no-validate", None, "Forward only: skip format and stateful checks (for benchmarks)."],
        ["strict", None, "Strict mode: warnings that S2-PROTOCOL.md section 8 marks as strict-mode errors become errors."],
        ["mirror-close", None, "When one side disconnects, close the other side too (default: it stays connected)."],
        # -- issue 4 flags --
        ["no-store", None, "Keep no history (nothing is written to disk; history endpoints answer 503)."],
        ["api-guard-reads", None, "Guard reads (history, sessions, health, metrics, feeds) like changes: allowed networks or the API token."],
        # -- issue 5 flags --
        ["connect-insecure", None, "Do not verify the certificates of wss:// peers that connectors dial "
                                   "(warned on every connection; never in production)."],
    ]

    optParameters = [
        ["port", "p", "tcp:8001", "Port number or Twisted server endpoint string "
                                  "(tcp:8001:interface=127.0.0.1, ssl:8443:privateKey=key.pem:certKey=cert.pem, "
                                  "systemd:domain=INET:index=0).", endpoint_string],
        ["schemas", None, None, "Folder s2-json-schema/ of an s2-ws-json checkout (default: the copy shipped with s2proxy)."],
        ["max-kept-messages", None, 1000, "Messages kept per direction while the peer is absent.", _positive_int("max-kept-messages")],
        ["max-kept-bytes", None, 4 * MIB, "Bytes kept per direction while the peer is absent.", _positive_int("max-kept-bytes")],
        ["analysis-workers", None, None, "Where messages are validated and checked: 0 = in the forwarding thread, 1 = in a worker process (default: 1 with 2+ CPU cores, else 0).", _worker_count],
        ["store-writer", None, None, "Who writes the history: thread (in the daemon) or process (a child process; default with 2+ CPU cores).", _store_writer],
        ["kept-ttl", None, 3600.0, "Seconds kept messages wait for their peer once both sides are gone (then discarded, and recorded).", _seconds("kept-ttl")],
        ["max-message-size", None, MIB, "Largest WebSocket message in bytes, after decompression (larger: close 1009).", _positive_int("max-message-size")],
        ["max-frame-size", None, MIB, "Largest WebSocket frame payload in bytes (larger: close 1009).", _positive_int("max-frame-size")],
        ["auto-ping-interval", None, 50.0, "Seconds between WebSocket pings to each device (S2: not more often than every 50 s; 0 = off).", _seconds("auto-ping-interval")],
        ["auto-ping-timeout", None, 20.0, "Seconds to wait for a pong before dropping the connection.", _seconds("auto-ping-timeout")],
        ["open-handshake-timeout", None, 10.0, "Seconds a client has to complete the WebSocket opening handshake.", _seconds("open-handshake-timeout")],
        ["max-connections", None, 10000, "Most device connections at once (0 = no limit); more are refused with 503.", _positive_int("max-connections")],
        ["log-level", None, None, "Log level (DEBUG, INFO, WARNING, ERROR); default: $LOG_LEVEL or INFO."],
        # -- issue 4 parameters --
        ["data-dir", None, None, "Folder of the history database (default: $STATE_DIRECTORY or the working directory)."],
        ["history-max-age", None, "30d", "Delete history older than this (s, m, h, d; 0 = keep)."],
        ["history-max-bytes", None, "1G", "Keep the history database under this size (K, M, G; 0 = no limit)."],
        ["store-queue-max", None, 20000, "History records waiting for the disk before devices are paused.", _positive_int("store-queue-max")],
        ["store-flush-interval", None, 0.05, "Seconds between history batch writes.", _seconds("store-flush-interval")],
        ["api-allow", None, "127.0.0.0/8,::1", "Networks (comma-separated) allowed to change things (inject, connectors) without the token."],
        ["api-token", None, None, "Bearer token that allows API changes from anywhere (or use --api-token-file)."],
        ["api-token-file", None, None, "File whose first line is the API token."],
        ["api-origins", None, "", "Browser origins (comma-separated, * = any) allowed besides the proxy's own."],
        ["feed-max-buffer", None, "4M", "Bytes that may wait for a live-feed viewer before it is dropped."],
        # -- issue 5 parameters --
        ["connectors-file", None, None, "JSON file of outbound connectors, each with its own token, headers, CA, "
                                        "pin and client certificate (docs/deployment.md)."],
        ["connect-ca", None, None, "CA file (PEM) that wss:// connectors trust instead of the system trust store."],
        ["connect-client-cert", None, None, "Client certificate (PEM; the key inside or in --connect-client-key) "
                                            "that connectors present."],
        ["connect-client-key", None, None, "Private key (PEM) of --connect-client-cert."],
        ["connect-timeout", None, 10.0, "Seconds a connector waits for the TCP connection.", _seconds("connect-timeout")],
        ["backoff-initial", None, 1.0, "Seconds a connector waits before its first retry (then times "
                                       "--backoff-factor, plus 0-1 s jitter).", _seconds("backoff-initial")],
        ["backoff-max", None, 60.0, "Longest wait between a connector's attempts (before jitter).", _seconds("backoff-max")],
        ["backoff-factor", None, 1.5, "Growth of a connector's wait after each failed attempt.", _seconds("backoff-factor")],
        ["tls-min-version", None, "1.3", "Lowest TLS version of the ssl: listener and of wss:// connectors "
                                         "(1.3 as S2 asks; 1.2 for old devices, logged as a warning)."],
        ["tls-client-ca", None, None, "Require client certificates signed by this CA (PEM) on the ssl: listener "
                                      "(mutual TLS)."],
        ["device-tokens", None, None, "Token file (JSON): devices must send Authorization: Bearer with a token "
                                      "allowed for their role and id (else 401/403). Off by default."],
    ]

    def __init__(self):
        usage.Options.__init__(self)
        self["websocket-protocol-option"] = {}
        self["checker-option"] = {}

    def opt_s2_json_schemas_dir(self, value):
        """Same as --schemas (the flag of flexiblepower/s2-analyzer)."""
        self["schemas"] = value

    def opt_websocket_protocol_option(self, arg):
        """KEY=JSON: set any Autobahn WebSocket protocol option (repeatable), e.g. autoPingInterval=30."""
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise usage.UsageError("--websocket-protocol-option: expected KEY=JSON, got %r" % arg)
        try:
            self["websocket-protocol-option"][key] = json.loads(value)
        except ValueError as e:
            raise usage.UsageError("--websocket-protocol-option %s: value is not JSON (%s)" % (key, e))

    def opt_connect(self, spec):
        """cem:CEM_ID:RM_ID:URL or rm:RM_ID:CEM_ID:URL: dial this listening CEM or RM (repeatable; issue 5)."""
        self.setdefault("connect", []).append(spec)

    def opt_checker_option(self, arg):
        """NAME=SECONDS: set a checker duration (t_rs, t_rs_max, t_close, t_status, t_switch, t_meas, t_skew) (repeatable)."""
        key, sep, value = arg.partition("=")
        try:
            self["checker-option"][key.strip()] = float(value)
        except ValueError:
            raise usage.UsageError("--checker-option: expected NAME=SECONDS, got %r" % arg)
        if not sep:
            raise usage.UsageError("--checker-option: expected NAME=SECONDS, got %r" % arg)

    def postOptions(self):
        level = self["log-level"] or logs.level_from_environment()
        try:
            logs.parse_level(level)
        except ValueError as e:
            raise usage.UsageError(("--log-level: %s" if self["log-level"] else "LOG_LEVEL: %s") % e)
        self["log-level"] = level
        if self["schemas"] is not None:
            self["schemas"] = os.path.abspath(os.path.expanduser(self["schemas"]))
        if not self["no-validate"]:
            from s2proxy.schemas import SchemaDirError, find_schema_dir
            try:
                find_schema_dir(self["schemas"])
            except SchemaDirError as e:
                raise usage.UsageError(str(e))
        self._check_checker_options()
        self._check_port()
        # -- issue 4 checks --
        from s2proxy.api import check_options
        check_options(self)
        # -- issue 5 checks --
        from s2proxy.connectors import check_options as check_connector_options
        check_connector_options(self)

    def _check_checker_options(self):
        known = ("t_rs", "t_rs_max", "t_close", "t_status", "t_switch", "t_meas", "t_skew")
        for key in self["checker-option"]:
            if key not in known:
                raise usage.UsageError("--checker-option: unknown duration %r (known: %s)" % (key, ", ".join(known)))

    def _check_port(self):
        from twisted.internet import endpoints, reactor
        try:
            endpoints.serverFromString(reactor, self["port"])
        except Exception as e:
            raise usage.UsageError("--port %s: %s" % (self["port"], e))


def settings_from_options(config):
    """Translate parsed options into the settings dict that S2Proxy takes."""
    return {
        "port": config["port"],
        "schemas": config["schemas"],
        "validate": not config["no-validate"],
        "strict": bool(config["strict"]),
        "checker_options": dict(config["checker-option"]),
        "max_kept_messages": config["max-kept-messages"],
        "max_kept_bytes": config["max-kept-bytes"],
        "mirror_close": bool(config["mirror-close"]),
        "kept_ttl": config["kept-ttl"],
        "analysis_workers": config["analysis-workers"],
        "store_writer": config["store-writer"],
        "max_message_size": config["max-message-size"],
        "max_frame_size": config["max-frame-size"],
        "auto_ping_interval": config["auto-ping-interval"],
        "auto_ping_timeout": config["auto-ping-timeout"],
        "open_handshake_timeout": config["open-handshake-timeout"],
        "max_connections": config["max-connections"],
        "websocket_protocol_options": dict(config["websocket-protocol-option"]),
        # -- issue 4 settings --
        "store": not config["no-store"],
        "data_dir": config["data-dir"],
        "history_max_age": config["history-max-age"],
        "history_max_bytes": config["history-max-bytes"],
        "store_queue_max": config["store-queue-max"],
        "store_flush_interval": config["store-flush-interval"],
        "api_allow": config["api-allow"],
        "api_token": config["api-token"],
        "api_guard_reads": bool(config["api-guard-reads"]),
        "api_origins": config["api-origins"],
        "feed_max_buffer": config["feed-max-buffer"],
        # -- issue 5 settings --
        "connect": config.get("connect-entries", []),
        "connect_ca": config["connect-ca"],
        "connect_client_cert": config["connect-client-cert"],
        "connect_client_key": config["connect-client-key"],
        "connect_insecure": bool(config["connect-insecure"]),
        "connect_timeout": config["connect-timeout"],
        "backoff_initial": config["backoff-initial"],
        "backoff_max": config["backoff-max"],
        "backoff_factor": config["backoff-factor"],
        "tls_min_version": config["tls-min-version"],
        "tls_client_ca": config["tls-client-ca"],
        "device_tokens": config["device-tokens"],
    }


def makeService(config, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    logs.set_level(config["log-level"])
    from s2proxy.service import S2Proxy
    return S2Proxy(settings_from_options(config), reactor)
