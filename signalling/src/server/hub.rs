//! Where each device's live connection is: on this node (a wake-up
//! signal to its task) or on another node (a Redis pub/sub message to
//! that node). A device with no connection anywhere gets a push instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::StreamExt as _;
use tokio::sync::Notify;

use crate::protocol::DeviceId;
use crate::store::Store;

/// Signals to one connection task.
#[derive(Debug, Default)]
pub struct ConnSignals {
    /// New messages are queued: read the queue.
    pub wake: Notify,
    /// A newer connection of the same device replaced this one.
    pub kick: Notify,
}

/// The registry of local connections and the link to other nodes.
#[derive(Debug)]
pub struct Hub {
    node_id: String,
    store: Store,
    next_id: AtomicU64,
    local: Mutex<HashMap<DeviceId, (u64, Arc<ConnSignals>)>>,
    /// When a wake push was sent to a device (for wake-to-connect latency).
    woken: Mutex<HashMap<DeviceId, Instant>>,
    redis: Option<redis::aio::MultiplexedConnection>,
}

/// Redis channel of a node.
fn channel(node: &str) -> String {
    format!("sotto-signald:node:{node}")
}

impl Hub {
    /// A hub for `node_id`; with `redis_url`, it also subscribes to this
    /// node's channel and wakes local connections named there.
    pub async fn new(
        node_id: String,
        store: Store,
        redis_url: Option<&str>,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let (redis, client) = match redis_url {
            Some(url) => {
                let client = redis::Client::open(url)?;
                (
                    Some(client.get_multiplexed_async_connection().await?),
                    Some(client),
                )
            }
            None => (None, None),
        };
        let hub = Arc::new(Self {
            node_id,
            store,
            next_id: AtomicU64::new(1),
            local: Mutex::new(HashMap::new()),
            woken: Mutex::new(HashMap::new()),
            redis,
        });
        if let Some(client) = client {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel(&hub.node_id)).await?;
            let weak = Arc::downgrade(&hub);
            tokio::spawn(async move {
                let mut stream = pubsub.into_on_message();
                while let Some(msg) = stream.next().await {
                    let Some(hub) = weak.upgrade() else { break };
                    let Ok(text) = msg.get_payload::<String>() else {
                        continue;
                    };
                    if let Ok(device) = DeviceId::new(text) {
                        metrics::counter!("signald_routed_in_total").increment(1);
                        hub.wake_local(&device);
                    }
                }
            });
        }
        Ok(hub)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Registers a new connection of `device`, kicking an older one.
    pub fn attach(&self, device: &DeviceId) -> (u64, Arc<ConnSignals>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let signals = Arc::new(ConnSignals::default());
        let old = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device.clone(), (id, signals.clone()));
        if let Some((_, old)) = old {
            old.kick.notify_one();
        }
        (id, signals)
    }

    /// Unregisters connection `id`; true when it was still the current one.
    pub fn detach(&self, device: &DeviceId, id: u64) -> bool {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if local.get(device).is_some_and(|(cur, _)| *cur == id) {
            local.remove(device);
            true
        } else {
            false
        }
    }

    /// Number of live local connections.
    pub fn connected(&self) -> usize {
        self.local.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn wake_local(&self, device: &DeviceId) -> bool {
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        match local.get(device) {
            Some((_, s)) => {
                s.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Tells `device`'s connection, here or on another node, that messages
    /// are queued. False when it has no connection anywhere.
    pub async fn route(&self, device: &DeviceId) -> bool {
        if self.wake_local(device) {
            return true;
        }
        let node = match self.store.presence(device).await {
            Ok(Some(node)) if node != self.node_id => node,
            _ => return false,
        };
        let Some(mut conn) = self.redis.clone() else {
            return false;
        };
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(channel(&node))
            .arg(device.as_str())
            .query_async(&mut conn)
            .await;
        match published {
            // Zero subscribers: that node is gone; fall back to a push.
            Ok(n) => {
                metrics::counter!("signald_routed_out_total").increment(1);
                n > 0
            }
            Err(e) => {
                tracing::warn!("redis publish: {e}");
                false
            }
        }
    }

    /// Notes that a wake push went to `device` now.
    pub fn mark_woken(&self, device: &DeviceId, now: Instant) {
        let mut woken = self.woken.lock().unwrap_or_else(|e| e.into_inner());
        // Devices that never came back are forgotten after ten minutes.
        woken.retain(|_, at| now.duration_since(*at).as_secs() < 600);
        woken.insert(device.clone(), now);
    }

    /// When `device` was last woken by push, forgetting it.
    pub fn take_woken(&self, device: &DeviceId) -> Option<Instant> {
        self.woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(device)
    }
}
