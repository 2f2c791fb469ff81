//! Everything after the decision: fault, filters, mirror, the tries and the
//! response filters; and [`one_try`], the one place a try to a backend is made,
//! timed and recorded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response};
use routing_core::{BackendId, RouteTable};
use tracing::Instrument as _;

use super::future::Routed;
use super::Plan;
use crate::backends::BackendService;
use crate::backends::{call_backend, request_for_try, BackendFuture};
use crate::body::{self, Body, BoxError};
use crate::error::{self, RoutingError};
use crate::outcome::{classify, Failure, Outcome};
use crate::replay::{self, Buffered};
use crate::state::{GenState, Shared, Slot};
use crate::stats::BackendStats;
use crate::{deadline, fault, filters, mirror, retry, sticky};

/// Everything after the decision: fault, filters, mirror, tries, response filters.
///
/// Boxed here, where every type is concrete, so that the future is proven `Send`
/// once (an `async fn` called from the generic `call` trips a known rustc
/// limitation with higher-ranked lifetimes).
pub(super) fn forward(
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    state: Arc<GenState>,
    plan: Plan,
    annotate_inner: Option<BackendService>,
    req: Request<Body>,
    span: tracing::Span,
) -> Routed {
    // The common case (one try, nothing to buffer or wait for) has its own, much
    // smaller future: a future's size is memory written and moved on every request.
    let policy = table.rules()[plan.found.rule].policy();
    let single = policy.fault.is_none()
        && policy.retry.is_none()
        && policy.mirror.is_none()
        && policy.mirrors.is_empty();
    let grpc = crate::grpc::is_grpc(req.headers());
    // Instrumented after boxing, so the future is moved only once.
    let future: Pin<Box<dyn Future<Output = Response<Body>> + Send>> = if single {
        forward_single(shared, table, state, plan, annotate_inner, req)
    } else {
        Box::pin(forward_with_policy(
            shared,
            table,
            state,
            plan,
            annotate_inner,
            req,
        ))
    };
    // The layer's own answers to a gRPC request are gRPC answers.
    let future = if grpc {
        Box::pin(futures_util::FutureExt::map(future, crate::grpc::answer))
    } else {
        future
    };
    future.instrument(span)
}

/// The rule's request timeout, or the layer's default when it sets none (`0s`
/// turns it off); a gRPC client's shorter `grpc-timeout` wins.
fn request_timeout(
    shared: &Shared,
    policy: &routing_core::Policy,
    headers: &http::HeaderMap,
) -> Option<Duration> {
    let configured = policy
        .timeouts
        .request
        .or(shared.defaults.request_timeout)
        .filter(|t| !t.is_zero());
    match (configured, crate::grpc::timeout(headers)) {
        (Some(c), Some(g)) => Some(c.min(g)),
        (c, g) => c.or(g),
    }
}

/// The whole policy: fault, body buffering, mirror, tries under the request
/// timeout.
async fn forward_with_policy(
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    state: Arc<GenState>,
    mut plan: Plan,
    annotate_inner: Option<BackendService>,
    req: Request<Body>,
) -> Response<Body> {
    let rule = &table.rules()[plan.found.rule];
    let policy = rule.policy();
    let (mut parts, body) = req.into_parts();
    let route = &state.routes[rule.route_index()];
    let _route_in_flight = route.begin();
    let started = plan.started;

    if let Some(f) = &policy.fault {
        // Boxed: rare branches should not grow every request's future.
        let mut rng = shared.rng.draw();
        if let Some(res) = Box::pin(fault::inject(f, &parts.headers, &mut rng)).await {
            route.record(Outcome::Status(res.status()), shared.now() - started);
            return res;
        }
    }
    filters::request_filters(rule, plan.found.r#match, &mut parts);

    // Everything from here runs under the request timeout: buffering the body for a
    // retry or a mirror too, so a slow upload cannot stretch a 2 s timeout. The
    // response body is held to the same deadline.
    let timeout = request_timeout(&shared, policy, &parts.headers);
    plan.deadline = timeout.map(|t| (tokio::time::Instant::now() + t, t));
    let plan = plan;
    let work = async {
        // Buffer the body when a retry or a mirror needs it again.
        let mirrors = policy.mirror.iter().chain(&policy.mirrors);
        let limit = match (&policy.retry, mirrors.clone().next()) {
            (Some(r), _) => Some(r.max_body_bytes),
            (None, Some(_)) => Some(mirror::MIRROR_MAX_BODY),
            (None, None) => None,
        };
        // Retries alone record the body as it streams (a streaming RPC is not held
        // until the client closes); a mirror needs the whole body first.
        let mut buffered = match limit {
            Some(limit) if mirrors.clone().next().is_none() => {
                replay::record(body, limit, &shared.buffer_budget)
            }
            Some(limit) => Box::pin(replay::buffer(body, limit, &shared.buffer_budget)).await,
            None => Buffered::Streaming(body),
        };

        for m in mirrors {
            if mirror::sampled(m, &mut shared.rng.draw()) {
                mirror::mirror(
                    &shared,
                    &state,
                    &table,
                    m.backend,
                    &parts,
                    &buffered,
                    &annotate_inner,
                );
            }
        }

        tries(
            &shared,
            &table,
            &state,
            &plan,
            annotate_inner.as_ref(),
            parts,
            &mut buffered,
        )
        .await
    };
    let (res, served_by) = match plan.deadline {
        Some((at, t)) => match Box::pin(deadline::deadline(at, work)).await {
            Ok(r) => r,
            // Still receiving the client's body: the client was too slow (408).
            Err(_) if plan.body_watch.as_ref().is_some_and(|w| w.streaming()) => (
                error_response(RoutingError::ClientBody(error::ClientBody {
                    timed_out: true,
                })),
                None,
            ),
            Err(_) => (
                error_response(RoutingError::Timeout(error::Timeout {
                    per_try: false,
                    after: t,
                })),
                None,
            ),
        },
        None => work.await,
    };
    let latency = shared.now() - started;
    finish(
        &shared,
        &state,
        &plan,
        table.routes()[rule.route_index()].name(),
        rule,
        res,
        served_by,
        (route, latency),
    )
}

/// One try and nothing else (no fault, retry or mirror): the lean path. The work
/// before the backend call is done here, synchronously, so that the boxed future
/// holds only [`one_try`] and the bookkeeping after it. The request timeout bounds
/// the one try, and the response body after it.
fn forward_single(
    shared: Arc<Shared>,
    table: Arc<RouteTable>,
    state: Arc<GenState>,
    mut plan: Plan,
    annotate_inner: Option<BackendService>,
    req: Request<Body>,
) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
    let (mut parts, body) = req.into_parts();
    let rule = &table.rules()[plan.found.rule];
    filters::request_filters(rule, plan.found.r#match, &mut parts);
    let timeout = request_timeout(&shared, rule.policy(), &parts.headers);
    let backend = plan.first;
    let call = match prepare_try(
        &shared,
        &table,
        &state,
        &plan,
        annotate_inner.as_ref(),
        backend,
        0,
        Request::from_parts(parts, body),
    ) {
        Ok(Prepared::Call(call)) => call,
        Ok(Prepared::Answer(res)) => {
            // The backend's filters answered: recorded for the route, not the backend.
            let route = &state.routes[rule.route_index()];
            drop(route.begin());
            let route_name = table.routes()[rule.route_index()].name();
            let res = finish(
                &shared,
                &state,
                &plan,
                route_name,
                rule,
                res,
                None,
                (route, Duration::ZERO),
            );
            return Box::pin(std::future::ready(res));
        }
        Err(e) => return Box::pin(std::future::ready(error_response(e))),
    };
    let per_try = rule.policy().timeouts.per_try;
    plan.deadline = timeout.map(|t| (tokio::time::Instant::now() + t, t));
    Box::pin(async move {
        let slot = &state.backends[backend.index()];
        let route = &state.routes[table.rules()[plan.found.rule].route_index()];
        let _route_in_flight = route.begin();
        // One clock read for the backend's and the route's latency.
        let started = plan.started;
        let done = one_try(
            &shared,
            &state,
            (backend, slot),
            call,
            per_try,
            &plan,
            started,
        )
        .await;
        let (res, served_by) = done.result.into_response(backend);
        let rule = &table.rules()[plan.found.rule];
        let route_name = table.routes()[rule.route_index()].name();
        finish(
            &shared,
            &state,
            &plan,
            route_name,
            rule,
            res,
            served_by,
            (route, done.latency),
        )
    })
}

/// Response filters (the serving backend's, then the rule's) and the stickiness
/// cookie.
#[allow(clippy::too_many_arguments)]
fn finish(
    shared: &Shared,
    state: &GenState,
    plan: &Plan,
    route_name: &str,
    rule: &routing_core::Rule,
    mut res: Response<Body>,
    served_by: Option<BackendId>,
    route: (&BackendStats, Duration),
) -> Response<Body> {
    if crate::upgrade::is_upgrade_response(&res) {
        route.0.record_outcome(Outcome::Status(res.status()));
    } else {
        route.0.record(Outcome::Status(res.status()), route.1);
    }
    let policy = rule.policy();
    if let Some(f) = served_by.and_then(|id| rule.forward()?.filters_for(id)) {
        f.response_headers.apply(res.headers_mut());
    }
    policy.response_headers.apply(res.headers_mut());
    if let Some(h) = &plan.cors_headers {
        filters::cors::apply(h, res.headers_mut());
    }
    if let (Some(id), Some(routing_core::SessionPersistence::Cookie(cp))) =
        (served_by, &policy.session_persistence)
    {
        // A new session, or a retry that moved the session to another backend.
        if plan.issue_cookie || id != plan.first {
            sticky::issue(shared, state, cp, route_name, id, &mut res);
        }
    }
    res
}

/// What a try to one backend starts with.
enum Prepared {
    /// The backend call, not yet polled.
    Call(BackendFuture),
    /// The backend's filters answer in its place (a redirect or a fixed response).
    Answer(Response<Body>),
}

/// The call of one try to `backend` (not yet polled) with the backend's own
/// filters applied, the answer its filters give instead, or the error when the
/// layer has no service for it. In annotate mode the request carries its
/// [`RouteDecision`](crate::RouteDecision).
#[allow(clippy::too_many_arguments)]
fn prepare_try(
    shared: &Shared,
    table: &Arc<RouteTable>,
    state: &GenState,
    plan: &Plan,
    annotate_inner: Option<&BackendService>,
    backend: BackendId,
    attempt: u32,
    mut req: Request<Body>,
) -> Result<Prepared, RoutingError> {
    let rule = &table.rules()[plan.found.rule];
    if let Some(f) = rule.forward().and_then(|fw| fw.filters_for(backend)) {
        let matched = rule.matches()[plan.found.r#match].path();
        if let Some(r) = &f.redirect {
            return Ok(Prepared::Answer(crate::filters::redirect(&req, r, matched)));
        }
        if let Some(fixed) = &f.fixed_response {
            return Ok(Prepared::Answer(crate::filters::fixed_response(fixed)));
        }
        let (mut parts, body) = req.into_parts();
        f.apply_request(&mut parts, matched);
        req = Request::from_parts(parts, body);
    }
    let Some(slot) = state.backends.get(backend.index()) else {
        return Err(no_healthy_error(table, Some(plan.found.rule), None));
    };
    let Some(svc) = slot.service.as_ref().or(annotate_inner) else {
        return Err(no_healthy_error(
            table,
            Some(plan.found.rule),
            Some(Arc::clone(&slot.name)),
        ));
    };
    if let Some(pool) = table.backend(backend).endpoints() {
        // The second level of selection (endpoints::EndpointBalancer).
        req.extensions_mut()
            .insert(crate::endpoints::EndpointChoice {
                pool: Arc::clone(pool),
                key: plan.sticky_key,
                outlier: table.outlier_detection().cloned(),
            });
    }
    if shared.annotate {
        req.extensions_mut().insert(crate::RouteDecision::new(
            Arc::clone(table),
            plan.found.rule,
            Some(backend),
            plan.sticky_key,
            attempt,
        ));
    }
    tracing::Span::current().record("backend", &*slot.name);
    Ok(Prepared::Call(call_backend(svc, req)))
}

/// The tries: the first backend, then retries while the policy, the budget and the
/// body allow. Returns the response and the backend that produced it.
async fn tries(
    shared: &Arc<Shared>,
    table: &Arc<RouteTable>,
    state: &Arc<GenState>,
    plan: &Plan,
    annotate_inner: Option<&BackendService>,
    parts: http::request::Parts,
    buffered: &mut Buffered,
) -> (Response<Body>, Option<BackendId>) {
    let method = parts.method.clone();
    let mut parts = Some(parts);
    let policy = table.rules()[plan.found.rule].policy();
    let retry = policy.retry.as_ref();
    let budget = state
        .budgets
        .get(plan.found.rule)
        .and_then(|b| b.as_ref())
        .map(|e| &e.budget);
    if let Some(b) = budget {
        b.deposit();
    }
    let max_tries = 1 + retry.map_or(0, |r| r.attempts);
    if let Some(p) = parts.as_mut().filter(|_| max_tries > 1) {
        // Shared by the tries' copies: an endpoint pool retries on another pod.
        p.extensions
            .insert(crate::endpoints::TriedEndpoints::default());
    }
    let mut tried: Vec<BackendId> = Vec::new();
    let mut backend = plan.first;
    let mut attempt = 0u32;
    // A retry's body, taken when the retry is decided (a recorded body's earlier
    // try stops reading the client's body then).
    let mut next_body: Option<Body> = None;
    loop {
        // The body for this try: a replay, or the original stream (only once).
        let body = match next_body.take().or_else(|| buffered.replay()) {
            Some(b) => b,
            None => match std::mem::replace(buffered, Buffered::Streaming(body::empty())) {
                Buffered::Streaming(b) if attempt == 0 => b,
                _ => break,
            },
        };
        // The last possible try takes the request head; earlier ones copy it.
        let last = attempt + 1 >= max_tries || !buffered.is_replayable();
        let req = match (last, parts.as_ref()) {
            (false, Some(p)) => request_for_try(p, body),
            _ => match parts.take() {
                Some(p) => Request::from_parts(p, body),
                None => break,
            },
        };
        let call = match prepare_try(
            shared,
            table,
            state,
            plan,
            annotate_inner,
            backend,
            attempt,
            req,
        ) {
            Ok(Prepared::Call(call)) => call,
            Ok(Prepared::Answer(res)) => return (res, None),
            Err(e) => return (error_response(e), None),
        };
        let slot = &state.backends[backend.index()];
        // The first try starts with the request (the clock read at `call`).
        let started = if attempt == 0 {
            plan.started
        } else {
            shared.now()
        };
        let done = one_try(
            shared,
            state,
            (backend, slot),
            call,
            policy.timeouts.per_try,
            plan,
            started,
        )
        .await;
        attempt += 1;
        let (outcome, grpc) = match &done.result {
            TryResult::Response(r) => (
                Outcome::Status(r.status()),
                crate::grpc::is_grpc(r.headers())
                    .then(|| crate::grpc::status(r.headers()))
                    .flatten(),
            ),
            TryResult::Failed(f, _) => (Outcome::Failure(*f), None),
            TryResult::Refused(e) => return (error_response(e.clone()), None),
        };
        // A request that may have reached the backend is retried only if its method
        // is idempotent (or the rule opts in): a POST is never delivered twice. A
        // gRPC status condition is the exception: gRPC is always POST, and the
        // server's trailers-only answer says what it did (as in Envoy).
        let sent_nothing = outcome == Outcome::Failure(Failure::Connect);
        let retryable = retry.is_some_and(|r| {
            retry::should_retry_grpc(r, grpc)
                || (retry::should_retry(r, outcome) && r.allows(&method, sent_nothing))
        }) && attempt < max_tries
            && parts.is_some()
            && buffered.is_replayable();
        if !retryable || !budget.is_some_and(|b| b.try_withdraw()) {
            if retryable {
                tracing::debug!(backend = &*slot.name, "retry budget exhausted");
            }
            return done.result.into_response(backend);
        }
        // Still replayable now? (A recorded body may have gone past its bound.)
        let Some(b) = buffered.replay() else {
            return done.result.into_response(backend);
        };
        next_body = Some(b);
        tried.push(backend);
        let Some(head) = parts.as_ref() else { break };
        let next = retry::retry_backend(table, plan.found, head, &tried, backend, &shared.rng);
        tracing::debug!(from = &*slot.name, attempt, ?outcome, "retrying");
        if let Some(s) = state.backends.get(next.index()) {
            s.stats.record_retry();
        }
        if let Some(r) = retry {
            let pause = retry::backoff(r.backoff, attempt, &mut shared.rng.draw());
            Box::pin(tokio::time::sleep(pause)).await;
        }
        backend = next;
    }
    (no_healthy(table, Some(plan.found.rule), None), None)
}

/// What a try ended with.
enum TryResult {
    Response(Response<Body>),
    /// The failure, and the answer if it is not retried.
    Failed(Failure, RoutingError),
    /// Refused before reaching the backend (its queue is full): never retried.
    Refused(RoutingError),
}

impl TryResult {
    /// The answer to the client, and the backend that produced it (none for an
    /// answer of the layer's own).
    fn into_response(self, backend: BackendId) -> (Response<Body>, Option<BackendId>) {
        match self {
            TryResult::Response(r) => (r, Some(backend)),
            TryResult::Failed(_, e) | TryResult::Refused(e) => (error_response(e), None),
        }
    }
}

/// A finished try: how it ended and how long it took (on the layer's clock, from
/// the moment the concurrency permit was held; until the refusal when it was not).
struct Try {
    result: TryResult,
    latency: Duration,
}

/// One try, the only one: the backend's concurrency limit, the call under the
/// per-try timeout and the request's deadline, and its outcome classified
/// ([`classify`]) and recorded once, in the backend's stats and the outlier
/// detector ([`Shared::record`]). A response leaves with its body held to the
/// deadline, the idle timeout and the concurrency permit ([`deadline::Limits`]).
async fn one_try(
    shared: &Arc<Shared>,
    state: &Arc<GenState>,
    (backend, slot): (BackendId, &Slot),
    call: BackendFuture,
    per_try: Option<Duration>,
    plan: &Plan,
    mut started: crate::clock::Timestamp,
) -> Try {
    let permit = match &slot.limit {
        Some((_, limit)) => match limit.try_acquire() {
            Ok(p) => Some(p),
            // Busy: wait in the queue (boxed: the rare case), or be refused.
            Err(_) => match Box::pin(limit.acquire()).await {
                Ok(p) => {
                    // The backend's latency starts once the permit is held.
                    started = shared.now();
                    Some(p)
                }
                Err(e) => {
                    return Try {
                        result: TryResult::Refused(RoutingError::Overloaded(e)),
                        latency: shared.now() - started,
                    }
                }
            },
        },
        None => None,
    };
    let _in_flight = slot.stats.begin();
    // And within the rule, when it keeps per-backend stats (what a rollout of the
    // rule is judged on): requests sent and in flight, beside the outcomes recorded.
    let within = state.rule_backend_stats((plan.found.rule, backend));
    let _rule_in_flight = within.map(BackendStats::begin);
    // The try ends at the per-try timeout or the request's deadline, the earlier.
    let per_try = per_try.filter(|d| !d.is_zero());
    let until = match (per_try, plan.deadline) {
        (Some(t), Some((at, whole))) => {
            let mine = tokio::time::Instant::now() + t;
            Some(if mine < at {
                (mine, true, t)
            } else {
                (at, false, whole)
            })
        }
        (Some(t), None) => Some((tokio::time::Instant::now() + t, true, t)),
        (None, Some((at, whole))) => Some((at, false, whole)),
        (None, None) => None,
    };
    let (result, outcome) = match until {
        Some((at, per_try, after)) => match deadline::deadline(at, call).await {
            Ok(r) => settle(slot, r),
            Err(_) => {
                let e = RoutingError::Timeout(error::Timeout { per_try, after });
                (
                    TryResult::Failed(Failure::Timeout, e),
                    Outcome::Failure(Failure::Timeout),
                )
            }
        },
        None => settle(slot, call.await),
    };
    let latency = shared.now() - started;
    // The client's fault, not the backend's: its body failed (aborted, malformed), or
    // it was still sending when the try timed out. Answered 400/408, not retried, not
    // recorded against the backend (stats, outlier detection, rollouts).
    if let (Some(w), TryResult::Failed(f, _)) = (plan.body_watch.as_deref(), &result) {
        let client = if w.failed() {
            Some(false)
        } else if *f == Failure::Timeout && w.streaming() {
            Some(true)
        } else {
            None
        };
        if let Some(timed_out) = client {
            return Try {
                result: TryResult::Refused(RoutingError::ClientBody(error::ClientBody {
                    timed_out,
                })),
                latency,
            };
        }
    }
    let within = within.map(|s| &**s);
    let result = match result {
        TryResult::Response(res) if crate::upgrade::is_upgrade_response(&res) => {
            // An upgrade: counted, but its handshake is no response time and the
            // connection it becomes lives outside the request's timeouts (it is
            // spliced by a task of its own; its permit ends here).
            shared.record(state, within, slot, outcome, None);
            TryResult::Response(res.map(|_| body::empty()))
        }
        TryResult::Response(res) => {
            let limits = deadline::Limits {
                deadline: plan.deadline,
                idle: shared.defaults.response_idle,
                permit,
            };
            let grpc_pending = crate::grpc::awaits_trailers(&res);
            let res = res.map(|b| limits.wrap(b));
            TryResult::Response(if grpc_pending {
                // The gRPC status comes in the trailers: recorded when they do (or
                // when the body fails, its deadline included).
                let (shared, state) = (Arc::clone(shared), Arc::clone(state));
                let key = (plan.found.rule, backend);
                let on_end: crate::grpc::OnEnd = Box::new(move |outcome| {
                    if let Some(slot) = state.backends.get(backend.index()) {
                        let within = state.rule_backend_stats(key).map(|s| &**s);
                        shared.record(&state, within, slot, outcome, Some(latency));
                    }
                });
                res.map(|b| crate::grpc::watch_trailers(b, on_end))
            } else {
                shared.record(state, within, slot, outcome, Some(latency));
                res
            })
        }
        other => {
            shared.record(state, within, slot, outcome, Some(latency));
            other
        }
    };
    Try { result, latency }
}

/// How a backend call ended, classified.
fn settle(slot: &Slot, result: Result<Response<Body>, BoxError>) -> (TryResult, Outcome) {
    match result {
        Ok(res) => {
            // A trailers-only gRPC error counts as the HTTP status of its code.
            let outcome = Outcome::Status(crate::grpc::effective_status(&res));
            (TryResult::Response(res), outcome)
        }
        Err(e) => {
            let failure = classify(&*e);
            let err = RoutingError::Upstream(error::Upstream {
                backend: Arc::clone(&slot.name),
                message: error::chain(&*e),
            });
            (TryResult::Failed(failure, err), Outcome::Failure(failure))
        }
    }
}

/// The layer's own answer for `err`, with `err` in its extensions.
pub(crate) fn error_response(err: RoutingError) -> Response<Body> {
    let mut res = Response::new(body::full(err.to_string()));
    *res.status_mut() = err.status();
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.extensions_mut().insert(err);
    res
}

/// The 503 for rule `rule` (its route named in the error), optionally naming a
/// backend the layer has no service for.
pub(crate) fn no_healthy(
    table: &RouteTable,
    rule: Option<usize>,
    backend: Option<Arc<str>>,
) -> Response<Body> {
    error_response(no_healthy_error(table, rule, backend))
}

/// The error of [`no_healthy`].
fn no_healthy_error(
    table: &RouteTable,
    rule: Option<usize>,
    backend: Option<Arc<str>>,
) -> RoutingError {
    let route: Arc<str> = rule.and_then(|r| table.rules().get(r)).map_or_else(
        || Arc::from(""),
        |r| table.routes()[r.route_index()].name().into(),
    );
    RoutingError::NoHealthyBackend(error::NoHealthyBackend { route, backend })
}
