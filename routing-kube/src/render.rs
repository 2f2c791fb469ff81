//! Watched objects → manifest text → the importers → a native [`Config`], with
//! EndpointSlice endpoints as each backend's endpoint pool.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use routing_core::import::{import, ImportOptions, ImportWarning, RouteOrigin, Source};
use routing_core::Config;
use routing_core::{BackendConfig, EndpointConfig, EndpointState};
use serde_json::{json, Value};

/// Why a set of objects could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The importers refused the set (every error, with its object and field path).
    #[error("{0}")]
    Import(#[from] routing_core::import::ImportErrors),
    /// EndpointSlices could not be read (a bad address, an ambiguous port).
    #[error("endpoints: {0}")]
    Endpoints(String),
}

/// A rendered set: the native configuration and its fingerprint.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// What `Router::update` gets.
    pub config: Config,
    /// FNV-1a 64 of the configuration's JSON: equal on every replica that watched
    /// the same objects.
    pub fingerprint: u64,
    /// The importers' warnings (each names its object as `Kind namespace/name` in
    /// `at.source`).
    pub warnings: Vec<ImportWarning>,
    /// Where each route of `config.routes` came from (same order), so an error
    /// `Router::update` reports at `routes[N]…` can be traced to its object.
    pub origins: Vec<RouteOrigin>,
}

/// The name an object's manifest gets in import messages: `Kind namespace/name`.
pub(crate) fn source_name(o: &DynamicObject) -> String {
    let kind = o.types.as_ref().map_or("?", |t| t.kind.as_str());
    format!(
        "{kind} {}/{}",
        o.metadata.namespace.as_deref().unwrap_or(""),
        o.metadata.name.as_deref().unwrap_or("")
    )
}

/// The manifest the importers read: apiVersion, kind, the metadata they use, spec.
fn manifest(o: &DynamicObject) -> String {
    let t = o.types.clone().unwrap_or_default();
    let m = &o.metadata;
    json!({
        "apiVersion": t.api_version,
        "kind": t.kind,
        "metadata": {
            "name": m.name, "namespace": m.namespace, "labels": m.labels,
            "creationTimestamp": m.creation_timestamp,
        },
        "spec": o.data.get("spec").cloned().unwrap_or(Value::Null),
    })
    .to_string()
}

/// Renders routing objects (any mix of the watched kinds) and EndpointSlices.
/// No routing object at all renders the empty configuration.
///
/// # Errors
/// [`RenderError`] when the importers refuse the set or endpoint weights overflow.
pub fn render(
    objects: &[DynamicObject],
    slices: &[EndpointSlice],
    options: &ImportOptions,
) -> Result<Rendered, RenderError> {
    let mut sorted: Vec<&DynamicObject> = objects.iter().collect();
    sorted.sort_by_key(|o| source_name(o));
    let texts: Vec<(String, String)> = sorted
        .iter()
        .map(|o| (source_name(o), manifest(o)))
        .collect();
    let (mut config, warnings, origins) = if texts.is_empty() {
        (Config::default(), Vec::new(), Vec::new())
    } else {
        let sources: Vec<Source<'_>> = texts.iter().map(|(n, t)| Source::new(n, t)).collect();
        let imported = import(&sources, options)?;
        (imported.config, imported.warnings, imported.origins)
    };
    if options.backends.is_none() {
        expand_endpoints(&mut config, slices).map_err(RenderError::Endpoints)?;
    }
    let fingerprint = fnv(&serde_json::to_vec(&config).unwrap_or_default());
    Ok(Rendered {
        config,
        fingerprint,
        warnings,
        origins,
    })
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `(namespace, service, port)` a derived backend name stands for, or `None` (an
/// Istio subset, which EndpointSlices cannot resolve).
fn service_of(backend: &str, route_ns: &str) -> Option<(String, String, Option<u16>)> {
    let (ns, rest) = match backend.split_once('/') {
        Some((a, _)) if a.contains('.') => return None,
        Some((a, b)) => (a.to_owned(), b),
        None => (route_ns.to_owned(), backend),
    };
    if rest.contains('.') {
        let mut parts = rest.split('.');
        let svc = parts.next()?.to_owned();
        let ns = parts.next().map_or(ns, str::to_owned);
        return Some((ns, svc, None));
    }
    match rest.rsplit_once(':') {
        Some((svc, port)) => Some((ns, svc.to_owned(), port.parse().ok())),
        None => Some((ns, rest.to_owned(), None)),
    }
}

fn endpoints_of(
    slices: &[EndpointSlice],
    ns: &str,
    svc: &str,
    port: Option<u16>,
) -> Result<Option<Vec<EndpointConfig>>, String> {
    let mut out = Vec::new();
    let mut found = false;
    for s in slices {
        let m = &s.metadata;
        let owner = m
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"));
        if m.namespace.as_deref() != Some(ns) || owner.map(String::as_str) != Some(svc) {
            continue;
        }
        found = true;
        let ports: Vec<i32> = s.ports.iter().flatten().filter_map(|p| p.port).collect();
        let target = match (port, ports.as_slice()) {
            (Some(p), ps) if ps.contains(&i32::from(p)) => p,
            (_, [only]) => u16::try_from(*only).map_err(|_| format!("port {only}"))?,
            (Some(p), _) => p,
            (None, _) => {
                return Err(format!(
                    "EndpointSlice {ns}/{}: service `{svc}` has several ports and the reference names none",
                    m.name.as_deref().unwrap_or("")
                ))
            }
        };
        for e in &s.endpoints {
            let c = e.conditions.clone().unwrap_or_default();
            let terminating = c.terminating.unwrap_or(false);
            // Kubernetes: a nil `ready` or `serving` means true.
            let state = if c.ready.unwrap_or(true) && !terminating {
                EndpointState::Ready
            } else if terminating && c.serving.unwrap_or(c.ready.unwrap_or(false)) {
                // Terminating but still serving: no new requests while a pod of the
                // version is ready (kube-proxy's terminating fallback otherwise).
                EndpointState::Serving
            } else if terminating {
                EndpointState::Draining
            } else {
                // Not ready and not terminating (starting, failing readiness): out.
                continue;
            };
            for a in &e.addresses {
                let ip: IpAddr = a.parse().map_err(|_| format!("endpoint address `{a}`"))?;
                let mut ep = EndpointConfig::new(SocketAddr::new(ip, target));
                ep.state = state;
                ep.zone.clone_from(&e.zone);
                out.push(ep);
            }
        }
    }
    out.sort_by_key(|e| e.address);
    out.dedup_by_key(|e| e.address);
    Ok(found.then_some(out))
}

/// Gives every backend whose Service has EndpointSlices its endpoint pool
/// (`endpoints`: ready, serving-while-terminating, draining), so a rule's weighted or
/// sticky choice picks the version and the pool picks the pod. Rule weights are
/// left as the route says. A Service whose slices list no endpoint keeps its rule
/// entries at weight 0 (nothing to send to).
fn expand_endpoints(config: &mut Config, slices: &[EndpointSlice]) -> Result<(), String> {
    let mut declared: BTreeMap<String, BackendConfig> = config
        .backends
        .iter()
        .map(|b| (b.name.clone(), b.clone()))
        .collect();
    for route in &mut config.routes {
        let route_ns = route
            .name
            .split_once('/')
            .map_or("default", |(ns, _)| ns)
            .to_owned();
        for rule in &mut route.rules {
            for b in &mut rule.backends {
                let eps = match service_of(&b.name, &route_ns) {
                    Some((ns, svc, port)) => endpoints_of(slices, &ns, &svc, port)?,
                    None => None,
                };
                let Some(eps) = eps else { continue };
                if eps.is_empty() {
                    b.weight = 0;
                    continue;
                }
                let d = declared
                    .entry(b.name.clone())
                    .or_insert_with(|| BackendConfig::new(b.name.clone()));
                d.address = None;
                d.endpoints = eps;
            }
        }
    }
    config.backends = declared.into_values().collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_map_to_services() {
        assert_eq!(
            service_of("shop-v1:8080", "web"),
            Some(("web".into(), "shop-v1".into(), Some(8080)))
        );
        assert_eq!(
            service_of("other/shop:80", "web"),
            Some(("other".into(), "shop".into(), Some(80)))
        );
        assert_eq!(
            service_of("reviews.prod.svc.cluster.local", "x"),
            Some(("prod".into(), "reviews".into(), None))
        );
        assert_eq!(service_of("reviews.prod.svc.cluster.local/v1", "x"), None);
    }
}
