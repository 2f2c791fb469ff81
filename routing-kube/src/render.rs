//! Watched objects → manifest text → the importers → a native [`Config`], with
//! EndpointSlice endpoints expanded into addressed backends.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use routing_core::import::{import, ImportOptions, ImportWarning, RouteOrigin, Source};
use routing_core::Config;
use routing_core::{BackendConfig, WeightedBackendConfig};
use serde_json::{json, Value};

/// Why a set of objects could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The importers refused the set (every error, with its object and field path).
    #[error("{0}")]
    Import(#[from] routing_core::import::ImportErrors),
    /// Endpoint expansion failed (e.g. a weight past 1 000 000 after scaling).
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

/// One endpoint: where, and whether it takes new requests (ready and not
/// terminating) or drains (terminating, still serving).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Endpoint {
    addr: SocketAddr,
    takes_new: bool,
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
) -> Result<Option<Vec<Endpoint>>, String> {
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
            let takes_new = c.ready.unwrap_or(true) && !terminating;
            let drains = terminating && c.serving.unwrap_or(false);
            if !takes_new && !drains {
                continue;
            }
            for a in &e.addresses {
                let ip: IpAddr = a.parse().map_err(|_| format!("endpoint address `{a}`"))?;
                out.push(Endpoint {
                    addr: SocketAddr::new(ip, target),
                    takes_new,
                });
            }
        }
    }
    out.sort_by_key(|e| e.addr);
    out.dedup_by_key(|e| e.addr);
    Ok(found.then_some(out))
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Replaces every rule backend whose Service has EndpointSlices by one backend per
/// endpoint (`{backend}@{ip}:{port}`, addressed): the backend's weight is split
/// evenly over the endpoints that take new requests; draining (terminating)
/// endpoints keep weight 0, so they take no new requests.
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
            let mut expanded: Vec<(WeightedBackendConfig, Option<Vec<Endpoint>>)> = Vec::new();
            for b in &rule.backends {
                let eps = match service_of(&b.name, &route_ns) {
                    Some((ns, svc, port)) => endpoints_of(slices, &ns, &svc, port)?,
                    None => None,
                };
                expanded.push((b.clone(), eps));
            }
            if expanded.iter().all(|(_, e)| e.is_none()) {
                continue;
            }
            let counts = expanded
                .iter()
                .filter_map(|(_, e)| e.as_ref())
                .map(|e| e.iter().filter(|x| x.takes_new).count() as u64);
            let lcm = counts
                .filter(|n| *n > 0)
                .try_fold(1u64, |l, n| l.checked_mul(n / gcd(l, n)))
                .ok_or("endpoint counts overflow")?;
            let mut out = Vec::new();
            for (b, eps) in expanded {
                let Some(eps) = eps else {
                    out.push(WeightedBackendConfig {
                        weight: b.weight.saturating_mul(lcm),
                        ..b
                    });
                    continue;
                };
                let n = eps.iter().filter(|e| e.takes_new).count() as u64;
                if eps.is_empty() {
                    out.push(WeightedBackendConfig { weight: 0, ..b });
                    continue;
                }
                let base = declared.get(&b.name).cloned();
                for e in eps {
                    let name = format!("{}@{}", b.name, e.addr);
                    let weight = if e.takes_new {
                        b.weight.saturating_mul(lcm / n)
                    } else {
                        0
                    };
                    declared
                        .entry(name.clone())
                        .or_insert_with(|| BackendConfig {
                            name: name.clone(),
                            address: Some(e.addr),
                            connection_pool: base.as_ref().and_then(|b| b.connection_pool),
                            protocol: base.as_ref().and_then(|b| b.protocol),
                        });
                    // Each endpoint carries the backend's own filters.
                    out.push(WeightedBackendConfig {
                        name,
                        weight,
                        filters: b.filters.clone(),
                    });
                }
            }
            let g = out.iter().map(|b| b.weight).fold(0, gcd).max(1);
            for b in &mut out {
                b.weight /= g;
                if b.weight > 1_000_000 {
                    return Err(format!(
                        "route `{}`: backend `{}` weight {} exceeds 1000000 after splitting over endpoints",
                        route.name, b.name, b.weight
                    ));
                }
            }
            rule.backends = out;
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
