//! One writer per fleet: leader election through a `coordination.k8s.io/v1` Lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::time::Instant;

/// Why a Lease round failed (losing a race is not an error: it is
/// [`LeaseState::Follower`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// The API server could not be reached or refused the request (other than a
    /// `409 Conflict`, which means another candidate wrote first).
    #[error("lease `{namespace}/{name}`: {source}")]
    Api {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
}

/// The outcome of one [`LeaseLock::try_acquire_or_renew`] round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// This candidate holds the Lease until [`LeaseLock::is_leader`] says otherwise.
    Leader,
    /// Someone else holds it (`holder`), or a write raced and lost (409).
    Follower {
        /// The holder seen last, if any.
        holder: Option<String>,
    },
}

/// The record last seen, and when (on this process' monotonic clock) it changed.
#[derive(Debug, Clone)]
struct Observed {
    holder: Option<String>,
    renew: Option<Timestamp>,
    at: Instant,
}

/// A candidate for the Lease `namespace/name`, as client-go's `leaderelection`
/// does it:
///
/// * **acquire**: create the Lease (`holderIdentity` = this candidate, `acquireTime`,
///   `renewTime`, `leaseDurationSeconds`), or take over one whose record has not
///   changed for `leaseDurationSeconds` *as observed by this process* (its own
///   monotonic clock, so clock skew between nodes does not matter), by a `replace`
///   carrying the `resourceVersion` read: a `409 Conflict` means another candidate
///   wrote first, and this one stays a follower;
/// * **renew**: the holder replaces `renewTime` the same way, every round;
/// * **expire**: the holder counts itself leader only until `renew_deadline` after
///   its last successful renewal (shorter than the lease duration), so it stops
///   writing before anyone else may take over.
///
/// ```no_run
/// # async fn run(client: kube::Client) -> Result<(), routing_kube::LeaseError> {
/// use routing_kube::{LeaseLock, LeaseState};
/// use std::time::Duration;
/// let mut lock = LeaseLock::new(client, "web", "routing-rollout", "pod-a", Duration::from_secs(15));
/// if lock.try_acquire_or_renew().await? == LeaseState::Leader {
///     // write, while lock.is_leader()
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    duration: Duration,
    renew_deadline: Duration,
    observed: Option<Observed>,
    renewed: Option<Instant>,
}

impl LeaseLock {
    /// A candidate `identity` for the Lease `namespace/name`, held for `duration`
    /// (whole seconds, at least 1) and counted as held for two thirds of it after
    /// each renewal.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        let duration = Duration::from_secs(duration.as_secs().max(1));
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
            renew_deadline: duration * 2 / 3,
            observed: None,
            renewed: None,
        }
    }

    /// This candidate's identity.
    #[must_use]
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Whether this candidate holds the Lease now: a renewal succeeded less than
    /// the renew deadline ago.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.renewed
            .is_some_and(|at| at.elapsed() < self.renew_deadline)
    }

    fn err(&self, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    /// One round: create, take over, or renew the Lease.
    ///
    /// # Errors
    /// [`LeaseError`] when the API server fails (not on a lost race). Leadership
    /// then lapses at the renew deadline unless a later round succeeds.
    pub async fn try_acquire_or_renew(&mut self) -> Result<LeaseState, LeaseError> {
        let now = MicroTime(Timestamp::now());
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?;
        let Some(mut lease) = current else {
            let mut lease = Lease::default();
            lease.metadata.name = Some(self.name.clone());
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.duration.as_secs() as i32),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            });
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => self.won(),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(self.lost(None)),
                Err(e) => Err(self.err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0));
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| (o.holder.clone(), o.renew) != record);
        if changed {
            self.observed = Some(Observed {
                holder: record.0.clone(),
                renew: record.1,
                at: Instant::now(),
            });
        }
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let lease_secs = spec
            .lease_duration_seconds
            .map_or(self.duration, |s| Duration::from_secs(s.max(0) as u64));
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|o| o.at.elapsed() >= lease_secs);
        if !mine && holder.is_some() && !expired {
            self.renewed = None;
            return Ok(LeaseState::Follower { holder });
        }
        let mut spec = spec;
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(self.duration.as_secs() as i32);
        spec.renew_time = Some(now);
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => self.won(),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(self.lost(holder)),
            Err(e) => Err(self.err(e)),
        }
    }

    fn won(&mut self) -> Result<LeaseState, LeaseError> {
        self.renewed = Some(Instant::now());
        self.observed = None;
        Ok(LeaseState::Leader)
    }

    fn lost(&mut self, holder: Option<String>) -> LeaseState {
        self.renewed = None;
        LeaseState::Follower { holder }
    }

    /// Gives the Lease up (holder cleared, so the next candidate need not wait for
    /// it to expire), if this candidate holds it.
    ///
    /// # Errors
    /// [`LeaseError`] when the API server fails; a lost race (409) is not an error.
    pub async fn release(&mut self) -> Result<(), LeaseError> {
        if self.renewed.take().is_none() {
            return Ok(());
        }
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}
