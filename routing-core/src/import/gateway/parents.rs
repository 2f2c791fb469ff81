//! The resources around `HTTPRoute`s: `Gateway` listeners the routes attach to
//! (`parentRefs`), `Service` parents (GAMMA), `ReferenceGrant`s that allow
//! cross-namespace `backendRefs`, and the `Service`s and `Namespace`s the input
//! carries.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::{Doc, Location, Out, ParentRef};

/// The Gateway API group.
const GROUP: &str = "gateway.networking.k8s.io";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GatewayDoc {
    spec: GatewaySpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GatewaySpec {
    #[serde(default)]
    listeners: Vec<ListenerDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListenerDoc {
    name: String,
    #[serde(default)]
    hostname: Option<String>,
    port: i64,
    protocol: String,
    #[serde(default)]
    #[allow(dead_code)]
    tls: Option<IgnoredAny>,
    #[serde(default)]
    allowed_routes: Option<AllowedRoutes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowedRoutes {
    #[serde(default)]
    namespaces: Option<RouteNamespaces>,
    #[serde(default)]
    kinds: Option<Vec<RouteGroupKind>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteNamespaces {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    selector: Option<Selector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Selector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteGroupKind {
    #[serde(default)]
    group: Option<String>,
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantDoc {
    #[allow(dead_code)]
    #[serde(rename = "apiVersion")]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    metadata: IgnoredAny,
    spec: GrantSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantSpec {
    from: Vec<GrantFrom>,
    to: Vec<GrantTo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFrom {
    group: String,
    kind: String,
    namespace: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantTo {
    group: String,
    kind: String,
    #[serde(default)]
    name: Option<String>,
}

/// Which namespaces may attach routes to a listener.
enum From {
    Same,
    All,
    /// Namespaces carrying all these labels.
    Labels(BTreeMap<String, String>),
}

struct Listener {
    name: String,
    hostname: Option<String>,
    port: u16,
    from: From,
    /// The allowed route kinds (`None`: the default for HTTP listeners, which
    /// admits `HTTPRoute` and `GRPCRoute`).
    kinds: Option<Vec<String>>,
    /// `HTTP` or `HTTPS`.
    http: bool,
}

/// Everything read from the documents around the routes.
pub(super) struct Parents {
    /// `namespace/name` → listeners.
    gateways: BTreeMap<String, Vec<Listener>>,
    /// `namespace/name[/section]` the router stands for (empty: every Gateway).
    selection: Vec<(String, Option<String>)>,
    /// Labels of the `Namespace`s in the input.
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// `namespace/name` of the `Service`s, when the input carries any.
    services: Option<HashSet<String>>,
    /// (grant namespace, from namespace, from kind, to Service name or every one).
    grants: Vec<(String, String, String, Option<String>)>,
    /// `namespace/name` of a `Service` → its ports: (number, `appProtocol`).
    service_ports: HashMap<String, Vec<(i64, Option<String>)>>,
    /// Listener ports and Gateways routes attached to (checked at the end).
    pub(super) ports: BTreeSet<u16>,
    pub(super) attached_gateways: BTreeSet<String>,
    /// Where the first route attached (for the end-of-import check).
    pub(super) first_attached: Option<Location>,
}

/// What a route's `parentRefs` make of it.
pub(super) enum Attach {
    /// Serve these hostnames (empty: every host).
    Hosts(Vec<String>),
    /// Left out: no listener of a Gateway this router stands for accepts it.
    LeftOut(String),
}

impl Parents {
    /// Reads the `Gateway`, `ReferenceGrant`, `Service` and `Namespace` documents.
    pub(super) fn read(docs: &[&Doc<'_>], out: &mut Out<'_>) -> Self {
        let mut p = Parents {
            gateways: BTreeMap::new(),
            selection: Vec::new(),
            namespaces: HashMap::new(),
            services: None,
            grants: Vec::new(),
            service_ports: HashMap::new(),
            ports: BTreeSet::new(),
            attached_gateways: BTreeSet::new(),
            first_attached: None,
        };
        for g in &out.options.gateways {
            if g == "mesh" {
                continue;
            }
            let mut parts = g.splitn(3, '/');
            let (a, b, c) = (parts.next(), parts.next(), parts.next());
            let (key, section) = match (a, b, c) {
                (Some(n), None, _) => (format!("{}/{n}", out.options.default_namespace), None),
                (Some(ns), Some(n), s) => (format!("{ns}/{n}"), s.map(str::to_owned)),
                _ => continue,
            };
            p.selection.push((key, section));
        }
        for d in docs {
            let kind = d.value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            let ns = d.namespace(out).to_owned();
            let name = d.name().to_owned();
            match kind {
                "Namespace" => {
                    let labels: BTreeMap<String, String> = d
                        .value
                        .get("metadata")
                        .and_then(|m| m.get("labels"))
                        .and_then(|l| serde_yaml_ng::from_value(l.clone()).ok())
                        .unwrap_or_default();
                    p.namespaces.insert(name, labels);
                }
                "Service" => {
                    let ports = d
                        .value
                        .get("spec")
                        .and_then(|s| s.get("ports"))
                        .and_then(|p| p.as_sequence())
                        .map(|list| {
                            list.iter()
                                .filter_map(|port| {
                                    let n = port.get("port")?.as_i64()?;
                                    let app = port
                                        .get("appProtocol")
                                        .and_then(|a| a.as_str())
                                        .map(str::to_owned);
                                    Some((n, app))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    p.service_ports.insert(format!("{ns}/{name}"), ports);
                    p.services
                        .get_or_insert_with(HashSet::new)
                        .insert(format!("{ns}/{name}"));
                }
                "ReferenceGrant" => {
                    let resource = format!("ReferenceGrant {ns}/{name}");
                    match d.parse::<GrantDoc>(Some(&resource)) {
                        Ok(g) => {
                            for f in &g.spec.from {
                                if f.group != GROUP
                                    || !matches!(f.kind.as_str(), "HTTPRoute" | "GRPCRoute")
                                {
                                    continue;
                                }
                                for t in &g.spec.to {
                                    if matches!(t.group.as_str(), "" | "core")
                                        && t.kind == "Service"
                                    {
                                        p.grants.push((
                                            ns.clone(),
                                            f.namespace.clone(),
                                            f.kind.clone(),
                                            t.name.clone(),
                                        ));
                                    }
                                }
                            }
                        }
                        Err(e) => out.push_error(e),
                    }
                }
                "Gateway" => {
                    let resource = format!("Gateway {ns}/{name}");
                    let g = match d.parse::<GatewayDoc>(Some(&resource)) {
                        Ok(g) => g,
                        Err(e) => {
                            out.push_error(e);
                            continue;
                        }
                    };
                    let mut listeners = Vec::new();
                    for (i, l) in g.spec.listeners.into_iter().enumerate() {
                        let lp = format!("spec.listeners[{i}]");
                        let at = |path: &str| d.loc(Some(&resource), &format!("{lp}{path}"));
                        let Ok(port) = u16::try_from(l.port) else {
                            out.error(
                                at(".port"),
                                super::ImportErrorKind::Invalid(format!(
                                    "port {} is out of range 1 ..= 65535",
                                    l.port
                                )),
                            );
                            continue;
                        };
                        let (from, selector) = match l
                            .allowed_routes
                            .as_ref()
                            .and_then(|a| a.namespaces.as_ref())
                        {
                            None => (None, None),
                            Some(n) => (n.from.as_deref(), n.selector.as_ref()),
                        };
                        let from = match from.unwrap_or("Same") {
                            "Same" => From::Same,
                            "All" => From::All,
                            "Selector" => {
                                let Some(sel) = selector else {
                                    out.error(
                                        at(".allowedRoutes.namespaces.selector"),
                                        super::ImportErrorKind::Invalid(
                                            "`from: Selector` needs a selector".into(),
                                        ),
                                    );
                                    continue;
                                };
                                if !sel.match_expressions.is_empty() {
                                    out.error(
                                        at(".allowedRoutes.namespaces.selector.matchExpressions"),
                                        super::ImportErrorKind::Unsupported(
                                            "namespace selector `matchExpressions`: only `matchLabels` is read".into(),
                                        ),
                                    );
                                    continue;
                                }
                                From::Labels(sel.match_labels.clone())
                            }
                            other => {
                                out.error(
                                    at(".allowedRoutes.namespaces.from"),
                                    super::ImportErrorKind::Invalid(format!(
                                        "`{other}` is not `Same`, `All` or `Selector`"
                                    )),
                                );
                                continue;
                            }
                        };
                        let kinds = l
                            .allowed_routes
                            .as_ref()
                            .and_then(|a| a.kinds.as_ref())
                            .map(|kinds| {
                                kinds
                                    .iter()
                                    .filter(|k| k.group.as_deref().is_none_or(|g| g == GROUP))
                                    .map(|k| k.kind.clone())
                                    .collect()
                            });
                        listeners.push(Listener {
                            name: l.name,
                            hostname: l.hostname,
                            port,
                            from,
                            kinds,
                            http: matches!(l.protocol.as_str(), "HTTP" | "HTTPS"),
                        });
                    }
                    p.gateways.insert(format!("{ns}/{name}"), listeners);
                }
                _ => {}
            }
        }
        p
    }

    /// Whether the input carries Gateways (then `parentRefs` decide attachment).
    pub(super) fn has_gateways(&self) -> bool {
        !self.gateways.is_empty()
    }

    fn selected(&self, gw: &str, listener: &str) -> bool {
        self.selection.is_empty()
            || self
                .selection
                .iter()
                .any(|(k, s)| k == gw && s.as_deref().is_none_or(|s| s == listener))
    }

    /// Whether the router stands for Gateway `gw` (`namespace/name`) at all.
    pub(super) fn selects_name(&self, gw: &str) -> bool {
        self.selection.is_empty() || self.selection.iter().any(|(k, _)| k == gw)
    }

    /// Whether a `backendRef` from a route of `kind` (`HTTPRoute`, `GRPCRoute`) in
    /// `from_ns` to Service `name` in `to_ns` is allowed (same namespace, or a
    /// `ReferenceGrant` in `to_ns` from that kind).
    pub(super) fn granted(&self, kind: &str, from_ns: &str, to_ns: &str, name: &str) -> bool {
        from_ns == to_ns
            || self.grants.iter().any(|(g_ns, f_ns, f_kind, to)| {
                g_ns == to_ns
                    && f_ns == from_ns
                    && f_kind == kind
                    && to.as_deref().is_none_or(|t| t == name)
            })
    }

    /// The `appProtocol` of port `port` of Service `ns/name`, if the input has it.
    pub(super) fn app_protocol(&self, ns: &str, name: &str, port: u16) -> Option<&str> {
        self.service_ports
            .get(&format!("{ns}/{name}"))?
            .iter()
            .find(|(n, _)| *n == i64::from(port))
            .and_then(|(_, a)| a.as_deref())
    }

    /// Whether Service `ns/name` is missing from an input that describes the
    /// cluster: it carries Gateways and Services, and not this one.
    pub(super) fn missing_service(&self, ns: &str, name: &str) -> bool {
        self.has_gateways()
            && self
                .services
                .as_ref()
                .is_some_and(|s| !s.contains(&format!("{ns}/{name}")))
    }

    /// The hostnames a route in `ns` with `hostnames` serves through `parents`.
    pub(super) fn attach(
        &mut self,
        route_kind: &str,
        ns: &str,
        parents: &[ParentRef],
        hostnames: &[String],
    ) -> Attach {
        let mut hosts: Vec<String> = Vec::new();
        let mut every = false;
        let mut attached = false;
        let mut why: Vec<String> = Vec::new();
        for pr in parents {
            let group = pr.group.as_deref().unwrap_or(GROUP);
            let kind = pr.kind.as_deref().unwrap_or("Gateway");
            let pns = pr.namespace.as_deref().unwrap_or(ns);
            if kind == "Service" && matches!(group, "" | "core") {
                // GAMMA: the route binds to the Service's own hosts.
                let n = &pr.name;
                for h in [
                    n.clone(),
                    format!("{n}.{pns}"),
                    format!("{n}.{pns}.svc"),
                    format!("{n}.{pns}.svc.cluster.local"),
                ] {
                    if !hosts.contains(&h) {
                        hosts.push(h);
                    }
                }
                attached = true;
                continue;
            }
            if kind != "Gateway" || group != GROUP {
                why.push(format!(
                    "parent kind `{kind}` (group `{group}`) is not a Gateway or Service"
                ));
                continue;
            }
            let key = format!("{pns}/{}", pr.name);
            let Some(listeners) = self.gateways.get(&key) else {
                why.push(format!("Gateway `{key}` is not in the input"));
                continue;
            };
            if !self.selects_name(&key) {
                why.push(format!("Gateway `{key}` is not one this router stands for"));
                continue;
            }
            let mut hit = false;
            for l in listeners {
                if pr.section_name.as_deref().is_some_and(|s| s != l.name)
                    || pr.port.is_some_and(|p| p != i64::from(l.port))
                    || !self.selected(&key, &l.name)
                    || !l.http
                    || !l
                        .kinds
                        .as_ref()
                        .is_none_or(|k| k.iter().any(|k| k == route_kind))
                {
                    continue;
                }
                let allowed = match &l.from {
                    From::Same => pns == ns,
                    From::All => true,
                    From::Labels(want) => self
                        .namespaces
                        .get(ns)
                        .is_some_and(|have| want.iter().all(|(k, v)| have.get(k) == Some(v))),
                };
                if !allowed {
                    continue;
                }
                let before = (hosts.len(), every);
                match (&l.hostname, hostnames.is_empty()) {
                    (None, true) => every = true,
                    (None, false) => hosts.extend(hostnames.iter().cloned()),
                    (Some(lh), true) => hosts.push(lh.clone()),
                    (Some(lh), false) => {
                        hosts.extend(hostnames.iter().filter_map(|rh| intersect(lh, rh)));
                    }
                }
                if (hosts.len(), every) != before {
                    hit = true;
                    self.ports.insert(l.port);
                }
            }
            if hit {
                attached = true;
                self.attached_gateways.insert(key);
            } else {
                let mut msg = format!("no listener of Gateway `{key}`");
                if let Some(s) = &pr.section_name {
                    msg.push_str(&format!(" named `{s}`"));
                }
                if let Some(p) = pr.port {
                    msg.push_str(&format!(" on port {p}"));
                }
                msg.push_str(" accepts the route (protocol, allowedRoutes, hostname intersection)");
                why.push(msg);
            }
        }
        if !attached {
            if parents.is_empty() {
                why.push("no parentRefs".to_owned());
            }
            return Attach::LeftOut(why.join("; "));
        }
        if every {
            return Attach::Hosts(Vec::new());
        }
        let mut seen = HashSet::new();
        hosts.retain(|h| seen.insert(h.clone()));
        Attach::Hosts(hosts)
    }
}

/// The intersection of a listener hostname and a route hostname (the spec's rules:
/// an exact name must match; a `*.` wildcard matches names with that suffix; of two
/// wildcards, the narrower one).
fn intersect(listener: &str, route: &str) -> Option<String> {
    let covers = |wild: &str, name: &str| {
        wild.strip_prefix('*')
            .is_some_and(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
    };
    if listener == route {
        return Some(route.to_owned());
    }
    match (listener.starts_with("*."), route.starts_with("*.")) {
        (false, false) => None,
        (true, false) => covers(listener, route).then(|| route.to_owned()),
        (false, true) => covers(route, listener).then(|| listener.to_owned()),
        (true, true) => {
            if covers(listener, route) {
                Some(route.to_owned())
            } else if covers(route, listener) {
                Some(listener.to_owned())
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::intersect;

    #[test]
    fn hostname_intersection() {
        assert_eq!(
            intersect("a.example.com", "a.example.com").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(intersect("a.example.com", "b.example.com"), None);
        assert_eq!(
            intersect("*.example.com", "a.b.example.com").as_deref(),
            Some("a.b.example.com")
        );
        assert_eq!(intersect("*.example.com", "example.com"), None);
        assert_eq!(
            intersect("a.example.com", "*.example.com").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "*.a.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(
            intersect("*.a.example.com", "*.example.com").as_deref(),
            Some("*.a.example.com")
        );
        assert_eq!(intersect("*.example.com", "*.example.net"), None);
    }
}
