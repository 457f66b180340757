//! TURN users from the signalling database (`auth_database`): created by
//! signald's own migrations and `Store::put_turn_user`, loaded by the real
//! `sotto-relay` binary at start and on SIGHUP, used by coturn's
//! `turnutils_uclient` (MD5, RFC 5766) and by an RFC 8489 client written
//! here with the relay's codec (PASSWORD-ALGORITHM SHA-256 with
//! MESSAGE-INTEGRITY-SHA256, and a bid-down attempt). SQLite and PostgreSQL.

mod common;
// signalling's throwaway PostgreSQL, shared by path rather than copied
// (the file allows its own dead code).
#[path = "../../../signalling/tests/common/servers.rs"]
mod servers;

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::*;
use sotto_relay::auth::{Key, NONCE_COOKIE, PasswordAlgorithm};
use sotto_relay::config::Options;
use sotto_relay::server::Server;
use sotto_relay::stun::{Builder, Class, Integrity, Message, attr, method, password_algorithm};
use sotto_signalling::store::Store;

const REALM: &str = "db.test";

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Adds and removes users as `sotto-signald turn-user` does: open (which
/// migrates), change, close.
fn with_store(url: &str, f: impl AsyncFnOnce(&Store)) {
    block_on(async {
        let store = Store::open(url).await.unwrap();
        f(&store).await;
        store.close().await;
    });
}

fn start(db_url: &str) -> Relay {
    start_relay(&[
        "--realm",
        REALM,
        "--listen",
        "127.0.0.1:0",
        "--auth-database",
        db_url,
        "--allow-loopback-peers",
        "true",
        "--workers",
        "1",
    ])
}

/// Messages echoed back through the relay at `relay` for `user`/`pw` (0 if
/// refused).
fn relayed(relay: SocketAddr, peer: SocketAddr, user: &str, pw: &str) -> u64 {
    uclient(&[
        "-c",
        "-n",
        "5",
        "-u",
        user,
        "-w",
        pw,
        "-e",
        "127.0.0.1",
        "-r",
        &peer.port().to_string(),
        "-p",
        &relay.port().to_string(),
        "127.0.0.1",
    ])
    .received
}

/// Removes `gone`, adds `new`, sends SIGHUP, and waits (the reload is
/// asynchronous to the test) until `new` works; then `gone` must fail.
fn remove_add_reload(url: &str, relay: &Relay, peer: SocketAddr, gone: &str, new: &str) {
    assert_eq!(
        relayed(relay.udp.unwrap(), peer, new, "pw-new"),
        0,
        "not there yet"
    );
    with_store(url, async |s| {
        assert!(s.remove_turn_user(REALM, gone).await.unwrap());
        s.put_turn_user(REALM, new, "pw-new", 2).await.unwrap();
    });
    signal(relay.proc.0.id(), "-HUP");
    let mut back = 0;
    for _ in 0..20 {
        back = relayed(relay.udp.unwrap(), peer, new, "pw-new");
        if back == 5 {
            break;
        }
    }
    assert_eq!(back, 5, "{new} not accepted after SIGHUP");
    assert_eq!(
        relayed(relay.udp.unwrap(), peer, gone, "pw"),
        0,
        "{gone} still accepted after removal and SIGHUP"
    );
}

/// One request and its answer over UDP (retried: loopback can drop).
fn exchange(sock: &UdpSocket, to: SocketAddr, req: &[u8]) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for _ in 0..10 {
        sock.send_to(req, to).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return buf[..n].to_vec();
        }
    }
    panic!("no answer from the relay");
}

fn error_code(m: &Message<'_>) -> Option<u16> {
    let e = m.get(attr::ERROR_CODE)?;
    Some(u16::from(e.value[2]) * 100 + u16::from(e.value[3]))
}

/// An Allocate carrying credentials; `algorithms` is the
/// PASSWORD-ALGORITHMS value to echo and `chosen` the PASSWORD-ALGORITHM.
fn allocate(
    tid: u8,
    user: &str,
    nonce: &str,
    algorithms: &[u8],
    chosen: u16,
    integrity: Integrity,
    key: &Key,
) -> Vec<u8> {
    let mut b = Builder::new(method::ALLOCATE, Class::Request, [tid; 12]);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
        .attr(attr::USERNAME, user.as_bytes())
        .attr(attr::REALM, REALM.as_bytes())
        .attr(attr::NONCE, nonce.as_bytes())
        .attr(attr::PASSWORD_ALGORITHMS, algorithms)
        .password_algorithm(chosen)
        .integrity(integrity, &key.0);
    b.finish_with_fingerprint()
}

/// An RFC 8489 client: reads the offer from the 401, tries a bid-down
/// (offer echoed without SHA-256), then allocates with SHA-256.
fn rfc8489_sha256_allocation(relay: &Relay, user: &str, pw: &str) {
    let to = relay.udp.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut b = Builder::new(method::ALLOCATE, Class::Request, [1; 12]);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
    let raw = exchange(&sock, to, &b.finish_with_fingerprint());
    let m = Message::parse(&raw).unwrap();
    assert_eq!(error_code(&m), Some(401));
    let nonce = m.get_str(attr::NONCE).unwrap().unwrap().to_owned();
    assert!(nonce.starts_with(NONCE_COOKIE), "{nonce}");
    let offer = m.get(attr::PASSWORD_ALGORITHMS).unwrap().value.to_vec();
    assert_eq!(offer, [0, 1, 0, 0, 0, 2, 0, 0]);
    println!("401 challenge: {} bytes, nonce {nonce}", raw.len());

    // A man in the middle stripped SHA-256 from the offer: refused.
    let md5 = Key::derive(user, REALM, pw);
    let req = allocate(
        2,
        user,
        &nonce,
        &[0, 1, 0, 0],
        password_algorithm::MD5,
        Integrity::Sha1,
        &md5,
    );
    let raw = exchange(&sock, to, &req);
    assert_eq!(error_code(&Message::parse(&raw).unwrap()), Some(400));

    let sha = Key::derive_with(PasswordAlgorithm::Sha256, user, REALM, pw);
    let req = allocate(
        3,
        user,
        &nonce,
        &offer,
        password_algorithm::SHA256,
        Integrity::Sha256,
        &sha,
    );
    let raw = exchange(&sock, to, &req);
    let m = Message::parse(&raw).unwrap();
    assert_eq!(error_code(&m), None, "SHA-256 Allocate refused");
    assert_eq!(m.check_integrity(&sha.0), Some(Integrity::Sha256));
    assert!(m.get_xor_addr(attr::XOR_RELAYED_ADDRESS).unwrap().is_some());

    // The allocation keeps the SHA-256 key: Refresh 0 deletes it.
    let mut b = Builder::new(method::REFRESH, Class::Request, [4; 12]);
    b.u32(attr::LIFETIME, 0)
        .attr(attr::USERNAME, user.as_bytes())
        .attr(attr::REALM, REALM.as_bytes())
        .attr(attr::NONCE, nonce.as_bytes())
        .attr(attr::PASSWORD_ALGORITHMS, &offer)
        .password_algorithm(password_algorithm::SHA256)
        .integrity(Integrity::Sha256, &sha.0);
    let raw = exchange(&sock, to, &b.finish_with_fingerprint());
    let m = Message::parse(&raw).unwrap();
    assert_eq!(error_code(&m), None, "SHA-256 Refresh refused");
    assert_eq!(m.check_integrity(&sha.0), Some(Integrity::Sha256));
}

#[test]
fn sqlite_users_allocate_and_removed_ones_are_refused_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("signald.db").display());
    with_store(&url, async |s| {
        s.put_turn_user(REALM, "dave", "pw", 1).await.unwrap();
        s.put_turn_user("other.realm", "mallory", "pw", 1)
            .await
            .unwrap();
    });

    // --check-config loads the database like a start does.
    let out = Command::new(env!("CARGO_BIN_EXE_sotto-relay"))
        .args([
            "--check-config",
            "--realm",
            REALM,
            "--listen",
            "127.0.0.1:3478",
        ])
        .args(["--auth-database", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("users=1"), "{text}");

    let (_peer, peer) = start_echo_peer("127.0.0.1");
    let relay = start(&url);
    assert_eq!(relayed(relay.udp.unwrap(), peer, "dave", "pw"), 5);
    assert_eq!(relayed(relay.udp.unwrap(), peer, "dave", "wrong"), 0);
    assert_eq!(
        relayed(relay.udp.unwrap(), peer, "mallory", "pw"),
        0,
        "other realm"
    );
    rfc8489_sha256_allocation(&relay, "dave", "pw");
    remove_add_reload(&url, &relay, peer, "dave", "erin");
    rfc8489_sha256_allocation(&relay, "erin", "pw-new");
}

#[test]
fn postgres_users_allocate_and_removed_ones_are_refused_after_sighup() {
    let pg = servers::Postgres::start();
    with_store(&pg.url, async |s| {
        s.put_turn_user(REALM, "dave", "pw", 1).await.unwrap();
    });
    let (_peer, peer) = start_echo_peer("127.0.0.1");
    let relay = start(&pg.url);
    assert_eq!(relayed(relay.udp.unwrap(), peer, "dave", "pw"), 5);
    rfc8489_sha256_allocation(&relay, "dave", "pw");
    remove_add_reload(&pg.url, &relay, peer, "dave", "erin");
}

#[test]
fn a_broken_database_at_reload_keeps_the_old_users() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("signald.db").display());
    with_store(&url, async |s| {
        s.put_turn_user(REALM, "dave", "pw", 1).await.unwrap();
    });
    let (_peer, peer) = start_echo_peer("127.0.0.1");
    // In process, so the reload's outcome is seen directly.
    let settings = Options {
        realm: Some(REALM.into()),
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        auth_database: Some(url.clone()),
        allow_loopback_peers: Some(true),
        workers: Some(1),
        ..Options::default()
    }
    .resolve()
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::start(settings)).unwrap();
    let addr = server.udp_addrs[0];
    assert_eq!(relayed(addr, peer, "dave", "pw"), 5);
    // A row with a malformed key makes the whole reload fail...
    block_on(async {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE turn_users SET key_md5 = 'not hex'")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let err = rt.block_on(server.reload_credentials()).unwrap_err();
    assert!(err.to_string().contains("malformed key"), "{err}");
    // ...and the users loaded before stay in force.
    assert_eq!(relayed(addr, peer, "dave", "pw"), 5);
    rt.block_on(server.shutdown());
}
