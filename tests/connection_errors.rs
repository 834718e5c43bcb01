//! Redis down, wrong password, no password: clear errors that name the fix.
mod common;
use baton::local_redis::LocalRedis;
use baton::{Client, Error};

#[tokio::test]
async fn unreachable_redis_names_the_config_key() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // nothing listens there now
    let cfg = common::test_config(&format!("redis://127.0.0.1:{port}/0"));
    let e = Client::connect(cfg).await.err().expect("must fail");
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("redis.url") && msg.contains(&port.to_string()),
        "{msg}"
    );
}

#[tokio::test]
async fn wrong_or_missing_password_is_an_auth_error() {
    let redis = LocalRedis::start_with(&["--requirepass", "right-password"]).unwrap();
    let mut cfg = common::test_config(&redis.url());
    cfg.redis.password = Some("wrong".into());
    let e = Client::connect(cfg.clone()).await.err().expect("must fail");
    assert!(matches!(e, Error::Auth { .. }), "{e}");
    assert!(e.to_string().contains("redis.password"), "{e}");

    cfg.redis.password = None;
    let e = Client::connect(cfg.clone()).await.err().expect("must fail");
    assert!(matches!(e, Error::Auth { .. }), "{e}");

    cfg.redis.password = Some("right-password".into());
    let c = Client::connect(cfg).await.unwrap();
    c.queue("q").unwrap().counts().await.unwrap();
}

#[tokio::test]
async fn bad_url_is_a_config_error() {
    let mut cfg = common::test_config("redis://127.0.0.1:1/0");
    cfg.redis.url = "http://localhost".into();
    let e = Client::connect(cfg).await.err().unwrap();
    assert!(e.to_string().contains("redis.url"), "{e}");
}
