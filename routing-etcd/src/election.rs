//! One writer per fleet: a leader key attached to the holder's lease.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn, TxnOp,
    TxnOpResponse,
};
use tokio::time::Instant;

use crate::EtcdError;

/// The outcome of one [`EtcdElection::try_acquire_or_renew`] round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionState {
    /// This candidate holds the key until [`EtcdElection::is_leader`] says otherwise.
    Leader,
    /// Another candidate holds it.
    Follower {
        /// The holder's identity, if the key was there.
        holder: Option<String>,
    },
}

/// A candidate for the leader key `key`, as etcd's own election recipe does it but
/// without blocking, so a controller can run it as one step of a periodic round:
///
/// * **acquire**: a transaction puts `key = identity` attached to this candidate's
///   lease (TTL `ttl`) only if the key does not exist (`create_revision == 0`);
///   otherwise it reads the holder;
/// * **renew**: every round the holder sends one keep-alive for its lease; a lease
///   etcd reports expired (TTL 0) ends the leadership and a new lease is granted;
/// * **expire**: etcd deletes the key when the lease expires, so a holder that
///   stops (crash, partition) loses the key after `ttl` and another candidate's next
///   round takes it. The holder counts itself leader only for two thirds of `ttl`
///   after the start of its last successful round, so it stops writing before etcd
///   can give the key to anyone else.
pub struct EtcdElection {
    client: Client,
    key: String,
    identity: String,
    ttl: Duration,
    lease: Option<Lease>,
    leader_until: Option<Instant>,
}

/// This candidate's lease and its keep-alive channel.
struct Lease {
    id: i64,
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("id", &self.id).finish()
    }
}

impl std::fmt::Debug for EtcdElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdElection")
            .field("key", &self.key)
            .field("identity", &self.identity)
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .field("leader", &self.is_leader())
            .finish_non_exhaustive()
    }
}

impl EtcdElection {
    /// A candidate `identity` for `key`, with leases of `ttl` (whole seconds, at
    /// least 2).
    #[must_use]
    pub fn new(
        client: Client,
        key: impl Into<String>,
        identity: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            key: key.into(),
            identity: identity.into(),
            ttl: ttl.max(Duration::from_secs(2)),
            lease: None,
            leader_until: None,
        }
    }

    /// This candidate's identity.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this candidate may act as the leader now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.leader_until.is_some_and(|t| Instant::now() < t)
    }

    /// One round: renew the lease if held, then take the key if free.
    ///
    /// # Errors
    /// etcd could not be reached; leadership then lapses by itself at its deadline.
    pub async fn try_acquire_or_renew(&mut self) -> Result<ElectionState, EtcdError> {
        let started = Instant::now();
        if let Some(lease) = &mut self.lease {
            lease.keeper.keep_alive().await?;
            let alive = matches!(lease.stream.message().await?, Some(r) if r.ttl() > 0);
            if !alive {
                // Expired: the key went with it.
                self.lease = None;
                self.leader_until = None;
            }
        }
        let id = match &self.lease {
            Some(l) => l.id,
            None => {
                let secs = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
                let id = self.client.lease_grant(secs, None).await?.id();
                let (keeper, stream) = self.client.lease_keep_alive(id).await?;
                self.lease = Some(Lease { id, keeper, stream });
                id
            }
        };
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.key.as_str(),
                CompareOp::Equal,
                0,
            )])
            .and_then([TxnOp::put(
                self.key.as_str(),
                self.identity.as_str(),
                Some(PutOptions::new().with_lease(id)),
            )])
            .or_else([TxnOp::get(self.key.as_str(), None)]);
        let resp = self.client.txn(txn).await?;
        let (mine, holder) = if resp.succeeded() {
            (true, Some(self.identity.clone()))
        } else {
            let kv = resp.op_responses().into_iter().find_map(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().cloned(),
                _ => None,
            });
            match kv {
                Some(kv) => {
                    let holder = String::from_utf8_lossy(kv.value()).into_owned();
                    (kv.lease() == id && holder == self.identity, Some(holder))
                }
                None => (false, None),
            }
        };
        if mine {
            self.leader_until = Some(started + self.ttl * 2 / 3);
            Ok(ElectionState::Leader)
        } else {
            self.leader_until = None;
            Ok(ElectionState::Follower { holder })
        }
    }

    /// Gives the key up now (deletes it if still this candidate's, revokes the
    /// lease), so another candidate takes over at its next round.
    ///
    /// # Errors
    /// etcd could not be reached; the key then expires with the lease.
    pub async fn release(&mut self) -> Result<(), EtcdError> {
        self.leader_until = None;
        if let Some(lease) = self.lease.take() {
            let txn = Txn::new()
                .when([
                    Compare::lease(self.key.as_str(), CompareOp::Equal, lease.id),
                    Compare::value(self.key.as_str(), CompareOp::Equal, self.identity.as_str()),
                ])
                .and_then([TxnOp::delete(self.key.as_str(), None)]);
            self.client.txn(txn).await?;
            self.client.lease_revoke(lease.id).await?;
        }
        Ok(())
    }
}
