//! Every refusal of the HTTP API is `{"error": code}` JSON, the framework's
//! own (bad JSON, wrong content type, body too large, unknown path, wrong
//! method, not a WebSocket) included.

mod common;

use sotto_signalling::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_rejections_are_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let srv = server::start(common::config(dir.path()), None)
        .await
        .unwrap();
    let base = format!("http://{}", srv.addr);
    let http = reqwest::Client::new();
    let json = |body: &'static str| {
        http.post(format!("{base}/v1/challenge"))
            .header("content-type", "application/json")
            .body(body)
    };
    let big = format!(r#"{{"device_id":"{}"}}"#, "x".repeat(200_000));
    let cases = [
        (json("{not json"), 400, "bad_request"),
        (json(r#"{"device_id": 7}"#), 422, "bad_request"),
        (
            http.post(format!("{base}/v1/challenge"))
                .header("content-type", "text/plain")
                .body(r#"{"device_id":"d"}"#),
            415,
            "unsupported_media_type",
        ),
        (
            http.post(format!("{base}/v1/challenge"))
                .header("content-type", "application/json")
                .body(big),
            413,
            "too_large",
        ),
        (http.get(format!("{base}/v1/nowhere")), 404, "not_found"),
        (
            http.get(format!("{base}/v1/session")),
            405,
            "method_not_allowed",
        ),
    ];
    for (n, (req, status, code)) in cases.into_iter().enumerate() {
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "case {n}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("application/json"), "case {n}: {ct}");
        let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(body, serde_json::json!({ "error": code }), "case {n}");
    }
    // A session's GET to the WebSocket path without the upgrade.
    let (_bob, btok) = common::device(&base).await;
    let res = http
        .get(format!("{base}/v1/ws"))
        .bearer_auth(&btok)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert!(body["error"].is_string(), "{body}");
    srv.shutdown().await;
}
