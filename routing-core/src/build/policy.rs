//! Building a rule's policy: filters, rewrites, redirects, fixed responses, timeouts,
//! retries, faults, mirrors and session persistence.

use super::*;

/// Largest request body a retry may buffer for replay (`retry.max_body_bytes`): each
/// buffered request holds this much memory until it completes.
pub(super) const MAX_REPLAY_BODY: u64 = 16 << 20;

impl Builder<'_> {
    pub(super) fn path_modifier(
        &mut self,
        pm: &PathModifierConfig,
        p: &str,
        all_prefix: bool,
    ) -> Option<PathModifier> {
        if !exactly_one(&[pm.full.is_some(), pm.prefix.is_some()]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["full", "prefix"],
                },
            );
            return None;
        }
        if let Some(f) = &pm.full {
            return self
                .request_path(f, format!("{p}.full"))
                .then(|| PathModifier::Full(f.clone()));
        }
        let pre = pm.prefix.as_deref().unwrap_or_default();
        if !self.request_path(pre, format!("{p}.prefix")) {
            return None;
        }
        if !all_prefix {
            self.errs.push(
                format!("{p}.prefix"),
                K::Conflict {
                    reason:
                        "a prefix replacement needs every match of the rule to be a path prefix",
                },
            );
            return None;
        }
        Some(PathModifier::Prefix(pre.to_owned()))
    }

    pub(super) fn header_modifier(&mut self, hm: &HeaderModifierConfig, p: &str) -> HeaderModifier {
        let pairs = |this: &mut Self, list: &[HeaderValueConfig], field: &str| {
            let mut out = Vec::new();
            for (k, hv) in list.iter().enumerate() {
                let hp = format!("{p}.{field}[{k}]");
                let n = this.header_name(&hv.name, format!("{hp}.name"));
                let v = this.header_value(&hv.value, format!("{hp}.value"));
                if let (Some(n), Some(v)) = (n, v) {
                    out.push((n, v));
                }
            }
            out
        };
        let set = pairs(self, &hm.set, "set");
        let add = pairs(self, &hm.add, "add");
        let remove = hm
            .remove
            .iter()
            .enumerate()
            .filter_map(|(k, n)| self.header_name(n, format!("{p}.remove[{k}]")))
            .collect();
        HeaderModifier { set, add, remove }
    }

    pub(super) fn url_rewrite(
        &mut self,
        u: &UrlRewriteConfig,
        up: &str,
        all_prefix: bool,
    ) -> Option<UrlRewrite> {
        if u.hostname.is_none() && u.path.is_none() {
            self.errs.push(
                up,
                K::AtLeastOne {
                    fields: &["hostname", "path"],
                },
            );
        }
        if let Some(h) = &u.hostname {
            if let Err(reason) = check_hostname(h, false) {
                self.errs.push(
                    format!("{up}.hostname"),
                    K::InvalidHostname {
                        host: h.clone(),
                        reason,
                    },
                );
            }
        }
        let path = u
            .path
            .as_ref()
            .and_then(|pm| self.path_modifier(pm, &format!("{up}.path"), all_prefix));
        Some(UrlRewrite {
            hostname: u.hostname.clone(),
            path,
        })
    }

    /// The filters of one backend of a rule (`all_prefix`: whether every match of
    /// the rule is a path prefix, for prefix rewrites and redirects).
    pub(super) fn backend_filters(
        &mut self,
        f: &BackendFiltersConfig,
        p: &str,
        all_prefix: bool,
    ) -> BackendFilters {
        let answers = [f.redirect.is_some(), f.fixed_response.is_some()];
        if answers.iter().filter(|a| **a).count() > 1 {
            self.errs.push(
                p,
                K::Conflict {
                    reason: "a backend answers with at most one of `redirect` and `fixed_response`",
                },
            );
        }
        if f.url_rewrite.is_some() && answers.contains(&true) {
            self.errs.push(
                format!("{p}.url_rewrite"),
                K::Conflict {
                    reason: "a backend that answers with a redirect or a fixed response is never forwarded to, so it cannot rewrite",
                },
            );
        }
        BackendFilters {
            request_headers: f
                .request_headers
                .as_ref()
                .map_or_else(HeaderModifier::default, |h| {
                    self.header_modifier(h, &format!("{p}.request_headers"))
                }),
            response_headers: f
                .response_headers
                .as_ref()
                .map_or_else(HeaderModifier::default, |h| {
                    self.header_modifier(h, &format!("{p}.response_headers"))
                }),
            url_rewrite: f
                .url_rewrite
                .as_ref()
                .and_then(|u| self.url_rewrite(u, &format!("{p}.url_rewrite"), all_prefix)),
            redirect: f
                .redirect
                .as_ref()
                .and_then(|r| self.redirect(r, &format!("{p}.redirect"), all_prefix)),
            fixed_response: f
                .fixed_response
                .as_ref()
                .and_then(|r| self.fixed_response(r, &format!("{p}.fixed_response"))),
        }
    }

    pub(super) fn redirect(
        &mut self,
        r: &RedirectConfig,
        p: &str,
        all_prefix: bool,
    ) -> Option<Redirect> {
        let before = self.errs.len();
        if let Some(s) = &r.scheme {
            if s != "http" && s != "https" {
                self.errs.push(
                    format!("{p}.scheme"),
                    K::InvalidHttp {
                        what: "scheme (`http` or `https`)",
                        value: s.clone(),
                    },
                );
            }
        }
        if let Some(h) = &r.hostname {
            if let Err(reason) = check_hostname(h, false) {
                self.errs.push(
                    format!("{p}.hostname"),
                    K::InvalidHostname {
                        host: h.clone(),
                        reason,
                    },
                );
            }
        }
        let path = r
            .path
            .as_ref()
            .and_then(|pm| self.path_modifier(pm, &format!("{p}.path"), all_prefix));
        let status = r.status.unwrap_or(302);
        if ![301, 302, 303, 307, 308].contains(&status) {
            self.errs.push(
                format!("{p}.status"),
                K::OutOfRange {
                    value: status.to_string(),
                    allowed: "301, 302, 303, 307 or 308",
                },
            );
        }
        if self.errs.len() != before {
            return None;
        }
        Some(Redirect {
            scheme: r.scheme.clone(),
            hostname: r.hostname.clone(),
            port: r.port,
            path,
            status: StatusCode::from_u16(status).ok()?,
        })
    }

    pub(super) fn fixed_response(
        &mut self,
        f: &FixedResponseConfig,
        p: &str,
    ) -> Option<FixedResponse> {
        let status = match StatusCode::from_u16(f.status) {
            Ok(s) if (100..=599).contains(&f.status) => Some(s),
            _ => {
                self.errs.push(
                    format!("{p}.status"),
                    K::OutOfRange {
                        value: f.status.to_string(),
                        allowed: "100 to 599",
                    },
                );
                None
            }
        };
        let mut headers = HeaderMap::new();
        for (n, v) in &f.headers {
            let name = self.header_name(n, format!("{p}.headers.{n}"));
            let value = self.header_value(v, format!("{p}.headers.{n}"));
            if let (Some(n), Some(v)) = (name, value) {
                headers.append(n, v);
            }
        }
        Some(FixedResponse {
            status: status?,
            body: f.body.clone().unwrap_or_default(),
            headers,
        })
    }

    /// Reports `field` when it is set on a rule that does not forward.
    pub(super) fn only_forwarding(&mut self, forwards: bool, set: bool, p: &str, field: &str) {
        if set && !forwards {
            self.errs.push(
                format!("{p}.{field}"),
                K::Conflict {
                    reason: "only rules that forward to `backends` can have this",
                },
            );
        }
    }

    /// The rule's policy; errors come in the order of the fields in `RuleConfig`.
    pub(super) fn policy(
        &mut self,
        rc: &RuleConfig,
        p: &str,
        all_prefix: bool,
        forwards: bool,
    ) -> Policy {
        let mut policy = Policy::default();
        if let Some(f) = &rc.filters {
            let fp = format!("{p}.filters");
            if let Some(h) = &f.request_headers {
                policy.request_headers = self.header_modifier(h, &format!("{fp}.request_headers"));
            }
            if let Some(h) = &f.response_headers {
                policy.response_headers =
                    self.header_modifier(h, &format!("{fp}.response_headers"));
            }
            if let Some(u) = &f.url_rewrite {
                policy.url_rewrite = self.url_rewrite(u, &format!("{fp}.url_rewrite"), all_prefix);
            }
            if let Some(c) = &f.cors {
                policy.cors = self.cors(c, &format!("{fp}.cors"));
            }
        }
        if let Some(t) = &rc.timeouts {
            policy.timeouts = Timeouts {
                request: t.request.map(ConfigDuration::as_duration),
                per_try: t.per_try.map(ConfigDuration::as_duration),
            };
            if let (Some(r), Some(pt)) = (policy.timeouts.request, policy.timeouts.per_try) {
                if !r.is_zero() && pt > r {
                    self.errs.push(
                        format!("{p}.timeouts.per_try"),
                        K::Conflict {
                            reason: "`per_try` must not be longer than `request`",
                        },
                    );
                }
            }
        }
        self.only_forwarding(forwards, rc.retry.is_some(), p, "retry");
        if let Some(r) = &rc.retry {
            let rp = format!("{p}.retry");
            if !(1..=10).contains(&r.attempts) {
                self.errs.push(
                    format!("{rp}.attempts"),
                    K::OutOfRange {
                        value: r.attempts.to_string(),
                        allowed: "1 to 10",
                    },
                );
            }
            let mut status_codes = Vec::new();
            for (k, &s) in r.status_codes.iter().enumerate() {
                match StatusCode::from_u16(s) {
                    Ok(code) if (100..=599).contains(&s) => status_codes.push(code),
                    _ => self.errs.push(
                        format!("{rp}.status_codes[{k}]"),
                        K::OutOfRange {
                            value: s.to_string(),
                            allowed: "100 to 599",
                        },
                    ),
                }
            }
            let on = if r.on.is_empty() {
                vec![
                    RetryOn::ServerError,
                    RetryOn::Reset,
                    RetryOn::ConnectFailure,
                ]
            } else {
                r.on.clone()
            };
            if on.contains(&RetryOn::RetriableStatusCodes) && status_codes.is_empty() {
                self.errs.push(
                    format!("{rp}.status_codes"),
                    K::Conflict {
                        reason: "`retriable-status-codes` needs at least one status code",
                    },
                );
            }
            if let Some(n) = r.max_body_bytes.filter(|&n| n > MAX_REPLAY_BODY) {
                self.errs.push(
                    format!("{rp}.max_body_bytes"),
                    K::OutOfRange {
                        value: n.to_string(),
                        allowed: "0 ..= 16777216 (16 MiB: a replay buffer is held per request)",
                    },
                );
            }
            let budget_ratio = self
                .percent(
                    r.budget_percent.unwrap_or(20.0),
                    format!("{rp}.budget_percent"),
                )
                .unwrap_or(0.2);
            policy.retry = Some(RetryPolicy {
                attempts: r.attempts,
                on,
                status_codes,
                backoff: r.backoff.map_or(
                    std::time::Duration::from_millis(25),
                    ConfigDuration::as_duration,
                ),
                max_body_bytes: r.max_body_bytes.unwrap_or(64 * 1024),
                budget_ratio,
                budget_min_per_second: r.budget_min_per_second.unwrap_or(10),
                non_idempotent: r.non_idempotent.unwrap_or(false),
            });
        }
        if let Some(f) = &rc.fault {
            let fp = format!("{p}.fault");
            if f.delay.is_none() && f.abort.is_none() {
                self.errs.push(
                    &*fp,
                    K::AtLeastOne {
                        fields: &["delay", "abort"],
                    },
                );
            }
            let delay = f.delay.as_ref().and_then(|d| {
                let frac =
                    self.percent(d.percent.unwrap_or(100.0), format!("{fp}.delay.percent"))?;
                Some((d.fixed.as_duration(), frac))
            });
            let abort = f.abort.as_ref().and_then(|a| {
                let frac = self.percent(a.percent.unwrap_or(100.0), format!("{fp}.abort.percent"));
                let status = match StatusCode::from_u16(a.status) {
                    Ok(s) if (200..=599).contains(&a.status) => Some(s),
                    _ => {
                        self.errs.push(
                            format!("{fp}.abort.status"),
                            K::OutOfRange {
                                value: a.status.to_string(),
                                allowed: "200 to 599",
                            },
                        );
                        None
                    }
                };
                Some((status?, frac?))
            });
            let headers = self.header_matches(&f.headers, &fp);
            policy.fault = Some(FaultPolicy {
                delay,
                abort,
                headers,
            });
        }
        self.only_forwarding(forwards, rc.mirror.is_some(), p, "mirror");
        self.only_forwarding(forwards, !rc.mirrors.is_empty(), p, "mirrors");
        let further = rc
            .mirrors
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("{p}.mirrors[{i}]"), m));
        for (k, (mp, m)) in rc
            .mirror
            .iter()
            .map(|m| (format!("{p}.mirror"), m))
            .chain(further)
            .enumerate()
        {
            let id = self.backend_ref(&m.backend, format!("{mp}.backend"));
            let frac = self.percent(m.percent.unwrap_or(100.0), format!("{mp}.percent"));
            if let (Some(backend), Some(fraction)) = (id, frac) {
                if k == 0 && rc.mirror.is_some() {
                    policy.mirror = Some(Mirror { backend, fraction });
                } else {
                    policy.mirrors.push(Mirror { backend, fraction });
                }
            }
        }
        self.only_forwarding(
            forwards,
            rc.session_persistence.is_some(),
            p,
            "session_persistence",
        );
        if let Some(sp) = &rc.session_persistence {
            policy.session_persistence =
                self.session_persistence(sp, &format!("{p}.session_persistence"));
        }
        policy
    }

    pub(super) fn session_persistence(
        &mut self,
        sp: &SessionPersistenceConfig,
        p: &str,
    ) -> Option<SessionPersistence> {
        if !exactly_one(&[sp.cookie.is_some(), sp.header.is_some()]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["cookie", "header"],
                },
            );
            return None;
        }
        if let Some(h) = &sp.header {
            return self
                .header_name(h, format!("{p}.header"))
                .map(SessionPersistence::Header);
        }
        let c = sp.cookie.as_ref()?;
        let cp = format!("{p}.cookie");
        let token_ok = !c.name.is_empty()
            && c.name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
        if !token_ok {
            self.errs.push(
                format!("{cp}.name"),
                K::InvalidHttp {
                    what: "cookie name",
                    value: c.name.clone(),
                },
            );
        }
        let path = c.path.clone().unwrap_or_else(|| "/".to_owned());
        let mut path_ok = self.request_path(&path, format!("{cp}.path"));
        if path_ok && path.contains(';') {
            // RFC 6265 `path-value` excludes `;`: it would inject cookie attributes.
            self.errs.push(
                format!("{cp}.path"),
                K::InvalidPath {
                    path: path.clone(),
                    reason: "a cookie path must not contain `;`",
                },
            );
            path_ok = false;
        }
        let same_site = match c.same_site.as_deref() {
            None => None,
            Some("Strict") => Some(SameSite::Strict),
            Some("Lax") => Some(SameSite::Lax),
            Some("None") => Some(SameSite::None),
            Some(other) => {
                self.errs.push(
                    format!("{cp}.same_site"),
                    K::InvalidHttp {
                        what: "SameSite (`Strict`, `Lax` or `None`)",
                        value: other.to_owned(),
                    },
                );
                None
            }
        };
        if let Some(d) = &c.domain {
            if let Err(reason) = check_hostname(d.trim_start_matches('.'), false) {
                self.errs.push(
                    format!("{cp}.domain"),
                    K::InvalidHostname {
                        host: d.clone(),
                        reason,
                    },
                );
            }
        }
        (token_ok && path_ok).then(|| {
            SessionPersistence::Cookie(CookiePolicy {
                name: c.name.clone(),
                ttl: c.ttl.map(ConfigDuration::as_duration),
                path,
                domain: c.domain.clone(),
                secure: c.secure,
                http_only: c.http_only,
                same_site,
                keep_at_zero_weight: c.keep_at_zero_weight,
            })
        })
    }
}

impl Builder<'_> {
    /// A rule's CORS policy; `None` (with an error) when a value is not valid.
    pub(super) fn cors(&mut self, c: &crate::CorsConfig, p: &str) -> Option<crate::Cors> {
        match crate::Cors::new(c) {
            Ok(cors) => Some(cors),
            Err((field, i, value)) => {
                let what = match field {
                    "allow_origins" => "origin (`*`, `scheme://host[:port]` or `scheme://*.host`)",
                    "allow_methods" => "method",
                    _ => "header name",
                };
                self.errs
                    .push(format!("{p}.{field}[{i}]"), K::InvalidHttp { what, value });
                None
            }
        }
    }
}
