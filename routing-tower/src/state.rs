//! The layer-wide state ([`Shared`]) and what it derives from each table
//! generation ([`GenState`]): backend slots, route counters, retry budgets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use routing_core::{RouteTable, Router};

use crate::backends::{BackendService, Backends};
use crate::clock::{SharedClock, Timestamp};
use crate::cookie::{backend_tag, CookieKey};
use crate::limit::ConcurrencyLimit;
use crate::outcome::Outcome;
use crate::outlier::OutlierDetector;
use crate::retry::budget::RetryBudget;
use crate::rng::LayerRng;
use crate::stats::{BackendStats, StatsRegistry};

/// Window of the retry budget.
const BUDGET_TTL: Duration = Duration::from_secs(10);

/// Layer-wide state.
pub(crate) struct Shared {
    pub(crate) router: Router,
    pub(crate) backends: Backends,
    pub(crate) annotate: bool,
    pub(crate) fall_through: bool,
    /// The cookie key ring, replaceable while serving (`RoutingLayer::set_cookie_key`).
    pub(crate) cookie_key: ArcSwap<CookieKey>,
    /// Bumped by every ring change, so per-connection memos of verified cookies
    /// (`sticky::Memo`) drop what an older ring verified.
    pub(crate) cookie_ring_epoch: std::sync::atomic::AtomicU64,
    /// Oldest a stickiness cookie may be when its policy sets no TTL (`None`: no
    /// limit).
    pub(crate) cookie_max_age: Option<std::time::Duration>,
    /// Mirrored requests in flight at once (a mirror is skipped when none is free).
    pub(crate) mirror_slots: Arc<tokio::sync::Semaphore>,
    /// How long a mirrored request (and the draining of its response) may take.
    pub(crate) mirror_timeout: std::time::Duration,
    /// Request-body bytes held for replay at once, across all requests.
    pub(crate) buffer_budget: Arc<crate::replay::BufferBudget>,
    /// Timeouts for what rules leave unset.
    pub(crate) defaults: crate::deadline::Defaults,
    /// The concurrency limit of backends whose config sets no `connection_pool`.
    pub(crate) default_backend_limit: Option<routing_core::ConnectionPool>,
    pub(crate) clock: SharedClock,
    pub(crate) stats: Arc<StatsRegistry>,
    /// Per-route counters (the same shape as the backends', keyed by route name).
    pub(crate) route_stats: StatsRegistry,
    pub(crate) outlier: OutlierDetector,
    /// The source of every random choice.
    pub(crate) rng: LayerRng,
    pub(crate) state: ArcSwap<GenState>,
    pub(crate) sync: Mutex<()>,
}

/// What the layer derives from one table generation.
pub(crate) struct GenState {
    pub(crate) generation: Option<u64>,
    /// By `BackendId::index()`.
    pub(crate) backends: Vec<Slot>,
    /// By route index: the route's counters.
    pub(crate) routes: Vec<Arc<BackendStats>>,
    /// By rule index: the rule's retry budget.
    pub(crate) budgets: Vec<Option<BudgetEntry>>,
    /// By rule index: for a named rule with several backends, each backend's stats
    /// within the rule (what a rollout of the rule is judged on); empty otherwise.
    pub(crate) rule_stats: Vec<RuleStats>,
    pub(crate) outlier_enabled: bool,
}

impl GenState {
    /// `backend`'s stats within rule `rule`, when the rule keeps them.
    pub(crate) fn rule_backend_stats(
        &self,
        (rule, backend): (usize, routing_core::BackendId),
    ) -> Option<&Arc<BackendStats>> {
        self.rule_stats
            .get(rule)?
            .iter()
            .find(|(id, _)| *id == backend)
            .map(|(_, s)| s)
    }

    fn empty() -> Self {
        Self {
            generation: None,
            backends: Vec::new(),
            routes: Vec::new(),
            budgets: Vec::new(),
            rule_stats: Vec::new(),
            outlier_enabled: false,
        }
    }
}

/// One rule's backends, each with its stats within the rule.
pub(crate) type RuleStats = Box<[(routing_core::BackendId, Arc<BackendStats>)]>;

/// A rule's retry budget, kept across generations while the rule keeps its route
/// name, position and budget settings.
pub(crate) struct BudgetEntry {
    pub(crate) key: (Arc<str>, usize),
    pub(crate) params: (u64, u32),
    pub(crate) budget: Arc<RetryBudget>,
}

pub(crate) struct Slot {
    pub(crate) name: Arc<str>,
    pub(crate) tag: u64,
    pub(crate) service: Option<BackendService>,
    pub(crate) stats: Arc<BackendStats>,
    pub(crate) limit: Option<(routing_core::ConnectionPool, Arc<ConcurrencyLimit>)>,
    /// The backend has an endpoint pool: outlier detection ejects its endpoints
    /// (`endpoints::EndpointBalancer`), not the whole version.
    pub(crate) pooled: bool,
}

/// The default maximum age of a stickiness cookie without a TTL: one day.
pub(crate) const DEFAULT_COOKIE_MAX_AGE: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);

/// Mirrored requests a layer has in flight at once, by default.
pub(crate) const DEFAULT_MIRROR_CONCURRENCY: usize = 64;
/// How long a mirrored request may take, by default.
pub(crate) const DEFAULT_MIRROR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The concurrency limit of a backend without `connection_pool`: Envoy's circuit
/// breaker defaults (1024 requests in flight, 1024 pending).
pub(crate) const DEFAULT_BACKEND_LIMIT: routing_core::ConnectionPool =
    routing_core::defaults::BACKEND_CONNECTION_POOL;

/// Request-body bytes a layer holds for replay at once, by default: 256 MiB.
pub(crate) const DEFAULT_BUFFER_BUDGET: u64 = 256 << 20;

impl Shared {
    /// The state of a new layer: its stats registry, and an outlier detector that
    /// keeps the stats' ejection gauge with it (the detector itself knows nothing
    /// of stats).
    pub(crate) fn new(
        router: Router,
        backends: Backends,
        annotate: bool,
        fall_through: bool,
        cookie_key: CookieKey,
        clock: SharedClock,
        rng: LayerRng,
    ) -> Self {
        let stats = Arc::new(StatsRegistry::new());
        let gauge = Arc::clone(&stats);
        let outlier = OutlierDetector::new(Default::default(), Arc::clone(&clock))
            .with_listener(move |name, ejected| gauge.get_or_insert(name).set_ejected(ejected));
        Self {
            router,
            backends,
            annotate,
            fall_through,
            cookie_key: ArcSwap::from_pointee(cookie_key),
            cookie_ring_epoch: std::sync::atomic::AtomicU64::new(0),
            cookie_max_age: Some(DEFAULT_COOKIE_MAX_AGE),
            mirror_slots: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MIRROR_CONCURRENCY)),
            mirror_timeout: DEFAULT_MIRROR_TIMEOUT,
            buffer_budget: Arc::new(crate::replay::BufferBudget::new(DEFAULT_BUFFER_BUDGET)),
            defaults: crate::deadline::Defaults::default(),
            default_backend_limit: Some(DEFAULT_BACKEND_LIMIT),
            clock,
            stats,
            route_stats: StatsRegistry::new(),
            outlier,
            rng,
            state: ArcSwap::from_pointee(GenState::empty()),
            sync: Mutex::new(()),
        }
    }

    /// Now, on the layer's clock.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The derived state for `table`, rebuilt once per generation.
    pub(crate) fn state_for(&self, table: &RouteTable) -> Arc<GenState> {
        let cur = self.state.load_full();
        if cur.generation == Some(table.generation()) {
            return cur;
        }
        let _guard = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.state.load_full();
        if cur.generation == Some(table.generation()) {
            return cur;
        }
        // A request still holding an older table than the synced one gets a state
        // for its table, but neither stores it nor touches the outlier detector.
        if cur.generation.is_some_and(|g| g > table.generation()) {
            return Arc::new(self.build_state(table, &cur));
        }
        let next = Arc::new(self.build_state(table, &cur));
        self.sync_outlier_detection(table);
        self.state.store(Arc::clone(&next));
        next
    }

    /// Gives the outlier detector the settings and backends of `table`. Backends
    /// that leave (or all, when detection is turned off) are returned to service.
    fn sync_outlier_detection(&self, table: &RouteTable) {
        let names: Vec<Arc<str>> = match table.outlier_detection() {
            Some(od) => {
                self.outlier.set_config(*od);
                table.backends().iter().map(|b| b.name_arc()).collect()
            }
            None => Vec::new(),
        };
        self.outlier
            .sync(names.iter().map(|n| &**n), self.router.health());
    }

    /// Each named rule with several backends: its backends' stats within it, from
    /// the registry (so they outlive the generation, e.g. a rollout's weight steps).
    fn rule_stats(&self, table: &RouteTable) -> Vec<RuleStats> {
        table
            .rules()
            .iter()
            .map(|r| match (r.name(), r.forward()) {
                (Some(name), Some(f)) if f.backends().len() > 1 => {
                    let route = table.routes()[r.route_index()].name();
                    f.backends()
                        .iter()
                        .map(|b| {
                            let backend = table.backend(b.id()).name();
                            (b.id(), self.stats.rule_backend(route, name, backend))
                        })
                        .collect()
                }
                _ => Box::default(),
            })
            .collect()
    }

    fn build_state(&self, table: &RouteTable, prev: &GenState) -> GenState {
        let old: HashMap<&str, &Slot> = prev.backends.iter().map(|s| (&*s.name, s)).collect();
        let backends = table
            .backends()
            .iter()
            .map(|b| {
                let name = b.name_arc();
                let limit = b
                    .connection_pool()
                    .or(self.default_backend_limit)
                    .map(|cp| match old.get(&*name).and_then(|s| s.limit.as_ref()) {
                        Some((p, l)) if *p == cp => (cp, Arc::clone(l)),
                        _ => (
                            cp,
                            Arc::new(ConcurrencyLimit::new(
                                cp.max_concurrent_requests as usize,
                                cp.max_pending_requests as usize,
                            )),
                        ),
                    });
                Slot {
                    tag: backend_tag(&name),
                    service: self.backends.get(&name).cloned(),
                    stats: self.stats.get_or_insert(&name),
                    limit,
                    pooled: b.endpoints().is_some(),
                    name,
                }
            })
            .collect();
        // Budgets are kept for rules with the same route name, position and settings.
        let mut old_budgets: HashMap<(Arc<str>, usize), &BudgetEntry> = prev
            .budgets
            .iter()
            .flatten()
            .map(|e| (e.key.clone(), e))
            .collect();
        let budgets = table
            .rules()
            .iter()
            .map(|r| {
                let retry = r.policy().retry.as_ref()?;
                let key: (Arc<str>, usize) = (
                    table.routes()[r.route_index()].name().into(),
                    r.index_in_route(),
                );
                let params = (retry.budget_ratio.to_bits(), retry.budget_min_per_second);
                let budget = match old_budgets.remove(&key) {
                    Some(e) if e.params == params => Arc::clone(&e.budget),
                    _ => Arc::new(RetryBudget::new(
                        retry.budget_ratio,
                        retry.budget_min_per_second,
                        BUDGET_TTL,
                        Arc::clone(&self.clock),
                    )),
                };
                Some(BudgetEntry {
                    key,
                    params,
                    budget,
                })
            })
            .collect();
        GenState {
            generation: Some(table.generation()),
            backends,
            routes: table
                .routes()
                .iter()
                .map(|r| self.route_stats.get_or_insert(r.name()))
                .collect(),
            budgets,
            rule_stats: self.rule_stats(table),
            outlier_enabled: table.outlier_detection().is_some(),
        }
    }

    /// Records how a try to `slot` ended, once: in the backend's stats, in its stats
    /// within the rule (`within`, when the rule keeps them) and, when the table
    /// enables it, in the outlier detector (a pooled backend's pods have their own).
    /// `latency` is `None` for an upgraded connection, whose handshake and life are
    /// not a response time.
    pub(crate) fn record(
        &self,
        state: &GenState,
        within: Option<&BackendStats>,
        slot: &Slot,
        outcome: Outcome,
        latency: Option<Duration>,
    ) {
        for stats in std::iter::once(&*slot.stats).chain(within) {
            match latency {
                Some(l) => stats.record(outcome, l),
                None => stats.record_outcome(outcome),
            }
        }
        if state.outlier_enabled && !slot.pooled {
            if let Some(ej) = self.outlier.record(&slot.name, outcome) {
                tracing::debug!(backend = &*slot.name, ?ej, "ejected");
            }
        }
    }
}
