//! Connection limits of a listener: a cap on open connections, per-connection idle
//! tracking (no request in flight), and the open-file limit the cap must fit in.
//!
//! When a listener is at its cap and a new client connects, the connection that has been
//! idle the longest is closed to make room (HTTP/2 with a GOAWAY). Refusing the newcomer
//! instead would let anyone who opens enough idle connections lock out the Kubernetes API
//! server; evicting means a new connection always gets in unless every open connection has
//! a request in flight, and then it waits in the kernel's accept queue until one is
//! answered (the request timeout bounds that). A connection still in its TLS handshake
//! counts as idle since it was accepted.
//!
//! The unit tests stay in this file (past ~400 lines with them): they drive the table's
//! private admission path (`try_admit`) directly.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::Metrics;

/// Default `--max-connections`. The API server talks to a webhook over a few HTTP/2
/// connections per replica, and kubelet probes open one at a time; 1024 leaves room for
/// a hundred times that while staying far below the open-file limit of a pod (containerd
/// gives 1024 soft, raised to the hard limit at start, 524288 or more).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default `--idle-timeout`: as long as the HTTP/1.1 header read timeout, so both
/// protocols close idle connections alike. Reconnecting costs the API server one TLS
/// handshake (about a millisecond).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default `--max-streams-per-connection`: the smallest value RFC 9113 recommends, and what
/// Go's HTTP/2 client (the API server's) handles by opening another connection.
pub const DEFAULT_MAX_STREAMS: u32 = 100;

/// Cap of the metrics listener (Prometheus and probes), whatever `--max-connections` says.
pub const METRICS_MAX_CONNECTIONS: usize = 64;

/// At most this many evicted connections may still be closing at once; past it the
/// listener waits for them before accepting more, so open sockets stay below
/// cap + `MAX_CLOSING` + 1. Each closes within [`EVICT_LINGER`] unless a request raced in.
const MAX_CLOSING: usize = 32;

/// How long an evicted connection may take to close (an HTTP/2 client has to answer the
/// GOAWAY's ping) before it is dropped, unless a request is in flight on it.
pub const EVICT_LINGER: Duration = Duration::from_millis(100);

/// File descriptors kept for everything but the HTTPS connections: the metrics listener's
/// connections, evicted connections still closing, registry and Kubernetes API clients,
/// certificate files, the runtime.
const RESERVED_FDS: u64 = (METRICS_MAX_CONNECTIONS + MAX_CLOSING) as u64 + 160;

/// Listener labels.
pub const HTTPS: &str = "https";
pub const METRICS: &str = "metrics";

/// Why the webhook closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// No request in flight for the idle timeout.
    Idle,
    /// The idle longest when the cap was reached and another client connected.
    Evicted,
    /// Older than the maximum connection age.
    MaxAge,
}

impl Closed {
    const ALL: [Closed; 3] = [Closed::Idle, Closed::Evicted, Closed::MaxAge];

    fn as_str(self) -> &'static str {
        match self {
            Closed::Idle => "idle",
            Closed::Evicted => "evicted",
            Closed::MaxAge => "max_age",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    listener: &'static str,
    reason: &'static str,
}

/// `akv_webhook_open_connections{listener}` and
/// `akv_webhook_connections_closed_total{listener,reason}`.
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    open: Family<ListenerLabels, Gauge>,
    closed: Family<ClosedLabels, Counter>,
}

impl ConnectionMetrics {
    /// Registers both metrics, with every label value at 0.
    pub fn register(metrics: &Metrics) -> Self {
        let open = Family::<ListenerLabels, Gauge>::default();
        let closed = Family::<ClosedLabels, Counter>::default();
        for listener in [HTTPS, METRICS] {
            let _ = open.get_or_create(&ListenerLabels { listener });
            for reason in Closed::ALL {
                let _ = closed.get_or_create(&ClosedLabels {
                    listener,
                    reason: reason.as_str(),
                });
            }
        }
        metrics.register(
            "open_connections",
            "Open client connections, by listener (https, metrics)",
            open.clone(),
        );
        metrics.register(
            "connections_closed",
            "Connections the webhook closed itself, by listener and reason (idle: no request \
             for --idle-timeout, or for HTTP/1.1 no complete header within the header read \
             timeout; evicted: idle the longest when --max-connections was reached; max_age)",
            closed.clone(),
        );
        ConnectionMetrics { open, closed }
    }
}

/// The open connections of one listener.
pub struct Table {
    listener: &'static str,
    max: usize,
    epoch: Instant,
    /// A connection ended or became idle: the accept loop may go on.
    changed: Notify,
    state: Mutex<State>,
    metrics: Option<ConnectionMetrics>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    slots: HashMap<u64, Arc<Slot>>,
    /// Evicted connections that have not closed yet (they are in `slots` too).
    closing: usize,
}

/// One connection's entry: whether a request is in flight, since when it is idle, and the
/// signal that asks it to close.
pub struct Slot {
    in_flight: AtomicUsize,
    /// Nanoseconds from the table's epoch to the end of the last request (or the accept).
    idle_since: AtomicU64,
    evict: CancellationToken,
}

impl Slot {
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Completes when the listener wants the room this connection takes.
    pub async fn evicted(&self) {
        self.evict.cancelled().await;
    }
}

impl Table {
    pub fn new(
        listener: &'static str,
        max: usize,
        metrics: Option<ConnectionMetrics>,
    ) -> Arc<Self> {
        Arc::new(Table {
            listener,
            max: max.max(1),
            epoch: Instant::now(),
            changed: Notify::new(),
            state: Mutex::new(State::default()),
            metrics,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a map and a counter, each changed in one step: usable after a panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The number of connections not asked to close.
    #[cfg(test)]
    fn open(&self) -> usize {
        let state = self.state();
        state.slots.len() - state.closing
    }

    /// Waits until there may be room for one more connection: below the cap, or at it
    /// with an idle connection to evict (and not too many evicted ones still closing).
    /// The accept loop waits here so that, when there is none, new clients stay in the
    /// kernel's accept queue rather than taking file descriptors.
    pub async fn room(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.has_room(&self.state()) {
                return;
            }
            changed.await;
        }
    }

    fn has_room(&self, state: &State) -> bool {
        let live = state.slots.len() - state.closing;
        live < self.max || (state.closing < MAX_CLOSING && oldest_idle(&state.slots).is_some())
    }

    /// Takes a slot for a connection just accepted, waiting for room if there is none (the
    /// state may have changed since [`Table::room`]). The slot is given back when the lease
    /// is dropped.
    pub async fn admit(self: &Arc<Self>) -> Lease {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(lease) = self.try_admit() {
                return lease;
            }
            changed.await;
        }
    }

    /// Takes a slot if there is room, evicting the connection idle the longest when the
    /// listener is at its cap.
    fn try_admit(self: &Arc<Self>) -> Option<Lease> {
        let mut state = self.state();
        if !self.has_room(&state) {
            return None;
        }
        if state.slots.len() - state.closing >= self.max {
            if let Some(victim) = oldest_idle(&state.slots) {
                victim.evict.cancel();
                state.closing += 1;
                self.count(Closed::Evicted);
            }
        }
        let slot = Arc::new(Slot {
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now()),
            evict: CancellationToken::new(),
        });
        let id = state.next_id;
        state.next_id += 1;
        state.slots.insert(id, Arc::clone(&slot));
        drop(state);
        if let Some(metrics) = &self.metrics {
            metrics.open.get_or_create(&self.labels()).inc();
        }
        Some(Lease {
            table: Arc::clone(self),
            slot,
            id,
        })
    }

    /// Counts a connection the webhook closed itself.
    pub fn count(&self, reason: Closed) {
        if let Some(metrics) = &self.metrics {
            metrics
                .closed
                .get_or_create(&ClosedLabels {
                    listener: self.listener,
                    reason: reason.as_str(),
                })
                .inc();
        }
    }

    fn labels(&self) -> ListenerLabels {
        ListenerLabels {
            listener: self.listener,
        }
    }
}

/// The idle connection (not already evicted) whose last request ended longest ago. A scan:
/// the table holds at most a few thousand entries and this runs only at the cap.
fn oldest_idle(slots: &HashMap<u64, Arc<Slot>>) -> Option<&Arc<Slot>> {
    slots
        .values()
        .filter(|slot| slot.is_idle() && !slot.evict.is_cancelled())
        .min_by_key(|slot| slot.idle_since.load(Ordering::Acquire))
}

/// A connection's place in its [`Table`].
pub struct Lease {
    table: Arc<Table>,
    slot: Arc<Slot>,
    id: u64,
}

impl Lease {
    pub fn slot(&self) -> &Slot {
        &self.slot
    }

    /// Counts this connection as closed by the webhook for `reason`.
    pub fn count(&self, reason: Closed) {
        self.table.count(reason);
    }

    /// Marks a request as in flight until the returned guard is dropped.
    pub fn request(&self) -> Busy {
        self.slot.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy {
            table: Arc::clone(&self.table),
            slot: Arc::clone(&self.slot),
        }
    }

    /// Completes when the connection has had no request in flight for `timeout`.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let wait = if self.slot.is_idle() {
                let since = Duration::from_nanos(self.slot.idle_since.load(Ordering::Acquire));
                let idle = self.table.epoch.elapsed().saturating_sub(since);
                if idle >= timeout {
                    return;
                }
                timeout - idle
            } else {
                // Busy: look again later; the timer then runs from the end of the request.
                timeout
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.table.state();
        if state.slots.remove(&self.id).is_some() && self.slot.evict.is_cancelled() {
            state.closing = state.closing.saturating_sub(1);
        }
        drop(state);
        if let Some(metrics) = &self.table.metrics {
            metrics.open.get_or_create(&self.table.labels()).dec();
        }
        self.table.changed.notify_one();
    }
}

/// A request in flight on a connection; dropping it makes the connection idle (when it was
/// the last one) from now on.
pub struct Busy {
    table: Arc<Table>,
    slot: Arc<Slot>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slot
            .idle_since
            .store(self.table.now(), Ordering::Release);
        if self.slot.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.table.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until the body has been sent (or
/// dropped), so that a connection writing a response is neither idle nor evictable.
pub struct TrackedBody<B> {
    inner: B,
    _busy: Busy,
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, busy: Busy) -> Self {
        TrackedBody { inner, _busy: busy }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft open-file limit to the hard one (as Go programs do at start) and returns
/// the largest HTTPS connection cap, at most `requested`, that fits in it; logs when the
/// cap had to be lowered.
pub fn fit_fd_limit(requested: usize) -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                info!(from = ?limit.current, to = ?limit.maximum, "raised the open-file limit to its hard limit");
                limit = raised;
            }
            Err(e) => warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    let fitted = fit(requested, limit.current);
    if fitted < requested {
        warn!(
            max_connections = requested,
            open_file_limit = ?limit.current,
            using = fitted,
            "--max-connections does not fit in the open-file limit with {RESERVED_FDS} descriptors \
             kept for the rest of the webhook: using {fitted}; raise the limit (ulimit -n, \
             LimitNOFILE of the container runtime) or lower --max-connections"
        );
    }
    fitted
}

/// The cap that fits in an open-file limit of `soft` (`None`: unlimited), at least 1.
fn fit(requested: usize, soft: Option<u64>) -> usize {
    match soft {
        None => requested,
        Some(soft) => {
            let room = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
            requested.min(room).max(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fits_in_the_open_file_limit() {
        for (requested, soft, expected) in [
            (1024, None, 1024),
            (1024, Some(1_048_576), 1024),
            (1024, Some(4096), 1024),
            (1024, Some(1024), 1024 - RESERVED_FDS as usize),
            (5000, Some(4096), 4096 - RESERVED_FDS as usize),
            (1024, Some(100), 1),
            (1, Some(0), 1),
        ] {
            assert_eq!(fit(requested, soft), expected, "{requested} in {soft:?}");
        }
    }

    #[test]
    fn at_the_cap_the_longest_idle_is_evicted_and_busy_ones_never() {
        let table = Table::new(HTTPS, 3, None);
        let admit = || table.try_admit().expect("room");
        let a = admit();
        let b = admit();
        let c = admit();
        let busy_a = a.request();
        // b became idle after c was accepted: c is the idle one that waited longest.
        drop(b.request());
        assert_eq!(table.open(), 3);
        let d = admit();
        assert!(c.slot().evict.is_cancelled(), "c was idle the longest");
        assert!(!a.slot().evict.is_cancelled() && !b.slot().evict.is_cancelled());
        assert_eq!(table.open(), 3);
        drop(c);
        // Now a is busy, b and d idle; b has been idle longer.
        let e = admit();
        assert!(b.slot().evict.is_cancelled());
        drop(b);
        // a busy, d and e idle: d goes.
        let f = admit();
        let _busy_f = f.request();
        assert!(d.slot().evict.is_cancelled());
        drop((d, e));
        // a, f and g busy: no room, and nobody is evicted.
        let g = admit();
        let _busy_g = g.request();
        assert!(table.try_admit().is_none(), "every connection is busy");
        assert_eq!(table.open(), 3);
        drop(busy_a);
        assert!(a.slot().is_idle());
        let _h = admit();
        assert!(a.slot().evict.is_cancelled());
    }

    #[test]
    fn evicted_connections_still_closing_are_bounded() {
        let table = Table::new(HTTPS, 1, None);
        let mut leases = vec![table.try_admit().expect("room")];
        for _ in 0..MAX_CLOSING {
            leases.push(table.try_admit().expect("evicts the idle one"));
        }
        assert_eq!(table.state().closing, MAX_CLOSING);
        assert!(table.try_admit().is_none(), "{MAX_CLOSING} still closing");
        leases.remove(0);
        assert!(table.try_admit().is_some(), "one closed, room again");
    }

    #[tokio::test]
    async fn room_waits_while_every_connection_is_busy() {
        let table = Table::new(HTTPS, 1, None);
        let a = table.admit().await;
        let busy = a.request();
        let waiting = tokio::time::timeout(Duration::from_millis(50), table.room()).await;
        assert!(
            waiting.is_err(),
            "no room while the only connection is busy"
        );
        let room = tokio::spawn({
            let table = Arc::clone(&table);
            async move { table.room().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(busy);
        tokio::time::timeout(Duration::from_secs(1), room)
            .await
            .expect("room once it is idle")
            .expect("joins");
    }

    #[tokio::test]
    async fn idle_for_counts_from_the_end_of_the_last_request() {
        let table = Table::new(HTTPS, 4, None);
        let lease = table.admit().await;
        let busy = lease.request();
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            drop(busy);
        });
        lease.idle_for(Duration::from_millis(100)).await;
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(600), "{elapsed:?}");
    }
}
