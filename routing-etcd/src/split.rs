//! The rollout's weight target and step store in etcd.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use routing_core::Config;
use routing_rollout::{ApplySplit, RolloutTarget, TargetError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::EtcdError;

/// Compare-and-swap tries before giving up on a key other writers keep changing.
const TRIES: usize = 5;

/// Writes rollout splits into the route table held in `key` (the key an
/// [`EtcdSource`](crate::EtcdSource) on every replica follows), and keeps the
/// rollout's persisted step in `step_key`.
///
/// Every write is a transaction that compares the key's `mod_revision` with the one
/// read, so an edit made in between (an operator, another controller) is re-read and
/// kept, never overwritten. With [`fenced`](Self::fenced), every write also compares
/// the leader key with this replica's identity: a replica that lost the election
/// cannot write, even if it has not noticed yet.
#[derive(Clone)]
pub struct EtcdSplit {
    client: Client,
    key: String,
    step_key: String,
    fence: Option<(String, String)>,
}

impl std::fmt::Debug for EtcdSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSplit")
            .field("key", &self.key)
            .field("step_key", &self.step_key)
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl EtcdSplit {
    /// A target editing the table in `key`; the step is kept in `{key}/rollout`.
    #[must_use]
    pub fn new(client: Client, key: impl Into<String>) -> Self {
        let key = key.into();
        Self {
            client,
            step_key: format!("{key}/rollout"),
            key,
            fence: None,
        }
    }

    /// Writes only while `leader_key` holds `identity` (an
    /// [`EtcdElection`](crate::EtcdElection)'s key and candidate).
    #[must_use]
    pub fn fenced(mut self, leader_key: impl Into<String>, identity: impl Into<String>) -> Self {
        self.fence = Some((leader_key.into(), identity.into()));
        self
    }

    /// The fence comparison, if any.
    fn fence(&self) -> Vec<Compare> {
        self.fence
            .iter()
            .map(|(k, id)| Compare::value(k.as_str(), CompareOp::Equal, id.as_str()))
            .collect()
    }

    /// Sends `candidate_percent` of `target`'s traffic to its candidate in the
    /// table; returns the key's new `mod_revision`.
    ///
    /// # Errors
    /// etcd failed; the key is absent or its table is invalid; the edit is refused
    /// (no such rule, backend not declared); the fence does not hold; other writers
    /// won every try.
    pub async fn write(
        &self,
        target: &RolloutTarget,
        candidate_percent: f64,
    ) -> Result<i64, EtcdError> {
        let mut client = self.client.clone();
        let table = |reason: String| EtcdError::Table {
            key: self.key.clone(),
            reason,
        };
        for _ in 0..TRIES {
            let got = client.get(self.key.as_str(), None).await?;
            let kv = got
                .kvs()
                .first()
                .ok_or_else(|| EtcdError::Missing(self.key.clone()))?;
            let text = std::str::from_utf8(kv.value()).map_err(|e| table(e.to_string()))?;
            let mut config = Config::from_yaml(text).map_err(|e| table(e.to_string()))?;
            target
                .set_split(&mut config, candidate_percent)
                .map_err(|e| table(e.to_string()))?;
            config
                .clone()
                .validate()
                .map_err(|e| table(e.to_string()))?;
            let mut when = self.fence();
            when.push(Compare::mod_revision(
                self.key.as_str(),
                CompareOp::Equal,
                kv.mod_revision(),
            ));
            let txn = Txn::new().when(when).and_then([TxnOp::put(
                self.key.as_str(),
                config.to_yaml(),
                None,
            )]);
            let resp = client.txn(txn).await?;
            if resp.succeeded() {
                return Ok(resp.header().map_or(0, |h| h.revision()));
            }
            if !self.fence_holds(&mut client).await? {
                return Err(table("this replica no longer holds the leader key".into()));
            }
        }
        Err(EtcdError::Contended(self.key.clone()))
    }

    /// Whether the fence (if any) holds now.
    async fn fence_holds(&self, client: &mut Client) -> Result<bool, EtcdError> {
        let Some((key, id)) = &self.fence else {
            return Ok(true);
        };
        let got = client.get(key.as_str(), None).await?;
        Ok(got
            .kvs()
            .first()
            .is_some_and(|kv| kv.value() == id.as_bytes()))
    }

    /// Stores the rollout's step (JSON), fenced like [`write`](Self::write).
    ///
    /// # Errors
    /// etcd failed, or the fence does not hold.
    pub async fn save_step<T: Serialize>(&self, step: &T) -> Result<(), EtcdError> {
        let json = serde_json::to_string(step).map_err(|e| EtcdError::Table {
            key: self.step_key.clone(),
            reason: e.to_string(),
        })?;
        let txn = Txn::new().when(self.fence()).and_then([TxnOp::put(
            self.step_key.as_str(),
            json,
            None,
        )]);
        if self.client.clone().txn(txn).await?.succeeded() {
            Ok(())
        } else {
            Err(EtcdError::Table {
                key: self.step_key.clone(),
                reason: "this replica no longer holds the leader key".into(),
            })
        }
    }

    /// The stored step, if any.
    ///
    /// # Errors
    /// etcd failed, or the stored value does not parse as `T`.
    pub async fn load_step<T: DeserializeOwned>(&self) -> Result<Option<T>, EtcdError> {
        let got = self
            .client
            .clone()
            .get(self.step_key.as_str(), None)
            .await?;
        got.kvs()
            .first()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|e| EtcdError::Table {
                    key: self.step_key.clone(),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }
}

/// The synchronous [`ApplySplit`] the rollout state machine calls: the write is
/// run to completion on the current multi-thread tokio runtime
/// (`block_in_place`); outside one it fails with [`TargetError::Other`].
impl ApplySplit for EtcdSplit {
    fn apply_split(
        &self,
        target: &RolloutTarget,
        candidate_percent: f64,
    ) -> Result<(), TargetError> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| {
                TargetError::Other(
                    "EtcdSplit::apply_split needs a multi-thread tokio runtime".into(),
                )
            })?;
        tokio::task::block_in_place(|| handle.block_on(self.write(target, candidate_percent)))
            .map(drop)
            .map_err(|e| TargetError::Other(Box::new(e)))
    }
}
