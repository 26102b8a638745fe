//! Counters and histograms of a node, rendered in the Prometheus text format by `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    /// Sockets authenticated and connected to this node.
    pub sockets: Gauge,
    /// Disconnected sockets still counted in their rooms until the presence grace ends.
    pub presence_held: Gauge,
    /// Events appended to the log by this node.
    pub events_appended: Counter,
    /// Commands by outcome: `ok`, `rejected` (a rule said no), `conflict`, `unavailable`, `error`.
    pub commands: Family<Labels, Counter>,
    /// `message:send` received → ack sent, in seconds.
    pub send_ack_seconds: Histogram,
    /// Events a socket could not take because its send buffer was full (a slow or stalled
    /// client, which recovers by rejoining with `sinceOffset`).
    pub dropped_emits: Counter,
    /// Log positions a projection is behind the log, set when scraped.
    pub projection_lag: Family<Labels, Gauge>,
    /// Estimated bytes of the aggregates cached in memory, and how many there are.
    pub cache_bytes: Gauge,
    pub cache_entries: Gauge,
    /// Aggregates loaded into the cache, by `source`: `snapshot` (plus its tail) or `log`.
    pub aggregate_loads: Family<Labels, Counter>,
    pub aggregate_load_seconds: Histogram,
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chat");
        let m = Self {
            sockets: Gauge::default(),
            presence_held: Gauge::default(),
            events_appended: Counter::default(),
            commands: Family::default(),
            send_ack_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            dropped_emits: Counter::default(),
            projection_lag: Family::default(),
            cache_bytes: Gauge::default(),
            cache_entries: Gauge::default(),
            aggregate_loads: Family::default(),
            aggregate_load_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            registry: Registry::default(),
        };
        registry.register(
            "sockets",
            "Authenticated sockets connected to this node",
            m.sockets.clone(),
        );
        registry.register(
            "presence_held",
            "Disconnected sockets still counted in their rooms until the presence grace ends",
            m.presence_held.clone(),
        );
        registry.register(
            "events_appended",
            "Events appended to the log by this node",
            m.events_appended.clone(),
        );
        registry.register("commands", "Commands by outcome", m.commands.clone());
        registry.register(
            "send_ack_seconds",
            "message:send received to ack sent",
            m.send_ack_seconds.clone(),
        );
        registry.register(
            "dropped_emits",
            "Events slow sockets could not take",
            m.dropped_emits.clone(),
        );
        registry.register(
            "projection_lag",
            "Log positions a projection is behind",
            m.projection_lag.clone(),
        );
        registry.register(
            "aggregate_cache_bytes",
            "Estimated bytes of the aggregates cached in memory",
            m.cache_bytes.clone(),
        );
        registry.register(
            "aggregate_cache_entries",
            "Aggregates cached in memory",
            m.cache_entries.clone(),
        );
        registry.register(
            "aggregate_loads",
            "Aggregates loaded into the cache, by source",
            m.aggregate_loads.clone(),
        );
        registry.register(
            "aggregate_load_seconds",
            "Time to load an aggregate into the cache",
            m.aggregate_load_seconds.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    pub fn add_dropped(&self, n: u64) -> u64 {
        self.dropped_emits.inc_by(n) + n
    }

    pub fn command(&self, outcome: &'static str) {
        self.commands
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// An aggregate loaded from `source` (`snapshot` or `log`) in `seconds`.
    pub fn aggregate_loaded(&self, source: &'static str, seconds: f64) {
        self.aggregate_loads
            .get_or_create(&vec![("source", source.to_owned())])
            .inc();
        self.aggregate_load_seconds.observe(seconds);
    }

    pub fn set_lag(&self, projection: &str, lag: u64) {
        self.projection_lag
            .get_or_create(&vec![("projection", projection.to_owned())])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_prometheus_text() {
        let m = super::Metrics::default();
        m.command("ok");
        m.events_appended.inc_by(3);
        m.send_ack_seconds.observe(0.002);
        m.set_lag("chat", 7);
        let text = m.render();
        assert!(
            text.contains("chat_commands_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("chat_events_appended_total 3"), "{text}");
        assert!(text.contains("chat_send_ack_seconds_count 1"), "{text}");
        assert!(
            text.contains("chat_projection_lag{projection=\"chat\"} 7"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
