//! One key of one Secret, followed: the stickiness cookie key ring every replica
//! shares (its text format is routing-tower's `CookieKey::from_ring_text`: one key a
//! line, the current key first, previous keys after it). A rotation is an update of
//! the Secret; each replica sees it through its watch and installs the new ring
//! (`RoutingLayer::set_cookie_key`), so all replicas sign with the new key and keep
//! verifying the old one while it stays listed.
//!
//! routing-kube does not depend on routing-tower: the application connects the two.
//!
//! ```text
//! let keys = SecretKey::watch(client, "web", "shop-cookie-keys", "keys");
//! let mut rx = keys.receiver();
//! tokio::spawn(async move {
//!     while rx.changed().await.is_ok() {
//!         let text = rx.borrow_and_update().clone();
//!         match text.as_deref().map(routing_tower::CookieKey::from_ring_text) {
//!             Some(Ok(ring)) => layer.set_cookie_key(ring),
//!             Some(Err(e)) => tracing::warn!(%e, "cookie key ring refused; the live one stays"),
//!             None => {}
//!         }
//!     }
//! });
//! ```

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A followed Secret key: the latest text of `data[key]` (UTF-8), `None` until the
/// Secret exists with that key. A deleted Secret, or one without the key, leaves
/// the last text in place (a replica keeps its ring rather than losing stickiness).
/// The watch stops when this is dropped.
#[derive(Debug)]
pub struct SecretKey {
    rx: watch::Receiver<Option<String>>,
    problem: watch::Receiver<Option<String>>,
    task: JoinHandle<()>,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SecretKey {
    /// Watches Secret `namespace/name` (a field selector on its name) and follows
    /// `data[key]`. Must be called inside a tokio runtime.
    #[must_use]
    pub fn watch(client: kube::Client, namespace: &str, name: &str, key: &str) -> Self {
        let (tx, rx) = watch::channel(None);
        let (report, problem) = watch::channel(None);
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (name, key) = (name.to_owned(), key.to_owned());
        let task = tokio::spawn(async move {
            let mut events = Box::pin(watcher(api, cfg).default_backoff());
            while let Some(event) = events.next().await {
                let secret = match event {
                    Ok(Event::Apply(s) | Event::InitApply(s)) => s,
                    Ok(_) => continue,
                    Err(e) => {
                        report.send_replace(Some(format!("watching the Secret: {e}")));
                        continue;
                    }
                };
                if secret.metadata.name.as_deref() != Some(name.as_str()) {
                    continue;
                }
                let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(&key)) else {
                    report.send_replace(Some(format!(
                        "Secret {name} has no key `{key}`; the last text stays"
                    )));
                    continue;
                };
                match String::from_utf8(bytes.0.clone()) {
                    Ok(text) => {
                        report.send_replace(None);
                        tx.send_if_modified(|cur| {
                            let changed = cur.as_deref() != Some(text.as_str());
                            if changed {
                                *cur = Some(text);
                            }
                            changed
                        });
                    }
                    Err(_) => {
                        report.send_replace(Some(format!(
                            "Secret {name} key `{key}` is not UTF-8 text; the last text stays"
                        )));
                    }
                }
            }
        });
        Self { rx, problem, task }
    }

    /// A receiver of the text: `changed().await` wakes on each new version.
    #[must_use]
    pub fn receiver(&self) -> watch::Receiver<Option<String>> {
        self.rx.clone()
    }

    /// What is wrong with the Secret now (missing key, not text, watch errors),
    /// if anything; cleared by the next good version.
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        self.problem.borrow().clone()
    }

    /// The latest text, if any.
    #[must_use]
    pub fn current(&self) -> Option<String> {
        self.rx.borrow().clone()
    }
}
