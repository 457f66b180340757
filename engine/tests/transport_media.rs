//! The whole media path over the tokio driver: Opus-sized RTP protected
//! with SRTP, RTCP SR/RR over SRTCP on the same port, between two endpoints
//! that found each other with ICE on loopback. Both learn the RTT.

mod transport_support;

use sotto_engine::driver::TransportHandle;
use sotto_engine::ice::IceConfig;
use sotto_engine::rtp::{MediaStream, OPUS_20MS_TICKS, OPUS_PAYLOAD_TYPE, Received, RtpSender};
use sotto_engine::srtp::{Profile, SrtpContext};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use transport_support::{Call, signalling};

fn stream(ssrc: u32, tx: u8, rx: u8) -> MediaStream {
    let ctx =
        |k: u8| SrtpContext::new(Profile::AesCm128HmacSha1_80, &[k; 16], &[k ^ 0xff; 14]).unwrap();
    let now = Instant::now();
    MediaStream::new(
        now,
        RtpSender::new(ssrc, OPUS_PAYLOAD_TYPE, 1000, 0).unwrap(),
        ctx(tx),
        ctx(rx),
        (now, 1 << 32),
    )
    .with_rtcp_interval(now, Duration::from_millis(300))
}

/// Feeds received datagrams to `s`; returns how many audio packets were valid.
fn take(s: &mut MediaStream, media: &mut Vec<Vec<u8>>) -> usize {
    let mut audio = 0;
    for mut m in media.drain(..) {
        let len = m.len();
        if let Ok(Received::Audio(p)) = s.receive(Instant::now(), &mut m, len) {
            assert_eq!(p.payload.len(), 90);
            audio += 1;
        }
    }
    audio
}

#[tokio::test]
async fn srtp_audio_and_rtcp_rtt_over_the_driver() {
    let (sa, from_a, sb, from_b) = signalling();
    let v4: [SocketAddr; 1] = ["127.0.0.1:0".parse().unwrap()];
    let a = TransportHandle::bind(
        &v4,
        IceConfig {
            controlling: true,
            ..IceConfig::default()
        },
        Box::new(sa),
    )
    .await
    .unwrap();
    let b = TransportHandle::bind(
        &v4,
        IceConfig {
            controlling: false,
            ..IceConfig::default()
        },
        Box::new(sb),
    )
    .await
    .unwrap();
    let mut call = Call::new(a, from_a, b, from_b);
    assert!(call.connect(Duration::from_secs(20)).await);
    let (mut sa, mut sb) = (stream(0xA, 1, 2), stream(0xB, 2, 1));
    let (mut got_a, mut got_b) = (0, 0);
    let mut buf = [0u8; 256];
    for _ in 0..1000 {
        for (s, h) in [(&mut sa, &call.a), (&mut sb, &call.b)] {
            let n = s
                .send_audio(Instant::now(), &[0x42; 90], OPUS_20MS_TICKS, &mut buf)
                .unwrap();
            h.send_media(buf[..n].to_vec()).await.unwrap();
            s.handle_timeout(Instant::now());
            while let Some(r) = s.poll_transmit() {
                h.send_media(r).await.unwrap();
            }
        }
        call.run_until(Duration::from_millis(20), |_| false).await;
        got_a += take(&mut sa, &mut call.a_media);
        got_b += take(&mut sb, &mut call.b_media);
        if got_a >= 50 && got_b >= 50 && sa.rtt().is_some() && sb.rtt().is_some() {
            break;
        }
    }
    assert!(got_a >= 50 && got_b >= 50, "audio: {got_a} / {got_b}");
    let (ra, rb) = (sa.rtt().expect("A's RTT"), sb.rtt().expect("B's RTT"));
    // Loopback RTT is tiny; what matters is that it was measured from real reports.
    assert!(
        ra < Duration::from_secs(1) && rb < Duration::from_secs(1),
        "{ra:?} {rb:?}"
    );
    assert_eq!(sb.remote_stats().ssrc(), Some(0xA));
    for st in [sa.srtp_stats(), sb.srtp_stats()] {
        assert_eq!(
            (st.auth_failures, st.replays, st.malformed),
            (0, 0, 0),
            "{st:?}"
        );
        assert!(
            st.rtcp_unprotected >= 1 && st.rtp_unprotected >= 50,
            "{st:?}"
        );
    }
    let Call { a, b, .. } = call;
    a.shutdown().await;
    b.shutdown().await;
}
