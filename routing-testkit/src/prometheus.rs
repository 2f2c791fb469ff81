//! A real Prometheus (Debian's `prometheus` package, installed by `cargo xtask
//! setup`) on 127.0.0.1 for one test or demo run: a free port, a temporary data
//! directory, one job scraping the given targets every second; killed and removed
//! on drop. Readiness (targets scraped) is the caller's to check through the HTTP
//! API it queries anyway.
//!
//! ```no_run
//! let prom = routing_testkit::prometheus::Prometheus::start("fleet", &["127.0.0.2:8080".parse().unwrap()])
//!     .expect("prometheus starts");
//! println!("query API at {}", prom.url());
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A running Prometheus; dropping it kills the process and removes its data.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Prometheus {
    /// The `prometheus` binary, from `PROMETHEUS_BIN` or the usual places.
    #[must_use]
    pub fn binary() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("PROMETHEUS_BIN") {
            return Some(PathBuf::from(p));
        }
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    /// Starts Prometheus with one job `job` scraping `targets` every second (900 ms
    /// scrape timeout), listening on a free 127.0.0.1 port.
    ///
    /// # Errors
    /// No binary (`NotFound`, naming `cargo xtask setup`), or the process or its
    /// files could not be made.
    pub fn start(job: &str, targets: &[SocketAddr]) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = Self::binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no prometheus binary (Debian package prometheus; `cargo xtask setup` installs it)",
            )
        })?;
        let dir = std::env::temp_dir().join(format!(
            "routing-prom-{job}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data"))?;
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: {job}\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ),
        )?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Ok(Self {
                child,
                dir,
                url: format!("http://127.0.0.1:{port}"),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// The base URL of its HTTP API (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
