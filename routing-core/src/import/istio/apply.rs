//! How resources combine: `kubectl apply` semantics for same-named resources,
//! several `VirtualService`s for one host, and the names a Kubernetes service host
//! is reached by.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::{fqdn, Doc, Out, CLUSTER_DOMAIN};

/// The names a Kubernetes service host is reached by, as Istio's sidecar routes
/// serve them: a short name `reviews` written in namespace `ns` (or its full
/// `reviews.ns.svc.cluster.local`) covers `reviews`, `reviews.ns`, `reviews.ns.svc`
/// and `reviews.ns.svc.cluster.local` (each with any port: host matching ignores
/// it). Other hosts stand for themselves.
pub(super) fn host_alternates(host: &str, ns: &str) -> Vec<String> {
    let h = host.to_ascii_lowercase();
    let (name, svc_ns) = if !h.contains('.') && !h.contains('*') {
        (h.clone(), ns.to_owned())
    } else if let Some(rest) = h.strip_suffix(&format!(".{CLUSTER_DOMAIN}")) {
        match rest.split_once('.') {
            Some((name, n)) if !n.contains('.') && !name.contains('*') => {
                (name.to_owned(), n.to_owned())
            }
            _ => return vec![host.to_owned()],
        }
    } else {
        return vec![host.to_owned()];
    };
    vec![
        name.clone(),
        format!("{name}.{svc_ns}"),
        format!("{name}.{svc_ns}.svc"),
        format!("{name}.{svc_ns}.{CLUSTER_DOMAIN}"),
    ]
}

/// The resources as `kubectl apply` of the inputs in order leaves them: of several
/// with the same kind, namespace and name, the last replaces the others (each
/// replaced one is warned about, pointing at its replacement).
pub(super) fn applied<'x, 'a>(
    docs: &[&'x Doc<'a>],
    kind: &str,
    out: &mut Out<'_>,
) -> Vec<&'x Doc<'a>> {
    let key = |d: &Doc<'_>, out: &Out<'_>| (d.namespace(out).to_owned(), d.name().to_owned());
    let mut last: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, d) in docs.iter().enumerate() {
        last.insert(key(d, out), i);
    }
    let mut kept = Vec::with_capacity(last.len());
    for (i, d) in docs.iter().enumerate() {
        let k = key(d, out);
        let winner = last.get(&k).copied().unwrap_or(i);
        if winner == i {
            kept.push(*d);
            continue;
        }
        let resource = format!("{kind} {}/{}", k.0, k.1);
        let later = docs[winner].loc(Some(&resource), "metadata.name");
        out.warn(
            d.loc(Some(&resource), "metadata.name"),
            format!(
                "replaced by the {kind} of the same namespace and name at {}{} (the later wins, as `kubectl apply` of the files in order leaves it)",
                later.source,
                later.line.map_or(String::new(), |l| format!(":{l}"))
            ),
        );
    }
    kept
}

/// Warns when several `VirtualService`s write the same host: Istio merges them for
/// sidecars (their rules in creation order, which files cannot carry), and this
/// import tries them in input order.
pub(super) fn merged_hosts(vs: &[&Doc<'_>], out: &mut Out<'_>) {
    let mut by_host: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for (i, d) in vs.iter().enumerate() {
        let ns = d.namespace(out).to_owned();
        let hosts = d
            .value
            .get("spec")
            .and_then(|s| s.get("hosts"))
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        for h in hosts {
            let name = format!("{ns}/{}", d.name());
            let list = by_host.entry(fqdn(h, &ns)).or_default();
            if !list.iter().any(|(_, n)| *n == name) {
                list.push((i, name));
            }
        }
    }
    for (host, list) in by_host {
        let Some(((_, first), rest)) = list.split_first() else {
            continue;
        };
        for (i, name) in rest {
            out.warn(
                vs[*i].loc(Some(&format!("VirtualService {name}")), "spec.hosts"),
                format!(
                    "host `{host}` is also written by VirtualService {first}: their rules are tried in input order \
                     ({first} first); Istio merges them in creation order, which the files do not carry"
                ),
            );
        }
    }
}
