//! Request mirroring: a percentage of a rule's requests copied to another
//! backend in the background; the copy's response is dropped and never delays the
//! client.

use std::sync::Arc;

use routing_core::{BackendId, RouteTable};

use crate::backends::BackendService;
use crate::backends::{call_backend, request_for_try};
use crate::replay::Buffered;
use crate::state::{GenState, Shared};

/// Whether this request is mirrored: a draw against the policy's fraction.
pub(crate) fn sampled(policy: &routing_core::Mirror, rng: &mut impl rand::Rng) -> bool {
    rng.random_bool(policy.fraction.clamp(0.0, 1.0))
}

/// Largest request body buffered to copy it to a mirror when the rule has no retry
/// policy (a longer body is not mirrored).
pub(crate) const MIRROR_MAX_BODY: u64 = 64 * 1024;

/// Sends a copy of the request to `backend` in the background; its response is
/// drained and dropped, never kept. Only replayable (buffered) requests are
/// mirrored, at most the layer's mirror concurrency at once (a mirror is skipped when
/// none is free) and each within the mirror timeout.
pub(crate) fn mirror(
    shared: &Arc<Shared>,
    state: &GenState,
    table: &Arc<RouteTable>,
    backend: BackendId,
    parts: &http::request::Parts,
    buffered: &Buffered,
    annotate_inner: &Option<BackendService>,
) {
    let Some(body) = buffered.replay() else {
        tracing::debug!("mirror skipped: body not buffered");
        return;
    };
    let Ok(permit) = Arc::clone(&shared.mirror_slots).try_acquire_owned() else {
        tracing::debug!("mirror skipped: mirror concurrency limit reached");
        return;
    };
    let Some(slot) = state.backends.get(backend.index()) else {
        return;
    };
    let Some(svc) = slot.service.clone().or_else(|| annotate_inner.clone()) else {
        return;
    };
    let mut req = request_for_try(parts, body);
    if let Some(pool) = table.backend(backend).endpoints() {
        // A mirror to a version with pods: least request over its pool.
        req.extensions_mut()
            .insert(crate::endpoints::EndpointChoice {
                pool: Arc::clone(pool),
                key: None,
                outlier: table.outlier_detection().cloned(),
            });
    }
    if shared.annotate {
        req.extensions_mut()
            .insert(crate::RouteDecision::mirror(table, backend));
    }
    let name = Arc::clone(&slot.name);
    let call = call_backend(&svc, req);
    let timeout = shared.mirror_timeout;
    tokio::spawn(async move {
        let _permit = permit;
        let run = async {
            match call.await {
                Ok(res) => {
                    // Drain the body frame by frame (so the connection can be reused)
                    // without keeping it.
                    let mut body = res.into_body();
                    while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                        if frame.is_err() {
                            break;
                        }
                    }
                }
                Err(e) => tracing::debug!(backend = &*name, error = %e, "mirror failed"),
            }
        };
        if tokio::time::timeout(timeout, run).await.is_err() {
            tracing::debug!(backend = &*name, "mirror timed out");
        }
    });
}
