//! The hot-swappable handle: lock-free reads, validated updates.

use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use crate::build::build;
use crate::config::Config;
use crate::error::ConfigError;
use crate::health::HealthRegistry;
use crate::table::RouteTable;

/// A shared, hot-swappable route table.
///
/// Readers call [`load`](Router::load) on every request: an `arc-swap` load, no lock,
/// no allocation. [`update`](Router::update) validates the new configuration first;
/// when it is invalid the live table is kept and the error says why. Every accepted
/// update bumps the generation. Backend health lives in one [`HealthRegistry`] for the
/// router's whole life, so ejections survive swaps.
///
/// `Router` is cheap to clone; clones share the table.
///
/// ```
/// use routing_core::{Config, Router, RequestInfo};
/// let router = Router::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes: [{name: r, rules: [{backends: [{name: v1}]}]}]
/// "#).unwrap();
/// assert_eq!(router.generation(), 1);
///
/// // An invalid update is refused and the old table stays live.
/// let bad = Config::from_yaml("routes: [{name: r, rules: [{backends: [{name: v3}]}]}]").unwrap();
/// let err = router.update(bad).unwrap_err();
/// assert!(err.to_string().contains("routes[0].rules[0].backends[0].name"));
/// assert_eq!(router.generation(), 1);
///
/// // A valid one is seen by the next load.
/// let good = Config::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes: [{name: r, rules: [{backends: [{name: v2}]}]}]
/// "#).unwrap();
/// assert_eq!(router.update(good).unwrap(), 2);
/// let d = router.load().decide(&RequestInfo::get("/"), &mut rand::rng()).unwrap().backend().unwrap().name().to_owned();
/// assert_eq!(d, "v2");
/// ```
#[derive(Clone, Debug)]
pub struct Router {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    table: ArcSwap<RouteTable>,
    health: Arc<HealthRegistry>,
    /// Serialises writers (readers never take it) so generations are strictly increasing.
    writer: Mutex<()>,
}

impl Router {
    /// Validates `config` and makes it live as generation 1.
    ///
    /// ```
    /// let r = routing_core::Router::new(routing_core::Config::default()).unwrap();
    /// assert_eq!(r.generation(), 1);
    /// ```
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let health = Arc::new(HealthRegistry::default());
        let table = build(config, &health, 1)?;
        Ok(Self {
            inner: Arc::new(Inner {
                table: ArcSwap::from_pointee(table),
                health,
                writer: Mutex::new(()),
            }),
        })
    }

    /// Parses YAML and calls [`Router::new`].
    ///
    /// ```
    /// assert!(routing_core::Router::from_yaml("backends: [{name: a}]").is_ok());
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        Self::new(Config::from_yaml(text)?)
    }

    /// The live table, for one request. Lock-free; hold the guard only briefly (use
    /// [`snapshot`](Router::snapshot) to keep a table longer).
    ///
    /// ```
    /// let r = routing_core::Router::from_yaml("{}").unwrap();
    /// assert!(r.load().routes().is_empty());
    /// ```
    #[inline]
    pub fn load(&self) -> Guard<Arc<RouteTable>> {
        self.inner.table.load()
    }

    /// The live table as an owned `Arc`.
    ///
    /// ```
    /// let r = routing_core::Router::from_yaml("{}").unwrap();
    /// let t = r.snapshot();
    /// assert_eq!(t.generation(), 1);
    /// ```
    #[must_use]
    pub fn snapshot(&self) -> Arc<RouteTable> {
        self.inner.table.load_full()
    }

    /// Validates `config`; if valid, makes it live and returns its generation. If not,
    /// the live table is untouched and the error lists every problem with its path.
    ///
    /// ```
    /// let r = routing_core::Router::from_yaml("{}").unwrap();
    /// assert_eq!(r.update(routing_core::Config::default()).unwrap(), 2);
    /// ```
    pub fn update(&self, config: Config) -> Result<u64, ConfigError> {
        let _writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.inner.table.load().generation + 1;
        let table = build(config, &self.inner.health, generation)?;
        self.inner.table.store(Arc::new(table));
        self.inner.health.prune();
        Ok(generation)
    }

    /// Edits the live configuration under the writer lock: clones it, runs `edit` on
    /// the copy, validates the result and makes it live as the next generation. Returns
    /// the new generation and what `edit` returned.
    ///
    /// [`update`](Router::update) and `modify` take the same lock, so two edits never
    /// lose each other's changes (unlike a `snapshot` → edit → `update` by hand). On
    /// any error the live table is untouched: [`ModifyError::Edit`] when `edit`
    /// refused (its own error), [`ModifyError::Invalid`] when the edited
    /// configuration does not validate.
    ///
    /// This is how anything that is not the user's file (a rollout, an admin call)
    /// changes weights.
    ///
    /// ```
    /// use routing_core::{ModifyError, Router};
    /// let router = Router::from_yaml(r#"
    /// backends: [{name: v1}, {name: v2}]
    /// routes: [{name: r, rules: [{name: main, backends: [{name: v1}, {name: v2, weight: 0}]}]}]
    /// "#).unwrap();
    ///
    /// // Set v2's weight to 3.
    /// let (generation, old) = router.modify(|cfg| {
    ///     let b = &mut cfg.routes[0].rules[0].backends[1];
    ///     Ok::<_, String>(std::mem::replace(&mut b.weight, 3))
    /// }).unwrap();
    /// assert_eq!((generation, old), (2, 0));
    /// assert_eq!(router.snapshot().config().routes[0].rules[0].backends[1].weight, 3);
    ///
    /// // The edit refuses: nothing changes.
    /// let err = router.modify(|_| Err::<(), _>("no")).unwrap_err();
    /// assert!(matches!(err, ModifyError::Edit("no")));
    /// // The edit yields an invalid config: nothing changes either.
    /// let err = router.modify(|cfg| {
    ///     cfg.routes[0].rules[0].backends[1].name = "v3".into();
    ///     Ok::<_, String>(())
    /// }).unwrap_err();
    /// assert!(matches!(err, ModifyError::Invalid(_)));
    /// assert_eq!(router.generation(), 2);
    /// ```
    pub fn modify<T, E>(
        &self,
        edit: impl FnOnce(&mut Config) -> Result<T, E>,
    ) -> Result<(u64, T), ModifyError<E>> {
        let _writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.inner.table.load_full();
        let mut config = live.config().clone();
        let out = edit(&mut config).map_err(ModifyError::Edit)?;
        let generation = live.generation + 1;
        let table = build(config, &self.inner.health, generation).map_err(ModifyError::Invalid)?;
        self.inner.table.store(Arc::new(table));
        self.inner.health.prune();
        Ok((generation, out))
    }

    /// What a file reloader should call: [`update`](Router::update), except that a
    /// configuration with no route and no TCP service is refused while the live one
    /// has some ([`ConfigError::DropsEverything`]) — an empty or half-written file is
    /// a mistake, not an intent. Emptying a router on purpose is an `update`.
    ///
    /// ```
    /// use routing_core::{Config, ConfigError, Router};
    /// let r = Router::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// let err = r.reload(Config::from_yaml("").unwrap()).unwrap_err();
    /// assert!(matches!(err, ConfigError::DropsEverything { routes: 1, .. }));
    /// assert_eq!(r.generation(), 1, "the live table stays");
    /// assert_eq!(r.update(Config::default()).unwrap(), 2, "on purpose");
    /// ```
    pub fn reload(&self, config: Config) -> Result<u64, ConfigError> {
        let _writer = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let live = self.inner.table.load();
        let (routes, tcp_services) = (live.routes().len(), live.tcp_services().len());
        if config.routes.is_empty() && config.tcp_services.is_empty() && routes + tcp_services > 0 {
            return Err(ConfigError::DropsEverything {
                routes,
                tcp_services,
            });
        }
        let generation = live.generation + 1;
        drop(live);
        let table = build(config, &self.inner.health, generation)?;
        self.inner.table.store(Arc::new(table));
        self.inner.health.prune();
        Ok(generation)
    }

    /// Parses `text` as YAML and calls [`update`](Router::update).
    ///
    /// ```
    /// let r = routing_core::Router::from_yaml("{}").unwrap();
    /// assert!(r.update_yaml("nonsense: 1").is_err());
    /// assert_eq!(r.generation(), 1);
    /// ```
    pub fn update_yaml(&self, text: &str) -> Result<u64, ConfigError> {
        self.update(Config::from_yaml(text)?)
    }

    /// The live generation.
    ///
    /// ```
    /// assert_eq!(routing_core::Router::from_yaml("{}").unwrap().generation(), 1);
    /// ```
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.inner.table.load().generation
    }

    /// Backend availability, shared by every generation.
    ///
    /// ```
    /// let r = routing_core::Router::from_yaml("backends: [{name: a}]").unwrap();
    /// assert!(r.health().set_available("a", false));
    /// assert!(!r.load().backends()[0].is_available());
    /// ```
    #[must_use]
    pub fn health(&self) -> &HealthRegistry {
        &self.inner.health
    }
}

/// Why [`Router::modify`] changed nothing; the live table is untouched either way.
///
/// ```
/// use routing_core::ModifyError;
/// let e: ModifyError<&str> = ModifyError::Edit("rule `main` not found");
/// assert_eq!(e.to_string(), "edit refused: rule `main` not found");
/// ```
#[derive(Debug)]
pub enum ModifyError<E> {
    /// The edit returned an error (the caller's own type).
    Edit(E),
    /// The edited configuration does not validate; the error lists every problem.
    Invalid(ConfigError),
}

impl<E: fmt::Display> fmt::Display for ModifyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edit(e) => write!(f, "edit refused: {e}"),
            Self::Invalid(e) => write!(f, "edited config rejected: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ModifyError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Edit(e) => Some(e),
            Self::Invalid(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const TWO: &str = r#"
backends: [{name: a}, {name: b}]
routes: [{name: r, rules: [{name: main, backends: [{name: a, weight: 0}, {name: b, weight: 0}]}]}]
"#;

    fn weights(router: &Router) -> (u64, u64) {
        let t = router.snapshot();
        let b = &t.config().routes[0].rules[0].backends;
        (b[0].weight, b[1].weight)
    }

    #[test]
    fn modify_applies_and_bumps_the_generation() {
        let router = Router::from_yaml(TWO).unwrap();
        let (generation, ()) = router
            .modify(|c| {
                c.routes[0].rules[0].backends[0].weight = 7;
                Ok::<_, ()>(())
            })
            .unwrap();
        assert_eq!(generation, 2);
        assert_eq!(router.generation(), 2);
        assert_eq!(weights(&router), (7, 0));
    }

    #[test]
    fn a_refused_or_invalid_edit_leaves_the_live_table() {
        let router = Router::from_yaml(TWO).unwrap();
        let before = router.snapshot();
        let err = router
            .modify(|c| {
                c.routes[0].rules[0].backends[0].weight = 9;
                Err::<(), _>("refused")
            })
            .unwrap_err();
        assert!(matches!(err, ModifyError::Edit("refused")));
        let err = router
            .modify(|c| {
                c.routes[0].rules[0].backends[0].name = "nobody".into();
                Ok::<_, ()>(())
            })
            .unwrap_err();
        let ModifyError::Invalid(e) = err else {
            panic!("an undeclared backend must fail validation");
        };
        assert!(e.to_string().contains("backends[0].name"), "{e}");
        assert_eq!(router.generation(), 1, "no generation was used");
        assert!(Arc::ptr_eq(&before, &router.snapshot()), "same table live");
    }

    #[test]
    fn update_and_modify_share_the_generation_sequence() {
        let router = Router::from_yaml(TWO).unwrap();
        assert_eq!(router.update_yaml(TWO).unwrap(), 2);
        let (g, ()) = router.modify(|_| Ok::<_, ()>(())).unwrap();
        assert_eq!(g, 3);
        assert_eq!(router.update_yaml(TWO).unwrap(), 4);
    }

    #[test]
    fn concurrent_modifies_lose_no_increment() {
        const N: u64 = 300;
        let router = Router::from_yaml(TWO).unwrap();
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let router = router.clone();
                std::thread::spawn(move || {
                    for _ in 0..N {
                        router
                            .modify(|c| {
                                c.routes[0].rules[0].backends[i].weight += 1;
                                Ok::<_, ()>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(weights(&router), (N, N), "every increment survived");
        assert_eq!(router.generation(), 1 + 2 * N, "one generation per edit");
    }
}
