//! Rule actions: weighted forward with stickiness, redirect, fixed response, and the configs an action must not carry.

use super::*;

/// The actions, by `Order`: authentication steps (warned) then one routing action,
/// which sets `rc`'s action. Returns whether it forwards.
pub(super) fn actions(
    cx: &Ctx<'_, '_>,
    p: &str,
    list: &[Action],
    rc: &mut RuleConfig,
    out: &mut Out<'_>,
) -> bool {
    let mut order: Vec<(i64, usize)> = list
        .iter()
        .enumerate()
        .map(|(j, a)| (a.order.unwrap_or(i64::MAX), j))
        .collect();
    order.sort_unstable();
    let Some(((_, last), before)) = order.split_last() else {
        cx.invalid(out, &format!("{p}.Actions"), "a rule needs an action");
        return false;
    };
    let final_kind = list.get(*last).map_or("", |a| a.kind.as_str());
    for &(_, j) in before {
        let Some(a) = list.get(j) else { continue };
        let ap = format!("{p}.Actions[{j}]");
        if !stray_configs(cx, &ap, a, out) {
            continue;
        }
        match a.kind.as_str() {
            "authenticate-oidc" | "authenticate-cognito" | "jwt-validation" => out.lossy(
                cx.at(&ap),
                format!(
                    "`{}` cannot be applied in-process: requests matching this rule would reach its \
                     `{final_kind}` action WITHOUT being authenticated; authenticate in front of this \
                     router or in the backend",
                    a.kind
                ),
            ),
            "forward" | "redirect" | "fixed-response" => cx.invalid(
                out,
                &format!("{ap}.Type"),
                format!("a `{}` action must be the last action of its rule (by `Order`)", a.kind),
            ),
            other => cx.unsupported(out, &format!("{ap}.Type"), format!("action type `{other}`")),
        }
    }
    let Some(a) = list.get(*last) else {
        return false;
    };
    let ap = format!("{p}.Actions[{last}]");
    if !stray_configs(cx, &ap, a, out) {
        return false;
    }
    match a.kind.as_str() {
        "forward" => {
            if let Some((backends, sticky)) = forward(cx, &ap, a, out) {
                rc.backends = backends;
                rc.session_persistence = sticky;
                return true;
            }
        }
        "redirect" => match &a.redirect_config {
            Some(r) => rc.redirect = redirect(cx, &format!("{ap}.RedirectConfig"), r, out),
            None => cx.invalid(out, &ap, "a `redirect` action needs `RedirectConfig`"),
        },
        "fixed-response" => match &a.fixed_response_config {
            Some(f) => {
                rc.fixed_response =
                    fixed_response(cx, &format!("{ap}.FixedResponseConfig"), f, out);
            }
            None => cx.invalid(
                out,
                &ap,
                "a `fixed-response` action needs `FixedResponseConfig`",
            ),
        },
        "authenticate-oidc" | "authenticate-cognito" | "jwt-validation" => cx.invalid(
            out,
            &format!("{ap}.Type"),
            "the last action of a rule must be `forward`, `redirect` or `fixed-response`",
        ),
        other => cx.unsupported(out, &format!("{ap}.Type"), format!("action type `{other}`")),
    }
    false
}

/// Errors for configurations that belong to another action type; whether there were
/// none.
pub(super) fn stray_configs(cx: &Ctx<'_, '_>, ap: &str, a: &Action, out: &mut Out<'_>) -> bool {
    let fields = [
        ("TargetGroupArn", a.target_group_arn.is_some(), "forward"),
        ("ForwardConfig", a.forward_config.is_some(), "forward"),
        ("RedirectConfig", a.redirect_config.is_some(), "redirect"),
        (
            "FixedResponseConfig",
            a.fixed_response_config.is_some(),
            "fixed-response",
        ),
        (
            "AuthenticateOidcConfig",
            a.authenticate_oidc_config.is_some(),
            "authenticate-oidc",
        ),
        (
            "AuthenticateCognitoConfig",
            a.authenticate_cognito_config.is_some(),
            "authenticate-cognito",
        ),
        (
            "JwtValidationConfig",
            a.jwt_validation_config.is_some(),
            "jwt-validation",
        ),
    ];
    let mut ok = true;
    for (key, here, kind) in fields {
        if here && a.kind != kind {
            cx.invalid(
                out,
                &format!("{ap}.{key}"),
                format!(
                    "`{key}` belongs to `{kind}` actions, this one is `{}`",
                    a.kind
                ),
            );
            ok = false;
        }
    }
    ok
}

/// A `forward` action → weighted native backends and, with target group stickiness,
/// cookie session persistence.
pub(super) fn forward(
    cx: &Ctx<'_, '_>,
    ap: &str,
    a: &Action,
    out: &mut Out<'_>,
) -> Option<(Vec<WeightedBackendConfig>, Option<SessionPersistenceConfig>)> {
    let before = out.error_count();
    // (ARN, weight, path of the ARN)
    let mut groups: Vec<(&str, u64, String)> = Vec::new();
    match (&a.forward_config, a.target_group_arn.as_deref()) {
        (Some(fc), single) => {
            let fp = format!("{ap}.ForwardConfig");
            if fc.target_groups.is_empty() {
                cx.invalid(out, &format!("{fp}.TargetGroups"), "no target groups");
                return None;
            }
            if let Some(arn) = single {
                let same =
                    matches!(fc.target_groups.as_slice(), [one] if one.target_group_arn == arn);
                if !same {
                    cx.invalid(
                        out,
                        &format!("{ap}.TargetGroupArn"),
                        "with both `TargetGroupArn` and `ForwardConfig`, `ForwardConfig` must name just that target group",
                    );
                    return None;
                }
            }
            for (k, tg) in fc.target_groups.iter().enumerate() {
                let tp = format!("{fp}.TargetGroups[{k}]");
                let w = tg.weight.unwrap_or(1);
                let Some(w) = u64::try_from(w).ok().filter(|w| *w <= 999) else {
                    cx.invalid(
                        out,
                        &format!("{tp}.Weight"),
                        format!("weight {w} is outside 0..=999"),
                    );
                    continue;
                };
                if let Some((_, _, first)) = groups.iter().find(|g| g.0 == tg.target_group_arn) {
                    cx.invalid(
                        out,
                        &format!("{tp}.TargetGroupArn"),
                        format!("this target group is already listed at `{first}`"),
                    );
                    continue;
                }
                groups.push((&tg.target_group_arn, w, format!("{tp}.TargetGroupArn")));
            }
            if out.error_count() == before && groups.iter().all(|g| g.1 == 0) {
                cx.invalid(
                    out,
                    &format!("{fp}.TargetGroups"),
                    "every target group has weight 0: no target group can receive requests",
                );
            }
        }
        (None, Some(arn)) => groups.push((arn, 1, format!("{ap}.TargetGroupArn"))),
        (None, None) => {
            cx.invalid(
                out,
                ap,
                "a `forward` action needs `TargetGroupArn` or `ForwardConfig`",
            );
            return None;
        }
    }
    // Resolve; target groups that map to one native backend add up.
    let mut backends: Vec<WeightedBackendConfig> = Vec::new();
    for (arn, weight, path) in &groups {
        let Some(tg) = target_group_name(arn) else {
            cx.invalid(
                out,
                path,
                format!("`{arn}` is not a target group ARN (`arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`)"),
            );
            continue;
        };
        let Some(name) = out.backend(&[(*arn).to_owned(), tg.to_owned()], tg, &cx.at(path)) else {
            continue;
        };
        match backends.iter_mut().find(|b| b.name == name) {
            Some(b) => b.weight = b.weight.saturating_add(*weight),
            None => backends.push(WeightedBackendConfig::new(name, *weight)),
        }
    }
    let sticky = a
        .forward_config
        .as_ref()
        .and_then(|fc| fc.target_group_stickiness_config.as_ref())
        .filter(|s| s.enabled == Some(true))
        .and_then(|s| {
            let sp = format!("{ap}.ForwardConfig.TargetGroupStickinessConfig.DurationSeconds");
            match s.duration_seconds {
                Some(d) if (1..=MAX_STICKY_SECONDS).contains(&d) => {
                    let alb = out.options.alb_cookie_beats_weight;
                    if !alb && groups.len() > 1 {
                        out.warn(
                            cx.at(&format!("{ap}.ForwardConfig.TargetGroupStickinessConfig")),
                            "ALB keeps a sticky session on its target group even when that group's weight is 0 \
                             (cookies beat weights); imported with the library's semantics instead: a group set \
                             to weight 0 is drained at once and its sessions re-pinned. Import with \
                             `--alb-stickiness alb` (ImportOptions::with_alb_cookie_beats_weight) for ALB's",
                        );
                    }
                    Some(SessionPersistenceConfig {
                        cookie: Some(CookieConfig {
                            name: STICKY_COOKIE.to_owned(),
                            ttl: Some(to_config_duration(Duration::from_secs(d.unsigned_abs()))),
                            keep_at_zero_weight: alb,
                            ..CookieConfig::default()
                        }),
                        header: None,
                    })
                }
                Some(d) => {
                    cx.invalid(out, &sp, format!("{d} seconds is outside 1..=604800"));
                    None
                }
                None => {
                    cx.invalid(out, &sp, "enabled stickiness needs `DurationSeconds`");
                    None
                }
            }
        });
    (out.error_count() == before).then_some((backends, sticky))
}

/// Whether a redirect component keeps the request's value.
pub(super) fn keeps(v: Option<&str>, placeholder: &str) -> bool {
    v.is_none_or(|v| v == placeholder)
}

/// A `redirect` action.
pub(super) fn redirect(
    cx: &Ctx<'_, '_>,
    rp: &str,
    r: &Redirect,
    out: &mut Out<'_>,
) -> Option<RedirectConfig> {
    let before = out.error_count();
    let mut cfg = RedirectConfig::default();
    let mixed = |out: &mut Out<'_>, field: &str, v: &str| {
        cx.unsupported(
            out,
            &format!("{rp}.{field}"),
            format!("`{v}` splices request values (`#{{…}}`) into text; native redirects replace a component whole"),
        );
    };
    if !keeps(r.protocol.as_deref(), "#{protocol}") {
        let v = r.protocol.as_deref().unwrap_or_default();
        match v.to_ascii_lowercase().as_str() {
            s @ ("http" | "https") => cfg.scheme = Some(s.to_owned()),
            _ => cx.invalid(
                out,
                &format!("{rp}.Protocol"),
                format!("protocol `{v}` (expected HTTP, HTTPS or #{{protocol}})"),
            ),
        }
    }
    if keeps(r.port.as_deref(), "#{port}") {
        if cfg.scheme.is_some() {
            cx.unsupported(
                out,
                &format!("{rp}.Port"),
                "a literal `Protocol` with `Port` `#{port}` keeps the listener's port under the new protocol; \
                 native redirects then use the new scheme's default port: set `Port` explicitly",
            );
        }
    } else {
        let v = r.port.as_deref().unwrap_or_default();
        match v.parse::<u16>().ok().filter(|p| *p > 0) {
            Some(port) => cfg.port = Some(port),
            None => cx.invalid(
                out,
                &format!("{rp}.Port"),
                format!("port `{v}` (expected 1..=65535 or #{{port}})"),
            ),
        }
    }
    if !keeps(r.host.as_deref(), "#{host}") {
        let v = r.host.as_deref().unwrap_or_default();
        if v.contains("#{") {
            mixed(out, "Host", v);
        } else {
            cfg.hostname = Some(v.to_ascii_lowercase());
        }
    }
    if !keeps(r.path.as_deref(), "/#{path}") {
        let v = r.path.as_deref().unwrap_or_default();
        if v.contains("#{") {
            mixed(out, "Path", v);
        } else {
            cfg.path = Some(PathModifierConfig {
                full: Some(v.to_owned()),
                prefix: None,
            });
        }
    }
    if !keeps(r.query.as_deref(), "#{query}") {
        cx.unsupported(
            out,
            &format!("{rp}.Query"),
            format!(
                "query `{}`: native redirects keep the request's query unchanged (only `#{{query}}` is expressible)",
                r.query.as_deref().unwrap_or_default()
            ),
        );
    }
    cfg.status = match r.status_code.as_str() {
        "HTTP_301" => Some(301),
        "HTTP_302" => Some(302),
        other => {
            cx.invalid(
                out,
                &format!("{rp}.StatusCode"),
                format!("status `{other}` (expected HTTP_301 or HTTP_302)"),
            );
            None
        }
    };
    (out.error_count() == before).then_some(cfg)
}

/// A `fixed-response` action.
pub(super) fn fixed_response(
    cx: &Ctx<'_, '_>,
    fp: &str,
    f: &FixedResponse,
    out: &mut Out<'_>,
) -> Option<FixedResponseConfig> {
    let status = f
        .status_code
        .parse::<u16>()
        .ok()
        .filter(|s| matches!(s / 100, 2 | 4 | 5));
    let Some(status) = status else {
        cx.invalid(
            out,
            &format!("{fp}.StatusCode"),
            format!(
                "status `{}` (expected a 2XX, 4XX or 5XX code)",
                f.status_code
            ),
        );
        return None;
    };
    Some(FixedResponseConfig {
        status,
        body: f.message_body.clone(),
        headers: f
            .content_type
            .iter()
            .map(|ct| ("content-type".to_owned(), ct.clone()))
            .collect(),
    })
}
