//! A rule's actions and filters: redirect, direct response, header operations, retries, fault, mirror.

use super::*;

pub(super) fn redirect(
    r: &Redirect,
    rp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<RedirectConfig> {
    let at = |f: &str| v.cx.at(&format!("{rp}.{f}"));
    let status = r.redirect_code.unwrap_or(301);
    let status = match status {
        0 => 301,
        301 | 302 | 303 | 307 | 308 => status,
        other => {
            out.error(
                at("redirectCode"),
                ImportErrorKind::Unsupported(format!(
                    "redirect code {other} (301, 302, 303, 307 and 308 are supported)"
                )),
            );
            return None;
        }
    };
    let scheme = r.scheme.clone().filter(|s| !s.is_empty());
    if let Some(s) = &scheme {
        if s != "http" && s != "https" {
            out.error(
                at("scheme"),
                ImportErrorKind::Unsupported(format!("redirect scheme `{s}`")),
            );
            return None;
        }
    }
    if r.port.is_some() && r.derive_port.is_some() {
        out.error(
            v.cx.at(rp),
            ImportErrorKind::Invalid("`port` and `derivePort` are exclusive".into()),
        );
        return None;
    }
    let mut port = match r.port {
        Some(p) => match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                out.error(
                    at("port"),
                    ImportErrorKind::Invalid(format!("port {p} is outside 1 ..= 65535")),
                );
                return None;
            }
        },
        None => None,
    };
    match r.derive_port.as_deref() {
        None | Some("FROM_PROTOCOL_DEFAULT" | "FROM_REQUEST_PORT") => {}
        Some(other) => {
            out.error(
                at("derivePort"),
                ImportErrorKind::Invalid(format!("unknown `derivePort` `{other}`")),
            );
            return None;
        }
    }
    // Istio leaves out the default port of the scheme.
    if matches!(
        (port, scheme.as_deref()),
        (Some(80), Some("http")) | (Some(443), Some("https"))
    ) {
        port = None;
    }
    Some(RedirectConfig {
        scheme,
        hostname: r.authority.clone().filter(|a| !a.is_empty()),
        port,
        path: r
            .uri
            .clone()
            .filter(|u| !u.is_empty())
            .map(|u| PathModifierConfig {
                full: Some(u),
                prefix: None,
            }),
        status: Some(status as u16),
    })
}

pub(super) fn direct_response(
    d: &DirectResponse,
    dp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<FixedResponseConfig> {
    let status = match u16::try_from(d.status) {
        Ok(s) if (200..=599).contains(&s) => s,
        _ => {
            out.error(
                v.cx.at(&format!("{dp}.status")),
                ImportErrorKind::Invalid(format!("status {} is outside 200 ..= 599", d.status)),
            );
            return None;
        }
    };
    let body = match &d.body {
        None => None,
        Some(Body {
            string: Some(_),
            bytes: Some(_),
        }) => {
            out.error(
                v.cx.at(&format!("{dp}.body")),
                ImportErrorKind::Invalid("`string` and `bytes` are exclusive".into()),
            );
            return None;
        }
        Some(Body {
            string: Some(s), ..
        }) => Some(s.clone()),
        Some(Body { bytes: Some(b), .. }) => {
            let at = v.cx.at(&format!("{dp}.body.bytes"));
            match base64_decode(b).map(String::from_utf8) {
                Some(Ok(s)) => Some(s),
                Some(Err(_)) => {
                    out.error(
                        at,
                        ImportErrorKind::Unsupported("a body that is not UTF-8 text".into()),
                    );
                    return None;
                }
                None => {
                    out.error(at, ImportErrorKind::Invalid("`bytes` is not base64".into()));
                    return None;
                }
            }
        }
        Some(_) => None,
    };
    Some(FixedResponseConfig {
        status,
        body,
        headers: BTreeMap::new(),
    })
}

pub(super) fn header_ops(
    hs: &Headers,
    hp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
    filters: &mut FiltersConfig,
) {
    let convert = |ops: &HeaderOps, side: &str, request: bool, out: &mut Out<'_>| {
        let sp = format!("{hp}.{side}");
        let mut m = HeaderModifierConfig::default();
        let mut authority = None;
        for (field, map) in [("add", &ops.add), ("set", &ops.set)] {
            for (name, value) in map {
                let is_authority =
                    name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority");
                if is_authority && request {
                    // `set` is read last and wins, as in Istio.
                    authority = Some(value.clone());
                    continue;
                }
                if is_authority || name.starts_with(':') {
                    out.warn(
                        v.cx.at(&format!("{sp}.{field}.{name}")),
                        format!("`{name}` cannot be changed here; ignored (as Istio does)"),
                    );
                    continue;
                }
                let hv = HeaderValueConfig {
                    name: name.clone(),
                    value: value.clone(),
                };
                if field == "set" {
                    m.set.push(hv);
                } else {
                    m.add.push(hv);
                }
            }
        }
        for (k, name) in ops.remove.iter().enumerate() {
            if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                out.warn(
                    v.cx.at(&format!("{sp}.remove[{k}]")),
                    format!("`{name}` cannot be removed; ignored (as Istio does)"),
                );
                continue;
            }
            m.remove.push(name.clone());
        }
        (m, authority)
    };
    let merge = |slot: &mut Option<HeaderModifierConfig>, m: HeaderModifierConfig| {
        if m == HeaderModifierConfig::default() {
            return;
        }
        let s = slot.get_or_insert_with(Default::default);
        s.set.extend(m.set);
        s.add.extend(m.add);
        s.remove.extend(m.remove);
    };
    if let Some(req) = &hs.request {
        let (m, authority) = convert(req, "request", true, out);
        merge(&mut filters.request_headers, m);
        if let Some(a) = authority {
            let rw = filters.url_rewrite.get_or_insert_with(Default::default);
            if rw.hostname.is_none() {
                rw.hostname = Some(a);
            }
        }
    }
    if let Some(resp) = &hs.response {
        let (m, _) = convert(resp, "response", false, out);
        merge(&mut filters.response_headers, m);
    }
}

pub(super) fn retries(
    r: &Retry,
    rp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
    timeouts: &mut TimeoutsConfig,
) -> Option<RetryConfig> {
    let at = |f: &str| v.cx.at(&format!("{rp}.{f}"));
    if r.retry_remote_localities.is_some() {
        out.warn(
            at("retryRemoteLocalities"),
            "`retryRemoteLocalities` is not applied in-process (there are no localities)",
        );
    }
    if r.retry_ignore_previous_hosts.is_some() {
        out.warn(
            at("retryIgnorePreviousHosts"),
            "`retryIgnorePreviousHosts` is not applied: a retry picks its backend as a first try does",
        );
    }
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        out.error(
            at("attempts"),
            ImportErrorKind::Invalid(format!("attempts {attempts} is negative")),
        );
        return None;
    }
    if attempts == 0 {
        return None;
    }
    if attempts > 10 {
        out.error(
            at("attempts"),
            ImportErrorKind::Unsupported(format!("{attempts} retry attempts (at most 10)")),
        );
        return None;
    }
    if let Some(t) = &r.per_try_timeout {
        if let Ok(d) = duration(t, at("perTryTimeout"), out) {
            timeouts.per_try = d;
        }
    }
    let mut backoff = None;
    if let Some(b) = &r.backoff {
        if let Ok(d) = duration(b, at("backoff"), out) {
            backoff = d;
        }
    }
    let mut on: Vec<RetryOn> = Vec::new();
    let mut codes: Vec<u16> = Vec::new();
    let mut ignored: Vec<String> = Vec::new();
    let push = |on: &mut Vec<RetryOn>, c: RetryOn| {
        if !on.contains(&c) {
            on.push(c);
        }
    };
    let spec = r
        .retry_on
        .clone()
        .filter(|s| !s.trim().is_empty())
        // Istio's default conditions when `retryOn` is unset.
        .unwrap_or_else(|| "connect-failure,refused-stream,unavailable,cancelled,503".into());
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match part {
            "5xx" => push(&mut on, RetryOn::ServerError),
            "gateway-error" => push(&mut on, RetryOn::GatewayError),
            "reset" => push(&mut on, RetryOn::Reset),
            "connect-failure" => push(&mut on, RetryOn::ConnectFailure),
            "retriable-status-codes" => push(&mut on, RetryOn::RetriableStatusCodes),
            "cancelled" => push(&mut on, RetryOn::Cancelled),
            "deadline-exceeded" => push(&mut on, RetryOn::DeadlineExceeded),
            "internal" => push(&mut on, RetryOn::Internal),
            "resource-exhausted" => push(&mut on, RetryOn::ResourceExhausted),
            "unavailable" => push(&mut on, RetryOn::Unavailable),
            "refused-stream"
            | "retriable-4xx"
            | "envoy-ratelimited"
            | "retriable-headers"
            | "reset-before-request"
            | "http3-post-connect-failure" => {
                ignored.push(part.to_owned());
            }
            n => match n.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => {
                    push(&mut on, RetryOn::RetriableStatusCodes);
                    if !codes.contains(&c) {
                        codes.push(c);
                    }
                }
                _ => {
                    out.error(
                        at("retryOn"),
                        ImportErrorKind::Invalid(format!("unknown retry condition `{n}`")),
                    );
                    return None;
                }
            },
        }
    }
    if !ignored.is_empty() {
        out.warn(
            at("retryOn"),
            format!(
                "retry conditions without a native equivalent are not applied: {}",
                ignored.join(", ")
            ),
        );
    }
    if on.is_empty() {
        // Nothing applicable left: retrying on nothing is no retry.
        return None;
    }
    Some(RetryConfig {
        attempts: attempts as u32,
        on,
        status_codes: codes,
        backoff,
        ..RetryConfig::default()
    })
}

pub(super) fn fault(
    f: &Fault,
    fp: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<FaultConfig> {
    let at = |x: &str| v.cx.at(&format!("{fp}.{x}"));
    let mut cfg = FaultConfig::default();
    if let Some(d) = &f.delay {
        if d.exponential_delay.is_some() {
            out.error(
                at("delay.exponentialDelay"),
                ImportErrorKind::Unsupported("`exponentialDelay`".into()),
            );
            return None;
        }
        let Some(fixed) = &d.fixed_delay else {
            out.error(
                at("delay"),
                ImportErrorKind::Invalid("`delay` needs `fixedDelay`".into()),
            );
            return None;
        };
        let Ok(dur) = duration(fixed, at("delay.fixedDelay"), out) else {
            return None;
        };
        let percent = percent_value(d.percentage, d.percent);
        if let Some(fixed) = dur {
            cfg.delay = Some(FaultDelayConfig { fixed, percent });
        }
    }
    if let Some(a) = &f.abort {
        if a.grpc_status.is_some() || a.http2_error.is_some() {
            let field = if a.grpc_status.is_some() {
                "grpcStatus"
            } else {
                "http2Error"
            };
            out.error(
                at(&format!("abort.{field}")),
                ImportErrorKind::Unsupported(format!("`abort.{field}` (only HTTP status aborts)")),
            );
            return None;
        }
        let Some(status) = a.http_status else {
            out.error(
                at("abort"),
                ImportErrorKind::Invalid("`abort` needs `httpStatus`".into()),
            );
            return None;
        };
        let status = match u16::try_from(status) {
            Ok(s) if (200..=599).contains(&s) => s,
            _ => {
                out.error(
                    at("abort.httpStatus"),
                    ImportErrorKind::Invalid(format!("status {status} is outside 200 ..= 599")),
                );
                return None;
            }
        };
        cfg.abort = Some(FaultAbortConfig {
            status,
            percent: a.percentage.map(|p| p.value),
        });
    }
    (cfg != FaultConfig::default()).then_some(cfg)
}

pub(super) fn mirror(
    h: &HttpRoute,
    p: &str,
    v: &VsCtx<'_, '_, '_>,
    out: &mut Out<'_>,
) -> Option<MirrorConfig> {
    let mut all: Vec<(Destination, String, Option<f64>)> = Vec::new();
    if let Some(m) = &h.mirror {
        let pct = match (h.mirror_percentage, h.mirror_percent) {
            (Some(pc), _) => Some(pc.value),
            (None, Some(n)) => Some(f64::from(n)),
            (None, None) => None,
        };
        all.push((m.clone(), format!("{p}.mirror"), pct));
    }
    for (k, m) in h.mirrors.iter().enumerate() {
        all.push((
            m.destination.clone(),
            format!("{p}.mirrors[{k}].destination"),
            m.percentage.map(|pc| pc.value),
        ));
    }
    let mut iter = all.into_iter();
    let (dest, dp, pct) = iter.next()?;
    for (_, extra, _) in iter {
        out.warn(
            v.cx.at(&extra),
            "only one mirror is applied natively; this one is ignored",
        );
    }
    if pct == Some(0.0) {
        // An explicit 0 turns mirroring off.
        return None;
    }
    let (backend, _) = backend(&dest, &dp, v, out)?;
    Some(MirrorConfig {
        backend,
        percent: pct,
    })
}
