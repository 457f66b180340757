//! Connections the server will not hold for ever: a request must arrive
//! whole within `request_timeout_s`, one address and everyone together
//! have a cap on open connections, and a shutdown drops what is left
//! after `shutdown_grace_s`. A WebSocket, once open, is exempt from the
//! request deadline.

mod common;

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use sotto_signalling::config::Config;
use sotto_signalling::server;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Hang guard only.
async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within 30 s"))
}

/// Reads until the server closes the connection; what it sent before.
async fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A keep-alive `GET /healthz` on `s`; true when answered 200.
async fn healthz(s: &mut TcpStream) -> bool {
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 512];
    match s.read(&mut buf).await {
        Ok(n) => buf[..n].starts_with(b"HTTP/1.1 200"),
        Err(_) => false,
    }
}

async fn start(edit: impl FnOnce(&mut Config)) -> (tempfile::TempDir, server::Running) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::config(dir.path());
    edit(&mut cfg);
    let srv = server::start(cfg, None).await.unwrap();
    (dir, srv)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_finishes_its_headers_is_closed() {
    let (_dir, srv) = start(|c| c.request_timeout_s = 1).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let got = guard("the server closing", read_to_close(&mut s)).await;
    // hyper may say 408 on its way out; it never serves the request.
    assert!(!got.starts_with(b"HTTP/1.1 200"), "{got:?}");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_trickled_a_line_at_a_time_do_not_outlast_the_deadline() {
    let (_dir, srv) = start(|c| c.request_timeout_s = 1).await;
    let s = TcpStream::connect(srv.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        if wr.write_all(b"GET /healthz HTTP/1.1\r\n").await.is_err() {
            return;
        }
        // Never the blank line that ends the headers.
        for n in 0.. {
            let line = format!("X-Slow-{n}: 1\r\n");
            if wr.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut buf = [0u8; 256];
    let closed = guard("the server closing", async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    closed.await;
    trickle.abort();
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_hold_only_so_many_connections() {
    let (_dir, srv) = start(|c| c.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        assert!(healthz(&mut s).await);
        held.push(s);
    }
    // The fourth is closed unanswered.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    assert!(!healthz(&mut s).await, "a fourth connection was served");
    // The three are still served; once one closes, a new one is let in.
    for s in &mut held {
        assert!(healthz(s).await);
    }
    drop(held.pop());
    guard("a slot freed by a close", async {
        loop {
            let mut s = TcpStream::connect(srv.addr).await.unwrap();
            if healthz(&mut s).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_in_all() {
    let (_dir, srv) = start(|c| {
        c.max_connections = 2;
        c.max_connections_per_ip = 100;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        assert!(healthz(&mut s).await);
        held.push(s);
    }
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    assert!(!healthz(&mut s).await, "a third connection was served");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_a_half_sent_request_after_the_grace_period() {
    let (_dir, srv) = start(|c| {
        c.request_timeout_s = 300;
        c.shutdown_grace_s = 1;
    })
    .await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Accepted and being read (a served request on another connection
    // shows the server is past accepting this one's bytes).
    let mut other = TcpStream::connect(srv.addr).await.unwrap();
    assert!(healthz(&mut other).await);
    drop(other);
    guard("shutdown", srv.shutdown()).await;
    guard("the half-sent request closed", read_to_close(&mut s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_websocket_is_not_held_to_the_request_deadline() {
    let (_dir, srv) = start(|c| c.request_timeout_s = 1).await;
    let base = format!("http://{}", srv.addr);
    let (_bob, btok) = common::device(&base).await;
    let mut ws = common::raw_ws(srv.addr, &btok).await;
    // Past the request deadline, twice over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ws.send(Message::text("not a frame")).await.unwrap();
    let answer = guard("an answer", ws.next()).await;
    let Some(Ok(Message::Text(text))) = answer else {
        panic!("the WebSocket was closed: {answer:?}");
    };
    assert!(text.contains("malformed"), "{text}");
    srv.shutdown().await;
}

/// Opens a WebSocket as a proxy on loopback would, naming `client` in
/// `X-Forwarded-For`: the socket, or the status it was refused with.
async fn ws_through_proxy(
    addr: std::net::SocketAddr,
    token: &str,
    client: &str,
) -> Result<common::Ws, u16> {
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};
    let mut req = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    let headers = req.headers_mut();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("x-forwarded-for", client.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_behind_a_trusted_proxy_may_hold_only_so_many_websockets() {
    // Every socket comes from the proxy, which has no cap: the client it
    // names does.
    let (_dir, srv) = start(|c| {
        c.max_connections_per_ip = 2;
        c.trusted_proxies = vec![sotto_signalling::config::Cidr::parse("127.0.0.0/8").unwrap()];
    })
    .await;
    let base = format!("http://{}", srv.addr);
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(common::device(&base).await.1);
    }
    let mut held = Vec::new();
    for token in &tokens[..2] {
        held.push(
            ws_through_proxy(srv.addr, token, "198.51.100.1")
                .await
                .unwrap(),
        );
    }
    let third = ws_through_proxy(srv.addr, &tokens[2], "198.51.100.1").await;
    assert_eq!(third.err(), Some(429), "a third WebSocket for one client");
    // Another client of the same proxy has its own count.
    let other = ws_through_proxy(srv.addr, &tokens[3], "198.51.100.2").await;
    assert!(other.is_ok());
    // A closed WebSocket gives its place back.
    held.pop().unwrap().close(None).await.unwrap();
    guard("a place freed by a close", async {
        while ws_through_proxy(srv.addr, &tokens[2], "198.51.100.1")
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    srv.shutdown().await;
}
