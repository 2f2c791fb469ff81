//! Backend availability, shared by every generation of the route table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Availability of one backend: one atomic flag, read on the pick path without locks.
#[derive(Debug)]
pub struct BackendHealth {
    available: AtomicBool,
}

impl BackendHealth {
    fn new() -> Self {
        Self {
            available: AtomicBool::new(true),
        }
    }

    /// Whether the backend takes new traffic.
    ///
    /// ```
    /// let registry = routing_core::HealthRegistry::default();
    /// assert!(registry.handle("a").is_available());
    /// ```
    #[inline]
    #[must_use]
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Relaxed)
    }

    /// Marks the backend available or not (ejected, failing health checks).
    ///
    /// ```
    /// let registry = routing_core::HealthRegistry::default();
    /// let h = registry.handle("a");
    /// h.set_available(false);
    /// assert!(!registry.handle("a").is_available());
    /// ```
    pub fn set_available(&self, available: bool) {
        self.available.store(available, Ordering::Relaxed);
    }
}

/// Availability of backends by name.
///
/// A [`Router`](crate::Router) owns one registry for its whole life, so an ejection
/// survives config swaps: every table generation looks the same backend name up to the
/// same [`BackendHealth`]. Ejected or unhealthy backends are skipped by selection and
/// their share goes to the others in proportion to their weights, unless fewer than
/// the panic threshold remain (then traffic goes to all, as in Envoy).
///
/// ```
/// use routing_core::{Router, RequestInfo};
/// let router = Router::from_yaml(r#"
/// backends: [{name: a}, {name: b}, {name: c}]
/// routes: [{name: r, rules: [{backends: [{name: a}, {name: b}, {name: c}]}]}]
/// "#).unwrap();
/// router.health().set_available("a", false);
/// let table = router.load();
/// for _ in 0..100 {
///     let d = table.decide(&RequestInfo::get("http://x/"), &mut rand::rng()).unwrap();
///     assert_ne!(d.backend().unwrap().name(), "a");
/// }
/// ```
#[derive(Debug, Default)]
pub struct HealthRegistry {
    by_name: Mutex<HashMap<Arc<str>, Arc<BackendHealth>>>,
}

impl HealthRegistry {
    /// The shared state for `name`, created available on first use.
    ///
    /// ```
    /// let r = routing_core::HealthRegistry::default();
    /// assert!(std::sync::Arc::ptr_eq(&r.handle("a"), &r.handle("a")));
    /// ```
    pub fn handle(&self, name: &str) -> Arc<BackendHealth> {
        let mut map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(name) {
            return Arc::clone(h);
        }
        let h = Arc::new(BackendHealth::new());
        map.insert(name.into(), Arc::clone(&h));
        h
    }

    /// Marks `name` available or not; returns false when no table ever knew it.
    ///
    /// ```
    /// let r = routing_core::HealthRegistry::default();
    /// assert!(!r.set_available("ghost", false));
    /// ```
    pub fn set_available(&self, name: &str, available: bool) -> bool {
        let map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(name) {
            Some(h) => {
                h.set_available(available);
                true
            }
            None => false,
        }
    }

    /// Whether `name` is available (`None` when unknown).
    ///
    /// ```
    /// let r = routing_core::HealthRegistry::default();
    /// r.handle("a");
    /// assert_eq!(r.is_available("a"), Some(true));
    /// ```
    #[must_use]
    pub fn is_available(&self, name: &str) -> Option<bool> {
        let map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).map(|h| h.is_available())
    }

    /// Forgets backends no live table refers to any more (called after a swap).
    pub(crate) fn prune(&self) {
        let mut map = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, h| Arc::strong_count(h) > 1);
    }
}
