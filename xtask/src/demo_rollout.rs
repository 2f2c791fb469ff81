//! The end of `cargo xtask demo`: two progressive rollouts over real HTTP on
//! 127.0.0.1, in fast time.
//!
//! Each rollout gets fresh upstream servers `v1` (stable) and `v2` (candidate) on
//! ephemeral loopback ports, and routing-tower's layer in front of them (one
//! `HttpBackend` per upstream). Client tasks send requests through the proxy while a
//! [`Rollout`] walks the rule `app/rollout` through [`STEPS`], each step holding
//! [`HOLD`] and judged on the layer's own per-backend stats (the layer is the
//! rollout's `MetricsSource`; routing-tower's `Driver` ticks it). Every event is
//! printed as it happens.
//!
//! * **healthy**: the candidate answers 200 throughout and is promoted through every
//!   step;
//! * **fails half-way**: the candidate starts answering 503 when the split reaches
//!   [`FAIL_AT`] %, and the controller rolls back to 100 % stable on its own.
//!
//! Both are checked (PASS/FAIL), and a failed check fails the demo. Every wait is
//! bounded ([`DEADLINE`] per rollout); on loopback the whole part takes a few seconds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use routing_core::{ConfigDuration, Router};
use routing_rollout::{
    ApplySplit, BackendFigures, Checks, RollbackReason, Rollout, RolloutEventKind, RolloutPlan,
    RolloutPlanSpec, RolloutState, RolloutTarget, TargetError,
};
use routing_tower::clock::SystemClock;
use routing_tower::rollout::Driver;
use routing_tower::{Backends, HttpBackend, RoutingLayer};
use tokio::task::JoinHandle;
use tower::Layer as _;

use crate::http_harness;

/// The configuration: one rule, all traffic to stable before the rollout.
const CONFIG: &str = "\
backends: [{name: v1}, {name: v2}]
routes:
  - name: app
    rules:
      - name: rollout
        backends: [{name: v1}]
";
/// The candidate's share at each step, in percent.
const STEPS: &[f64] = &[10.0, 25.0, 50.0, 100.0];
/// How long each step holds at least.
const HOLD: Duration = Duration::from_millis(300);
/// Completed candidate requests a window needs before any verdict.
const MIN_REQUESTS: u64 = 30;
/// The candidate's highest acceptable error rate in a window.
const MAX_ERROR_RATE: f64 = 0.05;
/// The step at which the failing candidate starts answering 503.
const FAIL_AT: f64 = 50.0;
/// How often the controller ticks.
const TICK: Duration = Duration::from_millis(20);
/// Client tasks sending requests during a rollout.
const CLIENTS: usize = 8;
/// Longest a rollout may take before it is aborted and its check fails.
const DEADLINE: Duration = Duration::from_secs(15);
/// Requests sent after a rollout ended, to see where traffic goes.
const AFTER: u64 = 200;
/// Longest wait for one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// What the failing candidate answers.
const DOWN_BODY: &str = "v2 down";

/// A verdict with its explanation.
struct Check {
    title: String,
    passed: bool,
    details: Vec<String>,
}

/// Runs both rollouts; fails if a check fails.
pub(crate) fn run() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the Tokio runtime")?;
    println!();
    println!("== Progressive rollouts (real HTTP on 127.0.0.1, fast time)");
    println!(
        "  plan     steps {} % of app/rollout to v2, hold {} ms each, checks: candidate error rate <= {MAX_ERROR_RATE}, at least {MIN_REQUESTS} candidate requests per window",
        STEPS.iter().map(ToString::to_string).collect::<Vec<_>>().join(" -> "),
        HOLD.as_millis()
    );
    println!("  metrics  the proxy layer's per-backend stats");
    let checks = [
        rt.block_on(scenario(None))?,
        rt.block_on(scenario(Some(FAIL_AT)))?,
    ];
    println!();
    println!("== Rollout checks");
    for c in &checks {
        println!("  {}  {}", if c.passed { "PASS" } else { "FAIL" }, c.title);
        for d in &c.details {
            println!("        {d}");
        }
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    println!();
    println!(
        "{} of {} rollout checks passed",
        checks.len() - failed,
        checks.len()
    );
    if failed > 0 {
        bail!("{failed} rollout check(s) failed");
    }
    Ok(())
}

/// The router, plus: the candidate fails once the split reaches `fail_at` %.
#[derive(Debug)]
struct FailsAt {
    router: Router,
    fail_at: Option<f64>,
    failing: Arc<AtomicBool>,
}

impl ApplySplit for FailsAt {
    fn apply_split(
        &self,
        target: &RolloutTarget,
        candidate_percent: f64,
    ) -> Result<(), TargetError> {
        if self.fail_at.is_some_and(|at| candidate_percent >= at) {
            self.failing.store(true, Ordering::SeqCst);
        }
        self.router.apply_split(target, candidate_percent)
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Tally {
    v1: AtomicU64,
    v2: AtomicU64,
    /// The candidate's own 503s.
    v2_down: AtomicU64,
    /// Anything else: other statuses, transport failures, timeouts.
    other: AtomicU64,
}

impl Tally {
    fn get(n: &AtomicU64) -> u64 {
        n.load(Ordering::Relaxed)
    }

    fn line(&self) -> String {
        format!(
            "v1 {}, v2 {}, v2's 503 {}, other failures {}",
            Self::get(&self.v1),
            Self::get(&self.v2),
            Self::get(&self.v2_down),
            Self::get(&self.other)
        )
    }
}

/// Aborts the servers when dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// One rollout; `fail_at` makes the candidate fail from that step on.
async fn scenario(fail_at: Option<f64>) -> Result<Check> {
    let title = match fail_at {
        None => "healthy candidate: promoted through every step, no failed request".to_owned(),
        Some(at) => format!(
            "candidate failing from {at} %: rolled back on its own, stable at 100 %, no failure but the candidate's own"
        ),
    };
    println!();
    match fail_at {
        None => println!("  rollout 1: healthy candidate"),
        Some(at) => println!("  rollout 2: the candidate starts answering 503 at {at} %"),
    }

    let failing = Arc::new(AtomicBool::new(false));
    let (v1, t1) = upstream("v1", None).await?;
    let (v2, t2) = upstream("v2", Some(Arc::clone(&failing))).await?;
    let router = Router::from_yaml(CONFIG).context("the rollout demo's config")?;
    let mut backends = Backends::new();
    backends.insert("v1", HttpBackend::new(v1));
    backends.insert("v2", HttpBackend::new(v2));
    let layer = RoutingLayer::new(router.clone(), backends);
    let (proxy, tp) = http_harness::serve(layer.layer(routing_tower::NotFound)).await?;
    let _servers = Tasks(vec![t1, t2, tp]);

    let plan = RolloutPlan::try_from(RolloutPlanSpec {
        steps: STEPS.to_vec(),
        hold: ConfigDuration::new(HOLD),
        max_step: None,
        checks: Checks {
            max_error_rate: Some(MAX_ERROR_RATE),
            min_requests: MIN_REQUESTS,
            ..Checks::default()
        },
    })?;
    let rule = RolloutTarget::http_rule("app", "rollout", "v1", "v2");
    let applier = FailsAt {
        router: router.clone(),
        fail_at,
        failing,
    };
    let clock = SystemClock::shared();
    let t0 = Duration::from_nanos(clock.now().as_nanos());
    let rollout = Arc::new(Driver::new(
        Rollout::new(plan, rule.clone(), applier),
        layer,
        clock,
    ));

    let client = client();
    let uri: http::Uri = format!("http://{proxy}/").parse()?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, uri, tally, stop) = (
            client.clone(),
            uri.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
        );
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                get(&client, &uri, &tally).await;
            }
        });
    }
    let runner = tokio::spawn({
        let rollout = Arc::clone(&rollout);
        async move { rollout.run(TICK).await }
    });

    // Print every event as it happens, until the rollout is over (bounded).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut printed = 0;
    let mut timed_out = false;
    loop {
        let over = rollout.state().is_terminal();
        let events = rollout.events();
        for e in events.iter().skip(printed) {
            println!(
                "    {:>6} ms  {}",
                e.at.saturating_sub(t0).as_millis(),
                describe(&e.kind)
            );
        }
        printed = events.len();
        if over {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            timed_out = true;
            let _ = rollout.abort();
            println!("    (not over after {} s: aborted)", DEADLINE.as_secs());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let _ = tokio::time::timeout(Duration::from_secs(1), runner).await;
    let during = tally.line();

    // Where traffic goes once the rollout is over.
    let after = Tally::default();
    for _ in 0..AFTER {
        get(&client, &uri, &after).await;
    }

    let state = rollout.state();
    let events = rollout.events();
    let passed_steps = events
        .iter()
        .filter(|e| matches!(e.kind, RolloutEventKind::StepPassed { .. }))
        .count();
    let weights = rule.weights(router.snapshot().config())?;
    let mut details = vec![
        format!("final state: {}", state_line(&state)),
        format!(
            "weights of app/rollout now: v1 {}, v2 {} (of 10000)",
            weights.0, weights.1
        ),
        format!("answers during the rollout: {during}"),
        format!("answers after it ({AFTER} requests): {}", after.line()),
    ];
    let other = Tally::get(&tally.other) + Tally::get(&after.other);
    let passed = match fail_at {
        None => {
            !timed_out
                && state == RolloutState::Promoted
                && passed_steps == STEPS.len()
                && weights == (0, 10_000)
                && Tally::get(&tally.v2_down) == 0
                && other == 0
                && Tally::get(&after.v2) == AFTER
        }
        Some(at) => {
            let fail_step = STEPS.iter().position(|&p| p >= at);
            let rolled_back_at = match &state {
                RolloutState::RolledBack {
                    reason: RollbackReason::ErrorRate { .. },
                    figures,
                } => Some(figures.step),
                _ => None,
            };
            details.push(format!(
                "steps passed before the failure: {passed_steps} (expected {})",
                fail_step.unwrap_or(0)
            ));
            !timed_out
                && rolled_back_at.is_some()
                && rolled_back_at == fail_step
                && Some(passed_steps) == fail_step
                && weights == (10_000, 0)
                && Tally::get(&tally.v2_down) > 0
                && other == 0
                && Tally::get(&after.v1) == AFTER
                && Tally::get(&after.v2_down) == 0
        }
    };
    if timed_out {
        details.push(format!("timed out after {} s", DEADLINE.as_secs()));
    }
    Ok(Check {
        title,
        passed,
        details,
    })
}

/// A keep-alive HTTP/1.1 client.
fn client() -> Client<HttpConnector, Empty<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CLIENTS)
        .build(connector)
}

/// Sends one GET and counts what came back.
async fn get(client: &Client<HttpConnector, Empty<Bytes>>, uri: &http::Uri, tally: &Tally) {
    let answer = async {
        let res = client.get(uri.clone()).await.ok()?;
        let status = res.status();
        let body = res.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    let counter = match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Some((status, body))) => match (status.as_u16(), body.as_ref()) {
            (200, b"v1") => &tally.v1,
            (200, b"v2") => &tally.v2,
            (503, b) if b == DOWN_BODY.as_bytes() => &tally.v2_down,
            _ => &tally.other,
        },
        _ => &tally.other,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// An upstream answering 200 with `name`, or 503 [`DOWN_BODY`] while `failing` is set.
async fn upstream(
    name: &'static str,
    failing: Option<Arc<AtomicBool>>,
) -> Result<(SocketAddr, JoinHandle<()>)> {
    let svc = tower::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
        let down = failing.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
        async move {
            let res = if down {
                let mut res =
                    http::Response::new(Full::new(Bytes::from_static(DOWN_BODY.as_bytes())));
                *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                res
            } else {
                http::Response::new(Full::new(Bytes::from_static(name.as_bytes())))
            };
            Ok::<_, Infallible>(res)
        }
    });
    http_harness::serve(svc).await
}

/// One line for an event.
fn describe(kind: &RolloutEventKind) -> String {
    match kind {
        RolloutEventKind::StepStarted { step, percent } => {
            format!("step {} started: {percent} % to v2", step + 1)
        }
        RolloutEventKind::StepPassed { figures } => format!(
            "step {} passed after {} ms: v2 {}; v1 {}",
            figures.step + 1,
            figures.elapsed.as_millis(),
            figures_line(&figures.candidate),
            figures_line(&figures.stable)
        ),
        RolloutEventKind::Waiting {
            figures,
            min_requests,
        } => format!(
            "step {} waiting for traffic: v2 {} of {min_requests} requests",
            figures.step + 1,
            figures.candidate.completed
        ),
        RolloutEventKind::RolledBack { reason, figures } => format!(
            "ROLLED BACK at step {} ({} %): {reason}; v2 {}; v1 {}; v1 now at 100 %",
            figures.step + 1,
            figures.percent,
            figures_line(&figures.candidate),
            figures_line(&figures.stable)
        ),
        RolloutEventKind::Promoted { manual: false } => "promoted: v2 at 100 %".to_owned(),
        RolloutEventKind::Promoted { manual: true } => "promoted by hand: v2 at 100 %".to_owned(),
        RolloutEventKind::Aborted => "aborted: v1 at 100 %".to_owned(),
        other => format!("{other:?}"),
    }
}

/// `123 requests, 0 errors`.
fn figures_line(f: &BackendFigures) -> String {
    format!(
        "{} requests, {} errors ({:.1} %)",
        f.completed,
        f.errors,
        f.error_rate.unwrap_or(0.0) * 100.0
    )
}

/// A short form of a state.
fn state_line(state: &RolloutState) -> String {
    match state {
        RolloutState::Promoted => "promoted".to_owned(),
        RolloutState::RolledBack { reason, figures } => {
            format!("rolled back at step {} ({reason})", figures.step + 1)
        }
        other => format!("{other:?}"),
    }
}
