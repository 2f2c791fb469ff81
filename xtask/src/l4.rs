//! What the L4 demo and the kernel baseline share: TCP servers and clients that run
//! inside network namespaces, and the commands that drive them.
//!
//! The servers and clients are this same `xtask` binary, started with
//! `ip netns exec NS xtask __l4-serve …` / `__l4-client`, so nothing but `iproute2` is
//! needed and no `unsafe` `setns` call is made. Each worker exits when its standard
//! input closes, so a worker never outlives the task that started it, even when that
//! task is killed; [`Worker`]'s `Drop` kills and reaps it on every normal exit path.
//!
//! The wire protocol is tiny: a server writes its name and `\n` as soon as it accepts
//! a connection, answers every `?` byte it receives with its name again, discards
//! every other byte, and closes when the client closes. A client therefore learns
//! which target it reached from the first line, proves a connection still works (and
//! still reaches the same target) by sending `?`, and measures throughput by
//! sending zero bytes after a first `B` byte (which tells the server not to scan).
//!
//! A client is driven over its standard input, one command a line, each answered by
//! one JSON line on its standard output:
//!
//! * `open VIP N` — open `N` connections to `VIP` and hold them:
//!   `{"opened":n,"failed":f,"targets":{"t0":k,…}}`;
//! * `check` — send `?` on every held connection:
//!   `{"held":n,"alive":a,"same":s}` (`same`: answered by the target that first
//!   greeted it);
//! * `close` — close the held connections: `{"closed":n}`;
//! * `rate VIP SECS CONC` — for `SECS` seconds, `CONC` loops each connect, read the
//!   greeting, close: `{"conns":n,"failed":f,"secs":s,"targets":{…}}`;
//! * `bulk VIP SECS STREAMS` — `STREAMS` connections each send zeros for `SECS`
//!   seconds, then half-close and wait for the server to close (so every byte
//!   counted has been received): `{"bytes":b,"secs":s,"failed":f}`.

// Without the `ebpf` feature only the workers run (the controller side is unused).
#![cfg_attr(not(feature = "ebpf"), allow(dead_code))]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{TcpListener, TcpStream};

/// How long one connect or one greeting may take before it counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How many connections `open` establishes at once.
const OPEN_CONCURRENCY: usize = 64;
/// The most connections a client holds, and the most a `rate`/`bulk` command runs
/// in parallel.
const MAX_CONNS: usize = 10_000;
/// The longest a `rate` or `bulk` command may run.
const MAX_SECS: f64 = 60.0;
/// The longest a worker lives, whatever it is told (a last-resort bound).
const WORKER_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A hidden worker task (`__l4-serve`, `__l4-client`), run inside a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkerTask {
    /// Serve TCP on `listen`, greeting with `name`.
    Serve {
        /// The name the server answers with.
        name: String,
        /// The address it listens on.
        listen: SocketAddr,
    },
    /// Run client commands read from standard input.
    Client,
}

/// Runs a worker task until its standard input closes (or [`WORKER_LIFETIME`]).
pub(crate) fn run_worker(task: &WorkerTask) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    match task {
        WorkerTask::Serve { name, listen } => rt.block_on(serve(name.clone(), *listen)),
        WorkerTask::Client => rt.block_on(client()),
    }
}

/// The server: greets, answers `?`, discards the rest; exits when stdin closes.
async fn serve(name: String, listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!("ready");
    std::io::stdout().flush()?;
    tokio::select! {
        () = accept_loop(listener, name) => Ok(()),
        () = stdin_closed() => Ok(()),
        () = tokio::time::sleep(WORKER_LIFETIME) => Ok(()),
    }
}

/// Accepts connections forever, each served by its own task.
async fn accept_loop(listener: TcpListener, name: String) {
    let greeting: std::sync::Arc<[u8]> = format!("{name}\n").into_bytes().into();
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let greeting = greeting.clone();
        tokio::spawn(async move {
            let _ = sock.set_nodelay(true);
            if sock.write_all(&greeting).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            let mut bulk = None;
            loop {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    // A bulk stream announces itself with `B`: its bytes are only
                    // counted by the client, not scanned for `?`.
                    Ok(_) if *bulk.get_or_insert(buf[0] == b'B') => {}
                    Ok(n) => {
                        let asks = buf[..n].iter().filter(|&&b| b == b'?').count();
                        for _ in 0..asks {
                            if sock.write_all(&greeting).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
    }
}

/// Resolves when standard input reaches end of file (the parent closed it or died).
async fn stdin_closed() {
    let mut lines = AsyncBufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = lines.next_line().await {}
}

/// A held client connection and the target that greeted it.
struct Held {
    /// The connection.
    stream: AsyncBufReader<TcpStream>,
    /// The greeting's name.
    target: String,
}

/// The client: runs commands from standard input until it closes.
async fn client() -> Result<()> {
    let mut held: Vec<Held> = Vec::new();
    let mut lines = AsyncBufReader::new(tokio::io::stdin()).lines();
    let started = Instant::now();
    while let Some(line) = lines.next_line().await? {
        if started.elapsed() > WORKER_LIFETIME {
            break;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["open", vip, n] => open(&mut held, vip.parse()?, bounded(n)?).await,
            ["check"] => check(&mut held).await,
            ["close"] => {
                let n = held.len();
                held.clear();
                json!({ "closed": n })
            }
            ["rate", vip, secs, conc] => rate(vip.parse()?, secs.parse()?, bounded(conc)?).await,
            ["bulk", vip, secs, streams] => {
                bulk(vip.parse()?, secs.parse()?, bounded(streams)?).await
            }
            _ => json!({ "error": format!("unknown command `{line}`") }),
        };
        // The task that started this worker may be gone (interrupted): then there
        // is no one to answer, and the worker ends quietly.
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

/// A count from a command, at most [`MAX_CONNS`].
fn bounded(s: &str) -> Result<usize> {
    let n: usize = s.parse()?;
    ensure!(
        (1..=MAX_CONNS).contains(&n),
        "{n} is not in 1..={MAX_CONNS}"
    );
    Ok(n)
}

/// Connects and reads the greeting, both within [`IO_TIMEOUT`].
async fn connect(vip: SocketAddr) -> Option<(AsyncBufReader<TcpStream>, String)> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(vip))
        .await
        .ok()?
        .ok()?;
    let _ = stream.set_nodelay(true);
    let mut stream = AsyncBufReader::new(stream);
    let mut name = String::new();
    let n = tokio::time::timeout(IO_TIMEOUT, stream.read_line(&mut name))
        .await
        .ok()?
        .ok()?;
    (n > 0).then(|| (stream, name.trim_end().to_owned()))
}

/// `open VIP N`.
async fn open(held: &mut Vec<Held>, vip: SocketAddr, n: usize) -> Value {
    let n = n.min(MAX_CONNS.saturating_sub(held.len()));
    let mut targets: BTreeMap<String, usize> = BTreeMap::new();
    let (mut opened, mut failed) = (0, 0);
    let mut left = n;
    while left > 0 {
        let batch = left.min(OPEN_CONCURRENCY);
        left -= batch;
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            set.spawn(connect(vip));
        }
        while let Some(r) = set.join_next().await {
            match r.ok().flatten() {
                Some((stream, target)) => {
                    opened += 1;
                    *targets.entry(target.clone()).or_default() += 1;
                    held.push(Held { stream, target });
                }
                None => failed += 1,
            }
        }
    }
    json!({ "opened": opened, "failed": failed, "targets": targets })
}

/// `check`: every held connection answers `?` with the name that greeted it.
async fn check(held: &mut [Held]) -> Value {
    let (mut alive, mut same) = (0, 0);
    for h in held.iter_mut() {
        let ok = async {
            h.stream.get_mut().write_all(b"?").await.ok()?;
            let mut name = String::new();
            let n = h.stream.read_line(&mut name).await.ok()?;
            (n > 0).then(|| name.trim_end().to_owned())
        };
        if let Ok(Some(name)) = tokio::time::timeout(IO_TIMEOUT, ok).await {
            alive += 1;
            same += usize::from(name == h.target);
        }
    }
    json!({ "held": held.len(), "alive": alive, "same": same })
}

/// `rate VIP SECS CONC`: connections per second, each closed with a reset so the
/// client's ports do not pile up in TIME_WAIT.
async fn rate(vip: SocketAddr, secs: f64, conc: usize) -> Value {
    let secs = secs.clamp(0.1, MAX_SECS);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..conc {
        set.spawn(async move {
            let mut targets: BTreeMap<String, usize> = BTreeMap::new();
            let mut failed = 0usize;
            while Instant::now() < deadline {
                match connect(vip).await {
                    Some((stream, target)) => {
                        let _ = stream.get_ref().set_zero_linger();
                        *targets.entry(target).or_default() += 1;
                    }
                    None => failed += 1,
                }
            }
            (targets, failed)
        });
    }
    let mut targets: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        if let Ok((t, f)) = r {
            failed += f;
            for (k, v) in t {
                *targets.entry(k).or_default() += v;
            }
        }
    }
    let conns: usize = targets.values().sum();
    json!({ "conns": conns, "failed": failed, "secs": started.elapsed().as_secs_f64(), "targets": targets })
}

/// `bulk VIP SECS STREAMS`: bytes sent and received by the servers.
async fn bulk(vip: SocketAddr, secs: f64, streams: usize) -> Value {
    let secs = secs.clamp(0.1, MAX_SECS);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..streams {
        set.spawn(async move {
            let (stream, _) = connect(vip).await?;
            let mut stream = stream.into_inner();
            let mut buf = vec![0u8; 64 * 1024];
            buf[0] = b'B';
            tokio::time::timeout(IO_TIMEOUT, stream.write_all(&buf))
                .await
                .ok()?
                .ok()?;
            buf[0] = 0;
            let mut sent = 0u64;
            while Instant::now() < deadline {
                let n = tokio::time::timeout(IO_TIMEOUT, stream.write(&buf))
                    .await
                    .ok()?
                    .ok()?;
                sent += n as u64;
            }
            stream.shutdown().await.ok()?;
            // The server closes once it has read everything: wait for that.
            let mut sink = [0u8; 256];
            loop {
                match tokio::time::timeout(IO_TIMEOUT, stream.read(&mut sink)).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(_)) => {}
                    _ => return None,
                }
            }
            Some(sent)
        });
    }
    let (mut bytes, mut failed) = (0u64, 0usize);
    while let Some(r) = set.join_next().await {
        match r.ok().flatten() {
            Some(b) => bytes += b,
            None => failed += 1,
        }
    }
    json!({ "bytes": bytes, "secs": started.elapsed().as_secs_f64(), "failed": failed })
}

/// The binary workers run, when not this one (see [`use_release_workers`]).
static WORKER_EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Makes workers run an optimised build of this crate: a debug build's servers and
/// clients would be the bottleneck of a benchmark. Builds it first (`cargo build
/// --release -p xtask`, about a minute from clean); a release build is used as is.
pub(crate) fn use_release_workers() -> Result<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = crate::workspace_root();
    eprintln!("xtask: building the load generator optimised: `cargo build --release -p xtask`");
    sh(
        Command::new(cargo)
            .args(["build", "--release", "--quiet", "-p", "xtask"])
            .current_dir(&root)
            .stderr(Stdio::inherit()),
        "cargo build --release -p xtask",
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let exe = target.join("release").join("xtask");
    ensure!(exe.is_file(), "no {} after the build", exe.display());
    let _ = WORKER_EXE.set(exe);
    Ok(())
}

/// A worker process in a namespace, killed and reaped on drop.
pub(crate) struct Worker {
    /// What it is, for messages.
    what: String,
    /// The process.
    child: Child,
    /// Its standard input (commands); dropping it makes the worker exit.
    stdin: Option<ChildStdin>,
    /// Its standard output (answers).
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Starts `xtask ARGS…` in namespace `ns`.
    fn start(ns: &str, args: &[&str], what: String) -> Result<Self> {
        let exe = match WORKER_EXE.get() {
            Some(exe) => exe.clone(),
            None => std::env::current_exe().context("cannot find the xtask binary")?,
        };
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {what} in namespace {ns}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        Ok(Self {
            what,
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Starts a server named `name` listening on `listen` in `ns`, and waits until it
    /// listens.
    pub(crate) fn server(ns: &str, name: &str, listen: SocketAddr) -> Result<Self> {
        let addr = listen.to_string();
        let mut w = Self::start(
            ns,
            &["__l4-serve", name, &addr],
            format!("server {name} ({listen} in {ns})"),
        )?;
        let line = w.read_line()?;
        ensure!(line.trim() == "ready", "{} did not start: {line:?}", w.what);
        Ok(w)
    }

    /// Starts a client in `ns`.
    pub(crate) fn client(ns: &str) -> Result<Self> {
        Self::start(ns, &["__l4-client"], format!("client in {ns}"))
    }

    /// Sends one command and returns its JSON answer.
    pub(crate) fn command(&mut self, cmd: &str) -> Result<Value> {
        let stdin = self.stdin.as_mut().context("worker already closed")?;
        writeln!(stdin, "{cmd}").with_context(|| format!("{} is gone", self.what))?;
        stdin.flush()?;
        let line = self.read_line()?;
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} answered {line:?} to `{cmd}`", self.what))?;
        if let Some(e) = v.get("error") {
            bail!("{} refused `{cmd}`: {e}", self.what);
        }
        Ok(v)
    }

    /// One line of the worker's output; an error if it exited.
    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line)?;
        if n == 0 {
            let status = self.child.try_wait().ok().flatten();
            bail!("{} exited ({status:?})", self.what);
        }
        Ok(line)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Per-target counts from a JSON answer's `targets` object.
pub(crate) fn targets(v: &Value) -> BTreeMap<String, u64> {
    v["targets"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `ip ARGS…` (optionally inside `ns`), failing with its stderr.
pub(crate) fn ip(ns: Option<&str>, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["netns", "exec", ns, "ip"]);
    }
    sh(cmd.args(args), &format!("ip {}", args.join(" ")))
}

/// Runs a command, failing with its stderr.
pub(crate) fn sh(cmd: &mut Command, shown: &str) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `nft -f -` with `script` on its standard input inside `ns`.
pub(crate) fn nft(ns: &str, script: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `nft` (install Debian's `nftables`: `cargo xtask setup`)")?;
    child
        .stdin
        .take()
        .context("no stdin pipe")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`nft -f -` in {ns} failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Namespaces to delete if the task is interrupted (Ctrl-C or SIGTERM), registered by
/// whoever creates them and removed again once they are deleted normally.
static CLEANUP: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Registers a namespace for deletion on interruption.
pub(crate) fn on_interrupt_delete(ns: &str) {
    install_interrupt_handler();
    if let Ok(mut v) = CLEANUP.lock() {
        v.push(ns.to_owned());
    }
}

/// Forgets a namespace that was deleted normally.
pub(crate) fn forget_on_interrupt(ns: &str) {
    if let Ok(mut v) = CLEANUP.lock() {
        v.retain(|n| n != ns);
    }
}

/// Installs (once) a thread that waits for SIGINT or SIGTERM, deletes the registered
/// namespaces (which takes their veths, XDP attachments, nftables tables and the
/// workers' sockets with them) and exits with status 130. Without it the default
/// action would kill the task before any `Drop` ran. tokio's signal support is used
/// because the crate already depends on tokio; its handler only sets a flag that the
/// thread's runtime turns into a wake-up, so the cleanup runs in ordinary code.
fn install_interrupt_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let (tx, rx) = std::sync::mpsc::channel::<bool>();
        let spawned = std::thread::Builder::new()
            .name("xtask-signals".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    let _ = tx.send(false);
                    return;
                };
                rt.block_on(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let (Ok(mut int), Ok(mut term)) = (
                        signal(SignalKind::interrupt()),
                        signal(SignalKind::terminate()),
                    ) else {
                        let _ = tx.send(false);
                        return;
                    };
                    let _ = tx.send(true);
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                });
                let namespaces = CLEANUP.lock().map(|v| v.clone()).unwrap_or_default();
                eprintln!(
                    "\nxtask: interrupted: deleting {} namespace(s)",
                    namespaces.len()
                );
                for ns in namespaces.iter().rev() {
                    let _ = ip(None, &["netns", "del", ns]);
                }
                std::process::exit(130);
            });
        // Wait until the handlers are registered, so an early Ctrl-C is caught too.
        if spawned.is_ok() && !rx.recv_timeout(Duration::from_secs(5)).unwrap_or(false) {
            eprintln!(
                "xtask: WARNING: no Ctrl-C handler: an interrupt may leave namespaces behind"
            );
        }
    });
}

/// The median of some measurements (the mean of the middle two for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The largest distance, in percentage points, between the observed shares of
/// `counts` and the `expected` shares (by target name).
pub(crate) fn max_share_error(counts: &BTreeMap<String, u64>, expected: &[(String, f64)]) -> f64 {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return f64::NAN;
    }
    expected
        .iter()
        .map(|(name, share)| {
            let got = counts.get(name).copied().unwrap_or(0) as f64 / total as f64;
            (got - share).abs() * 100.0
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn share_error_is_the_worst_target() {
        let counts = BTreeMap::from([("a".to_owned(), 70), ("b".to_owned(), 30)]);
        let expected = [("a".to_owned(), 0.75), ("b".to_owned(), 0.25)];
        assert!((max_share_error(&counts, &expected) - 5.0).abs() < 1e-9);
    }

    /// A server and a client on loopback, without namespaces: greeting, `?`,
    /// `rate` and `bulk` work.
    #[test]
    fn worker_protocol_on_loopback() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::spawn(accept_loop(listener, "t0".into()));
            let mut held = Vec::new();
            let v = open(&mut held, addr, 3).await;
            assert_eq!(v["opened"], 3, "{v}");
            assert_eq!(v["targets"]["t0"], 3, "{v}");
            let v = check(&mut held).await;
            assert_eq!(
                (v["alive"].as_u64(), v["same"].as_u64()),
                (Some(3), Some(3)),
                "{v}"
            );
            let v = rate(addr, 0.2, 2).await;
            assert!(v["conns"].as_u64().unwrap_or(0) > 0, "{v}");
            let v = bulk(addr, 0.2, 1).await;
            assert!(v["bytes"].as_u64().unwrap_or(0) > 0, "{v}");
            assert_eq!(v["failed"], 0, "{v}");
            server.abort();
        });
    }
}
