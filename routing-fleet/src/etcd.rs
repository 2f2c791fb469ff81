//! One writer per fleet without Kubernetes: an election on etcd.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use tokio::time::Instant;

/// Why an election round failed (losing is not an error).
#[derive(Debug, thiserror::Error)]
#[error("etcd election `{key}`: {source}")]
pub struct EtcdError {
    /// The election's key.
    pub key: String,
    /// The client's error.
    #[source]
    pub source: etcd_client::Error,
}

/// A candidate in an election on the etcd key `key`, with the semantics of
/// [`routing_kube::LeaseLock`]:
///
/// * **acquire**: grant an etcd lease of `ttl`, then one transaction: if the key
///   does not exist (`create_revision == 0`), put `identity` under that lease;
///   otherwise read it. The candidate whose put succeeded leads. etcd orders the
///   transactions, so two candidates cannot both win.
/// * **renew**: the leader keeps its etcd lease alive each round (and checks the
///   key still holds its identity under its lease).
/// * **expire**: a leader that stops renewing loses the key when etcd expires its
///   lease after `ttl`; it counts itself leader only for two thirds of `ttl` after
///   its last renewal, so it stops writing before anyone else may start.
/// * [`release`](Self::release) revokes the lease: the key goes at once.
pub struct EtcdElection {
    client: Client,
    key: String,
    identity: String,
    ttl: Duration,
    lease: Option<i64>,
    renewed: Option<Instant>,
}

impl std::fmt::Debug for EtcdElection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // etcd_client::Client is not Debug.
        f.debug_struct("EtcdElection")
            .field("key", &self.key)
            .field("identity", &self.identity)
            .field("ttl", &self.ttl)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl EtcdElection {
    /// Connects to `endpoints` (`http://127.0.0.1:2379`, …).
    ///
    /// # Errors
    /// [`EtcdError`] when no endpoint is usable.
    pub async fn connect(
        endpoints: &[&str],
        key: &str,
        identity: &str,
        ttl: Duration,
    ) -> Result<Self, EtcdError> {
        let client = Client::connect(endpoints, None)
            .await
            .map_err(|source| EtcdError {
                key: key.to_owned(),
                source,
            })?;
        Ok(Self {
            client,
            key: key.to_owned(),
            identity: identity.to_owned(),
            ttl: Duration::from_secs(ttl.as_secs().max(1)),
            lease: None,
            renewed: None,
        })
    }

    fn err(&self, source: etcd_client::Error) -> EtcdError {
        EtcdError {
            key: self.key.clone(),
            source,
        }
    }

    /// This candidate's identity.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this candidate leads now (renewed less than ⅔ of `ttl` ago).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.renewed
            .is_some_and(|at| at.elapsed() < self.ttl * 2 / 3)
    }

    /// One round: campaign, or renew. Returns whether this candidate leads.
    ///
    /// # Errors
    /// [`EtcdError`] when etcd fails; leadership then lapses unless a later round
    /// succeeds.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, EtcdError> {
        // Keep (or get) our lease alive.
        let lease = match self.lease {
            Some(id) => {
                let (mut keeper, mut stream) = self
                    .client
                    .lease_keep_alive(id)
                    .await
                    .map_err(|e| self.err(e))?;
                keeper.keep_alive().await.map_err(|e| self.err(e))?;
                let alive = stream
                    .message()
                    .await
                    .map_err(|e| self.err(e))?
                    .is_some_and(|r| r.ttl() > 0);
                if alive {
                    id
                } else {
                    self.lease = None;
                    self.renewed = None;
                    self.grant().await?
                }
            }
            None => self.grant().await?,
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
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(self.key.as_str(), None)]);
        let answer = self.client.txn(txn).await.map_err(|e| self.err(e))?;
        let leads = answer.succeeded()
            || answer.op_responses().iter().any(|r| match r {
                TxnOpResponse::Get(g) => g.kvs().first().is_some_and(|kv| {
                    kv.value() == self.identity.as_bytes() && kv.lease() == lease
                }),
                _ => false,
            });
        self.renewed = leads.then(Instant::now);
        Ok(leads)
    }

    async fn grant(&mut self) -> Result<i64, EtcdError> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let id = self
            .client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| self.err(e))?
            .id();
        self.lease = Some(id);
        Ok(id)
    }

    /// The current leader's identity, if any.
    ///
    /// # Errors
    /// [`EtcdError`] when etcd fails.
    pub async fn leader(&mut self) -> Result<Option<String>, EtcdError> {
        let r = self
            .client
            .get(self.key.as_str(), None)
            .await
            .map_err(|e| self.err(e))?;
        Ok(r.kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    /// Steps down: revokes the lease, so the key goes now.
    ///
    /// # Errors
    /// [`EtcdError`] when etcd fails.
    pub async fn release(&mut self) -> Result<(), EtcdError> {
        self.renewed = None;
        if let Some(id) = self.lease.take() {
            self.client
                .lease_revoke(id)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}
