//! `GET /metrics`: counters and gauges in the Prometheus text exposition format (0.0.4).
//!
//! Exposed: the read cache's hits and misses per layer (in-process `local`, Redis `shared`),
//! its errors, invalidations, size and hit ratio; the hot-blob cache's hits, misses and size;
//! the queue's depth — jobs waiting, in flight and dead-lettered; the open HTTP connections
//! of each serve thread, the requests in flight and answered per status class, and those
//! the rate limits refused per class; each circuit breaker's state, transitions and refused
//! calls. Values are read when scraped: the cache keeps its own atomic counters and the
//! queue answers `depth()`, so nothing is recorded twice.
//!
//! ## Why no metrics library?
//! A dozen series read from two snapshots need formatting, not a registry; the format is a
//! few lines of text. When histograms arrive (request latency), a client such as
//! `prometheus-client` should replace this module.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use deploystack_core::breaker::{BreakerState, BreakerStats};
use deploystack_core::cache::{BlobCacheStats, CacheStats};
use deploystack_core::queue::{QueueDepth, QueueError};
use deploystack_core::ratelimit::Class;

use crate::state::AppState;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`. Always 200: a queue that cannot be asked shows as
/// `deploystack_queue_up 0`, so the scrape itself still succeeds.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Metrics for Prometheus",
    description = "The text exposition format: requests by status class, connections, caches, the queue, circuit breakers. docs/api.md lists every metric.",
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4")),
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let services = &state.services;
    let cache = services
        .cache_stats
        .as_ref()
        .map(|handle| handle.snapshot());
    let blobs = services
        .blob_cache_stats
        .as_ref()
        .map(|handle| handle.snapshot());
    let breakers: Vec<BreakerStats> = services.breakers.iter().map(|b| b.stats()).collect();
    let queue = services.queue.depth().await;
    if let Err(err) = &queue {
        tracing::warn!(error = %err, "metrics: cannot read the queue depth");
    }
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(
            cache.as_ref(),
            blobs.as_ref(),
            &queue,
            &breakers,
            &HttpStats {
                connections: &state.connections.per_thread(),
                requests_in_flight: state.requests.in_flight(),
                answered: [1, 2, 3, 4, 5].map(|class| state.requests.answered(class)),
                rate_limited: Class::ALL.map(|class| state.requests.rate_limited(class)),
            },
        ),
    )
        .into_response()
}

/// What the connection layer and the accounting layer count.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpStats<'a> {
    /// Open connections of each serve thread.
    pub connections: &'a [usize],
    /// Requests being answered now.
    pub requests_in_flight: u64,
    /// Answers given so far per status class, 1xx to 5xx.
    pub answered: [u64; 5],
    /// Requests the rate limits refused so far, per class in the order of `Class::ALL`.
    pub rate_limited: [u64; 3],
}

/// The exposition text for these snapshots.
pub fn render(
    cache: Option<&CacheStats>,
    blobs: Option<&BlobCacheStats>,
    queue: &Result<QueueDepth, QueueError>,
    breakers: &[BreakerStats],
    http: &HttpStats<'_>,
) -> String {
    let mut out = Exposition::default();
    out.family(
        "deploystack_cache_enabled",
        "gauge",
        "Whether repository reads are cached (1) or not (0).",
    );
    out.sample("deploystack_cache_enabled", &[], u64::from(cache.is_some()));
    if let Some(stats) = cache {
        render_cache(&mut out, stats);
    }
    out.family(
        "deploystack_blob_cache_enabled",
        "gauge",
        "Whether small blobs are served from memory (1) or always from storage (0).",
    );
    out.sample(
        "deploystack_blob_cache_enabled",
        &[],
        u64::from(blobs.is_some()),
    );
    if let Some(stats) = blobs {
        render_blob_cache(&mut out, stats);
    }
    render_queue(&mut out, queue);
    render_breakers(&mut out, breakers);
    out.family(
        "deploystack_http_connections",
        "gauge",
        "Open HTTP connections per serve thread; the server keeps them from drifting apart.",
    );
    for (thread, open) in http.connections.iter().enumerate() {
        out.sample(
            "deploystack_http_connections",
            &[("thread", &thread.to_string())],
            open,
        );
    }
    out.family(
        "deploystack_http_requests_in_flight",
        "gauge",
        "HTTP requests being answered now.",
    );
    out.sample(
        "deploystack_http_requests_in_flight",
        &[],
        http.requests_in_flight,
    );
    out.family(
        "deploystack_http_responses_total",
        "counter",
        "HTTP answers given, by status class.",
    );
    for (class, count) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .zip(http.answered)
    {
        out.sample(
            "deploystack_http_responses_total",
            &[("class", class)],
            count,
        );
    }
    out.family(
        "deploystack_rate_limited_total",
        "counter",
        "API requests refused with 429 by the rate limits, by class.",
    );
    for (class, count) in Class::ALL.iter().zip(http.rate_limited) {
        out.sample(
            "deploystack_rate_limited_total",
            &[("class", class.as_str())],
            count,
        );
    }
    out.0
}

fn render_cache(out: &mut Exposition, stats: &CacheStats) {
    out.family(
        "deploystack_cache_hits_total",
        "counter",
        "Repository reads answered by a cache layer (local: in-process, shared: Redis).",
    );
    out.sample(
        "deploystack_cache_hits_total",
        &[("layer", "local")],
        stats.local_hits,
    );
    out.sample(
        "deploystack_cache_hits_total",
        &[("layer", "shared")],
        stats.shared_hits,
    );
    out.family(
        "deploystack_cache_misses_total",
        "counter",
        "Repository reads a cache layer could not answer; shared is only asked on local misses.",
    );
    out.sample(
        "deploystack_cache_misses_total",
        &[("layer", "local")],
        stats.local_misses,
    );
    out.sample(
        "deploystack_cache_misses_total",
        &[("layer", "shared")],
        stats.shared_misses,
    );
    out.family(
        "deploystack_cache_errors_total",
        "counter",
        "Shared-layer commands that failed; reads then went to the repository.",
    );
    out.sample(
        "deploystack_cache_errors_total",
        &[("layer", "shared")],
        stats.shared_errors,
    );
    out.family(
        "deploystack_cache_invalidations_total",
        "counter",
        "Cache invalidations published to other nodes (sent) and applied from them (received).",
    );
    out.sample(
        "deploystack_cache_invalidations_total",
        &[("direction", "sent")],
        stats.invalidations_sent,
    );
    out.sample(
        "deploystack_cache_invalidations_total",
        &[("direction", "received")],
        stats.invalidations_received,
    );
    out.family(
        "deploystack_cache_resyncs_total",
        "counter",
        "Times the in-process cache was emptied after its invalidation feed was lost.",
    );
    out.sample("deploystack_cache_resyncs_total", &[], stats.resyncs);
    out.family(
        "deploystack_cache_entries",
        "gauge",
        "Entries in the in-process cache.",
    );
    out.sample("deploystack_cache_entries", &[], stats.local_entries);
    out.family(
        "deploystack_cache_bytes",
        "gauge",
        "Approximate bytes the in-process cache holds.",
    );
    out.sample("deploystack_cache_bytes", &[], stats.local_bytes);
    out.family(
        "deploystack_cache_max_bytes",
        "gauge",
        "Memory budget of the in-process cache (cache_max_bytes).",
    );
    out.sample("deploystack_cache_max_bytes", &[], stats.local_max_bytes);
    if let Some(rate) = stats.hit_rate() {
        out.family(
            "deploystack_cache_hit_ratio",
            "gauge",
            "Share of reads that did not reach the repository since start; rate() the counters for a window.",
        );
        out.sample("deploystack_cache_hit_ratio", &[], rate);
    }
}

fn render_blob_cache(out: &mut Exposition, stats: &BlobCacheStats) {
    out.family(
        "deploystack_blob_cache_hits_total",
        "counter",
        "Blob reads answered from the in-process hot-blob cache.",
    );
    out.sample("deploystack_blob_cache_hits_total", &[], stats.hits);
    out.family(
        "deploystack_blob_cache_misses_total",
        "counter",
        "Blob reads that went to storage (objects over the size cap included).",
    );
    out.sample("deploystack_blob_cache_misses_total", &[], stats.misses);
    out.family(
        "deploystack_blob_cache_entries",
        "gauge",
        "Blobs held in memory.",
    );
    out.sample("deploystack_blob_cache_entries", &[], stats.entries);
    out.family(
        "deploystack_blob_cache_bytes",
        "gauge",
        "Bytes the hot-blob cache holds.",
    );
    out.sample("deploystack_blob_cache_bytes", &[], stats.bytes);
    out.family(
        "deploystack_blob_cache_max_bytes",
        "gauge",
        "Memory budget of the hot-blob cache (blob_cache_max_bytes).",
    );
    out.sample("deploystack_blob_cache_max_bytes", &[], stats.max_bytes);
}

fn render_queue(out: &mut Exposition, queue: &Result<QueueDepth, QueueError>) {
    out.family(
        "deploystack_queue_up",
        "gauge",
        "Whether the queue answered this scrape (1) or not (0).",
    );
    out.sample("deploystack_queue_up", &[], u64::from(queue.is_ok()));
    let Ok(depth) = queue else {
        return;
    };
    out.family(
        "deploystack_queue_depth",
        "gauge",
        "Build jobs by state: waiting (delayed included), in_flight (delivered, not acked), dead (dead-lettered).",
    );
    for (state, value) in [
        ("waiting", depth.waiting),
        ("in_flight", depth.in_flight),
        ("dead", depth.dead),
    ] {
        out.sample("deploystack_queue_depth", &[("state", state)], value);
    }
}

fn render_breakers(out: &mut Exposition, breakers: &[BreakerStats]) {
    if breakers.is_empty() {
        return;
    }
    out.family(
        "deploystack_breaker_state",
        "gauge",
        "Each circuit breaker's state: 1 for the state it is in (closed, open, half_open), 0 for the others.",
    );
    for stats in breakers {
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            out.sample(
                "deploystack_breaker_state",
                &[("breaker", stats.name), ("state", state.as_str())],
                u64::from(stats.state == state),
            );
        }
    }
    out.family(
        "deploystack_breaker_transitions_total",
        "counter",
        "Circuit breaker state changes, by the state entered.",
    );
    for stats in breakers {
        for (to, count) in [
            ("open", stats.opened),
            ("half_open", stats.half_opened),
            ("closed", stats.closed),
        ] {
            out.sample(
                "deploystack_breaker_transitions_total",
                &[("breaker", stats.name), ("to", to)],
                count,
            );
        }
    }
    out.family(
        "deploystack_breaker_refused_total",
        "counter",
        "Calls a circuit breaker refused at once, without touching the backend.",
    );
    for stats in breakers {
        out.sample(
            "deploystack_breaker_refused_total",
            &[("breaker", stats.name)],
            stats.refused,
        );
    }
}

/// The text being built. Label values here are fixed strings, so none needs escaping.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{value}\""))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use deploystack_core::breaker::{Breaker, BreakerSettings};

    use super::*;

    fn has_line(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[test]
    fn without_a_cache_only_the_switch_and_the_queue_are_shown() {
        let depth = QueueDepth {
            waiting: 3,
            in_flight: 1,
            dead: 2,
        };
        let http = HttpStats {
            connections: &[3],
            requests_in_flight: 2,
            answered: [0, 10, 1, 4, 0],
            rate_limited: [2, 0, 0],
        };
        let text = render(None, None, &Ok(depth), &[], &http);
        assert!(!text.contains("deploystack_breaker"), "{text}");
        assert!(has_line(&text, "deploystack_cache_enabled 0"), "{text}");
        assert!(!text.contains("deploystack_cache_hits_total"), "{text}");
        assert!(has_line(&text, "deploystack_queue_up 1"), "{text}");
        for line in [
            "deploystack_queue_depth{state=\"waiting\"} 3",
            "deploystack_queue_depth{state=\"in_flight\"} 1",
            "deploystack_queue_depth{state=\"dead\"} 2",
            "deploystack_http_connections{thread=\"0\"} 3",
            "deploystack_http_requests_in_flight 2",
            "deploystack_http_responses_total{class=\"2xx\"} 10",
            "deploystack_http_responses_total{class=\"4xx\"} 4",
            "deploystack_http_responses_total{class=\"5xx\"} 0",
            "deploystack_rate_limited_total{class=\"deploys\"} 2",
            "deploystack_rate_limited_total{class=\"reads\"} 0",
        ] {
            assert!(has_line(&text, line), "{line} missing from {text}");
        }
    }

    #[tokio::test]
    async fn every_sample_belongs_to_a_declared_family() {
        let stats = CacheStats::default();
        let down = Err(QueueError::Unavailable("down".to_owned()));
        let breaker = Breaker::new(
            "storage",
            BreakerSettings {
                failure_percent: 50,
                min_calls: 1,
                window: Duration::from_secs(60),
                cooldown: Duration::from_secs(60),
            },
        );
        let _ = breaker
            .call(|_: &()| true, |_| (), async { Err::<(), ()>(()) })
            .await;
        let text = render(
            Some(&stats),
            Some(&BlobCacheStats::default()),
            &down,
            &[breaker.stats()],
            &HttpStats {
                connections: &[1, 2],
                ..HttpStats::default()
            },
        );
        assert!(has_line(&text, "deploystack_cache_enabled 1"), "{text}");
        assert!(
            has_line(&text, "deploystack_cache_hits_total{layer=\"local\"} 0"),
            "{text}"
        );
        assert!(has_line(&text, "deploystack_queue_up 0"), "{text}");
        for line in [
            "deploystack_breaker_state{breaker=\"storage\",state=\"open\"} 1",
            "deploystack_breaker_state{breaker=\"storage\",state=\"closed\"} 0",
            "deploystack_breaker_transitions_total{breaker=\"storage\",to=\"open\"} 1",
            "deploystack_breaker_refused_total{breaker=\"storage\"} 0",
        ] {
            assert!(has_line(&text, line), "{line} missing from {text}");
        }
        assert!(!text.contains("deploystack_queue_depth"), "{text}");
        assert!(
            has_line(&text, "deploystack_http_connections{thread=\"1\"} 2"),
            "{text}"
        );
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                has_line_starting(&text, &format!("# TYPE {name} ")),
                "{name} has no TYPE line"
            );
        }
    }

    fn has_line_starting(text: &str, prefix: &str) -> bool {
        text.lines().any(|l| l.starts_with(prefix))
    }
}
