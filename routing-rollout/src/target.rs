//! What a rollout moves: the split between two backends of an HTTP rule or of an L4
//! service, applied as an edit of a [`Router`] through [`Router::modify`].

use std::fmt;

use routing_core::{Config, ConfigError, ModifyError, Router, WeightedBackendConfig};

/// Weights written by a split sum to this, so a split has a resolution of 0.01 %.
pub const WEIGHT_SCALE: u64 = 10_000;

/// The `(stable, candidate)` weights for a candidate percentage, summing to
/// [`WEIGHT_SCALE`] (0.01 % resolution).
///
/// ```
/// use routing_rollout::split_weights;
/// assert_eq!(split_weights(25.0).unwrap(), (7_500, 2_500));
/// assert!(split_weights(101.0).is_err());
/// ```
pub fn split_weights(candidate_percent: f64) -> Result<(u64, u64), TargetError> {
    if !candidate_percent.is_finite() || !(0.0..=100.0).contains(&candidate_percent) {
        return Err(TargetError::InvalidPercent(candidate_percent));
    }
    // In 0 ..= 10_000 by the check above, so the cast is exact.
    let candidate = (candidate_percent * (WEIGHT_SCALE as f64) / 100.0).round() as u64;
    Ok((WEIGHT_SCALE - candidate.min(WEIGHT_SCALE), candidate))
}

/// Why a split was refused; the previous split is still live.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The percentage is not a finite number in `0 ..= 100`.
    #[error("candidate percent {0} is not in 0..=100")]
    InvalidPercent(f64),
    /// The live config has no route of this name.
    #[error("route `{route}` not found")]
    RouteNotFound {
        /// The route's name.
        route: String,
    },
    /// The route has no rule of this name.
    #[error("rule `{rule}` not found in route `{route}`")]
    RuleNotFound {
        /// The route's name.
        route: String,
        /// The rule's name.
        rule: String,
    },
    /// The live config has no `tcp_services` entry of this name.
    #[error("tcp service `{service}` not found")]
    ServiceNotFound {
        /// The service's name.
        service: String,
    },
    /// The router rejected the edited config (e.g. a backend is not declared).
    #[error("config rejected: {0}")]
    Rejected(#[from] ConfigError),
    /// Any other failure (for [`ApplySplit`] implementations outside this crate).
    #[error("{0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The place whose stable/candidate split a rollout sets, by name in a [`Config`].
///
/// Other backends of the rule (or service) keep their weights; `stable` and
/// `candidate` are added if missing (both must be declared backends). Weights are
/// written as parts of [`WEIGHT_SCALE`].
///
/// ```
/// use routing_rollout::RolloutTarget;
/// let mut cfg = routing_core::Config::from_yaml(r#"
/// backends: [{name: v1, address: '10.0.0.1:80'}, {name: v2, address: '10.0.0.2:80'}]
/// routes: [{name: shop, rules: [{name: main, backends: [{name: v1}]}]}]
/// tcp_services: [{name: web, vip: '192.0.2.1:80', backends: [{name: v1}]}]
/// "#).unwrap();
/// let http = RolloutTarget::http_rule("shop", "main", "v1", "v2");
/// http.set_split(&mut cfg, 25.0).unwrap();
/// assert_eq!(http.weights(&cfg).unwrap(), (7_500, 2_500));
/// let l4 = RolloutTarget::tcp_service("web", "v1", "v2");
/// l4.set_split(&mut cfg, 100.0).unwrap();
/// assert_eq!(l4.weights(&cfg).unwrap(), (0, 10_000));
/// assert_eq!(l4.to_string(), "tcp service `web` (v1 -> v2)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutTarget {
    /// The rule named `rule` of the route named `route` (HTTP).
    HttpRule {
        /// The route's name.
        route: String,
        /// The rule's name.
        rule: String,
        /// The stable backend's name.
        stable: String,
        /// The candidate backend's name.
        candidate: String,
    },
    /// The `tcp_services` entry named `name` (L4, e.g. an XDP VIP).
    TcpService {
        /// The service's name.
        name: String,
        /// The stable backend's name.
        stable: String,
        /// The candidate backend's name.
        candidate: String,
    },
}

impl RolloutTarget {
    /// [`RolloutTarget::HttpRule`].
    ///
    /// ```
    /// let t = routing_rollout::RolloutTarget::http_rule("shop", "main", "v1", "v2");
    /// assert_eq!((t.stable(), t.candidate()), ("v1", "v2"));
    /// ```
    pub fn http_rule(
        route: impl Into<String>,
        rule: impl Into<String>,
        stable: impl Into<String>,
        candidate: impl Into<String>,
    ) -> Self {
        Self::HttpRule {
            route: route.into(),
            rule: rule.into(),
            stable: stable.into(),
            candidate: candidate.into(),
        }
    }

    /// [`RolloutTarget::TcpService`].
    ///
    /// ```
    /// let t = routing_rollout::RolloutTarget::tcp_service("web", "v1", "v2");
    /// assert_eq!(t.candidate(), "v2");
    /// ```
    pub fn tcp_service(
        name: impl Into<String>,
        stable: impl Into<String>,
        candidate: impl Into<String>,
    ) -> Self {
        Self::TcpService {
            name: name.into(),
            stable: stable.into(),
            candidate: candidate.into(),
        }
    }

    /// The stable backend's name.
    #[must_use]
    pub fn stable(&self) -> &str {
        match self {
            Self::HttpRule { stable, .. } | Self::TcpService { stable, .. } => stable,
        }
    }

    /// The candidate backend's name.
    #[must_use]
    pub fn candidate(&self) -> &str {
        match self {
            Self::HttpRule { candidate, .. } | Self::TcpService { candidate, .. } => candidate,
        }
    }

    /// Where this target's weighted backends are in `config`.
    fn locate(&self, config: &Config) -> Result<Place, TargetError> {
        match self {
            Self::HttpRule { route, rule, .. } => {
                let r = config
                    .routes
                    .iter()
                    .position(|r| &r.name == route)
                    .ok_or_else(|| TargetError::RouteNotFound {
                        route: route.clone(),
                    })?;
                let rl = config.routes[r]
                    .rules
                    .iter()
                    .position(|r| r.name.as_deref() == Some(rule.as_str()))
                    .ok_or_else(|| TargetError::RuleNotFound {
                        route: route.clone(),
                        rule: rule.clone(),
                    })?;
                Ok(Place::Rule(r, rl))
            }
            Self::TcpService { name, .. } => config
                .tcp_services
                .iter()
                .position(|s| &s.name == name)
                .map(Place::Service)
                .ok_or_else(|| TargetError::ServiceNotFound {
                    service: name.clone(),
                }),
        }
    }

    /// The edit: sets `candidate_percent` (`0 ..= 100`) to the candidate and the rest
    /// to stable in `config`. On error `config` is unchanged. Use it inside
    /// [`Router::modify`], or through [`ApplySplit`] for a [`Router`].
    ///
    /// ```
    /// use routing_rollout::{RolloutTarget, TargetError};
    /// let mut cfg = routing_core::Config::from_yaml("backends: [{name: v1}]").unwrap();
    /// let t = RolloutTarget::http_rule("shop", "main", "v1", "v2");
    /// assert!(matches!(t.set_split(&mut cfg, 5.0), Err(TargetError::RouteNotFound { .. })));
    /// ```
    pub fn set_split(
        &self,
        config: &mut Config,
        candidate_percent: f64,
    ) -> Result<(), TargetError> {
        let (stable_w, candidate_w) = split_weights(candidate_percent)?;
        let backends = match self.locate(config)? {
            Place::Rule(r, rl) => &mut config.routes[r].rules[rl].backends,
            Place::Service(s) => &mut config.tcp_services[s].backends,
        };
        for (name, weight) in [(self.stable(), stable_w), (self.candidate(), candidate_w)] {
            match backends.iter_mut().find(|b| b.name == name) {
                Some(b) => b.weight = weight,
                None => backends.push(WeightedBackendConfig::new(name.to_owned(), weight)),
            }
        }
        Ok(())
    }

    /// The weights `(stable, candidate)` in `config` (0 for a backend not listed).
    ///
    /// ```
    /// let cfg = routing_core::Config::from_yaml(r#"
    /// backends: [{name: v1}, {name: v2}]
    /// routes: [{name: shop, rules: [{name: main, backends: [{name: v1, weight: 3}]}]}]
    /// "#).unwrap();
    /// let t = routing_rollout::RolloutTarget::http_rule("shop", "main", "v1", "v2");
    /// assert_eq!(t.weights(&cfg).unwrap(), (3, 0));
    /// ```
    pub fn weights(&self, config: &Config) -> Result<(u64, u64), TargetError> {
        let backends = match self.locate(config)? {
            Place::Rule(r, rl) => &config.routes[r].rules[rl].backends,
            Place::Service(s) => &config.tcp_services[s].backends,
        };
        let weight = |name: &str| {
            backends
                .iter()
                .filter(|b| b.name == name)
                .map(|b| b.weight)
                .sum::<u64>()
        };
        Ok((weight(self.stable()), weight(self.candidate())))
    }
}

/// Indices of a target's weighted backends in a [`Config`].
#[derive(Debug, Clone, Copy)]
enum Place {
    /// `routes[.0].rules[.1]`.
    Rule(usize, usize),
    /// `tcp_services[.0]`.
    Service(usize),
}

impl fmt::Display for RolloutTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HttpRule {
                route,
                rule,
                stable,
                candidate,
            } => write!(f, "route `{route}` rule `{rule}` ({stable} -> {candidate})"),
            Self::TcpService {
                name,
                stable,
                candidate,
            } => write!(f, "tcp service `{name}` ({stable} -> {candidate})"),
        }
    }
}

/// Where a rollout's splits land. A [`Router`] applies them with
/// [`Router::modify`] (one owner of the config: a file reload and a rollout never
/// overwrite each other); tests can record them instead.
///
/// Implementations apply a split atomically or not at all: on error the previous
/// split must still be live.
///
/// ```
/// use routing_rollout::{ApplySplit, RolloutTarget};
/// let router = routing_core::Router::from_yaml(r#"
/// backends: [{name: v1}, {name: v2}]
/// routes: [{name: shop, rules: [{name: main, backends: [{name: v1}]}]}]
/// "#).unwrap();
/// let t = RolloutTarget::http_rule("shop", "main", "v1", "v2");
/// router.apply_split(&t, 10.0).unwrap();
/// assert_eq!(t.weights(router.snapshot().config()).unwrap(), (9_000, 1_000));
/// assert_eq!(router.generation(), 2);
/// ```
pub trait ApplySplit: fmt::Debug {
    /// Sends `candidate_percent` of new traffic of `target` to its candidate.
    fn apply_split(
        &self,
        target: &RolloutTarget,
        candidate_percent: f64,
    ) -> Result<(), TargetError>;
}

impl ApplySplit for Router {
    fn apply_split(
        &self,
        target: &RolloutTarget,
        candidate_percent: f64,
    ) -> Result<(), TargetError> {
        self.modify(|cfg| target.set_split(cfg, candidate_percent))
            .map(|_| ())
            .map_err(|e| match e {
                ModifyError::Edit(e) => e,
                ModifyError::Invalid(e) => TargetError::Rejected(e),
            })
    }
}

impl<T: ApplySplit + ?Sized> ApplySplit for &T {
    fn apply_split(&self, target: &RolloutTarget, percent: f64) -> Result<(), TargetError> {
        (**self).apply_split(target, percent)
    }
}

impl<T: ApplySplit + ?Sized> ApplySplit for std::sync::Arc<T> {
    fn apply_split(&self, target: &RolloutTarget, percent: f64) -> Result<(), TargetError> {
        (**self).apply_split(target, percent)
    }
}
