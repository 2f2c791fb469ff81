//! A real etcd server (Debian's `etcd-server` package, installed by
//! `cargo xtask setup`) on 127.0.0.1 for one test: its own ports, a temporary data
//! directory, killed and removed on drop.
//!
//! ```no_run
//! let etcd = routing_testkit::etcd::Etcd::start().expect("etcd starts");
//! println!("client URL: {}", etcd.endpoint());
//! // dropped: the process is killed and its data directory removed
//! ```

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a start may take before it is an error.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running etcd; dropping it kills the process and removes its data.
#[derive(Debug)]
pub struct Etcd {
    child: Child,
    dir: PathBuf,
    client: SocketAddr,
}

/// The `etcd` binary, from `ETCD_BIN` or the usual places.
fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/etcd", "/usr/local/bin/etcd", "/usr/sbin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A port free on 127.0.0.1 now (bound and released).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET /health` answers `"health":"true"`.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut body = String::new();
    let _ = s.take(4096).read_to_string(&mut body);
    body.contains("\"health\":\"true\"")
}

impl Etcd {
    /// Whether an etcd binary is installed (tests that need one and find none fail
    /// with a message naming `cargo xtask setup`).
    #[must_use]
    pub fn available() -> bool {
        binary().is_some()
    }

    /// Starts one single-member etcd on free 127.0.0.1 ports and waits until it
    /// reports healthy.
    ///
    /// # Errors
    /// No binary (`NotFound`), the process failed to start or exited, or it was not
    /// healthy within 20 s.
    pub fn start() -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no etcd binary (Debian package etcd-server; `cargo xtask setup` installs it)",
            )
        })?;
        let dir = std::env::temp_dir().join(format!(
            "routing-etcd-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let (cport, pport) = (free_port()?, free_port()?);
        let client: SocketAddr = SocketAddr::from(([127, 0, 0, 1], cport));
        let curl = format!("http://{client}");
        let purl = format!("http://127.0.0.1:{pport}");
        let log = std::fs::File::create(dir.join("etcd.log"))?;
        let child = Command::new(bin)
            .arg("--name=test")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={curl}"))
            .arg(format!("--advertise-client-urls={curl}"))
            .arg(format!("--listen-peer-urls={purl}"))
            .arg(format!("--initial-advertise-peer-urls={purl}"))
            .arg(format!("--initial-cluster=test={purl}"))
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut etcd = Self { child, dir, client };
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = etcd.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "etcd exited ({status}): {}",
                    etcd.log_tail()
                )));
            }
            if healthy(client) {
                return Ok(etcd);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("etcd not healthy after 20 s: {}", etcd.log_tail()),
        ))
    }

    /// The client URL (`http://127.0.0.1:PORT`).
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.client)
    }

    /// The data directory (removed on drop).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines etcd logged, for error messages.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
