//! A configuration the server cannot run with stops it at start, with the
//! setting named, instead of breaking it later.

mod common;

use sotto_signalling::config::ConfigError;
use sotto_signalling::server;

#[tokio::test]
async fn out_of_range_settings_stop_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    type Breaks = fn(&mut sotto_signalling::config::Config);
    let cases: [(&str, Breaks); 4] = [
        ("ring_timeout_s", |c| c.ring_timeout_s = 0),
        ("session_ttl_s", |c| c.session_ttl_s = 0),
        ("device_rate", |c| c.device_rate = 0.0),
        ("ip_rate", |c| c.ip_rate = f64::NAN),
    ];
    for (setting, break_it) in cases {
        let mut cfg = common::config(dir.path());
        break_it(&mut cfg);
        let err = server::start(cfg, None).await.unwrap_err();
        let err = err
            .downcast_ref::<ConfigError>()
            .unwrap_or_else(|| panic!("{setting}: not a config error: {err:#}"));
        assert_eq!(err.setting, setting);
    }
}
