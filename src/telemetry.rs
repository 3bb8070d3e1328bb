//! Logging setup and the Prometheus metrics every layer updates.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label set for per-transport connection gauges.
pub type TransportLabels = Vec<(&'static str, &'static str)>;

/// Process-wide metrics, exposed at `/metrics` in the Prometheus text format.
pub struct Metrics {
    registry: Registry,
    /// Open real-time connections by transport, refreshed when scraped.
    pub connections: Family<TransportLabels, Gauge>,
    /// Distinct users with at least one live connection.
    pub online_users: Gauge,
    /// Messages and system events committed since start.
    pub messages_stored: Counter,
    /// Events queued to a connection since start (one per recipient).
    pub messages_delivered: Counter,
    /// Seconds from a message's arrival at the service to its queueing for a recipient.
    pub delivery_latency: Histogram,
    /// Events dropped because a connection's outbound queue was full.
    pub queue_drops: Counter,
    /// Connections closed because their outbound queue was full.
    pub slow_disconnects: Counter,
    /// Seconds spent in store writes that commit a message.
    pub store_write_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("confab");
        let connections = Family::<TransportLabels, Gauge>::default();
        let online_users = Gauge::default();
        let messages_stored = Counter::default();
        let messages_delivered = Counter::default();
        // 100 µs to about 6.5 s in powers of two.
        let delivery_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 17),
        );
        let queue_drops = Counter::default();
        let slow_disconnects = Counter::default();
        let store_write_latency = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 17),
        );

        registry.register(
            "connections",
            "Open real-time connections by transport",
            connections.clone(),
        );
        registry.register(
            "online_users",
            "Users with at least one live connection",
            online_users.clone(),
        );
        registry.register(
            "messages_stored",
            "Messages and system events committed since start",
            messages_stored.clone(),
        );
        registry.register(
            "messages_delivered",
            "Events queued to recipient connections since start",
            messages_delivered.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Time from a message reaching the service to its queueing for a recipient",
            delivery_latency.clone(),
        );
        registry.register(
            "queue_drops",
            "Events dropped because a connection's outbound queue was full",
            queue_drops.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Connections closed because they stopped reading",
            slow_disconnects.clone(),
        );
        registry.register(
            "store_write_latency_seconds",
            "Time to commit a message to the store",
            store_write_latency.clone(),
        );

        Self {
            registry,
            connections,
            online_users,
            messages_stored,
            messages_delivered,
            delivery_latency,
            queue_drops,
            slow_disconnects,
            store_write_latency,
        }
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global tracing subscriber. `RUST_LOG` overrides `level`.
pub fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    use std::io::IsTerminal;
    // Colour codes only help a person at a terminal; files and journals get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second call (tests) keeps the first subscriber.
    let _ = result;
}
