//! etcd as the fleet's engine for deployments without Kubernetes: the pieces that
//! `routing-kube` builds on the Kubernetes API, built on etcd's v3 API instead.
//!
//! * [`EtcdSource`] keeps a [`Router`](routing_core::Router) following one key that
//!   holds the route table (YAML or JSON, the native format): read, then watched from
//!   the revision read; a refused value keeps the live table; a compacted watch
//!   re-reads. Every replica running one converges on the same table.
//! * [`EtcdElection`] elects one writer per fleet: a key created only when absent,
//!   attached to a lease of this candidate that it keeps alive, so the key — and the
//!   leadership — goes away by itself when the holder stops renewing.
//! * [`EtcdSplit`] is the rollout's weight target: it edits the table in the key
//!   with compare-and-swap on the key's `mod_revision` (a concurrent edit is re-read,
//!   never overwritten), and it stores the rollout's persisted step in a key of its
//!   own, so a new leader resumes.
//!
//! ```no_run
//! # async fn run() -> Result<(), routing_etcd::EtcdError> {
//! use routing_etcd::{EtcdElection, EtcdSource, ElectionState};
//! use std::time::Duration;
//! let client = etcd_client::Client::connect(["http://127.0.0.1:2379"], None).await?;
//! let router = routing_core::Router::new(routing_core::Config::default()).expect("empty");
//! let source = EtcdSource::spawn(client.clone(), "/routing/shop/table", router.clone());
//! let mut election = EtcdElection::new(client, "/routing/shop/leader", "pod-a", Duration::from_secs(10));
//! if election.try_acquire_or_renew().await? == ElectionState::Leader {
//!     // this replica runs the rollout while election.is_leader()
//! }
//! # drop(source); Ok(()) }
//! ```

mod election;
mod source;
mod split;

pub use election::{ElectionState, EtcdElection};
pub use source::{EtcdSource, SourceStatus};
pub use split::EtcdSplit;

/// What an etcd operation failed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// The client failed (unreachable, timed out, refused).
    #[error("etcd: {0}")]
    Client(Box<etcd_client::Error>),
    /// The key holds no route table.
    #[error("key `{0}` is empty or absent")]
    Missing(String),
    /// The key's table does not parse or validate, or the edit is refused.
    #[error("key `{key}`: {reason}")]
    Table {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Other writers kept changing the key: the compare-and-swap lost every try.
    #[error("key `{0}`: changed by another writer on every try")]
    Contended(String),
}

impl From<etcd_client::Error> for EtcdError {
    fn from(e: etcd_client::Error) -> Self {
        Self::Client(Box::new(e))
    }
}
