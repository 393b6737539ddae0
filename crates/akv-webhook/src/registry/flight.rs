//! Single flight: concurrent lookups of the same key share one registry round trip, and
//! that round trip lives exactly as long as someone waits for it.
//!
//! Each caller holds a strong handle on a shared future; the map keeps only weak ones. When
//! the last caller stops waiting (its review's deadline passed), the future is dropped,
//! which closes its connections: no lookup outlives every review that wanted it. (moka's
//! own `or_try_insert_with` coalesces too, but it panics after a waiter has seen 200
//! abandoned initialisations, which a hostile registry with short deadlines can arrange.)

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};

type Flight<V> = Shared<BoxFuture<'static, V>>;

/// In-flight lookups by key.
pub struct SingleFlight<K, V: Clone> {
    map: Mutex<HashMap<K, WeakShared<BoxFuture<'static, V>>>>,
}

impl<K, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        SingleFlight {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// Removes the key when the last waiter goes, done or not.
struct Waiter<'a, K: Hash + Eq + Clone, V: Clone> {
    flights: &'a SingleFlight<K, V>,
    key: K,
    flight: Option<Flight<V>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Waiter<'_, K, V> {
    fn drop(&mut self) {
        drop(self.flight.take());
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.get(&self.key).is_some_and(|w| w.upgrade().is_none()) {
            map.remove(&self.key);
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone + Send + Sync + 'static,
{
    /// The result of the flight for `key`, started with `start` when none is in the air.
    /// `(value, started)`: whether this call started it.
    pub async fn run<F>(&self, key: K, start: F) -> (V, bool)
    where
        F: FnOnce() -> BoxFuture<'static, V>,
    {
        let (flight, started) = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key).and_then(WeakShared::upgrade) {
                Some(flight) => (flight, false),
                None => {
                    let flight = start().shared();
                    if let Some(weak) = flight.downgrade() {
                        map.insert(key.clone(), weak);
                    }
                    (flight, true)
                }
            }
        };
        let mut waiter = Waiter {
            flights: self,
            key,
            flight: Some(flight.clone()),
        };
        let value = flight.await;
        drop(waiter.flight.take());
        (value, started)
    }

    /// How many keys are in flight (for tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn joins_and_cancels() {
        let flights: Arc<SingleFlight<&'static str, u32>> = Arc::default();
        let starts = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        struct OnDrop(Arc<AtomicUsize>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let slow = |starts: Arc<AtomicUsize>, dropped: Arc<AtomicUsize>| {
            move || {
                starts.fetch_add(1, Ordering::SeqCst);
                let guard = OnDrop(dropped);
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    7
                }
                .boxed()
            }
        };
        // Two waiters share one start.
        let (a, b) = tokio::join!(
            flights.run("k", slow(Arc::clone(&starts), Arc::clone(&dropped))),
            flights.run("k", slow(Arc::clone(&starts), Arc::clone(&dropped))),
        );
        assert_eq!((a, b), ((7, true), (7, false)));
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
        // Every waiter gives up: the flight is dropped at once, not left running.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(20),
            flights.run("k", slow(Arc::clone(&starts), Arc::clone(&dropped))),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(dropped.load(Ordering::SeqCst), 2, "cancelled, not detached");
        assert!(flights.is_empty());
        // A later call starts afresh.
        let (v, started) = flights
            .run("k", slow(Arc::clone(&starts), Arc::clone(&dropped)))
            .await;
        assert_eq!((v, started), (7, true));
    }
}
