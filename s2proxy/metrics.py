"""Prometheus metrics: one observer of the event stream, plus gauges read at scrape time.

Each proxy has its own CollectorRegistry (tests run several in one process). Labels are bounded:
an S2 message type that is not one of the schema's types is counted as ``other``, so a device
cannot grow the label set. The per-message counters are plain dicts and lists of ints that the
observer increments (prometheus_client's own metrics take a lock per increment); they become
metric families only when scraped.
"""

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 1.0)


class Metrics:
    """The metrics of one proxy ``app`` (an S2Proxy: registry, store, feeds)."""

    def __init__(self, app, known_types=()):
        self.app = app
        self.registry = CollectorRegistry()
        self.known_types = frozenset(known_types)
        r = self.registry
        self.sessions_started = Counter("s2proxy_sessions_started", "Sessions started", registry=r)
        self.connections_opened = Counter("s2proxy_connections_opened", "Device connections opened",
                                          ["role"], registry=r)
        self.connections_refused = Counter("s2proxy_connections_refused",
                                           "Device connections refused at the handshake (tokens)",
                                           ["role", "status"], registry=r)
        self.connector_changes = Counter("s2proxy_connector_state_changes",
                                         "Outbound connector state changes, by the state entered",
                                         ["state"], registry=r)
        self.store_written = Counter("s2proxy_store_written", "History records committed",
                                     registry=r)
        self.feed_dropped = Counter("s2proxy_feed_dropped", "Live feed viewers dropped for being slow",
                                    registry=r)
        self._written_seen = 0
        # (event, origin label, type label) -> [messages, bytes]
        self.message_counts = {}
        self._by_raw_key = {}      # the same lists, keyed by the event's raw values (fast path)
        # (rule, severity) -> count
        self.finding_counts = {}
        # forward latency: one count per bucket of LATENCY_BUCKETS, plus +Inf; and the sum
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        r.register(_HotCounters(self))
        r.register(_LiveGauges(self))

    def _type_label(self, message_type):
        if message_type is None:
            return "none"
        return message_type if message_type in self.known_types else "other"

    def __call__(self, event):
        kind = event["event"]
        if "raw" in event:
            raw_key = (kind, event["origin"], event.get("message_type"))
            counts = self._by_raw_key.get(raw_key)
            if counts is None:
                label_key = (kind, raw_key[1] or "none", self._type_label(raw_key[2]))
                counts = self.message_counts.setdefault(label_key, [0, 0])
                if len(self._by_raw_key) < 10000:  # a device inventing types must not grow it
                    self._by_raw_key[raw_key] = counts
            counts[0] += 1
            counts[1] += event.get("size") or 0
            if kind == "forwarded":
                latency = event.get("latency")
                if latency is not None:
                    self.latency_buckets[bisect_left(LATENCY_BUCKETS, latency)] += 1
                    self.latency_sum += latency
            for f in event.get("format_findings") or ():
                self._finding(f)
            for f in event.get("findings") or ():
                self._finding(f)
        elif kind == "finding":
            for f in event.get("findings") or ():
                self._finding(f)
        elif kind == "opened":
            self.connections_opened.labels(event.get("origin") or "none").inc()
        elif kind == "connection_refused":
            self.connections_refused.labels(event.get("origin") or "none",
                                            str(event.get("status"))).inc()
        elif kind == "connector":
            self.connector_changes.labels(str(event.get("state"))).inc()
        elif kind == "session_started":
            self.sessions_started.inc()

    def _finding(self, f):
        key = (f.get("rule"), f.get("severity"))
        if key not in self.finding_counts and len(self.finding_counts) >= 1000:
            # Rules are a fixed set in our code; still cap the label set against surprises.
            key = ("other", key[1])
        self.finding_counts[key] = self.finding_counts.get(key, 0) + 1

    def render(self):
        store = getattr(self.app, "store", None)
        if store is not None:
            # Counted from the store's own counter so the writer thread never touches metrics.
            written = store.written
            self.store_written.inc(max(0, written - self._written_seen))
            self._written_seen = written
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST


class _HotCounters:
    """The per-message counters, turned into metric families at scrape time."""

    def __init__(self, metrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        m = self.metrics
        messages = CounterMetricFamily("s2proxy_messages", "Messages by event, direction (origin) and S2 type",
                                       labels=["event", "origin", "s2_msg_type"])
        by_origin = {}
        for (event, origin, type_label), counts in list(m.message_counts.items()):
            messages.add_metric([event, origin, type_label], counts[0])
            by_origin[origin] = by_origin.get(origin, 0) + counts[1]
        yield messages
        size = CounterMetricFamily("s2proxy_message_bytes", "Message bytes received, by origin",
                                   labels=["origin"])
        for origin, total in sorted(by_origin.items()):
            size.add_metric([origin], total)
        yield size
        findings = CounterMetricFamily("s2proxy_findings", "Findings by rule and severity",
                                       labels=["rule", "severity"])
        for (rule, severity), count in sorted(m.finding_counts.items(), key=lambda kv: str(kv[0])):
            findings.add_metric([str(rule), str(severity)], count)
        yield findings
        buckets, running = [], 0
        for bound, count in zip(LATENCY_BUCKETS + (float("inf"),), m.latency_buckets):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily("s2proxy_forward_latency_seconds",
                                    "From a frame's arrival until it is handed to the peer",
                                    buckets=buckets, sum_value=m.latency_sum)


class _LiveGauges:
    """Gauges read from the registry, the store and the feeds when scraped."""

    def __init__(self, metrics):
        self.metrics = metrics

    def describe(self):
        return []

    def collect(self):
        app = self.metrics.app
        registry = app.registry
        by_role = {"RM": 0, "CEM": 0}
        kept_messages = kept_bytes = 0
        for conv in list(registry.conversations.values()):
            for role, side in conv.sides.items():
                if side is not None:
                    by_role[role] = by_role.get(role, 0) + 1
                kept_messages += conv.kept_count(role)
                kept_bytes += conv.kept_bytes(role)
        g = GaugeMetricFamily("s2proxy_connections", "Open device connections by role", labels=["role"])
        for role, n in sorted(by_role.items()):
            g.add_metric([role], n)
        yield g
        yield GaugeMetricFamily("s2proxy_sessions", "Live sessions", value=len(registry.conversations))
        yield GaugeMetricFamily("s2proxy_kept_messages", "Messages kept for an absent peer",
                                value=kept_messages)
        yield GaugeMetricFamily("s2proxy_kept_bytes", "Bytes kept for an absent peer", value=kept_bytes)
        store = getattr(app, "store", None)
        yield GaugeMetricFamily("s2proxy_store_queue", "History records waiting for the disk",
                                value=store.queued if store is not None else 0)
        yield GaugeMetricFamily("s2proxy_store_paused", "1 while devices are paused for the history",
                                value=1 if store is not None and store.paused else 0)
        analyzer = getattr(app, "analyzer", None)
        yield GaugeMetricFamily("s2proxy_analysis_pending", "Messages waiting for the analysis worker",
                                value=analyzer.pending if analyzer is not None else 0)
        connectors = getattr(app, "connectors", None)
        g = GaugeMetricFamily("s2proxy_connectors", "Outbound connectors by state", labels=["state"])
        by_state = {}
        if connectors is not None:
            for connector in connectors.describe():
                state = str(connector.get("state"))
                by_state[state] = by_state.get(state, 0) + 1
        for state, n in sorted(by_state.items()):
            g.add_metric([state], n)
        yield g
        feeds = getattr(app, "feeds", None)
        yield GaugeMetricFamily("s2proxy_feed_viewers", "Live feed viewers",
                                value=feeds.viewer_count() if feeds is not None else 0)
