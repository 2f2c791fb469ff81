//! Shared stickiness across replicas: two proxies on their own 127.0.0.x listeners
//! read one cookie key ring file (as from a mounted Secret) and accept each other's
//! cookies; the file is rotated while they serve (new key first, old key kept), the
//! new key signs and old cookies still pin; once the old key is dropped, its
//! cookies no longer pin and are re-issued.

use std::path::PathBuf;
use std::time::Duration;

use routing_core::Router;
use routing_testkit::http::{client, get, serve, set_cookie, upstream};
use routing_tower::cookie::watch_ring_file;
use routing_tower::{Backends, CookieKey, HttpBackend, Routing};

const OLD: &str = "a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0";
const NEW: &str = "0f0e0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` to `path` atomically (a rename, as a Secret volume update does).
fn write(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Waits until `layer`'s ring issues with the key `hex`.
async fn until_ring(layer: &routing_tower::RoutingLayer, hex: &str) {
    let want = CookieKey::from_ring_text(hex)
        .expect("key")
        .issue("c", "r", "v", 0);
    for _ in 0..200 {
        if layer.cookie_key().issue("c", "r", "v", 0) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the ring file was not reloaded within 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_one_ring_file_accept_each_others_cookies_across_a_rotation() {
    let dir = TempDir(std::env::temp_dir().join(format!("cookie-ring-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).expect("temp dir");
    let file = dir.0.join("cookie-keys");
    write(&file, &format!("# current first\n{OLD}\n"));

    let (v1, v2) = (upstream("v1").await, upstream("v2").await);
    let yaml = format!(
        r#"
backends: [{{name: v1, address: "{}"}}, {{name: v2, address: "{}"}}]
routes:
  - name: shop
    rules:
      - backends: [{{name: v1, weight: 50}}, {{name: v2, weight: 50}}]
        session_persistence: {{cookie: {{name: shop-sticky}}}}
"#,
        v1.addr(),
        v2.addr()
    );
    let mut replicas = Vec::new();
    let mut watchers = Vec::new();
    for _ in 0..2 {
        let router = Router::from_yaml(&yaml).expect("config");
        let backends = Backends::new()
            .with("v1", HttpBackend::new(v1.addr()))
            .with("v2", HttpBackend::new(v2.addr()));
        let layer = routing_tower::RoutingLayer::builder(router)
            .backends(backends)
            .cookie_key(CookieKey::from_ring_file(&file).expect("ring"))
            .build();
        watchers.push(watch_ring_file(
            layer.clone(),
            &file,
            Duration::from_millis(20),
        ));
        let proxy: Routing<routing_tower::NotFound> =
            tower::Layer::layer(&layer, routing_tower::NotFound);
        replicas.push((serve(proxy).await, layer));
    }
    let (a, b) = (replicas[0].0.addr, replicas[1].0.addr);
    let c = client();

    // Sessions opened on replica a pin on replica b, in both directions.
    let session = |body: String, cookie: String| (body, cookie);
    let mut sessions = Vec::new();
    for i in 0..20 {
        let (from, _) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let r = get(&c, from, "/", &[]).await;
        sessions.push(session(
            r.body,
            set_cookie(&r.headers, "shop-sticky").expect("cookie"),
        ));
    }
    assert!(sessions.iter().any(|(b, _)| b == "v1") && sessions.iter().any(|(b, _)| b == "v2"));
    for (i, (version, cookie)) in sessions.iter().enumerate() {
        let to = if i % 2 == 0 { b } else { a };
        for _ in 0..3 {
            let r = get(&c, to, "/", &[("cookie", cookie)]).await;
            assert_eq!(&r.body, version, "the other replica honours the cookie");
            assert!(
                set_cookie(&r.headers, "shop-sticky").is_none(),
                "and does not re-issue it"
            );
        }
    }

    // Rotation: the new key signs, the old one still verifies.
    write(&file, &format!("{NEW}\n{OLD}\n"));
    until_ring(&replicas[0].1, NEW).await;
    until_ring(&replicas[1].1, NEW).await;
    let mut renewed = Vec::new();
    for (version, cookie) in &sessions {
        let r = get(&c, a, "/", &[("cookie", cookie)]).await;
        assert_eq!(&r.body, version, "an old-key cookie still pins");
        let fresh = set_cookie(&r.headers, "shop-sticky").expect("re-issued with the new key");
        let r = get(&c, b, "/", &[("cookie", &fresh)]).await;
        assert_eq!(
            &r.body, version,
            "the new-key cookie pins on the other replica"
        );
        assert!(set_cookie(&r.headers, "shop-sticky").is_none());
        renewed.push(fresh);
    }

    // A broken file keeps the live ring.
    write(&file, "not a key\n");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = get(&c, b, "/", &[("cookie", &renewed[0])]).await;
    assert_eq!(r.body, sessions[0].0);
    assert!(set_cookie(&r.headers, "shop-sticky").is_none());

    // The old key retired: old cookies no longer pin (a new cookie is issued), new ones do.
    write(&file, &format!("{NEW}\n"));
    for (_, layer) in &replicas {
        let old_cookie = &sessions[0].1;
        let mut retired = false;
        for _ in 0..200 {
            if layer
                .cookie_key()
                .verify("shop-sticky", "shop", old_cookie)
                .is_none()
            {
                retired = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(retired, "the old key left the ring within 2 s");
    }
    for (i, (version, old)) in sessions.iter().enumerate() {
        let r = get(&c, b, "/", &[("cookie", old)]).await;
        assert!(
            set_cookie(&r.headers, "shop-sticky").is_some(),
            "an unverifiable cookie is replaced"
        );
        let r = get(&c, a, "/", &[("cookie", &renewed[i])]).await;
        assert_eq!(&r.body, version);
    }
    for w in watchers {
        w.abort();
    }
}
