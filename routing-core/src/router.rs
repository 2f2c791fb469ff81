//! The hot-swappable handle: lock-free reads, validated updates.

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
