//! Two endpoints connect directly on loopback (IPv4 + IPv6) through the
//! tokio driver, exchange media both ways, and shut down cleanly.

mod transport_support;

use sotto_engine::driver::TransportHandle;
use sotto_engine::ice::IceConfig;
use std::net::SocketAddr;
use std::time::Duration;
use transport_support::{Call, signalling};

fn cfg(controlling: bool) -> IceConfig {
    IceConfig {
        controlling,
        ..IceConfig::default()
    }
}

fn loopback() -> Vec<SocketAddr> {
    let mut v = vec!["127.0.0.1:0".parse().unwrap()];
    // IPv6 loopback when the machine has it.
    if std::net::UdpSocket::bind("[::1]:0").is_ok() {
        v.push("[::1]:0".parse().unwrap());
    }
    v
}

#[tokio::test]
async fn direct_loopback_call_and_clean_shutdown() {
    let (sa, from_a, sb, from_b) = signalling();
    let a = TransportHandle::bind(&loopback(), cfg(true), Box::new(sa))
        .await
        .unwrap();
    let b = TransportHandle::bind(&loopback(), cfg(false), Box::new(sb))
        .await
        .unwrap();
    let a_addrs = a.local_addrs().to_vec();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(
        call.connect(Duration::from_secs(20)).await,
        "ICE did not connect"
    );
    let (pa, pb) = (call.a_selected.unwrap(), call.b_selected.unwrap());
    assert!(!pa.relayed && !pb.relayed);
    assert_eq!(pa.remote, pb.socket, "both ends agree on the pair");
    assert_eq!(pb.remote, pa.socket);
    assert!(call.exchange(1, 50, 45).await, "media did not flow");
    // Every media datagram arrived intact.
    assert!(
        call.a_media
            .iter()
            .all(|m| m.len() == 112 && m[12..].iter().all(|&b| b == 1))
    );

    // A stranger sprays A's socket: DTLS, garbage, RTP and STUN without
    // credentials. All are counted and dropped; the path does not move.
    let stranger = std::net::UdpSocket::bind(if pa.socket.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .unwrap();
    let mut bogus_stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    bogus_stun.extend_from_slice(&[9u8; 12]);
    for d in [
        vec![22u8; 40],
        vec![0xFF; 40],
        transport_support::rtp_like(9, 1),
        bogus_stun,
    ] {
        stranger.send_to(&d, pa.socket).unwrap();
    }
    let before = call.a.stats().await.unwrap().0;
    let mut after = before;
    for _ in 0..200 {
        call.run_until(Duration::from_millis(10), |_| false).await;
        after = call.a.stats().await.unwrap().0;
        if after.demux.dtls_dropped >= 1
            && after.demux.unknown_dropped >= 1
            && after.media_off_path >= 1
            && after.stun_rejected >= 1
        {
            break;
        }
    }
    assert!(after.demux.dtls_dropped >= 1, "{after:?}");
    assert!(after.demux.unknown_dropped >= 1, "{after:?}");
    assert!(after.media_off_path >= 1, "{after:?}");
    assert!(after.stun_rejected >= 1, "{after:?}");
    assert_eq!(transport_support::count_tag(&call.a_media, 9), 0);
    assert_eq!(call.a.stats().await.unwrap().1, Some(pa));

    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
    // No socket is left behind: the exact ports can be bound again.
    for addr in a_addrs {
        std::net::UdpSocket::bind(addr).expect("port still held after shutdown");
    }
}
