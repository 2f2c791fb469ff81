//! The fleet's weight target: the HTTPRoute's `backendRefs` weights, written by
//! server-side apply, and the rollout's step persisted beside them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::Client;
use routing_rollout::{split_weights, ApplySplit, RolloutTarget, TargetError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The annotation of the HTTPRoute that holds the persisted [`PersistedStep`].
pub const STEP_ANNOTATION: &str = "routing.fleet/rollout";

/// Why the HTTPRoute could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WeightsError {
    /// The API server failed or refused.
    #[error("HTTPRoute `{route}`: {source}")]
    Api {
        /// `namespace/name`.
        route: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The route is missing, or has no such rule or backendRefs.
    #[error("HTTPRoute `{route}`: {reason}")]
    Shape {
        /// `namespace/name`.
        route: String,
        /// What is missing, with its field path.
        reason: String,
    },
    /// The persisted step annotation does not parse.
    #[error("HTTPRoute `{route}`: annotation `{STEP_ANNOTATION}`: {reason}")]
    Annotation {
        /// `namespace/name`.
        route: String,
        /// The parse error.
        reason: String,
    },
    /// Called from a current-thread Tokio runtime, or outside one: a split is applied
    /// synchronously ([`ApplySplit`]) by blocking a worker of a multi-thread runtime.
    #[error("HttpRouteWeights::apply_split needs a multi-thread Tokio runtime")]
    Runtime,
}

/// Where a fleet rollout is, persisted on the HTTPRoute so a new leader resumes the
/// same step (times in milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersistedStep {
    /// The rollout's epoch: counts are cumulative from here.
    pub epoch_ms: u64,
    /// The step's index in the plan.
    pub step: usize,
    /// Its candidate percentage.
    pub percent: f64,
    /// When the step's window began.
    pub window_start_ms: u64,
    /// `running`, `promoted`, `rolled_back`, `inconclusive`, `aborted`, `failed`.
    pub state: String,
    /// The leader that wrote it.
    pub holder: String,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn to_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// The time `ms` milliseconds after the Unix epoch.
pub(crate) fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// An HTTPRoute whose rule's `backendRefs` weights a rollout sets, by server-side
/// apply (`fieldManager`, `force`): every replica's routing-kube watcher sees the
/// change and converges, as with Flagger or Argo Rollouts editing the route.
///
/// A rule is found by its `name` (`rules[].name`, the importer's rule name) or as
/// `rules[i]`; a backend `svc:port` is the backendRef with that `name` and `port`
/// (or `name` alone). The apply carries the route's whole `spec.rules`: a CRD's
/// lists are atomic, so the field manager owns the list, as Flagger owns the
/// routes it generates. Weights are parts of 10 000 ([`split_weights`]).
#[derive(Debug, Clone)]
pub struct HttpRouteWeights {
    api: Api<DynamicObject>,
    namespace: String,
    name: String,
    manager: String,
}

fn httproute() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ))
}

impl HttpRouteWeights {
    /// The HTTPRoute `namespace/name`, written as `field_manager`.
    pub fn new(client: Client, namespace: &str, name: &str, field_manager: &str) -> Self {
        Self {
            api: Api::namespaced_with(client, namespace, &httproute()),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            manager: field_manager.to_owned(),
        }
    }

    fn route(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn api_err(&self, source: kube::Error) -> WeightsError {
        WeightsError::Api {
            route: self.route(),
            source,
        }
    }

    async fn get(&self) -> Result<DynamicObject, WeightsError> {
        self.api.get(&self.name).await.map_err(|e| self.api_err(e))
    }

    async fn apply(&self, manager: &str, body: Value) -> Result<(), WeightsError> {
        let params = PatchParams::apply(manager).force();
        self.api
            .patch(&self.name, &params, &Patch::Apply(&body))
            .await
            .map(|_| ())
            .map_err(|e| self.api_err(e))
    }

    /// Sets `target`'s split to `candidate_percent` on the route.
    ///
    /// # Errors
    /// [`WeightsError`] when the route cannot be read, lacks the rule or a
    /// backendRef, or the apply fails.
    pub async fn write(
        &self,
        target: &RolloutTarget,
        candidate_percent: f64,
    ) -> Result<(), WeightsError> {
        let RolloutTarget::HttpRule { rule, .. } = target else {
            return Err(WeightsError::Shape {
                route: self.route(),
                reason: format!("{target} is not an HTTP rule"),
            });
        };
        let (w_stable, w_candidate) =
            split_weights(candidate_percent).map_err(|e| WeightsError::Shape {
                route: self.route(),
                reason: e.to_string(),
            })?;
        let object = self.get().await?;
        let mut rules = object.data["spec"]["rules"].clone();
        let shape = |reason: String| WeightsError::Shape {
            route: self.route(),
            reason,
        };
        let list = rules
            .as_array_mut()
            .ok_or_else(|| shape("`spec.rules` is not a list".into()))?;
        let index = list
            .iter()
            .position(|r| r["name"].as_str() == Some(rule.as_str()))
            .or_else(|| {
                rule.strip_prefix("rules[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|i| i.parse().ok())
            })
            .filter(|&i| i < list.len())
            .ok_or_else(|| shape(format!("no rule `{rule}` in `spec.rules`")))?;
        let refs = list[index]["backendRefs"]
            .as_array_mut()
            .ok_or_else(|| shape(format!("`spec.rules[{index}].backendRefs` is not a list")))?;
        for (backend, weight) in [
            (target.stable(), w_stable),
            (target.candidate(), w_candidate),
        ] {
            let r = refs
                .iter_mut()
                .find(|r| backend_ref_is(r, backend))
                .ok_or_else(|| {
                    shape(format!(
                        "no backendRef `{backend}` in `spec.rules[{index}].backendRefs`"
                    ))
                })?;
            r["weight"] = json!(weight);
        }
        let body = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"rules": rules},
        });
        self.apply(&self.manager, body).await
    }

    /// The persisted step, if any.
    ///
    /// # Errors
    /// [`WeightsError`] when the route cannot be read or the annotation does not parse.
    pub async fn read_step(&self) -> Result<Option<PersistedStep>, WeightsError> {
        let object = self.get().await?;
        let Some(text) = object
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STEP_ANNOTATION))
        else {
            return Ok(None);
        };
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| WeightsError::Annotation {
                route: self.route(),
                reason: e.to_string(),
            })
    }

    /// Persists `step` (annotation [`STEP_ANNOTATION`], its own field manager
    /// `{field_manager}-state`).
    ///
    /// # Errors
    /// [`WeightsError`] when the apply fails.
    pub async fn write_step(&self, step: &PersistedStep) -> Result<(), WeightsError> {
        let text = serde_json::to_string(step).map_err(|e| WeightsError::Annotation {
            route: self.route(),
            reason: e.to_string(),
        })?;
        let body = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "annotations": {STEP_ANNOTATION: text}},
        });
        self.apply(&format!("{}-state", self.manager), body).await
    }
}

/// Whether the backendRef `r` is the backend named `backend` (`name:port` or `name`).
fn backend_ref_is(r: &Value, backend: &str) -> bool {
    let Some(name) = r["name"].as_str() else {
        return false;
    };
    match r["port"].as_u64() {
        Some(port) => backend == format!("{name}:{port}") || backend == name,
        None => backend == name,
    }
}

impl ApplySplit for HttpRouteWeights {
    /// Applies the split by server-side apply, blocking this worker thread of a
    /// multi-thread Tokio runtime until the API server answered.
    fn apply_split(
        &self,
        target: &RolloutTarget,
        candidate_percent: f64,
    ) -> Result<(), TargetError> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| TargetError::Other(Box::new(WeightsError::Runtime)))?;
        tokio::task::block_in_place(|| handle.block_on(self.write(target, candidate_percent)))
            .map_err(|e| TargetError::Other(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_refs_match_by_name_and_port() {
        let r = json!({"name": "shop-v2", "port": 8080});
        assert!(backend_ref_is(&r, "shop-v2:8080"));
        assert!(backend_ref_is(&r, "shop-v2"));
        assert!(!backend_ref_is(&r, "shop-v2:9090"));
        assert_eq!(from_ms(to_ms(from_ms(1_234))), from_ms(1_234));
    }
}
