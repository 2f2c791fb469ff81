//! The fleet's metrics, from Prometheus: what every replica's layer counted,
//! summed, with counter resets absorbed by `increase()`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use routing_rollout::{BackendCounts, LatencyHistogram, MetricsSource, RolloutTarget};

use crate::prom::{quote, regex_escape, PromError, Prometheus};

/// Where the layer's metrics of a fleet are: a Prometheus server and the scrape
/// job of the replicas.
///
/// Counts are **cumulative since an epoch** (the rollout's start, the same for
/// every leader): `sum(increase(m{…}[now - epoch]))` over every replica's series,
/// so a counter reset (a replica restarted) is absorbed by `increase()` and the
/// controller can take window differences as it does on local counters. A series
/// born after the epoch also adds its first sample (`min_over_time(m[w]) unless m
/// offset w`), which `increase()` would drop: a split creates the rule's series
/// for the new backend when traffic already flows. (`increase()` extrapolates to
/// the range's ends, so figures are within about one scrape interval's traffic.) For an
/// HTTP rule the rule's own families are read (`routing_rule_backend_*`, labels
/// `route`, `rule`, `backend`), for a TCP service the backend's
/// (`routing_backend_*`); a backend `b` also matches its endpoints `b@ip:port`
/// (routing-kube's addressed backends), so a version is judged over its pods.
///
/// * completed = `increase(…_responses_total)` (every class) plus
///   `increase(routing_backend_failures_total)` (tries without a response: the
///   layer exports those per backend only, so for a rule they include other rules'
///   failed tries to that backend);
/// * errors = `increase(…_responses_total{class="5xx"})` plus those failures;
/// * latency = `sum by (le) (increase(…_request_duration_seconds_bucket))`, each
///   bucket reported at its upper edge.
#[derive(Clone, Debug)]
pub struct FleetMetrics {
    prom: Prometheus,
    job: String,
    min_replicas: usize,
}

impl FleetMetrics {
    /// The replicas scraped by `job` on `prom`; a window is trusted only while at
    /// least `min_replicas` of its targets are up (see [`FleetHealth`]).
    #[must_use]
    pub fn new(prom: Prometheus, job: impl Into<String>, min_replicas: usize) -> Self {
        Self {
            prom,
            job: job.into(),
            min_replicas,
        }
    }

    /// The Prometheus client.
    #[must_use]
    pub fn prometheus(&self) -> &Prometheus {
        &self.prom
    }

    fn selector(&self, target: &RolloutTarget, backend: &str) -> (String, String) {
        let backend_re = format!("{}(@.*)?", regex_escape(backend));
        match target {
            RolloutTarget::HttpRule { route, rule, .. } => (
                "routing_rule_backend".to_owned(),
                format!(
                    "job={},route={},rule={},backend=~{}",
                    quote(&self.job),
                    quote(route),
                    quote(rule),
                    quote(&backend_re)
                ),
            ),
            RolloutTarget::TcpService { .. } => (
                "routing_backend".to_owned(),
                format!("job={},backend=~{}", quote(&self.job), quote(&backend_re)),
            ),
        }
    }

    /// The fleet's cumulative counts of `backend` for `target` since `epoch`, as
    /// Prometheus knew them at `at`.
    ///
    /// # Errors
    /// [`PromError`] when a query fails.
    pub async fn counts(
        &self,
        target: &RolloutTarget,
        backend: &str,
        epoch: SystemTime,
        at: SystemTime,
    ) -> Result<BackendCounts, PromError> {
        let (prefix, sel) = self.selector(target, backend);
        let w = range(epoch, at);
        let t = Some(at);
        let failures_sel = format!(
            "job={},backend=~{}",
            quote(&self.job),
            quote(&format!("{}(@.*)?", regex_escape(backend)))
        );
        let responses = self
            .total(&format!("{prefix}_responses_total{{{sel}}}"), &w, at)
            .await?;
        let r5xx = self
            .total(
                &format!("{prefix}_responses_total{{{sel},class=\"5xx\"}}"),
                &w,
                at,
            )
            .await?;
        // Tries that ended without a response are exported per backend only.
        let failures = self
            .total(
                &format!("routing_backend_failures_total{{{failures_sel}}}"),
                &w,
                at,
            )
            .await?;
        let bucket = format!("{prefix}_request_duration_seconds_bucket{{{sel}}}");
        let mut buckets = self
            .prom
            .query(&format!("sum by (le) (increase({bucket}[{w}]))"), t)
            .await?;
        for first in self
            .prom
            .query(
                &format!("sum by (le) (min_over_time({bucket}[{w}]) unless {bucket} offset {w})"),
                t,
            )
            .await?
        {
            match buckets.iter_mut().find(|b| b.labels == first.labels) {
                Some(b) => b.value += first.value,
                None => buckets.push(first),
            }
        }
        let completed = round(responses).saturating_add(round(failures));
        let errors = round(r5xx).saturating_add(round(failures));
        Ok(BackendCounts {
            completed,
            errors: errors.min(completed),
            latency: histogram(&buckets),
        })
    }

    /// `sum(increase(series[w]))` at `at`, plus the first value of every series
    /// that did not exist `w` before `at` (`min_over_time(series[w]) unless series
    /// offset w`): `increase()` starts counting at a series' first sample, and a
    /// series the layer creates on a new split (or a replica started after the
    /// epoch) may have counted requests before its first scrape.
    async fn total(&self, series: &str, w: &str, at: SystemTime) -> Result<f64, PromError> {
        let t = Some(at);
        let increase = self
            .prom
            .sum(&format!("sum(increase({series}[{w}]))"), t)
            .await?;
        let first = self
            .prom
            .sum(
                &format!("sum(min_over_time({series}[{w}]) unless {series} offset {w})"),
                t,
            )
            .await?;
        Ok(increase + first)
    }

    /// The fleet's p99 latency of `backend` for `target` over the `window` before
    /// `at`: `histogram_quantile(0.99, sum by (le) (rate(…_bucket[window])))`,
    /// interpolated as Prometheus does (`None` without samples).
    ///
    /// # Errors
    /// [`PromError`] when the query fails.
    pub async fn p99(
        &self,
        target: &RolloutTarget,
        backend: &str,
        window: Duration,
        at: SystemTime,
    ) -> Result<Option<Duration>, PromError> {
        let (prefix, sel) = self.selector(target, backend);
        let w = format!("{}s", window.as_secs().max(1));
        let v = self
            .prom
            .query(
                &format!(
                    "histogram_quantile(0.99, sum by (le) (rate({prefix}_request_duration_seconds_bucket{{{sel}}}[{w}])))"
                ),
                Some(at),
            )
            .await?;
        Ok(v.first()
            .map(|s| s.value)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(Duration::from_secs_f64))
    }

    /// Whether the scrapes of the window `[since, at]` can be trusted.
    ///
    /// # Errors
    /// [`PromError`] when a query fails.
    pub async fn health(
        &self,
        since: SystemTime,
        at: SystemTime,
    ) -> Result<FleetHealth, PromError> {
        let job = quote(&self.job);
        let w = range(since, at);
        let t = Some(at);
        let targets = self.prom.sum(&format!("count(up{{job={job}}})"), t).await?;
        let up = self
            .prom
            .sum(&format!("count(up{{job={job}}} == 1)"), t)
            .await?;
        let failed = self
            .prom
            .sum(
                &format!(
                    "sum(count_over_time(up{{job={job}}}[{w}])) - sum(sum_over_time(up{{job={job}}}[{w}]))"
                ),
                t,
            )
            .await?;
        let resets = self
            .prom
            .sum(
                &format!("sum(resets(routing_backend_requests_total{{job={job}}}[{w}]))"),
                t,
            )
            .await?;
        Ok(FleetHealth {
            targets: round(targets),
            up: round(up),
            failed_scrapes: round(failed),
            counter_resets: round(resets),
            min_replicas: self.min_replicas,
        })
    }

    /// Both backends' counts and the window's health at `at`: what one tick of a
    /// fleet rollout is judged on.
    ///
    /// # Errors
    /// [`PromError`] when a query fails.
    pub async fn snapshot(
        &self,
        target: &RolloutTarget,
        epoch: SystemTime,
        window_start: SystemTime,
        at: SystemTime,
    ) -> Result<FleetSnapshot, PromError> {
        let mut counts = BTreeMap::new();
        for b in [target.stable(), target.candidate()] {
            counts.insert(b.to_owned(), self.counts(target, b, epoch, at).await?);
        }
        let health = self.health(window_start, at).await?;
        Ok(FleetSnapshot { at, counts, health })
    }
}

/// A PromQL range of whole seconds covering `[from, to]` (at least `1s`).
fn range(from: SystemTime, to: SystemTime) -> String {
    let d = to.duration_since(from).unwrap_or_default();
    format!("{}s", d.as_secs_f64().ceil().max(1.0) as u64)
}

fn round(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        // `as` saturates.
        v.round() as u64
    } else {
        0
    }
}

/// Cumulative `le` buckets → a histogram of per-bucket counts at their upper edges
/// (the `+Inf` bucket at the largest finite edge, doubled).
fn histogram(buckets: &[crate::prom::Sample]) -> LatencyHistogram {
    let mut edges: Vec<(f64, u64)> = buckets
        .iter()
        .filter_map(|s| {
            let le = s.labels.get("le")?;
            let le = match le.as_str() {
                "+Inf" => f64::INFINITY,
                x => x.parse().ok()?,
            };
            Some((le, round(s.value)))
        })
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = LatencyHistogram::default();
    let (mut below, mut last_edge) = (0u64, 0.0f64);
    for (le, cumulative) in edges {
        let n = cumulative.saturating_sub(below);
        below = below.max(cumulative);
        let at = if le.is_finite() {
            last_edge = le;
            le
        } else {
            last_edge * 2.0
        };
        if n > 0 && at.is_finite() && at >= 0.0 {
            out.record(Duration::from_secs_f64(at), n);
        }
    }
    out
}

/// What the scrapes of a window say about its figures.
///
/// A window is **trusted** only when every scrape of every replica in it succeeded
/// (`up` was 1 throughout), no counter of any replica went backwards (no restart)
/// and at least `min_replicas` targets are up now. Otherwise requests may be
/// missing from the sums — those a replica served after its last scrape before it
/// died, or during a failed scrape — and a verdict could rest on the part of the
/// traffic that happened to be seen. This follows Argo Rollouts' split between a
/// *failed* measurement and an *error* (no measurement, never a verdict) and
/// Flagger's rule that a check whose query cannot be answered halts the analysis
/// instead of advancing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetHealth {
    /// Scrape targets of the job now.
    pub targets: u64,
    /// Of which up now.
    pub up: u64,
    /// Failed scrapes (`up == 0` samples) in the window.
    pub failed_scrapes: u64,
    /// Counter resets (replica restarts) in the window.
    pub counter_resets: u64,
    /// The fewest targets that must be up.
    pub min_replicas: usize,
}

impl FleetHealth {
    /// `Ok` when the window can be judged, else why not.
    ///
    /// ```
    /// use routing_fleet::{FleetHealth, Untrusted};
    /// let h = FleetHealth { targets: 3, up: 3, failed_scrapes: 0, counter_resets: 1, min_replicas: 3 };
    /// assert_eq!(h.trusted(), Err(Untrusted::CounterReset { resets: 1 }));
    /// ```
    ///
    /// # Errors
    /// [`Untrusted`]: the first reason the window cannot be judged.
    pub fn trusted(&self) -> Result<(), Untrusted> {
        if self.up < self.min_replicas as u64 || self.up < self.targets {
            return Err(Untrusted::TargetsDown {
                up: self.up,
                targets: self.targets,
                min_replicas: self.min_replicas,
            });
        }
        if self.failed_scrapes > 0 {
            return Err(Untrusted::FailedScrapes {
                failed: self.failed_scrapes,
            });
        }
        if self.counter_resets > 0 {
            return Err(Untrusted::CounterReset {
                resets: self.counter_resets,
            });
        }
        Ok(())
    }
}

/// Why a window's figures cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// Fewer targets up than there are, or than wanted.
    #[error("{up} of {targets} scrape targets up (at least {min_replicas} wanted)")]
    TargetsDown {
        /// Up now.
        up: u64,
        /// Known now.
        targets: u64,
        /// Wanted.
        min_replicas: usize,
    },
    /// Scrapes failed during the window.
    #[error("{failed} scrapes failed in the window")]
    FailedScrapes {
        /// How many.
        failed: u64,
    },
    /// A replica's counters went back to zero (it restarted) in the window.
    #[error("{resets} counter resets (a replica restarted) in the window")]
    CounterReset {
        /// How many.
        resets: u64,
    },
}

/// The fleet's figures at one instant: cumulative counts of a rollout's two
/// backends since the epoch, and the window's [`FleetHealth`]. A
/// [`MetricsSource`] for [`Rollout::tick`](routing_rollout::Rollout::tick).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSnapshot {
    /// When the figures were evaluated.
    pub at: SystemTime,
    /// Cumulative counts per backend name.
    pub counts: BTreeMap<String, BackendCounts>,
    /// The window's health.
    pub health: FleetHealth,
}

impl MetricsSource for FleetSnapshot {
    fn backend_counts(&self, backend: &str) -> BackendCounts {
        self.counts.get(backend).cloned().unwrap_or_default()
    }
}

impl fmt::Display for FleetSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (b, c) in &self.counts {
            write!(f, "{b}: {} requests, {} errors; ", c.completed, c.errors)?;
        }
        write!(
            f,
            "{}/{} targets up, {} failed scrapes, {} resets",
            self.health.up,
            self.health.targets,
            self.health.failed_scrapes,
            self.health.counter_resets
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::Sample;

    #[test]
    fn cumulative_buckets_become_counts_at_upper_edges() {
        let s = |le: &str, v: f64| Sample {
            labels: [("le".to_owned(), le.to_owned())].into(),
            value: v,
        };
        let h = histogram(&[s("0.1", 90.0), s("+Inf", 100.0), s("0.01", 50.0)]);
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(Duration::from_millis(10)));
        assert_eq!(h.quantile(0.9), Some(Duration::from_millis(100)));
        assert_eq!(h.quantile(0.99), Some(Duration::from_millis(200)));
        assert_eq!(range(SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH), "1s");
        assert_eq!(round(-3.0), 0);
        assert_eq!(round(2.6), 3);
    }
}
