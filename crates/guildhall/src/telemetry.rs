//! Logs, request IDs and metrics.
//!
//! * [`init_logging`] installs the `tracing` subscriber: readable lines or JSON objects.
//! * [`observe`] wraps every request: it takes the caller's `X-Request-Id` (when it is a
//!   sane token) or makes one, returns it on the response, runs the request inside a
//!   span that carries it (so every log line of the request names it), logs one line per
//!   request, and counts it in [`Metrics`].
//! * [`Metrics`] is what `/metrics` serves in Prometheus' text format: requests by
//!   operation and status, their latencies, sign-in failures, and the outbox's depth,
//!   read from the database at scrape time so that every instance reports the same
//!   shared outbox.

use std::sync::Arc;
use std::time::Instant;

use guildhall_store::Store;
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::Instrument;

use crate::config::{LogConfig, LogFormat};

/// The header that carries a request's ID, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Installs the global `tracing` subscriber. Logs go to standard error, so that
/// standard output carries only what commands print for people and scripts.
///
/// # Errors
/// When the filter is invalid (checked earlier by [`crate::config::Config::resolve`]) or
/// a subscriber is already installed.
pub fn init_logging(config: &LogConfig) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.filter)?;
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colours);
    match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    operation: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabels {
    state: &'static str,
}

/// The service's Prometheus metrics. Cheap to clone.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds the registry and the store
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    sign_in_failures: Family<SignInLabels, Counter>,
    outbox: Family<OutboxLabels, Gauge>,
    outbox_errors: Counter,
    store: Arc<Store>,
}

impl Metrics {
    /// Metrics whose outbox gauges read `store`.
    #[must_use]
    pub fn new(store: Arc<Store>) -> Self {
        let mut registry = Registry::with_prefix("guildhall");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by operation and status", requests.clone());
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by operation",
            latency.clone(),
        );
        let sign_in_failures = Family::<SignInLabels, Counter>::default();
        registry.register(
            "sign_in_failures",
            "Refused sign-ins: wrong_credentials (wrong password or unknown account) or throttled",
            sign_in_failures.clone(),
        );
        let outbox = Family::<OutboxLabels, Gauge>::default();
        registry.register(
            "outbox_messages",
            "Messages in the shared outbox: pending (to send, incl. leased), leased (being sent), dead (given up)",
            outbox.clone(),
        );
        let outbox_errors = Counter::default();
        registry.register(
            "outbox_read_errors",
            "Scrapes that could not read the outbox's depth",
            outbox_errors.clone(),
        );
        Self { registry: Arc::new(registry), requests, latency, sign_in_failures, outbox, outbox_errors, store }
    }

    fn record(&self, method: &str, operation: &str, status: StatusCode, seconds: f64) {
        let (method, operation) = (method.to_owned(), operation.to_owned());
        self.latency
            .get_or_create(&LatencyLabels { method: method.clone(), operation: operation.clone() })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels { method, operation: operation.clone(), status: status.as_u16() })
            .inc();
        if operation == "login" {
            let reason = match status {
                StatusCode::UNAUTHORIZED => Some("wrong_credentials"),
                StatusCode::TOO_MANY_REQUESTS => Some("throttled"),
                _ => None,
            };
            if let Some(reason) = reason {
                self.sign_in_failures.get_or_create(&SignInLabels { reason }).inc();
            }
        }
    }

    /// The metrics in Prometheus' text format, with the outbox's depth read now.
    pub async fn render(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        match self.store.outbox_depth(now).await {
            Ok(depth) => {
                for (state, value) in [("pending", depth.pending), ("leased", depth.leased), ("dead", depth.dead)] {
                    self.outbox.get_or_create(&OutboxLabels { state }).set(i64::try_from(value).unwrap_or(i64::MAX));
                }
            }
            Err(error) => {
                self.outbox_errors.inc();
                tracing::warn!(%error, "cannot read the outbox's depth for /metrics");
            }
        }
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 8 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// Wraps a request: request ID, span, access log line, metrics.
pub async fn observe<E: Endpoint>(next: E, mut request: Request, metrics: Metrics) -> poem::Result<Response> {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    if let Ok(value) = HeaderValue::from_str(&id) {
        request.headers_mut().insert(REQUEST_ID, value);
    }
    // Standard methods only as label values: any other is `other`, so made-up methods
    // cannot create metric series without end.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
    let started = Instant::now();
    let mut response = match next.call(request).instrument(span.clone()).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    let elapsed = started.elapsed();
    let status = response.status();
    let operation = response
        .data::<poem_openapi::OperationId>()
        .map_or_else(|| fallback_operation(&path, status), |op| op.0.to_owned());
    metrics.record(&method, &operation, status, elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let millis = (elapsed.as_secs_f64() * 10_000.0).round() / 10.0;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), millis, operation = %operation, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), millis, operation = %operation, "request");
        }
    });
    Ok(response)
}

/// A request ID we echo: 1 to 128 characters of letters, digits, `-`, `_`, `.`, `:`.
fn is_sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The metrics label of a request that reached no API operation: a fixed name per
/// fixed path, so that probing random paths cannot create unbounded label values.
fn fallback_operation(path: &str, status: StatusCode) -> String {
    let known = match path {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/openapi.json" => "openapi",
        _ if path.starts_with("/docs") => "docs",
        _ if path.starts_with("/api/") && status == StatusCode::NOT_FOUND => "unknown_api_path",
        _ if path.starts_with("/api/") => "api_unrouted",
        _ => "other",
    };
    known.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_echoed_only_when_they_are_short_plain_tokens() {
        assert!(is_sane_request_id("0192f0c1-7a2b-7cc3-8d4e-5f6a7b8c9d0e"));
        assert!(is_sane_request_id("lb:abc.123_x"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("with space"));
        assert!(!is_sane_request_id("line\nbreak"));
        assert!(!is_sane_request_id(&"a".repeat(129)));
    }

    #[test]
    fn unrouted_paths_share_a_few_fixed_labels() {
        assert_eq!(fallback_operation("/healthz", StatusCode::OK), "healthz");
        assert_eq!(fallback_operation("/api/v1/no-such-thing-123", StatusCode::NOT_FOUND), "unknown_api_path");
        assert_eq!(fallback_operation("/wp-admin/setup.php", StatusCode::NOT_FOUND), "other");
    }
}
