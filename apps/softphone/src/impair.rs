//! A UDP impairment hop in front of the relay, driven in real time by a
//! link model: the k-th datagram each way of each client gets the delay
//! (or loss) the model gave its k-th packet. The hop keeps FIFO order, as
//! the bottleneck links it replays do.

use sotto_jitter::link::{Delivery, Link, voice_stream};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Datagrams waiting in one direction's delay line; beyond this they are dropped.
const LINE_CAPACITY: usize = 4096;
/// Delay samples kept per direction for the plot.
const MAX_LOG: usize = 200_000;
/// Largest datagram relayed.
const MAX_DATAGRAM: usize = 2048;

/// Per-packet fate in one direction: a delay, or `None` for a loss.
#[derive(Debug, Clone)]
pub struct Schedule(Vec<Option<Duration>>);

impl Schedule {
    /// Runs `link` over `packets` 20 ms voice packets of `size` bytes.
    pub fn from_link(
        link: &mut dyn Link,
        packets: u64,
        size: u32,
    ) -> Result<(Self, Vec<Delivery>), sotto_jitter::link::LinkError> {
        let d = link.run(&voice_stream(packets, Duration::from_millis(20), size))?;
        Ok((Self(d.iter().map(Delivery::delay).collect()), d))
    }

    /// The fate of datagram `k` (the schedule repeats when exhausted).
    fn fate(&self, k: usize) -> Option<Duration> {
        if self.0.is_empty() {
            return Some(Duration::ZERO);
        }
        self.0[k % self.0.len()]
    }
}

/// One client's two directions.
#[derive(Debug, Clone)]
pub struct ClientLink {
    /// Client to relay.
    pub up: Schedule,
    /// Relay to client.
    pub down: Schedule,
}

/// What one direction did: (seconds since the hop started, delay in ms)
/// per datagram forwarded, and the count lost.
#[derive(Debug, Default)]
pub struct DirectionLog {
    /// Forwarded datagrams.
    pub delays: Vec<(f64, f64)>,
    /// Datagrams the model lost (or the delay line refused).
    pub lost: u64,
}

/// A shared [`DirectionLog`].
pub type Log = Arc<Mutex<DirectionLog>>;

/// The running hop; its tasks stop when it is dropped.
pub struct Hop {
    /// Where clients send (the TURN server address they are given).
    pub addr: SocketAddr,
    logs: Arc<Mutex<HashMap<SocketAddr, (Log, Log)>>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Hop {
    /// Listens on `bind` and relays to `upstream`; the n-th client (by
    /// source address) gets `links[n]`, later ones an unimpaired path.
    pub async fn start(
        bind: SocketAddr,
        upstream: SocketAddr,
        links: Vec<ClientLink>,
    ) -> std::io::Result<Self> {
        let front = Arc::new(UdpSocket::bind(bind).await?);
        let addr = front.local_addr()?;
        let logs: Arc<Mutex<HashMap<SocketAddr, (Log, Log)>>> = Arc::default();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let start = Instant::now();
        let (logs2, tasks2) = (Arc::clone(&logs), Arc::clone(&tasks));
        let main = tokio::spawn(async move {
            let mut clients: HashMap<SocketAddr, DelayLine> = HashMap::new();
            let mut links = links.into_iter();
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                let up = match clients.entry(from) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(v) => {
                        let Ok(up_sock) = UdpSocket::bind((upstream.ip(), 0)).await else {
                            continue;
                        };
                        let up_sock = Arc::new(up_sock);
                        let link = links.next().unwrap_or(ClientLink {
                            up: Schedule(Vec::new()),
                            down: Schedule(Vec::new()),
                        });
                        let (up_log, down_log): (Log, Log) = Default::default();
                        lock(&logs2).insert(from, (Arc::clone(&up_log), Arc::clone(&down_log)));
                        let up = DelayLine::spawn(
                            Arc::clone(&up_sock),
                            upstream,
                            link.up,
                            up_log,
                            start,
                            &tasks2,
                        );
                        let mut down = DelayLine::spawn(
                            Arc::clone(&front),
                            from,
                            link.down,
                            down_log,
                            start,
                            &tasks2,
                        );
                        // Relay -> client: everything the relay sends to this
                        // client's upstream socket goes down its delay line.
                        let reader = tokio::spawn(async move {
                            let mut b = vec![0u8; MAX_DATAGRAM];
                            while let Ok((n, src)) = up_sock.recv_from(&mut b).await {
                                if src == upstream {
                                    down.push(&b[..n]);
                                }
                            }
                        });
                        lock(&tasks2).push(reader);
                        v.insert(up)
                    }
                };
                up.push(&buf[..n]);
            }
        });
        lock(&tasks).push(main);
        Ok(Self { addr, logs, tasks })
    }

    /// The (up, down) logs of the client at `addr`, once it has sent something.
    pub fn client_log(&self, addr: SocketAddr) -> Option<(Log, Log)> {
        lock(&self.logs).get(&addr).cloned()
    }
}

impl Drop for Hop {
    fn drop(&mut self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One direction: datagrams wait out their scheduled delay, in order.
struct DelayLine {
    tx: mpsc::Sender<(Instant, Vec<u8>)>,
    schedule: Schedule,
    next: usize,
    last_due: Instant,
    log: Log,
    start: Instant,
}

impl DelayLine {
    fn spawn(
        sock: Arc<UdpSocket>,
        to: SocketAddr,
        schedule: Schedule,
        log: Log,
        start: Instant,
        tasks: &Mutex<Vec<JoinHandle<()>>>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(LINE_CAPACITY);
        let t = tokio::spawn(async move {
            while let Some((due, d)) = rx.recv().await {
                tokio::time::sleep_until(due).await;
                let _ = sock.send_to(&d, to).await;
            }
        });
        lock(tasks).push(t);
        Self {
            tx,
            schedule,
            next: 0,
            last_due: start,
            log,
            start,
        }
    }

    fn push(&mut self, d: &[u8]) {
        let fate = self.schedule.fate(self.next);
        self.next += 1;
        let mut log = lock(&self.log);
        let Some(delay) = fate else {
            log.lost += 1;
            return;
        };
        let now = Instant::now();
        let due = (now + delay).max(self.last_due);
        if self.tx.try_send((due, d.to_vec())).is_err() {
            log.lost += 1;
            return;
        }
        self.last_due = due;
        if log.delays.len() < MAX_LOG {
            log.delays.push((
                (now - self.start).as_secs_f64(),
                (due - now).as_secs_f64() * 1000.0,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_take_their_scheduled_fate_in_order() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sched = Schedule(vec![
            Some(Duration::from_millis(30)),
            None,
            Some(Duration::from_millis(1)),
        ]);
        let hop = Hop::start(
            "127.0.0.1:0".parse().unwrap(),
            server.local_addr().unwrap(),
            vec![ClientLink {
                up: sched.clone(),
                down: sched,
            }],
        )
        .await
        .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0u8..3 {
            client.send_to(&[i], hop.addr).await.unwrap();
        }
        let mut b = [0u8; 8];
        let (_, via) = server.recv_from(&mut b).await.unwrap();
        assert_eq!(b[0], 0);
        // The third overtakes nothing: FIFO keeps it behind the first.
        server.recv_from(&mut b).await.unwrap();
        assert_eq!(b[0], 2);
        server.send_to(&[9], via).await.unwrap();
        client.recv_from(&mut b).await.unwrap();
        assert_eq!(b[0], 9);
        let (up, down) = hop.client_log(client.local_addr().unwrap()).unwrap();
        assert_eq!(up.lock().unwrap().lost, 1);
        assert_eq!(up.lock().unwrap().delays.len(), 2);
        assert_eq!(down.lock().unwrap().delays.len(), 1);
    }
}
