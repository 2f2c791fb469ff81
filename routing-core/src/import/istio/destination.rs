//! DestinationRules: subsets and traffic policies (load balancer, connection pool, outlier detection) in native form.

use super::*;

/// The native forms of one `trafficPolicy`'s parts.
#[derive(Default, Clone)]
pub(super) struct Policy {
    pub(super) lb: Option<Lb>,
    pub(super) pool: Option<ConnectionPoolConfig>,
}

/// A load balancer as a rule applies it.
#[derive(Clone, PartialEq)]
pub(super) struct Lb {
    pub(super) lb: Option<LoadBalancerConfig>,
    pub(super) session: Option<SessionPersistenceConfig>,
    pub(super) at: Location,
}

pub(super) struct DrEntry {
    /// The resource's name, for messages.
    pub(super) resource: String,
    pub(super) policy: Policy,
    pub(super) subsets: BTreeMap<String, Policy>,
}

#[derive(Default)]
pub(super) struct Rules {
    pub(super) by_host: BTreeMap<String, DrEntry>,
}

impl Rules {
    /// The entry for a fully qualified host: exact, else the longest wildcard.
    pub(super) fn find(&self, host: &str) -> Option<&DrEntry> {
        if let Some(e) = self.by_host.get(host) {
            return Some(e);
        }
        self.by_host
            .iter()
            .filter(|(h, _)| match h.strip_prefix('*') {
                Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
                None => false,
            })
            .max_by_key(|(h, _)| h.len())
            .map(|(_, e)| e)
    }
}

pub(super) fn destination_rules(drs: &[&Doc<'_>], out: &mut Out<'_>) -> Rules {
    let mut rules = Rules::default();
    for doc in drs {
        let ns = doc.namespace(out).to_owned();
        let cx = Ctx {
            doc,
            resource: format!("DestinationRule {ns}/{}", doc.name()),
        };
        let res: Resource<DrSpec> = match doc.parse(Some(&cx.resource)) {
            Ok(r) => r,
            Err(e) => {
                out.push_error(e);
                continue;
            }
        };
        let Some(spec) = res.spec else {
            out.error(
                cx.at("spec"),
                ImportErrorKind::Invalid("a DestinationRule needs a `spec`".into()),
            );
            continue;
        };
        if spec.host.is_empty() {
            out.error(
                cx.at("spec.host"),
                ImportErrorKind::Invalid("`host` is required".into()),
            );
            continue;
        }
        if !spec.export_to.is_empty() {
            out.warn(
                cx.at("spec.exportTo"),
                "`exportTo` (namespace visibility) is not applied in-process",
            );
        }
        if spec.workload_selector.is_some() {
            out.warn(
                cx.at("spec.workloadSelector"),
                "`workloadSelector` is not applied in-process: the rule applies to every caller",
            );
        }
        let policy = traffic_policy(spec.traffic_policy.as_ref(), &cx, "spec.trafficPolicy", out);
        let mut subsets = BTreeMap::new();
        for (i, s) in spec.subsets.iter().enumerate() {
            let p = format!("spec.subsets[{i}]");
            let sp = traffic_policy(
                s.traffic_policy.as_ref(),
                &cx,
                &format!("{p}.trafficPolicy"),
                out,
            );
            if subsets.contains_key(&s.name) {
                out.error(
                    cx.at(&format!("{p}.name")),
                    ImportErrorKind::Invalid(format!("subset `{}` is defined twice", s.name)),
                );
                continue;
            }
            subsets.insert(s.name.clone(), sp);
        }
        let host = fqdn(&spec.host, &ns);
        match rules.by_host.get_mut(&host) {
            Some(existing) => {
                // Istio merges the subsets of rules for one host; the first policy wins.
                if spec.traffic_policy.is_some() {
                    out.warn(
                        cx.at("spec.trafficPolicy"),
                        format!(
                            "{} already sets the traffic policy of `{host}`; this one is ignored (Istio keeps the first)",
                            existing.resource
                        ),
                    );
                }
                for (k, v) in subsets {
                    existing.subsets.entry(k).or_insert(v);
                }
            }
            None => {
                rules.by_host.insert(
                    host,
                    DrEntry {
                        resource: cx.resource.clone(),
                        policy,
                        subsets,
                    },
                );
            }
        }
    }
    rules
}

/// Converts a `trafficPolicy`, reporting what is not applied; outlier detection and
/// the Maglev table size go straight to the global settings.
pub(super) fn traffic_policy(
    tp: Option<&TrafficPolicy>,
    cx: &Ctx<'_, '_>,
    p: &str,
    out: &mut Out<'_>,
) -> Policy {
    let Some(tp) = tp else {
        return Policy::default();
    };
    let warn_not_applied = |out: &mut Out<'_>, field: &str, what: &str| {
        out.warn(
            cx.at(&format!("{p}.{field}")),
            format!("`{field}` ({what}) is not applied in-process"),
        );
    };
    if tp.tls.is_some() {
        warn_not_applied(out, "tls", "upstream TLS");
    }
    if !tp.port_level_settings.is_empty() {
        warn_not_applied(out, "portLevelSettings", "per-port policies");
    }
    if tp.tunnel.is_some() {
        warn_not_applied(out, "tunnel", "TCP tunnelling");
    }
    if tp.proxy_protocol.is_some() {
        warn_not_applied(out, "proxyProtocol", "upstream PROXY protocol");
    }
    if tp.retry_budget.is_some() {
        warn_not_applied(out, "retryBudget", "a per-host retry budget");
    }
    let lb = tp
        .load_balancer
        .as_ref()
        .and_then(|lb| load_balancer(lb, cx, &format!("{p}.loadBalancer"), out));
    let pool = tp
        .connection_pool
        .as_ref()
        .and_then(|cp| connection_pool(cp, cx, &format!("{p}.connectionPool"), out));
    if let Some(od) = &tp.outlier_detection {
        outlier(od, cx, &format!("{p}.outlierDetection"), out);
    }
    Policy { lb, pool }
}

pub(super) fn load_balancer(
    lb: &LoadBalancer,
    cx: &Ctx<'_, '_>,
    p: &str,
    out: &mut Out<'_>,
) -> Option<Lb> {
    if lb.locality_lb_setting.is_some() {
        out.warn(
            cx.at(&format!("{p}.localityLbSetting")),
            "`localityLbSetting` is not applied in-process (there are no localities)",
        );
    }
    if lb.warmup_duration_secs.is_some() {
        out.warn(
            cx.at(&format!("{p}.warmupDurationSecs")),
            "`warmupDurationSecs` (slow start) is not applied in-process",
        );
    }
    if lb.warmup.is_some() {
        out.warn(
            cx.at(&format!("{p}.warmup")),
            "`warmup` (slow start) is not applied in-process",
        );
    }
    let at = cx.at(p);
    match (&lb.simple, &lb.consistent_hash) {
        (Some(_), Some(_)) => {
            out.error(
                at,
                ImportErrorKind::Invalid("`simple` and `consistentHash` are exclusive".into()),
            );
            None
        }
        (Some(s), None) => {
            let sp = cx.at(&format!("{p}.simple"));
            let simple = match s.as_str() {
                "ROUND_ROBIN" => SimpleLoadBalancer::RoundRobin,
                "RANDOM" => SimpleLoadBalancer::Random,
                "LEAST_REQUEST" | "LEAST_CONN" | "UNSPECIFIED" => {
                    out.warn(
                        sp,
                        format!("`{s}` is not available in-process; weighted `random` is used (same shares, no load feedback)"),
                    );
                    SimpleLoadBalancer::Random
                }
                "PASSTHROUGH" => {
                    out.error(
                        sp,
                        ImportErrorKind::Unsupported(
                            "`PASSTHROUGH` (forward to the caller's original destination address)"
                                .into(),
                        ),
                    );
                    return None;
                }
                other => {
                    out.error(
                        sp,
                        ImportErrorKind::Invalid(format!("unknown load balancer `{other}`")),
                    );
                    return None;
                }
            };
            Some(Lb {
                lb: Some(LoadBalancerConfig {
                    simple: Some(simple),
                    consistent_hash: None,
                }),
                session: None,
                at,
            })
        }
        (None, Some(ch)) => consistent_hash(ch, cx, &format!("{p}.consistentHash"), out),
        (None, None) => None,
    }
}

pub(super) fn consistent_hash(
    ch: &ConsistentHash,
    cx: &Ctx<'_, '_>,
    p: &str,
    out: &mut Out<'_>,
) -> Option<Lb> {
    let at = cx.at(p);
    if ch.ring_hash.is_some() || ch.minimum_ring_size.is_some() {
        let f = if ch.ring_hash.is_some() {
            "ringHash"
        } else {
            "minimumRingSize"
        };
        out.warn(
            cx.at(&format!("{p}.{f}")),
            "ring hash is approximated by the weighted Maglev table (the same key still reaches the same backend)",
        );
    }
    if let Some(size) = ch.maglev.as_ref().and_then(|m| m.table_size) {
        let tp = cx.at(&format!("{p}.maglev.tableSize"));
        if crate::is_prime(size) {
            out.maglev_table_size(size, tp);
        } else {
            out.error(
                tp,
                ImportErrorKind::Invalid(format!("Maglev table size {size} is not a prime")),
            );
        }
    }
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|k| **k).count() != 1 {
        out.error(
            at,
            ImportErrorKind::Invalid(
                "`consistentHash` needs exactly one of `httpHeaderName`, `httpCookie`, `useSourceIp`, `httpQueryParameterName`".into(),
            ),
        );
        return None;
    }
    let hash = |h: HashOnConfig| LoadBalancerConfig {
        simple: None,
        consistent_hash: Some(h),
    };
    if let Some(c) = &ch.http_cookie {
        let cp = format!("{p}.httpCookie");
        if !c.attributes.is_empty() {
            out.warn(
                cx.at(&format!("{cp}.attributes")),
                "cookie `attributes` are not applied (the cookie gets the native defaults)",
            );
        }
        if let Some(ttl) = &c.ttl {
            let Ok(ttl) = duration(ttl, cx.at(&format!("{cp}.ttl")), out) else {
                return None;
            };
            return Some(Lb {
                lb: None,
                session: Some(SessionPersistenceConfig {
                    cookie: Some(CookieConfig {
                        name: c.name.clone(),
                        ttl,
                        path: c.path.clone(),
                        ..CookieConfig::default()
                    }),
                    header: None,
                }),
                at,
            });
        }
        if c.path.is_some() {
            out.warn(
                cx.at(&format!("{cp}.path")),
                "`path` only matters for a cookie the proxy issues (with `ttl`); ignored",
            );
        }
        return Some(Lb {
            lb: Some(hash(HashOnConfig {
                cookie: Some(c.name.clone()),
                ..HashOnConfig::default()
            })),
            session: None,
            at,
        });
    }
    let h = if let Some(h) = &ch.http_header_name {
        HashOnConfig {
            header: Some(h.clone()),
            ..HashOnConfig::default()
        }
    } else if let Some(q) = &ch.http_query_parameter_name {
        HashOnConfig {
            query: Some(q.clone()),
            ..HashOnConfig::default()
        }
    } else if ch.use_source_ip == Some(true) {
        HashOnConfig {
            source_ip: true,
            ..HashOnConfig::default()
        }
    } else {
        // `useSourceIp: false` and nothing else: no key.
        return None;
    };
    Some(Lb {
        lb: Some(hash(h)),
        session: None,
        at,
    })
}

pub(super) fn positive(v: Option<i64>) -> Option<u32> {
    v.filter(|n| *n > 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

pub(super) fn connection_pool(
    cp: &ConnectionPool,
    cx: &Ctx<'_, '_>,
    p: &str,
    out: &mut Out<'_>,
) -> Option<ConnectionPoolConfig> {
    let mut not_applied = Vec::new();
    if let Some(t) = &cp.tcp {
        for (set, f) in [
            (t.connect_timeout.is_some(), "connectTimeout"),
            (t.tcp_keepalive.is_some(), "tcpKeepalive"),
            (t.max_connection_duration.is_some(), "maxConnectionDuration"),
            (t.idle_timeout.is_some(), "idleTimeout"),
        ] {
            if set {
                not_applied.push(format!("tcp.{f}"));
            }
        }
    }
    if let Some(h) = &cp.http {
        for (set, f) in [
            (
                h.max_requests_per_connection.is_some(),
                "maxRequestsPerConnection",
            ),
            (h.max_retries.is_some(), "maxRetries"),
            (h.idle_timeout.is_some(), "idleTimeout"),
            (h.h2_upgrade_policy.is_some(), "h2UpgradePolicy"),
            (h.use_client_protocol.is_some(), "useClientProtocol"),
            (h.max_concurrent_streams.is_some(), "maxConcurrentStreams"),
        ] {
            if set {
                not_applied.push(format!("http.{f}"));
            }
        }
    }
    for f in not_applied {
        out.warn(
            cx.at(&format!("{p}.{f}")),
            format!("`{f}` is not applied in-process"),
        );
    }
    let http2 = positive(cp.http.as_ref().and_then(|h| h.http2_max_requests));
    let pending = positive(cp.http.as_ref().and_then(|h| h.http1_max_pending_requests));
    let tcp = positive(cp.tcp.as_ref().and_then(|t| t.max_connections));
    let max = match (http2, tcp) {
        (Some(h), _) => Some(h),
        (None, Some(t)) => {
            out.warn(
                cx.at(&format!("{p}.tcp.maxConnections")),
                format!("`maxConnections` bounds connections; here it bounds requests in flight ({t}) to each backend"),
            );
            Some(t)
        }
        (None, None) => None,
    };
    match max {
        Some(m) => Some(ConnectionPoolConfig {
            max_concurrent_requests: m,
            // Istio's default is unbounded (2^32-1).
            max_pending_requests: Some(pending.unwrap_or(u32::MAX)),
        }),
        None => {
            if pending.is_some() {
                out.warn(
                    cx.at(&format!("{p}.http.http1MaxPendingRequests")),
                    "a pending-request bound without a concurrency bound is not applied",
                );
            }
            None
        }
    }
}

pub(super) fn outlier(od: &Outlier, cx: &Ctx<'_, '_>, p: &str, out: &mut Out<'_>) {
    for (set, f, why) in [
        (
            od.min_health_percent.is_some(),
            "minHealthPercent",
            "the native panic threshold is global",
        ),
        (
            od.split_external_local_origin_errors.is_some(),
            "splitExternalLocalOriginErrors",
            "local failures always count",
        ),
        (
            od.consecutive_local_origin_failures.is_some(),
            "consecutiveLocalOriginFailures",
            "local failures always count",
        ),
    ] {
        if set {
            out.warn(
                cx.at(&format!("{p}.{f}")),
                format!("`{f}` is not applied ({why})"),
            );
        }
    }
    let count = |v: Option<i64>, f: &str, out: &mut Out<'_>| -> Option<u32> {
        let v = v?;
        match u32::try_from(v) {
            Ok(n) => Some(n),
            Err(_) => {
                out.error(
                    cx.at(&format!("{p}.{f}")),
                    ImportErrorKind::Invalid(format!(
                        "`{f}` must be a non-negative count, not {v}"
                    )),
                );
                None
            }
        }
    };
    let c5 = count(od.consecutive_5xx_errors, "consecutive5xxErrors", out);
    let gw = count(
        od.consecutive_gateway_errors,
        "consecutiveGatewayErrors",
        out,
    );
    if count(od.consecutive_errors, "consecutiveErrors", out).is_some() {
        // istio/api marks it `[deprecated=true]` (and `$hide_from_docs`); Istio's
        // `applyOutlierDetection` (pilot/pkg/networking/core/cluster_traffic_policy.go)
        // reads only `consecutive5xxErrors` and `consecutiveGatewayErrors`.
        out.warn(
            cx.at(&format!("{p}.consecutiveErrors")),
            "`consecutiveErrors` is deprecated and ignored by Istio (its outlier detection reads only \
             `consecutive5xxErrors` and `consecutiveGatewayErrors`): not applied either; \
             write `consecutiveGatewayErrors` (502/503/504, what it counted) or `consecutive5xxErrors`",
        );
    }
    let mut cfg = OutlierDetectionConfig {
        consecutive_5xx: c5,
        consecutive_gateway_errors: gw.filter(|n| *n > 0),
        ..OutlierDetectionConfig::default()
    };
    if let Some(i) = &od.interval {
        if let Ok(d) = duration(i, cx.at(&format!("{p}.interval")), out) {
            cfg.interval = d;
        }
    }
    if let Some(b) = &od.base_ejection_time {
        if let Ok(d) = duration(b, cx.at(&format!("{p}.baseEjectionTime")), out) {
            cfg.base_ejection_time = d;
        }
    }
    if let Some(m) = od.max_ejection_percent {
        if (0..=100).contains(&m) {
            cfg.max_ejection_percent = Some(m as u32);
        } else {
            out.error(
                cx.at(&format!("{p}.maxEjectionPercent")),
                ImportErrorKind::Invalid(format!(
                    "`maxEjectionPercent` must be 0 ..= 100, not {m}"
                )),
            );
        }
    }
    out.outlier_detection(cfg, cx.at(p));
}

// ---------------------------------------------------------------- VirtualServices
