//! Fault injection: a delay and an abort, each for a percentage of a rule's
//! requests, optionally only for requests with given headers. The draws come from
//! the layer's seeded generator.

use http::Response;
use rand::rngs::SmallRng;
use rand::Rng as _;
use routing_core::FaultPolicy;

use crate::body::{self, Body};

/// Applies a fault (delay, then abort) if the policy says so for this request.
/// Returns the abort response, if any.
pub(crate) async fn inject(
    fault: &FaultPolicy,
    headers: &http::HeaderMap,
    rng: &mut SmallRng,
) -> Option<Response<Body>> {
    if !fault.applies(headers) {
        return None;
    }
    let (delay, abort) = {
        let delay = fault
            .delay
            .and_then(|(d, f)| rng.random_bool(f.clamp(0.0, 1.0)).then_some(d));
        let abort = fault
            .abort
            .and_then(|(s, f)| rng.random_bool(f.clamp(0.0, 1.0)).then_some(s));
        (delay, abort)
    };
    if let Some(d) = delay {
        tracing::debug!(delay = ?d, "fault: delaying");
        tokio::time::sleep(d).await;
    }
    abort.map(|status| {
        tracing::debug!(%status, "fault: aborting");
        let mut res = Response::new(body::full("fault filter abort"));
        *res.status_mut() = status;
        res
    })
}
