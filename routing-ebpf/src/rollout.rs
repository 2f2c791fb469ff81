//! Progressive rollouts on the XDP path: [`XdpServiceTarget`] lets routing-tower's
//! [`Rollout`](routing_tower::rollout::Rollout) controller drive the split of one L4
//! service, with the same steps, checks and rollback as for an HTTP rule.
//! (Cargo feature `rollout`.)

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use routing_core::{Config, RouteTable, WeightedBackendConfig};
use routing_tower::rollout::{split_weights, TargetError, WeightTarget};

use crate::XdpBalancer;

/// The split between two targets of one `tcp_services` entry of a loaded
/// [`XdpBalancer`].
///
/// `set_split` rewrites the two weights in a copy of the configuration, validates
/// it into a [`RouteTable`] and [`apply`](XdpBalancer::apply)s it: the VIP's Maglev
/// table flips atomically, established connections keep their target, new ones follow
/// the new weights. An invalid configuration or a failed `apply` leaves the previous
/// split live and is returned as a [`TargetError`].
///
/// ```no_run
/// use std::sync::{Arc, Mutex};
/// use routing_ebpf::{rollout::XdpServiceTarget, Options, XdpBalancer};
/// use routing_tower::rollout::WeightTarget;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = routing_core::Config::from_yaml(r#"
/// backends: [{name: v1, address: '203.0.113.10:80'}, {name: v2, address: '203.0.113.11:80'}]
/// tcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: v1}]}]
/// "#)?;
/// let mut lb = XdpBalancer::load(&Options::default())?;       // root
/// lb.apply(&routing_core::RouteTable::new(config.clone())?)?;
/// let lb = Arc::new(Mutex::new(lb));
/// let target = XdpServiceTarget::new(Arc::clone(&lb), config, "web", "v1", "v2");
/// target.set_split(5.0)?;                                     // 95/5, one table flip
/// # Ok(()) }
/// ```
pub struct XdpServiceTarget {
    balancer: Arc<Mutex<XdpBalancer>>,
    config: Mutex<Config>,
    service: String,
    stable: String,
    candidate: String,
}

impl fmt::Debug for XdpServiceTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpServiceTarget")
            .field("service", &self.service)
            .field("stable", &self.stable)
            .field("candidate", &self.candidate)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl XdpServiceTarget {
    /// The target for `service` (a `tcp_services` name) of `config`, which must be
    /// the configuration `balancer` was last applied with.
    pub fn new(
        balancer: Arc<Mutex<XdpBalancer>>,
        config: Config,
        service: impl Into<String>,
        stable: impl Into<String>,
        candidate: impl Into<String>,
    ) -> Self {
        Self {
            balancer,
            config: Mutex::new(config),
            service: service.into(),
            stable: stable.into(),
            candidate: candidate.into(),
        }
    }

    /// The configuration last applied through this target.
    #[must_use]
    pub fn config(&self) -> Config {
        lock(&self.config).clone()
    }
}

impl WeightTarget for XdpServiceTarget {
    fn set_split(&self, candidate_percent: f64) -> Result<(), TargetError> {
        let (stable_w, candidate_w) = split_weights(candidate_percent)?;
        let mut config = lock(&self.config);
        let mut next = config.clone();
        let service = next
            .tcp_services
            .iter_mut()
            .find(|s| s.name == self.service)
            .ok_or_else(|| {
                TargetError::Other(format!("tcp service `{}` not found", self.service).into())
            })?;
        for (name, weight) in [(&self.stable, stable_w), (&self.candidate, candidate_w)] {
            match service.backends.iter_mut().find(|b| &b.name == name) {
                Some(b) => b.weight = weight,
                None => service.backends.push(WeightedBackendConfig {
                    name: name.clone(),
                    weight,
                }),
            }
        }
        let table = RouteTable::new(next.clone())?;
        lock(&self.balancer)
            .apply(&table)
            .map_err(|e| TargetError::Other(Box::new(e)))?;
        *config = next;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("XDP service {}", self.service)
    }
}
