//! The loader follows a [`Router`]: one owner of the configuration for the file
//! reloader, a rollout and the XDP tables.
//!
//! Whoever changes the L4 services — a file reload ([`Router::update`]), a progressive
//! rollout on a `tcp_services` entry (`routing_rollout::RolloutTarget::TcpService`,
//! applied with [`Router::modify`]), an admin call — changes the [`Router`]; a
//! [`RouterFollower`] re-applies the router's live table to the [`XdpBalancer`]
//! whenever its generation moved. Nothing keeps a second copy of the configuration,
//! so a reload and a rollout step never overwrite each other.

use routing_core::Router;

use crate::{Error, XdpBalancer};

/// Re-applies a [`Router`]'s table to an [`XdpBalancer`] when its generation changes.
///
/// Call [`sync`](Self::sync) after each change, or every tick of a loop: it is one
/// atomic load when nothing changed. A failed apply leaves the previous tables live
/// (see [`XdpBalancer::apply`]) and is retried by the next `sync`.
///
/// ```no_run
/// use routing_ebpf::{follow::RouterFollower, Options, XdpBalancer};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let router = routing_core::Router::from_yaml(r#"
/// backends: [{name: v1, address: '203.0.113.10:80'}, {name: v2, address: '203.0.113.11:80'}]
/// tcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: v1}]}]
/// "#)?;
/// let mut lb = XdpBalancer::load(&Options::default())?;       // root
/// let mut follower = RouterFollower::new(router.clone());
/// assert_eq!(follower.sync(&mut lb)?, Some(1));             // generation 1 applied
/// // A rollout step (or a file reload) changes the router …
/// router.modify(|cfg| {
///     cfg.tcp_services[0].backends.push(routing_core::WeightedBackendConfig::new("v2", 1));
///     Ok::<_, std::convert::Infallible>(())
/// })?;
/// assert_eq!(follower.sync(&mut lb)?, Some(2));             // … and the VIP's table flips
/// assert_eq!(follower.sync(&mut lb)?, None);                // nothing new
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RouterFollower {
    router: Router,
    applied: Option<u64>,
}

impl RouterFollower {
    /// A follower of `router` that has applied nothing yet.
    ///
    /// ```
    /// let f = routing_ebpf::follow::RouterFollower::new(routing_core::Router::from_yaml("{}").unwrap());
    /// assert_eq!(f.applied_generation(), None);
    /// ```
    #[must_use]
    pub fn new(router: Router) -> Self {
        Self {
            router,
            applied: None,
        }
    }

    /// The router followed.
    #[must_use]
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The generation last applied with success.
    #[must_use]
    pub fn applied_generation(&self) -> Option<u64> {
        self.applied
    }

    /// Applies the router's live table to `lb` unless its generation is the one last
    /// applied; returns the generation applied, or `None` when there was nothing new.
    ///
    /// # Errors
    /// What [`XdpBalancer::apply`] returns; the previous tables stay live and the
    /// next `sync` tries again.
    pub fn sync(&mut self, lb: &mut XdpBalancer) -> Result<Option<u64>, Error> {
        let table = self.router.snapshot();
        let generation = table.generation();
        if self.applied == Some(generation) {
            return Ok(None);
        }
        lb.apply(&table)?;
        self.applied = Some(generation);
        Ok(Some(generation))
    }
}
