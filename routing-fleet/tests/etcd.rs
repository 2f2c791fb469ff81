//! The etcd election against a real etcd (Debian's `etcd-server`, installed by
//! `cargo xtask setup`) started here on 127.0.0.1 with a temp data dir. Built only
//! with `--features etcd` (`required-features`; `cargo xtask test` has a run for it).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_etcd_election_one_leader_expiry_and_release() {
    real::run().await;
}

mod real {
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use routing_fleet::EtcdElection;

    struct Etcd {
        child: Child,
        dir: PathBuf,
        url: String,
    }

    impl Drop for Etcd {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    async fn start_etcd() -> Option<Etcd> {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())?;
        let dir = std::env::temp_dir().join(format!("fleet-etcd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(bin)
            .args(["--name", "fleet", "--data-dir"])
            .arg(&dir)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("fleet={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let etcd = Etcd { child, dir, url };
        for _ in 0..100 {
            if let Ok(mut c) = etcd_client::Client::connect([etcd.url.as_str()], None).await {
                if c.get("probe", None).await.is_ok() {
                    return Some(etcd);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("etcd did not answer within 10 s");
    }

    pub(crate) async fn run() {
        let etcd = start_etcd()
            .await
            .expect("no etcd binary: run `cargo xtask setup` (it installs the Debian package `etcd-server`)");
        let ttl = Duration::from_secs(2);
        let url = etcd.url.as_str();
        let mut a = EtcdElection::connect(&[url], "/routing/shop/leader", "a", ttl)
            .await
            .expect("a");
        let mut b = EtcdElection::connect(&[url], "/routing/shop/leader", "b", ttl)
            .await
            .expect("b");
        assert!(
            a.try_acquire_or_renew().await.expect("a"),
            "a campaigns first and wins"
        );
        assert!(
            !b.try_acquire_or_renew().await.expect("b"),
            "one leader at a time"
        );
        assert_eq!(b.leader().await.expect("leader").as_deref(), Some("a"));
        // a renews past its ttl: still the leader, b still not.
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(a.try_acquire_or_renew().await.expect("a renews"));
            assert!(a.is_leader());
            assert!(!b.try_acquire_or_renew().await.expect("b"));
        }
        // a stops renewing (crash): etcd expires its lease, b takes over.
        let last_renewal = Instant::now();
        drop(a);
        let mut took = None;
        while last_renewal.elapsed() < Duration::from_secs(10) {
            if b.try_acquire_or_renew().await.expect("b") {
                took = Some(last_renewal.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let took = took.expect("b took over after a's lease expired");
        assert!(
            took >= Duration::from_millis(1_000),
            "b took over {took:?} after a's last renewal: before the ttl"
        );
        assert_eq!(b.leader().await.expect("leader").as_deref(), Some("b"));
        // b steps down: the key goes at once, a newcomer wins at once.
        b.release().await.expect("release");
        assert!(!b.is_leader());
        let mut c = EtcdElection::connect(&[url], "/routing/shop/leader", "c", ttl)
            .await
            .expect("c");
        assert!(
            c.try_acquire_or_renew().await.expect("c"),
            "the released key is free"
        );
    }
}
