//! Gateway API route status: the `Accepted` and `ResolvedRefs` conditions this
//! controller reports under `status.parents`, written by the elected replica only.
//!
//! `status.parents` is an atomic list shared by every controller that serves one
//! of the route's parents, so the entry is written the way the API server expects
//! of several writers: read the object, keep the entries of other controllers,
//! replace this controller's, and replace `/status` with the `resourceVersion` that
//! was read; a `409 Conflict` (someone wrote in between) reads again. Nothing is
//! written when the conditions are already the ones reported, so the watch event a
//! write causes does not cause another write.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::Client;
use routing_core::import::ImportWarning;
use serde_json::{json, Value};

use crate::render::source_name;

/// Gateway API route kinds whose status has `parents` (others are skipped).
pub(crate) fn is_gateway_route(o: &DynamicObject) -> bool {
    o.types.as_ref().is_some_and(|t| {
        t.api_version.starts_with("gateway.networking.k8s.io/")
            && matches!(t.kind.as_str(), "HTTPRoute" | "GRPCRoute")
    })
}

/// What this controller says of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// `Accepted`: `Ok` (True, reason `Accepted`) or the reason and message it is not.
    pub(crate) accepted: Result<(), (String, String)>,
    /// `ResolvedRefs`: `Ok` (True) or the spec's reason and the message.
    pub(crate) resolved: Result<(), (String, String)>,
}

impl Verdict {
    /// The verdict on a route of an applied set: accepted, its references resolved
    /// unless an import warning about this route names a `ResolvedRefs` reason.
    pub(crate) fn applied(route: &DynamicObject, warnings: &[ImportWarning]) -> Self {
        let me = source_name(route);
        let resolved = warnings
            .iter()
            .find(|w| w.at.source == me && w.reason.is_some())
            .map_or(Ok(()), |w| {
                Err((
                    w.reason.unwrap_or("BackendNotFound").to_owned(),
                    format!("{}: {}", w.at.path, w.message),
                ))
            });
        Self {
            accepted: Ok(()),
            resolved,
        }
    }

    /// The verdict on a route the import refused (the old table stays live).
    pub(crate) fn refused(message: &str) -> Self {
        Self {
            accepted: Err(("UnsupportedValue".to_owned(), message.to_owned())),
            resolved: Ok(()),
        }
    }
}

/// One `metav1.Condition`; `lastTransitionTime` kept from `old` when the status
/// did not change.
fn condition(
    kind: &str,
    verdict: &Result<(), (String, String)>,
    ok_reason: &str,
    generation: Option<i64>,
    old: Option<&Value>,
    now: &str,
) -> Value {
    let (status, reason, message) = match verdict {
        Ok(()) => ("True", ok_reason, String::new()),
        Err((reason, message)) => ("False", reason.as_str(), message.clone()),
    };
    // metav1.Condition's limit.
    let message: String = message.chars().take(32_768).collect();
    let since = old
        .filter(|o| o["status"] == status)
        .and_then(|o| o["lastTransitionTime"].as_str())
        .unwrap_or(now);
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    })
}

/// The parentRefs this controller answers for: all of them, or those naming one of
/// `gateways` (`namespace/name` or `namespace/name/section`) when it is not empty.
fn our_parents<'a>(route: &'a Value, ns: &str, gateways: &[String]) -> Vec<&'a Value> {
    let refs = route["spec"]["parentRefs"].as_array();
    refs.into_iter()
        .flatten()
        .filter(|p| {
            if gateways.is_empty() {
                return true;
            }
            let pns = p["namespace"].as_str().unwrap_or(ns);
            let name = p["name"].as_str().unwrap_or("");
            let gw = format!("{pns}/{name}");
            gateways.iter().any(|g| match p["sectionName"].as_str() {
                Some(s) => *g == gw || *g == format!("{gw}/{s}"),
                None => *g == gw || g.starts_with(&format!("{gw}/")),
            })
        })
        .collect()
}

/// The `status.parents` list with this controller's entries set to `verdict`, or
/// `None` when they already say so.
fn parents(
    object: &Value,
    controller: &str,
    gateways: &[String],
    verdict: &Verdict,
    now: &str,
) -> Option<Value> {
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let generation = object["metadata"]["generation"].as_i64();
    let old: Vec<Value> = object["status"]["parents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let (mine, mut others): (Vec<Value>, Vec<Value>) = old
        .into_iter()
        .partition(|p| p["controllerName"] == controller);
    let new: Vec<Value> = our_parents(object, ns, gateways)
        .into_iter()
        .map(|parent| {
            let before = mine.iter().find(|m| &m["parentRef"] == parent);
            let cond = |kind: &str| {
                before
                    .and_then(|b| b["conditions"].as_array())
                    .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            };
            json!({
                "parentRef": parent,
                "controllerName": controller,
                "conditions": [
                    condition("Accepted", &verdict.accepted, "Accepted", generation, cond("Accepted"), now),
                    condition("ResolvedRefs", &verdict.resolved, "ResolvedRefs", generation, cond("ResolvedRefs"), now),
                ],
            })
        })
        .collect();
    if new == mine {
        return None;
    }
    others.extend(new);
    // The CRD allows 32 parents.
    others.truncate(32);
    Some(Value::Array(others))
}

/// Writes this controller's conditions on `route`; `Ok(true)` when a write was
/// made, `Ok(false)` when the status already said so (or the route is gone).
///
/// # Errors
/// The API's error, after three conflicts in a row or on any other failure.
pub(crate) async fn write(
    client: &Client,
    route: &DynamicObject,
    controller: &str,
    gateways: &[String],
    verdict: &Verdict,
) -> Result<bool, kube::Error> {
    let Some(types) = &route.types else {
        return Ok(false);
    };
    let (group, version) = types
        .api_version
        .split_once('/')
        .unwrap_or(("", types.api_version.as_str()));
    let plural = format!("{}s", types.kind.to_ascii_lowercase());
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, &types.kind),
        &plural,
    );
    let ns = route.metadata.namespace.as_deref().unwrap_or("default");
    let Some(name) = route.metadata.name.as_deref() else {
        return Ok(false);
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    for attempt in 0..3 {
        let Some(current) = api.get_opt(name).await? else {
            return Ok(false);
        };
        let value = serde_json::to_value(&current).map_err(kube::Error::SerdeError)?;
        // Conditions carry RFC 3339 times in whole seconds.
        let now = Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let Some(list) = parents(&value, controller, gateways, verdict, &now.to_string()) else {
            return Ok(false);
        };
        let mut updated = value;
        updated["status"]["parents"] = list;
        let body: DynamicObject =
            serde_json::from_value(updated).map_err(kube::Error::SerdeError)?;
        match api
            .replace_status(name, &PostParams::default(), &body)
            .await
        {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 2 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn route(parents: Value, status: Value) -> Value {
        json!({
            "metadata": {"name": "r", "namespace": "web", "generation": 3},
            "spec": {"parentRefs": parents},
            "status": status,
        })
    }

    #[test]
    fn other_controllers_entries_are_kept_and_ours_replaced() {
        let theirs =
            json!({"parentRef": {"name": "gw"}, "controllerName": "other.io/x", "conditions": []});
        let r = route(
            json!([{"name": "gw"}]),
            json!({"parents": [theirs.clone()]}),
        );
        let v = Verdict {
            accepted: Ok(()),
            resolved: Err(("RefNotPermitted".into(), "no grant".into())),
        };
        let list = parents(&r, "me.io/routing", &[], &v, "2026-12-06T00:00:00Z").unwrap();
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0], theirs);
        assert_eq!(list[1]["controllerName"], "me.io/routing");
        let conds = list[1]["conditions"].as_array().unwrap();
        assert_eq!(conds[0]["type"], "Accepted");
        assert_eq!(conds[0]["status"], "True");
        assert_eq!(conds[0]["observedGeneration"], 3);
        assert_eq!(conds[1]["status"], "False");
        assert_eq!(conds[1]["reason"], "RefNotPermitted");

        // The same verdict again: nothing to write, and the transition time stays.
        let mut again = r.clone();
        again["status"]["parents"] = Value::Array(list.clone());
        assert_eq!(
            parents(&again, "me.io/routing", &[], &v, "2026-12-06T01:00:00Z"),
            None
        );
        // A changed verdict keeps the unchanged condition's transition time.
        let fixed = Verdict {
            accepted: Ok(()),
            resolved: Ok(()),
        };
        let list = parents(&again, "me.io/routing", &[], &fixed, "2026-12-06T02:00:00Z").unwrap();
        let conds = &list[1]["conditions"];
        assert_eq!(conds[0]["lastTransitionTime"], "2026-12-06T00:00:00Z");
        assert_eq!(conds[1]["lastTransitionTime"], "2026-12-06T02:00:00Z");
    }

    #[test]
    fn only_the_gateways_served_get_an_entry() {
        let r = route(
            json!([{"name": "gw"}, {"name": "other", "namespace": "infra"}, {"name": "gw2", "sectionName": "http"}]),
            Value::Null,
        );
        let v = Verdict::refused("bad regex");
        let gws = vec!["web/gw".to_owned(), "web/gw2/http".to_owned()];
        let list = parents(&r, "me.io/routing", &gws, &v, "2026-12-06T00:00:00Z").unwrap();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["parentRef"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["gw", "gw2"]);
        assert_eq!(list[0]["conditions"][0]["reason"], "UnsupportedValue");
        assert_eq!(list[0]["conditions"][0]["message"], "bad regex");
    }
}
