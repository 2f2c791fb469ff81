//! Importers: routing written for other systems, read into the native [`Config`].
//!
//! Teams arrive with routing already written down. [`import`] reads, from any number
//! of files of any mix of kinds:
//!
//! * Kubernetes Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1` and `v1beta1`)
//!   and `GRPCRoute` (`v1`, `v1alpha2`);
//! * Istio `VirtualService` and `DestinationRule` (`networking.istio.io/v1alpha3`,
//!   `v1beta1`, `v1`);
//! * AWS ELBv2 listener rules as `aws elbv2 describe-rules` prints them (JSON);
//! * native documents (what [`Config::from_yaml`] reads);
//!
//! multi-document YAML and Kubernetes `List`s included, and returns one native
//! [`Config`] with the [`ImportWarning`]s of everything that was understood but is not
//! applied in-process (Istio `gateways`, `sourceLabels`, Gateway API `parentRefs`, …).
//! Anything that *would* change which backend a request reaches and cannot be
//! expressed is an [`ImportError`], never a silent approximation. Every error and
//! warning names the file, the document, the resource and the field path, and the
//! line where it can be found.
//!
//! Backend names come from a [`BackendMap`] when one is given (then every reference
//! must be in it), else from the source: a Gateway API `backendRef` `name` (with
//! `namespace/` when it names another namespace, and `:port` when it has one), an
//! Istio destination `host` or `host/subset`, an ALB target group's name from its ARN.
//!
//! ```
//! use routing_core::import::{import, ImportOptions, Source};
//! let manifest = r#"
//! apiVersion: gateway.networking.k8s.io/v1
//! kind: HTTPRoute
//! metadata: { name: shop, namespace: web }
//! spec:
//!   parentRefs: [{ name: gw }]
//!   hostnames: [shop.example.com]
//!   rules:
//!     - backendRefs:
//!         - { name: shop-v1, port: 8080, weight: 90 }
//!         - { name: shop-v2, port: 8080, weight: 10 }
//! "#;
//! let imported = import(&[Source::new("shop.yaml", manifest)], &ImportOptions::default())?;
//! let table = imported.config.clone().validate()?;
//! assert_eq!(table.routes()[0].name(), "web/shop");
//! assert_eq!(table.backends()[0].name(), "shop-v1:8080");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use crate::config::{BackendConfig, Config, OutlierDetectionConfig, RouteConfig};
use crate::error::{ConfigError, ValidationError};
use crate::RouteTable;

// Public for their documentation: each module's docs are the field-by-field mapping,
// and the warnings and errors it gives. Their entry points are crate-private:
// [`import`] is the API.
pub mod alb;
mod documents;
pub mod gateway;
pub mod istio;
mod lines;
mod time;
pub(crate) use time::{go_duration, to_config_duration};

/// A file (or any text) to import, with the name its messages use.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Name shown in errors and warnings (usually the file path).
    pub name: &'a str,
    /// The text: YAML (one or more documents) or JSON.
    pub text: &'a str,
}

impl<'a> Source<'a> {
    /// A source named `name`.
    ///
    /// ```
    /// let s = routing_core::import::Source::new("a.yaml", "backends: []");
    /// assert_eq!(s.name, "a.yaml");
    /// ```
    #[must_use]
    pub fn new(name: &'a str, text: &'a str) -> Self {
        Self { name, text }
    }
}

/// What kind of document was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceKind {
    /// The native format.
    Native,
    /// Gateway API `HTTPRoute`.
    HttpRoute,
    /// Gateway API `GRPCRoute` (imported as HTTP rules on `/service/method` paths).
    GrpcRoute,
    /// Istio `VirtualService`.
    VirtualService,
    /// Istio `DestinationRule`.
    DestinationRule,
    /// AWS ELBv2 `describe-rules` output.
    AlbRules,
    /// Gateway API `Gateway` (listeners `HTTPRoute`s attach to).
    Gateway,
    /// Gateway API `ReferenceGrant` (allows cross-namespace `backendRefs`).
    ReferenceGrant,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Native => "native",
            SourceKind::HttpRoute => "HTTPRoute",
            SourceKind::GrpcRoute => "GRPCRoute",
            SourceKind::VirtualService => "VirtualService",
            SourceKind::DestinationRule => "DestinationRule",
            SourceKind::AlbRules => "ALB rules",
            SourceKind::Gateway => "Gateway",
            SourceKind::ReferenceGrant => "ReferenceGrant",
        })
    }
}

/// Where something was found: file, document, resource, field path and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The source's name.
    pub source: String,
    /// 0-based document number in the source (YAML `---` separated).
    pub document: usize,
    /// The resource, e.g. `HTTPRoute web/shop` or `rule arn:…/abc` (absent for native).
    pub resource: Option<String>,
    /// Field path inside the document, e.g. `spec.rules[0].matches[1].path.type`.
    pub path: String,
    /// 1-based line, when it could be found.
    pub line: Option<usize>,
}

impl Location {
    /// For a native error outside every imported route (a backend, a global).
    fn unlocated() -> Self {
        Self {
            source: "(imported)".into(),
            document: 0,
            resource: None,
            path: String::new(),
            line: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        match self.line {
            Some(l) => write!(f, ":{l}")?,
            None if self.document > 0 => write!(f, " (document {})", self.document + 1)?,
            None => {}
        }
        if let Some(r) = &self.resource {
            write!(f, ": {r}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": `{}`", self.path)?;
        }
        Ok(())
    }
}

/// Something understood but not applied in-process, or approximated in a way that
/// does not change which backend a request reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportWarning {
    /// Where.
    pub at: Location,
    /// What, and what the import did instead.
    pub message: String,
    /// The source system's own reason for the condition, where it names one (the
    /// Gateway API's `BackendNotFound`, `InvalidKind` and `RefNotPermitted` for an
    /// invalid backendRef), for a controller that reports it in the object's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Why part of an input could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ImportErrorKind {
    /// Not well-formed, a field of the wrong type, or a field the importer does not
    /// know (refused rather than ignored: it might change routing).
    Parse(String),
    /// Valid in the source system but not expressible here without changing which
    /// requests reach which backend.
    Unsupported(String),
    /// Breaks the source format's own rules.
    Invalid(String),
    /// A [`BackendMap`] was given and has none of these keys.
    UnknownBackend(String),
    /// The native configuration built from the input is invalid; the message is the
    /// native validation error (its native field path included).
    Native(String),
    /// A condition that narrows a match or gates access (authentication, caller
    /// identity, listener port) cannot be applied in-process: importing it anyway
    /// would serve requests the source system refuses. Refused unless
    /// [`ImportOptions::allow_lossy`] is set (then it is a warning).
    Lossy(String),
    /// A warning, refused because [`ImportOptions::deny_warnings`] is set.
    Warning(String),
    /// The input yields no route and no TCP service (e.g. only unknown kinds, or
    /// only DestinationRules): nothing would be routed.
    NothingRoutable,
}

impl fmt::Display for ImportErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportErrorKind::Parse(m) => write!(f, "parse error: {m}"),
            ImportErrorKind::Unsupported(m) => write!(f, "unsupported: {m}"),
            ImportErrorKind::Invalid(m) => write!(f, "invalid: {m}"),
            ImportErrorKind::UnknownBackend(m) => {
                write!(f, "no entry in the backend map for {m}")
            }
            ImportErrorKind::Native(m) => write!(f, "{m}"),
            ImportErrorKind::Lossy(m) => {
                write!(
                    f,
                    "not applied in-process, refused (allow_lossy imports it): {m}"
                )
            }
            ImportErrorKind::Warning(m) => write!(f, "warning refused (deny_warnings): {m}"),
            ImportErrorKind::NothingRoutable => {
                write!(
                    f,
                    "nothing routable: the input yields no route and no tcp service"
                )
            }
        }
    }
}

/// One import error, with its location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct ImportError {
    /// Where.
    pub at: Location,
    /// What.
    pub kind: ImportErrorKind,
}

/// Every error found in one import (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportErrors {
    errors: Vec<ImportError>,
    warnings: Vec<ImportWarning>,
}

impl ImportErrors {
    /// The errors, in input order.
    ///
    /// ```
    /// use routing_core::import::{import, ImportOptions, Source};
    /// let err = import(&[Source::new("x.yaml", "routes: 7")], &ImportOptions::default()).unwrap_err();
    /// assert_eq!(err.errors()[0].at.source, "x.yaml");
    /// ```
    #[must_use]
    pub fn errors(&self) -> &[ImportError] {
        &self.errors
    }

    /// The warnings gathered before the import failed.
    ///
    /// ```
    /// # use routing_core::import::{import, ImportOptions, Source};
    /// # let err = import(&[Source::new("x.yaml", "routes: 7")], &ImportOptions::default()).unwrap_err();
    /// assert!(err.warnings().is_empty());
    /// ```
    #[must_use]
    pub fn warnings(&self) -> &[ImportWarning] {
        &self.warnings
    }
}

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{n} import error{}", if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportErrors {}

/// What a source backend reference becomes: a native backend name and, optionally,
/// its address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum BackendTarget {
    /// Just the backend name.
    Name(String),
    /// Name and address.
    Full {
        /// Native backend name.
        name: String,
        /// Where it listens.
        #[serde(default)]
        address: Option<SocketAddr>,
    },
}

impl BackendTarget {
    /// The native backend name.
    ///
    /// ```
    /// use routing_core::import::BackendTarget;
    /// assert_eq!(BackendTarget::Name("a".into()).name(), "a");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            BackendTarget::Name(n) | BackendTarget::Full { name: n, .. } => n,
        }
    }

    fn address(&self) -> Option<SocketAddr> {
        match self {
            BackendTarget::Name(_) => None,
            BackendTarget::Full { address, .. } => *address,
        }
    }
}

/// Maps source backend references to native backends. Keys:
///
/// * Gateway API: `namespace/name:port`, `namespace/name`, and for a reference in
///   the route's own namespace also `name:port` and `name` (the most specific present
///   key wins);
/// * Istio: `host/subset` or `host`;
/// * ALB: the target group ARN, or the target group name.
///
/// ```
/// use routing_core::import::BackendMap;
/// let map = BackendMap::from_yaml(r#"
/// reviews.prod.svc.cluster.local/v1: reviews-v1
/// reviews.prod.svc.cluster.local/v2: { name: reviews-v2, address: "10.0.0.2:9080" }
/// "#)?;
/// assert_eq!(map.get("reviews.prod.svc.cluster.local/v2").unwrap().name(), "reviews-v2");
/// # Ok::<(), routing_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct BackendMap(BTreeMap<String, BackendTarget>);

impl BackendMap {
    /// Reads a map from YAML (or JSON): `key: name` or `key: {name, address}`.
    ///
    /// ```
    /// let m = routing_core::import::BackendMap::from_yaml("{a: b}").unwrap();
    /// assert_eq!(m.get("a").unwrap().name(), "b");
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        crate::config::from_yaml_str(text)
    }

    /// Adds or replaces an entry.
    ///
    /// ```
    /// use routing_core::import::{BackendMap, BackendTarget};
    /// let mut m = BackendMap::default();
    /// m.insert("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/blue/1", BackendTarget::Name("blue".into()));
    /// assert_eq!(m.len(), 1);
    /// ```
    pub fn insert(&mut self, key: impl Into<String>, target: BackendTarget) {
        self.0.insert(key.into(), target);
    }

    /// The entry for `key`.
    ///
    /// ```
    /// assert!(routing_core::import::BackendMap::default().get("x").is_none());
    /// ```
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&BackendTarget> {
        self.0.get(key)
    }

    /// Number of entries.
    ///
    /// ```
    /// assert_eq!(routing_core::import::BackendMap::default().len(), 0);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no entries.
    ///
    /// ```
    /// assert!(routing_core::import::BackendMap::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How to import.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Source backend references → native backends. When set, every reference must be
    /// in it; when `None`, names are derived from the source (see the module docs).
    pub backends: Option<BackendMap>,
    /// Namespace of Kubernetes resources that do not name one (default `default`).
    pub default_namespace: String,
    /// Import conditions that narrow access but cannot be applied in-process (ALB
    /// authentication actions; Istio `sourceLabels`, `sourceNamespace`, match `port`)
    /// as warnings instead of refusing them. Off by default: an import fails closed.
    pub allow_lossy: bool,
    /// Turn every warning into an error (for CI). Off by default.
    pub deny_warnings: bool,
    /// The gateways this router stands for, when the source binds routes to gateways
    /// (Istio `gateways`: `mesh`, `name` or `namespace/name`). Empty means `mesh`:
    /// in-process (sidecar) traffic. A VirtualService or match bound only to other
    /// gateways is left out, with a warning. For the Gateway API, entries are
    /// `namespace/name` or `namespace/name/section` of `Gateway`s (listeners);
    /// empty means every Gateway in the input (see [`gateway`]).
    pub gateways: Vec<String>,
    /// ALB target-group stickiness with ALB's semantics: a session cookie keeps its
    /// target group even when that group's weight is 0 (cookies beat weights), via
    /// the cookie's [`keep_at_zero_weight`](crate::CookieConfig::keep_at_zero_weight).
    /// Off by default: the library's semantics (a weight-0 group is drained at once,
    /// its sessions re-pinned), with a warning on each sticky weighted forward.
    pub alb_cookie_beats_weight: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            backends: None,
            default_namespace: "default".to_owned(),
            allow_lossy: false,
            deny_warnings: false,
            gateways: Vec::new(),
            alb_cookie_beats_weight: false,
        }
    }
}

impl ImportOptions {
    /// Resolve backends through `map`.
    ///
    /// ```
    /// use routing_core::import::{BackendMap, ImportOptions};
    /// let opts = ImportOptions::default().with_backend_map(BackendMap::default());
    /// assert!(opts.backends.is_some());
    /// ```
    #[must_use]
    pub fn with_backend_map(mut self, map: BackendMap) -> Self {
        self.backends = Some(map);
        self
    }

    /// Use `ns` for resources without a namespace.
    ///
    /// ```
    /// let opts = routing_core::import::ImportOptions::default().with_default_namespace("prod");
    /// assert_eq!(opts.default_namespace, "prod");
    /// ```
    #[must_use]
    pub fn with_default_namespace(mut self, ns: impl Into<String>) -> Self {
        self.default_namespace = ns.into();
        self
    }

    /// Import access-narrowing conditions that cannot be applied as warnings
    /// ([`ImportErrorKind::Lossy`]).
    ///
    /// ```
    /// assert!(routing_core::import::ImportOptions::default().with_allow_lossy(true).allow_lossy);
    /// ```
    #[must_use]
    pub fn with_allow_lossy(mut self, yes: bool) -> Self {
        self.allow_lossy = yes;
        self
    }

    /// Refuse any warning ([`ImportErrorKind::Warning`]).
    ///
    /// ```
    /// assert!(routing_core::import::ImportOptions::default().with_deny_warnings(true).deny_warnings);
    /// ```
    #[must_use]
    pub fn with_deny_warnings(mut self, yes: bool) -> Self {
        self.deny_warnings = yes;
        self
    }

    /// Stand for `gateways` (see [`ImportOptions::gateways`]).
    ///
    /// ```
    /// let o = routing_core::import::ImportOptions::default().with_gateways(["istio-system/public"]);
    /// assert_eq!(o.gateways, ["istio-system/public"]);
    /// ```
    #[must_use]
    pub fn with_gateways<I, S>(mut self, gateways: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.gateways = gateways.into_iter().map(Into::into).collect();
        self
    }

    /// Import ALB target-group stickiness with ALB's semantics (see
    /// [`ImportOptions::alb_cookie_beats_weight`]).
    ///
    /// ```
    /// assert!(routing_core::import::ImportOptions::default().with_alb_cookie_beats_weight(true).alb_cookie_beats_weight);
    /// ```
    #[must_use]
    pub fn with_alb_cookie_beats_weight(mut self, yes: bool) -> Self {
        self.alb_cookie_beats_weight = yes;
        self
    }

    /// Whether a binding to `gateways` (names as the source wrote them, `name` meaning
    /// `namespace/name` in `ns`; empty meaning `mesh`) includes a gateway this router
    /// stands for.
    pub(crate) fn selects_gateway(&self, gateways: &[String], ns: &str) -> bool {
        let qualify = |g: &str| {
            if g == "mesh" || g.contains('/') {
                g.to_owned()
            } else {
                format!("{ns}/{g}")
            }
        };
        let mine: Vec<String> = if self.gateways.is_empty() {
            vec!["mesh".to_owned()]
        } else {
            self.gateways
                .iter()
                .map(|g| {
                    if g == "mesh" || g.contains('/') {
                        g.clone()
                    } else {
                        format!("{}/{g}", self.default_namespace)
                    }
                })
                .collect()
        };
        if gateways.is_empty() {
            return mine.iter().any(|g| g == "mesh");
        }
        gateways.iter().any(|g| mine.contains(&qualify(g)))
    }
}

/// Where a native route (and each of its rules) came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteOrigin {
    /// The resource the route was made from.
    pub at: Location,
    /// One location per native rule, in order.
    pub rules: Vec<Location>,
}

/// The result of an import.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Imported {
    /// The native configuration (not yet validated: see [`Imported::validate`]).
    pub config: Config,
    /// Everything understood but not applied in-process.
    pub warnings: Vec<ImportWarning>,
    /// The kinds of document read.
    pub kinds: BTreeSet<SourceKind>,
    /// Where each route of `config.routes` came from (same order).
    pub origins: Vec<RouteOrigin>,
}

impl Imported {
    /// Where the native field at `path` (`routes[2].rules[0].backends[1].weight`) came
    /// from: its rule's location, else its route's.
    ///
    /// ```
    /// # use routing_core::import::{import, ImportOptions, Source};
    /// let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n";
    /// let imported = import(&[Source::new("vs.yaml", vs)], &ImportOptions::default()).unwrap();
    /// let at = imported.origin_of("routes[0].rules[0].backends[0].name").unwrap();
    /// assert_eq!(at.path, "spec.http[0]");
    /// assert_eq!(at.line, Some(7));
    /// ```
    #[must_use]
    pub fn origin_of(&self, path: &str) -> Option<&Location> {
        let rest = path.strip_prefix("routes[")?;
        let (route, rest) = rest.split_once(']')?;
        let origin = self.origins.get(route.parse::<usize>().ok()?)?;
        let rule = rest
            .strip_prefix(".rules[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
            .and_then(|i| origin.rules.get(i));
        Some(rule.unwrap_or(&origin.at))
    }

    /// Validates the native configuration; each native error is reported at the
    /// source location it came from.
    ///
    /// ```
    /// # use routing_core::import::{import, ImportOptions, Source};
    /// let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n";
    /// let imported = import(&[Source::new("vs.yaml", vs)], &ImportOptions::default()).unwrap();
    /// let table = imported.validate().unwrap();
    /// assert_eq!(table.rules().len(), 1);
    /// ```
    pub fn validate(&self) -> Result<RouteTable, ImportErrors> {
        self.config.clone().validate().map_err(|e| {
            let errors = match &e {
                ConfigError::Invalid(v) => v
                    .errors()
                    .iter()
                    .map(|ve: &ValidationError| ImportError {
                        at: self
                            .origin_of(&ve.path)
                            .cloned()
                            .unwrap_or_else(Location::unlocated),
                        kind: ImportErrorKind::Native(ve.to_string()),
                    })
                    .collect(),
                other => vec![ImportError {
                    at: Location::unlocated(),
                    kind: ImportErrorKind::Native(other.to_string()),
                }],
            };
            ImportErrors {
                errors,
                warnings: self.warnings.clone(),
            }
        })
    }
}

/// Reads every source, detects each document's kind and imports them all into one
/// native [`Config`]. All errors are reported together; a partial result is never
/// returned.
///
/// ```
/// use routing_core::import::{import, ImportOptions, Source, SourceKind};
/// let native = "backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]";
/// let imported = import(&[Source::new("n.yaml", native)], &ImportOptions::default()).unwrap();
/// assert!(imported.kinds.contains(&SourceKind::Native));
/// assert_eq!(imported.config.routes.len(), 1);
/// ```
pub fn import(sources: &[Source<'_>], options: &ImportOptions) -> Result<Imported, ImportErrors> {
    let mut out = Out::new(options);
    let mut docs = Vec::new();
    // Kubernetes `Service`s and `Namespace`s: not routing configuration, but what
    // Gateway API references resolve against.
    let mut context = Vec::new();
    for src in sources {
        documents::split(src, &mut docs, &mut context, &mut out);
    }
    let kinds: BTreeSet<SourceKind> = docs.iter().map(|d| d.kind).collect();
    let of = |k: SourceKind| docs.iter().filter(move |d| d.kind == k).collect::<Vec<_>>();
    for d in of(SourceKind::Native) {
        native(d, &mut out);
    }
    let mut routes = of(SourceKind::HttpRoute);
    routes.extend(of(SourceKind::GrpcRoute));
    if !routes.is_empty() {
        let mut around = of(SourceKind::Gateway);
        around.extend(of(SourceKind::ReferenceGrant));
        around.extend(context.iter());
        gateway::import(&routes, &around, &mut out);
    }
    let (vs, dr) = (
        of(SourceKind::VirtualService),
        of(SourceKind::DestinationRule),
    );
    if !vs.is_empty() || !dr.is_empty() {
        istio::import(&vs, &dr, &mut out);
    }
    let alb_docs = of(SourceKind::AlbRules);
    if !alb_docs.is_empty() {
        alb::import(&alb_docs, &mut out);
    }
    let first = Location {
        source: sources
            .first()
            .map_or_else(String::new, |s| s.name.to_owned()),
        document: 0,
        resource: None,
        path: String::new(),
        line: None,
    };
    out.finish(kinds, first)
}

/// One document of a source, with its detected kind.
pub(crate) struct Doc<'a> {
    pub(crate) source: &'a str,
    text: &'a str,
    pub(crate) index: usize,
    /// Path of `value` inside the document (`items[3]` inside a `List`), or empty.
    base: String,
    pub(crate) value: Value,
    pub(crate) kind: SourceKind,
    lines: std::sync::OnceLock<HashMap<String, usize>>,
}

impl Doc<'_> {
    /// The location of `path` (relative to this document's value) in `resource`.
    pub(crate) fn loc(&self, resource: Option<&str>, path: &str) -> Location {
        let full = match (self.base.is_empty(), path.is_empty()) {
            (true, _) => path.to_owned(),
            (false, true) => self.base.clone(),
            (false, false) if path.starts_with('[') => format!("{}{path}", self.base),
            (false, false) => format!("{}.{path}", self.base),
        };
        let lines = self
            .lines
            .get_or_init(|| lines::line_map(self.text, self.index));
        // The nearest enclosing path that has a line: a missing field reports its parent.
        let mut probe = full.as_str();
        let line = loop {
            if let Some(l) = lines.get(probe) {
                break Some(*l);
            }
            match probe.rfind(['.', '[']) {
                Some(i) => probe = &probe[..i],
                None => break lines.get("").copied(),
            }
        };
        Location {
            source: self.source.to_owned(),
            document: self.index,
            resource: resource.map(str::to_owned),
            path: full,
            line,
        }
    }

    /// Deserializes the document into `T`, errors carrying the field path.
    #[allow(clippy::result_large_err)] // cold: once per document
    pub(crate) fn parse<T: DeserializeOwned>(
        &self,
        resource: Option<&str>,
    ) -> Result<T, ImportError> {
        serde_path_to_error::deserialize(self.value.clone()).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ImportError {
                at: self.loc(resource, &path),
                kind: ImportErrorKind::Parse(e.inner().to_string()),
            }
        })
    }

    /// `metadata.namespace`, else the default namespace.
    pub(crate) fn namespace<'o>(&'o self, out: &'o Out<'_>) -> &'o str {
        self.value
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(&out.options.default_namespace)
    }

    /// `metadata.name`.
    pub(crate) fn name(&self) -> &str {
        self.value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// The import being built: what importers produce and report.
pub(crate) struct Out<'o> {
    pub(crate) options: &'o ImportOptions,
    config: Config,
    backend_index: HashMap<String, usize>,
    /// Names of `config.routes`, kept unique without a scan per route.
    route_names: HashSet<String>,
    origins: Vec<RouteOrigin>,
    warnings: Vec<ImportWarning>,
    errors: Vec<ImportError>,
    /// Where the global outlier detection came from.
    outlier_from: Option<Location>,
    maglev_from: Option<Location>,
}

impl<'o> Out<'o> {
    fn new(options: &'o ImportOptions) -> Self {
        Self {
            options,
            config: Config::default(),
            backend_index: HashMap::new(),
            route_names: HashSet::new(),
            origins: Vec::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
            outlier_from: None,
            maglev_from: None,
        }
    }

    /// Records a warning.
    pub(crate) fn warn(&mut self, at: Location, message: impl Into<String>) {
        self.warnings.push(ImportWarning {
            at,
            message: message.into(),
            reason: None,
        });
    }

    /// Records a warning with the source system's reason for it.
    pub(crate) fn warn_reason(
        &mut self,
        at: Location,
        reason: &'static str,
        message: impl Into<String>,
    ) {
        self.warnings.push(ImportWarning {
            at,
            message: message.into(),
            reason: Some(reason),
        });
    }

    /// Records an error.
    pub(crate) fn error(&mut self, at: Location, kind: ImportErrorKind) {
        self.errors.push(ImportError { at, kind });
    }

    /// Records a condition that narrows access and cannot be applied: an error, or a
    /// warning when [`ImportOptions::allow_lossy`] is set.
    pub(crate) fn lossy(&mut self, at: Location, message: impl Into<String>) {
        let message = message.into();
        if self.options.allow_lossy {
            self.warn(at, format!("{message} (imported anyway: allow_lossy)"));
        } else {
            self.error(at, ImportErrorKind::Lossy(message));
        }
    }

    /// Records an error already built.
    pub(crate) fn push_error(&mut self, e: ImportError) {
        self.errors.push(e);
    }

    /// Number of errors so far (to tell whether a step added any).
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Declares (once) and names the backend that stands for references the source
    /// has but that cannot be resolved (a missing Service, a kind not supported, a
    /// cross-namespace reference no grant allows): it has no address, and the rules
    /// that use it answer its share with a fixed `500` filter, so no request reaches it.
    pub(crate) fn unresolved_backend(&mut self) -> &'static str {
        let name = UNRESOLVED_BACKEND;
        if !self.backend_index.contains_key(name) {
            self.backend_index
                .insert(name.to_owned(), self.config.backends.len());
            self.config.backends.push(BackendConfig {
                name: name.to_owned(),
                address: None,
                connection_pool: None,
                protocol: None,
                endpoints: Vec::new(),
            });
        }
        name
    }

    /// Resolves a source backend reference to a native backend name and declares it.
    /// `keys` are the map keys to try, most specific first; `default_name` is used
    /// when no map was given. With a map and no key in it, an error is recorded at
    /// `at` and `None` returned.
    pub(crate) fn backend(
        &mut self,
        keys: &[String],
        default_name: &str,
        at: &Location,
    ) -> Option<String> {
        let (name, address) = match &self.options.backends {
            None => (default_name.to_owned(), None),
            Some(map) => match keys.iter().find_map(|k| map.get(k)) {
                Some(t) => (t.name().to_owned(), t.address()),
                None => {
                    let msg = keys
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" or ");
                    self.error(at.clone(), ImportErrorKind::UnknownBackend(msg));
                    return None;
                }
            },
        };
        match self.backend_index.get(&name) {
            Some(&i) => {
                let b = &mut self.config.backends[i];
                if b.address.is_none() {
                    b.address = address;
                }
            }
            None => {
                self.backend_index
                    .insert(name.clone(), self.config.backends.len());
                self.config.backends.push(BackendConfig {
                    name: name.clone(),
                    address,
                    connection_pool: None,
                    protocol: None,
                    endpoints: Vec::new(),
                });
            }
        }
        Some(name)
    }

    /// The declared backend called `name`, for setting its connection pool.
    pub(crate) fn backend_config(&mut self, name: &str) -> Option<&mut BackendConfig> {
        let i = *self.backend_index.get(name)?;
        self.config.backends.get_mut(i)
    }

    /// Adds a route. Names are made unique (`name`, `name~2`, …) if they clash.
    pub(crate) fn route(&mut self, mut route: RouteConfig, origin: RouteOrigin) {
        let base = route.name.clone();
        let mut n = 1;
        while self.route_names.contains(&route.name) {
            n += 1;
            route.name = format!("{base}~{n}");
        }
        self.route_names.insert(route.name.clone());
        self.config.routes.push(route);
        self.origins.push(origin);
    }

    /// Sets the global outlier detection; a second, different one is a warning (the
    /// native model has one for all backends).
    pub(crate) fn outlier_detection(&mut self, od: OutlierDetectionConfig, at: Location) {
        match (&self.config.outlier_detection, &self.outlier_from) {
            (Some(existing), Some(first)) if *existing != od => {
                let msg = format!(
                    "outlier detection applies to every backend here; the one from {first} is kept and this different one is ignored"
                );
                self.warn(at, msg);
            }
            (Some(_), _) => {}
            (None, _) => {
                self.config.outlier_detection = Some(od);
                self.outlier_from = Some(at);
            }
        }
    }

    /// Sets the global Maglev table size; a second, different one is a warning.
    pub(crate) fn maglev_table_size(&mut self, size: u64, at: Location) {
        match (self.config.maglev_table_size, &self.maglev_from) {
            (Some(existing), Some(first)) if existing != size => {
                let msg = format!(
                    "one Maglev table size applies to every rule here; {existing} from {first} is kept"
                );
                self.warn(at, msg);
            }
            (Some(_), _) => {}
            (None, _) => {
                self.config.maglev_table_size = Some(size);
                self.maglev_from = Some(at);
            }
        }
    }

    fn finish(
        mut self,
        kinds: BTreeSet<SourceKind>,
        first: Location,
    ) -> Result<Imported, ImportErrors> {
        if self.errors.is_empty()
            && self.config.routes.is_empty()
            && self.config.tcp_services.is_empty()
        {
            self.error(first, ImportErrorKind::NothingRoutable);
        }
        if self.options.deny_warnings {
            let denied: Vec<ImportError> = self
                .warnings
                .iter()
                .map(|w| ImportError {
                    at: w.at.clone(),
                    kind: ImportErrorKind::Warning(w.message.clone()),
                })
                .collect();
            self.errors.extend(denied);
        }
        if !self.errors.is_empty() {
            return Err(ImportErrors {
                errors: self.errors,
                warnings: self.warnings,
            });
        }
        Ok(Imported {
            config: self.config,
            warnings: self.warnings,
            kinds,
            origins: self.origins,
        })
    }
}

/// The name of the backend that stands for references an importer cannot resolve
/// (a missing Service, a kind not supported, a cross-namespace reference no grant
/// allows) next to valid ones: it has no address, and its slot in the rule answers
/// `500` by a `fixed_response` backend filter, so only its share fails and it is
/// never called. Its `:` cannot come from a Kubernetes name.
pub const UNRESOLVED_BACKEND: &str = "unresolved:backend-ref";

/// Merges a native document: its backends and routes come first, its globals win.
fn native(d: &Doc<'_>, out: &mut Out<'_>) {
    let cfg: Config = match d.parse(None) {
        Ok(c) => c,
        Err(e) => {
            out.push_error(e);
            return;
        }
    };
    for (i, b) in cfg.backends.iter().enumerate() {
        match out.backend_index.get(&b.name) {
            Some(_) => out.error(
                d.loc(None, &format!("backends[{i}].name")),
                ImportErrorKind::Invalid(format!("backend `{}` is declared twice", b.name)),
            ),
            None => {
                out.backend_index
                    .insert(b.name.clone(), out.config.backends.len());
                out.config.backends.push(b.clone());
            }
        }
    }
    for (i, r) in cfg.routes.into_iter().enumerate() {
        let at = d.loc(None, &format!("routes[{i}]"));
        let rules = (0..r.rules.len())
            .map(|j| d.loc(None, &format!("routes[{i}].rules[{j}]")))
            .collect();
        out.route(r, RouteOrigin { at, rules });
    }
    out.config.tcp_services.extend(cfg.tcp_services);
    if let Some(s) = cfg.maglev_table_size {
        out.maglev_table_size(s, d.loc(None, "maglev_table_size"));
    }
    if cfg.panic_threshold.is_some() {
        out.config.panic_threshold = cfg.panic_threshold;
    }
    if let Some(od) = cfg.outlier_detection {
        out.outlier_detection(od, d.loc(None, "outlier_detection"));
    }
}

#[cfg(test)]
mod tests;
