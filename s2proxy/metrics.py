"""Prometheus metrics: one observer of the event stream, plus gauges read at scrape time.

Each proxy has its own CollectorRegistry (tests run several in one process). Labels are bounded:
an S2 message type that is not one of the schema's types is counted as ``other``, so a device
cannot grow the label set. The observer caches label children, so the hot path is a few dict
look-ups and increments.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
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
        self.messages = Counter("s2proxy_messages", "Messages by event, direction (origin) and S2 type",
                                ["event", "origin", "s2_msg_type"], registry=r)
        self.bytes = Counter("s2proxy_message_bytes", "Message bytes received, by origin",
                             ["origin"], registry=r)
        self.findings = Counter("s2proxy_findings", "Findings by rule and severity",
                                ["rule", "severity"], registry=r)
        self.sessions_started = Counter("s2proxy_sessions_started", "Sessions started", registry=r)
        self.connections_opened = Counter("s2proxy_connections_opened", "Device connections opened",
                                          ["role"], registry=r)
        self.store_written = Counter("s2proxy_store_written", "History records committed",
                                     registry=r)
        self.feed_dropped = Counter("s2proxy_feed_dropped", "Live feed viewers dropped for being slow",
                                    registry=r)
        self.latency = Histogram("s2proxy_forward_latency_seconds",
                                 "From a frame's arrival until it is handed to the peer",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self._written_seen = 0
        r.register(_LiveGauges(self))
        self._children = {}
        self._finding_children = {}

    def _type_label(self, message_type):
        if message_type is None:
            return "none"
        return message_type if message_type in self.known_types else "other"

    def __call__(self, event):
        kind = event["event"]
        if "raw" in event:
            key = (kind, event["origin"], event.get("message_type"))
            children = self._children.get(key)
            if children is None:
                children = (self.messages.labels(kind, key[1] or "none", self._type_label(key[2])),
                            self.bytes.labels(key[1] or "none"))
                if len(self._children) < 10000:
                    self._children[key] = children
            children[0].inc()
            children[1].inc(event.get("size") or 0)
            latency = event.get("latency") if kind == "forwarded" else None
            if latency is not None:
                self.latency.observe(latency)
            for f in event.get("format_findings") or ():
                self._finding(f)
            for f in event.get("findings") or ():
                self._finding(f)
        elif kind == "finding":
            for f in event.get("findings") or ():
                self._finding(f)
        elif kind == "opened":
            self.connections_opened.labels(event.get("origin") or "none").inc()
        elif kind == "session_started":
            self.sessions_started.inc()

    def _finding(self, f):
        key = (f.get("rule"), f.get("severity"))
        child = self._finding_children.get(key)
        if child is None:
            # Rules are a fixed set in our code; still cap the label set against surprises.
            if len(self._finding_children) >= 1000:
                key = ("other", key[1])
            child = self.findings.labels(str(key[0]), str(key[1]))
            self._finding_children[key] = child
        child.inc()

    def render(self):
        store = getattr(self.app, "store", None)
        if store is not None:
            # Counted from the store's own counter so the writer thread never touches metrics.
            written = store.written
            self.store_written.inc(max(0, written - self._written_seen))
            self._written_seen = written
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST


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
        feeds = getattr(app, "feeds", None)
        yield GaugeMetricFamily("s2proxy_feed_viewers", "Live feed viewers",
                                value=feeds.viewer_count() if feeds is not None else 0)
