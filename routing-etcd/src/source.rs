//! A router following one etcd key.

use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use routing_core::{Config, Router};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the source has done, for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStatus {
    /// The router generation of the last applied table (0: none yet).
    pub generation: u64,
    /// FNV-1a 64 of the applied configuration's JSON: equal on every replica that
    /// applied the same table.
    pub fingerprint: u64,
    /// The key's `mod_revision` of the last applied table.
    pub revision: i64,
    /// Tables applied.
    pub applied: u64,
    /// Values refused (the live table stayed).
    pub rejected: u64,
    /// Why the last value was refused.
    pub last_error: Option<String>,
    /// Reads and watches that failed or were compacted away (each is retried).
    pub reconnects: u64,
}

/// The running source: dropping it stops the watch.
#[derive(Debug)]
pub struct EtcdSource {
    status: watch::Receiver<SourceStatus>,
    task: JoinHandle<()>,
}

impl Drop for EtcdSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Pause before re-reading after a failure.
const RETRY: Duration = Duration::from_millis(500);

impl EtcdSource {
    /// Reads `key` and applies it to `router`, then follows every change. A value
    /// that does not parse or validate keeps the live table (counted in
    /// [`SourceStatus::rejected`]); a deleted key keeps it too. Must be called in a
    /// tokio runtime.
    #[must_use]
    pub fn spawn(client: Client, key: impl Into<String>, router: Router) -> Self {
        let (tx, status) = watch::channel(SourceStatus::default());
        let task = tokio::spawn(run(client, key.into(), router, tx));
        Self { status, task }
    }

    /// The current status.
    #[must_use]
    pub fn status(&self) -> SourceStatus {
        self.status.borrow().clone()
    }

    /// Waits (at most `timeout`) until `pred` holds; the status that satisfied it,
    /// or `None` on timeout.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl FnMut(&SourceStatus) -> bool,
    ) -> Option<SourceStatus> {
        tokio::time::timeout(timeout, self.status.wait_for(pred))
            .await
            .ok()?
            .ok()
            .map(|s| s.clone())
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Applies one value of the key.
fn apply(router: &Router, value: &[u8], revision: i64, status: &watch::Sender<SourceStatus>) {
    let parsed = std::str::from_utf8(value)
        .map_err(|e| format!("not UTF-8: {e}"))
        .and_then(|text| Config::from_yaml(text).map_err(|e| e.to_string()));
    let fingerprint = parsed
        .as_ref()
        .ok()
        .map(|c| fnv(&serde_json::to_vec(c).unwrap_or_default()));
    match parsed.and_then(|c| router.update(c).map_err(|e| e.to_string())) {
        Ok(generation) => status.send_modify(|s| {
            s.generation = generation;
            s.fingerprint = fingerprint.unwrap_or_default();
            s.revision = revision;
            s.applied += 1;
            s.last_error = None;
        }),
        Err(why) => status.send_modify(|s| {
            s.rejected += 1;
            s.last_error = Some(why);
        }),
    }
}

async fn run(mut client: Client, key: String, router: Router, status: watch::Sender<SourceStatus>) {
    loop {
        if let Err(e) = follow(&mut client, &key, &router, &status).await {
            status.send_modify(|s| {
                s.reconnects += 1;
                s.last_error = Some(e);
            });
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One read, then the watch from the revision read until it fails or is
/// compacted (the caller then reads again).
async fn follow(
    client: &mut Client,
    key: &str,
    router: &Router,
    status: &watch::Sender<SourceStatus>,
) -> Result<(), String> {
    let got = client.get(key, None).await.map_err(|e| e.to_string())?;
    let read_at = got.header().map_or(0, |h| h.revision());
    match got.kvs().first() {
        Some(kv) if kv.mod_revision() != status.borrow().revision => {
            apply(router, kv.value(), kv.mod_revision(), status);
        }
        Some(_) => {}
        None => status.send_modify(|s| {
            s.last_error = Some(format!("key `{key}` is absent; the live table is kept"));
        }),
    }
    let (_watcher, mut stream) = client
        .watch(
            key,
            Some(WatchOptions::new().with_start_revision(read_at + 1)),
        )
        .await
        .map_err(|e| e.to_string())?;
    while let Some(resp) = stream.message().await.map_err(|e| e.to_string())? {
        if resp.canceled() || resp.compact_revision() > 0 {
            return Err(format!(
                "watch of `{key}` ended (compacted at {})",
                resp.compact_revision()
            ));
        }
        for ev in resp.events() {
            match (ev.event_type(), ev.kv()) {
                (EventType::Put, Some(kv)) => apply(router, kv.value(), kv.mod_revision(), status),
                (EventType::Delete, _) => status.send_modify(|s| {
                    s.last_error = Some(format!("key `{key}` was deleted; the live table is kept"));
                }),
                _ => {}
            }
        }
    }
    Err(format!("watch of `{key}` closed"))
}
