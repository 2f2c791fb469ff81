//! Retries: which outcomes a rule's [`RetryPolicy`] retries, which backend a
//! retry goes to, the backoff between tries, and the per-rule [`budget`] that
//! bounds the extra load. The loop of tries itself is the routing service's
//! (`routing::forward`), over its one per-try function.

pub mod budget;

use std::time::Duration;

use routing_core::{BackendId, RetryOn, RetryPolicy, RouteTable, RuleMatch, Selection};

use crate::outcome::{Failure, Outcome};
use crate::rng::LayerRng;

/// Whether `outcome` is one `policy` retries. A [`Failure::Other`] never is: the
/// backend may have acted on a request whose failure says nothing about the
/// connection.
pub(crate) fn should_retry(policy: &RetryPolicy, outcome: Outcome) -> bool {
    if outcome == Outcome::Failure(Failure::Other) {
        return false;
    }
    policy.on.iter().any(|on| match (on, outcome) {
        (RetryOn::ServerError, o) => o.is_5xx(),
        (RetryOn::GatewayError, o) => o.is_gateway_error(),
        (RetryOn::Reset, Outcome::Failure(Failure::Reset | Failure::Timeout)) => true,
        (RetryOn::ConnectFailure, Outcome::Failure(Failure::Connect)) => true,
        (RetryOn::RetriableStatusCodes, Outcome::Status(s)) => policy.status_codes.contains(&s),
        _ => false,
    })
}

/// Whether a trailers-only gRPC answer with status `code` is one `policy` retries
/// (`cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`,
/// `unavailable`).
pub(crate) fn should_retry_grpc(policy: &RetryPolicy, code: Option<crate::grpc::Code>) -> bool {
    code.is_some_and(|c| policy.on.iter().any(|&on| crate::grpc::retries(on, c)))
}

/// The backend for a retry: routing-core's selection for the same rule match with
/// the backends already `tried` excluded (weighted among the others, the sticky key
/// ignored); `current` again when every backend of the rule was tried or is out.
pub(crate) fn retry_backend(
    table: &RouteTable,
    found: RuleMatch,
    req: &http::request::Parts,
    tried: &[BackendId],
    current: BackendId,
    rng: &LayerRng,
) -> BackendId {
    let with = Selection::new().exclude(tried);
    table
        .select(found, req, &mut rng.draw(), with)
        .ok()
        .and_then(|d| d.backend_id())
        .unwrap_or(current)
}

/// Full-jitter exponential backoff: uniform in `0 ..= base × 2^(attempt-1)`, capped
/// at ten times the base (Envoy's default cap).
pub(crate) fn backoff(base: Duration, attempt: u32, rng: &mut impl rand::Rng) -> Duration {
    let cap = base.saturating_mul(10);
    let exp = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cap);
    let nanos = u64::try_from(exp.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}
