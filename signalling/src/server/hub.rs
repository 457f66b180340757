//! Where each device's live connection is: on this node (a wake-up
//! signal to its task) or on another node (a Redis pub/sub message to
//! that node). A device with no connection anywhere gets a push instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use redis::aio::{MultiplexedConnection, PubSub};
use tokio::sync::Notify;

use crate::protocol::DeviceId;
use crate::store::Store;

/// Longest a connect or a command to Redis may take: an unreachable Redis
/// must not hold up routing (the caller falls back to a push).
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// First wait between re-subscribe attempts; it doubles up to the cap.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between re-subscribe attempts.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(10);
/// How often the subscription is pinged: a connection that went half-open
/// (Redis or the network gone without a reset) reads nothing and reports
/// no error, and would miss every wake until TCP gave up on it.
const SUBSCRIPTION_PING: Duration = Duration::from_secs(5);

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
    redis: Option<Publisher>,
    /// False while this node's Redis subscription is down: wakes from
    /// other nodes are being lost.
    subscribed: AtomicBool,
}

/// Redis channel of a node.
fn channel(node: &str) -> String {
    format!("sotto-signald:node:{node}")
}

fn redis_timeout() -> redis::RedisError {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "redis did not answer").into()
}

/// The connection PUBLISH goes over, replaced when it breaks (a Redis
/// restart closes it for good).
#[derive(Debug)]
struct Publisher {
    client: redis::Client,
    slot: tokio::sync::Mutex<PublishSlot>,
    /// Failed connect attempts so far: a caller that waited while one
    /// failed gives up at once instead of trying again in turn.
    failed_connects: AtomicU64,
}

#[derive(Debug, Default)]
struct PublishSlot {
    conn: Option<MultiplexedConnection>,
    /// Bumped per new connection, so a broken one is dropped only once.
    generation: u64,
}

impl Publisher {
    async fn connect(client: redis::Client) -> redis::RedisResult<Self> {
        let this = Self {
            client,
            slot: tokio::sync::Mutex::default(),
            failed_connects: AtomicU64::new(0),
        };
        this.connection().await?;
        Ok(this)
    }

    /// The current connection and its generation, connecting if there is none.
    async fn connection(&self) -> redis::RedisResult<(u64, MultiplexedConnection)> {
        let failed_before = self.failed_connects.load(Ordering::Acquire);
        let mut slot = self.slot.lock().await;
        if let Some(conn) = &slot.conn {
            return Ok((slot.generation, conn.clone()));
        }
        if self.failed_connects.load(Ordering::Acquire) != failed_before {
            return Err(
                std::io::Error::new(std::io::ErrorKind::NotConnected, "redis unreachable").into(),
            );
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let conn = match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                self.failed_connects.fetch_add(1, Ordering::Release);
                return Err(e);
            }
        };
        if slot.generation > 0 {
            metrics::counter!("signald_redis_reconnects_total", "link" => "publish").increment(1);
        }
        slot.generation += 1;
        slot.conn = Some(conn.clone());
        Ok((slot.generation, conn))
    }

    /// PUBLISH `message` on `channel`: the number of subscribers that got
    /// it. A broken connection is replaced and the command sent once more.
    async fn publish(&self, channel: &str, message: &str) -> redis::RedisResult<i64> {
        let mut retried = false;
        loop {
            let (generation, mut conn) = self.connection().await?;
            let published = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .query_async(&mut conn)
                .await;
            match published {
                Err(e) if e.is_io_error() || e.is_unrecoverable_error() => {
                    let mut slot = self.slot.lock().await;
                    if slot.generation == generation {
                        slot.conn = None;
                    }
                    drop(slot);
                    if retried {
                        return Err(e);
                    }
                    retried = true;
                }
                other => return other,
            }
        }
    }
}

/// Connects to Redis and subscribes to `channel`.
async fn subscribe(client: &redis::Client, channel: &str) -> redis::RedisResult<PubSub> {
    let mut pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| redis_timeout())??;
    tokio::time::timeout(REDIS_TIMEOUT, pubsub.subscribe(channel))
        .await
        .map_err(|_| redis_timeout())??;
    Ok(pubsub)
}

/// Wakes the local connections named on this node's channel; when the
/// subscription breaks (Redis restarted) or stops answering pings,
/// subscribes again with capped exponential back-off. Ends when the hub
/// is gone.
async fn listen(hub: Weak<Hub>, client: redis::Client, channel: String, mut pubsub: PubSub) {
    loop {
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is at once
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(hub) = hub.upgrade() else { return };
                    let Ok(text) = msg.get_payload::<String>() else {
                        continue;
                    };
                    if let Ok(device) = DeviceId::new(text) {
                        metrics::counter!("signald_routed_in_total").increment(1);
                        hub.wake_local(&device);
                    }
                }
                _ = ping.tick() => {
                    if hub.strong_count() == 0 {
                        return;
                    }
                    let pong = tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
        tracing::warn!("redis subscription lost; subscribing again");
        match hub.upgrade() {
            Some(hub) => hub.subscribed.store(false, Ordering::Release),
            None => return,
        }
        let mut delay = RESUBSCRIBE_FIRST;
        pubsub = loop {
            if hub.strong_count() == 0 {
                return;
            }
            match subscribe(&client, &channel).await {
                Ok(pubsub) => break pubsub,
                Err(e) => {
                    tracing::warn!("redis subscribe: {e}; next try in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RESUBSCRIBE_MAX);
                }
            }
        };
        metrics::counter!("signald_redis_reconnects_total", "link" => "subscribe").increment(1);
        tracing::info!("redis subscription restored");
        // Wakes published while we were not subscribed are lost, but the
        // messages were stored before routing: every connection re-reads.
        let Some(hub) = hub.upgrade() else { return };
        hub.subscribed.store(true, Ordering::Release);
        hub.wake_all();
    }
}

impl Hub {
    /// A hub for `node_id`; with `redis_url`, it also subscribes to this
    /// node's channel and wakes local connections named there. Both Redis
    /// links reconnect by themselves after Redis restarts.
    pub async fn new(
        node_id: String,
        store: Store,
        redis_url: Option<&str>,
    ) -> Result<Arc<Self>, redis::RedisError> {
        let (redis, client) = match redis_url {
            Some(url) => {
                let client = redis::Client::open(url)?;
                (
                    Some(Publisher::connect(client.clone()).await?),
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
            subscribed: AtomicBool::new(true),
        });
        if let Some(client) = client {
            let channel = channel(&hub.node_id);
            let pubsub = subscribe(&client, &channel).await?;
            tokio::spawn(listen(Arc::downgrade(&hub), client, channel, pubsub));
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

    /// True while this node's Redis subscription is down: other nodes'
    /// wakes for its connections are lost, so they read their queues
    /// every few seconds instead.
    pub fn routing_degraded(&self) -> bool {
        self.redis.is_some() && !self.subscribed.load(Ordering::Acquire)
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

    /// Wakes every local connection to re-read its queue.
    fn wake_all(&self) {
        let local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        for (_, signals) in local.values() {
            signals.wake.notify_one();
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
        let Some(redis) = &self.redis else {
            return false;
        };
        match redis.publish(&channel(&node), device.as_str()).await {
            Ok(n) if n > 0 => {
                metrics::counter!("signald_routed_out_total").increment(1);
                true
            }
            // Nobody listens on that node's channel (it is gone, or between
            // Redis connections): not routed; the caller falls back to a push.
            Ok(_) => {
                metrics::counter!("signald_routed_out_failed_total", "reason" => "no_subscriber")
                    .increment(1);
                false
            }
            Err(e) => {
                tracing::warn!("redis publish: {e}");
                metrics::counter!("signald_routed_out_failed_total", "reason" => "redis_error")
                    .increment(1);
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
