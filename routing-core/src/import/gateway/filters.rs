//! A rule's filters, backends, timeouts, retry and session persistence in native form.

use super::*;
use crate::config::{BackendProtocol, CorsConfig};

impl Cx<'_, '_, '_> {
    /// Checks that a filter holds exactly the configuration its `type` names.
    pub(super) fn filter_shape(&mut self, f: &Filter, fk: &str) -> bool {
        let present = [
            ("requestHeaderModifier", f.request_header_modifier.is_some()),
            (
                "responseHeaderModifier",
                f.response_header_modifier.is_some(),
            ),
            ("requestMirror", f.request_mirror.is_some()),
            ("requestRedirect", f.request_redirect.is_some()),
            ("urlRewrite", f.url_rewrite.is_some()),
            ("cors", f.cors.is_some()),
            ("externalAuth", f.external_auth.is_some()),
            ("extensionRef", f.extension_ref.is_some()),
        ];
        let want = f.kind.field();
        let mut ok = true;
        for (field, set) in present {
            if field == want && !set {
                self.invalid(
                    &format!("{fk}.{field}"),
                    format!("`{field}` must be set for a {} filter", f.kind.name()),
                );
                ok = false;
            } else if field != want && set {
                self.invalid(
                    &format!("{fk}.{field}"),
                    format!("`{field}` must not be set for a {} filter", f.kind.name()),
                );
                ok = false;
            }
        }
        ok
    }

    /// The filters of one backendRef (`p`: its `filters` path): header modifiers,
    /// a URL rewrite or a redirect, applied only to the requests that backend is
    /// picked for. Mirrors, CORS and the implementation-specific kinds are refused.
    pub(super) fn backend_ref_filters(
        &mut self,
        list: &[Filter],
        p: &str,
        single_prefix: bool,
    ) -> Option<BackendFiltersConfig> {
        if !self.limit(p, list.len(), MAX_FILTERS, "filters") {
            return None;
        }
        let mut out = BackendFiltersConfig::default();
        let mut seen: BTreeMap<&'static str, ()> = BTreeMap::new();
        for (k, f) in list.iter().enumerate() {
            let fk = format!("{p}[{k}]");
            if !self.filter_shape(f, &fk) {
                continue;
            }
            if seen.insert(f.kind.name(), ()).is_some() {
                self.invalid(
                    &format!("{fk}.type"),
                    format!("the {} filter cannot be repeated", f.kind.name()),
                );
                continue;
            }
            let field = format!("{fk}.{}", f.kind.field());
            match f.kind {
                FilterType::RequestHeaderModifier => {
                    if let Some(h) = &f.request_header_modifier {
                        out.request_headers = self.header_filter(h, &field);
                    }
                }
                FilterType::ResponseHeaderModifier => {
                    if let Some(h) = &f.response_header_modifier {
                        out.response_headers = self.header_filter(h, &field);
                    }
                }
                FilterType::UrlRewrite => {
                    if let Some(u) = &f.url_rewrite {
                        out.url_rewrite = self.url_rewrite(u, &field, single_prefix);
                    }
                }
                FilterType::RequestRedirect => {
                    if let Some(rr) = &f.request_redirect {
                        out.redirect = self.redirect(rr, &field, single_prefix);
                    }
                }
                FilterType::RequestMirror => self.unsupported(
                    &field,
                    "RequestMirror on a backendRef: mirrors here copy every request of the rule, not the share one backend gets; put the filter on the rule",
                ),
                FilterType::Cors => self.unsupported(
                    &field,
                    "CORS on a backendRef: preflights are answered before a backend is picked; put the filter on the rule",
                ),
                FilterType::ExtensionRef => self.unsupported(
                    &field,
                    "ExtensionRef filter: an implementation-specific filter changes requests in ways that cannot be known here",
                ),
                FilterType::ExternalAuth => self.unsupported(
                    &field,
                    "ExternalAuth filter: an external authorization server would decide which requests pass",
                ),
            }
        }
        if seen.contains_key("RequestRedirect") && seen.contains_key("URLRewrite") {
            self.invalid(
                p,
                "RequestRedirect and URLRewrite filters cannot be used on the same backendRef",
            );
        }
        (out != BackendFiltersConfig::default()).then_some(out)
    }

    /// A `URLRewrite` filter (`p`: its `urlRewrite` path); `None` when it
    /// changes nothing or its path modifier was refused (an error is recorded).
    pub(super) fn url_rewrite(
        &mut self,
        u: &RewriteFilter,
        p: &str,
        single_prefix: bool,
    ) -> Option<UrlRewriteConfig> {
        let path = match &u.path {
            Some(pm) => self.path_modifier(pm, &format!("{p}.path"), single_prefix),
            None => None,
        };
        (u.hostname.is_some() || path.is_some()).then(|| UrlRewriteConfig {
            hostname: u.hostname.clone(),
            path,
        })
    }

    pub(super) fn header_filter(
        &mut self,
        h: &HeaderFilter,
        p: &str,
    ) -> Option<HeaderModifierConfig> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut ok = true;
        let names = h
            .set
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("{p}.set[{i}].name"), &x.name))
            .chain(
                h.add
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (format!("{p}.add[{i}].name"), &x.name)),
            )
            .chain(
                h.remove
                    .iter()
                    .enumerate()
                    .map(|(i, x)| (format!("{p}.remove[{i}]"), x)),
            )
            .collect::<Vec<_>>();
        if names.len() > 3 * MAX_CONDITIONS {
            self.invalid(p, "more than 16 entries in set, add or remove");
            return None;
        }
        for (path, name) in names {
            if !seen.insert(name.to_ascii_lowercase()) {
                self.invalid(
                    &path,
                    format!("header `{name}` has a second action: one action per header name is allowed"),
                );
                ok = false;
            }
        }
        let pairs = |list: &[HeaderValue]| {
            list.iter()
                .map(|x| HeaderValueConfig {
                    name: x.name.clone(),
                    value: x.value.clone(),
                })
                .collect()
        };
        ok.then(|| HeaderModifierConfig {
            set: pairs(&h.set),
            add: pairs(&h.add),
            remove: h.remove.clone(),
        })
    }

    pub(super) fn path_modifier(
        &mut self,
        pm: &PathModifier,
        p: &str,
        single_prefix: bool,
    ) -> Option<PathModifierConfig> {
        let mut ok = true;
        let (want, other, value, other_value) = match pm.kind {
            PathModifierType::ReplaceFullPath => (
                "replaceFullPath",
                "replacePrefixMatch",
                &pm.replace_full_path,
                &pm.replace_prefix_match,
            ),
            PathModifierType::ReplacePrefixMatch => (
                "replacePrefixMatch",
                "replaceFullPath",
                &pm.replace_prefix_match,
                &pm.replace_full_path,
            ),
        };
        if other_value.is_some() {
            self.invalid(
                &format!("{p}.{other}"),
                format!(
                    "`{other}` must not be set when `type` is not `{}`",
                    upper(other)
                ),
            );
            ok = false;
        }
        let Some(value) = value else {
            self.invalid(
                &format!("{p}.{want}"),
                format!("`{want}` must be set when `type` is `{}`", upper(want)),
            );
            return None;
        };
        if value.len() > 1024 {
            self.invalid(&format!("{p}.{want}"), "longer than 1024 characters");
            return None;
        }
        if pm.kind == PathModifierType::ReplacePrefixMatch && !single_prefix {
            self.invalid(
                &format!("{p}.{want}"),
                "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(match pm.kind {
            PathModifierType::ReplaceFullPath => PathModifierConfig {
                full: Some(value.clone()),
                prefix: None,
            },
            // An empty replacement behaves as `/` (the spec's table).
            PathModifierType::ReplacePrefixMatch => PathModifierConfig {
                full: None,
                prefix: Some(if value.is_empty() {
                    "/".to_owned()
                } else {
                    value.clone()
                }),
            },
        })
    }

    pub(super) fn redirect(
        &mut self,
        r: &RedirectFilter,
        p: &str,
        single_prefix: bool,
    ) -> Option<RedirectConfig> {
        let before = self.out.error_count();
        if let Some(s) = &r.scheme {
            if s != "http" && s != "https" {
                self.invalid(
                    &format!("{p}.scheme"),
                    format!("scheme `{s}` is not `http` or `https`"),
                );
            }
        }
        let port = match r.port {
            None => None,
            Some(n) => match u16::try_from(n) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.invalid(
                        &format!("{p}.port"),
                        format!("port {n} is out of range 1 ..= 65535"),
                    );
                    None
                }
            },
        };
        let status = match r.status_code {
            None => None,
            Some(c @ (301 | 302 | 303 | 307 | 308)) => u16::try_from(c).ok(),
            Some(c) => {
                self.invalid(
                    &format!("{p}.statusCode"),
                    format!("status code {c} is not one of 301, 302, 303, 307, 308"),
                );
                None
            }
        };
        let path = match &r.path {
            Some(pm) => self.path_modifier(pm, &format!("{p}.path"), single_prefix),
            None => None,
        };
        if self.out.error_count() != before {
            return None;
        }
        Some(RedirectConfig {
            scheme: r.scheme.clone(),
            hostname: r.hostname.clone(),
            port,
            path,
            status,
        })
    }

    pub(super) fn mirror(&mut self, m: &MirrorFilter, p: &str) -> Option<MirrorConfig> {
        let percent = match (m.percent, &m.fraction) {
            (Some(_), Some(_)) => {
                self.invalid(p, "only one of `percent` and `fraction` may be set");
                return None;
            }
            (Some(n), None) if (0..=100).contains(&n) => Some(n as f64),
            (Some(n), None) => {
                self.invalid(
                    &format!("{p}.percent"),
                    format!("{n} is out of range 0 ..= 100"),
                );
                return None;
            }
            (None, Some(f)) => {
                let den = f.denominator.unwrap_or(100);
                if den < 1 || f.numerator < 0 || f.numerator > den {
                    self.invalid(
                        &format!("{p}.fraction"),
                        format!(
                            "fraction {}/{den}: need 0 <= numerator <= denominator and denominator >= 1",
                            f.numerator
                        ),
                    );
                    return None;
                }
                Some(f.numerator as f64 * 100.0 / den as f64)
            }
            (None, None) => None,
        };
        let b = &m.backend_ref;
        let target = Target {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            name: &b.name,
            namespace: b.namespace.as_deref(),
            port: b.port,
        };
        let bp = format!("{p}.backendRef");
        let backend = match self.backend(&target, &bp)? {
            Ok(b) => b,
            Err((reason, why)) => {
                self.warn_reason(&bp, reason, format!("the mirror is dropped: {why}"));
                return None;
            }
        };
        Some(MirrorConfig { backend, percent })
    }

    /// Resolves a backend reference to a declared native backend: `None` after an
    /// error, `Some(Err((reason, why)))` for a reference the spec calls invalid
    /// (requests sent to it are answered 500), with the `ResolvedRefs` reason the
    /// spec gives for it.
    pub(super) fn backend(
        &mut self,
        t: &Target<'_>,
        p: &str,
    ) -> Option<Result<String, (&'static str, String)>> {
        if t.name.is_empty() {
            self.invalid(&format!("{p}.name"), "a backend reference needs a name");
            return None;
        }
        let port = match t.port {
            None => None,
            Some(n) => match u16::try_from(n) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.invalid(
                        &format!("{p}.port"),
                        format!("port {n} is out of range 1 ..= 65535"),
                    );
                    return None;
                }
            },
        };
        let group = t.group.unwrap_or("");
        let kind = t.kind.unwrap_or("Service");
        let ns = t.namespace.unwrap_or(self.ns);
        let same = ns == self.ns;
        let core = matches!(group, "" | "core") && kind == "Service";
        if core {
            if self.parents.missing_service(ns, t.name) {
                return Some(Err((
                    "BackendNotFound",
                    format!(
                        "Service `{ns}/{}` is not in the input (which has Gateways and Services)",
                        t.name
                    ),
                )));
            }
        } else if group == "multicluster.x-k8s.io" && kind == "ServiceImport" {
            self.warn(
                p,
                format!("backend kind `{kind}` (group `{group}`) is mapped by name like a Service"),
            );
        } else {
            let g = if group.is_empty() { "core" } else { group };
            return Some(Err((
                "InvalidKind",
                format!("backend kind `{kind}` (group `{g}`) is not supported"),
            )));
        }
        let route_kind = self.resource.split(' ').next().unwrap_or("HTTPRoute");
        if !self.parents.granted(route_kind, self.ns, ns, t.name) {
            return Some(Err((
                "RefNotPermitted",
                format!(
                    "no ReferenceGrant in namespace `{ns}` allows {route_kind}s of `{}` to refer to `{}`",
                    self.ns, t.name
                ),
            )));
        }
        let name = t.name;
        let mut keys = Vec::with_capacity(4);
        if let Some(port) = port {
            keys.push(format!("{ns}/{name}:{port}"));
        }
        keys.push(format!("{ns}/{name}"));
        if same {
            if let Some(port) = port {
                keys.push(format!("{name}:{port}"));
            }
            keys.push(name.to_owned());
        }
        let base = if same {
            name.to_owned()
        } else {
            format!("{ns}/{name}")
        };
        let default = match port {
            Some(port) => format!("{base}:{port}"),
            None => base,
        };
        let at = self.at(p);
        let resolved = self.out.backend(&keys, &default, &at)?;
        if let (true, Some(port)) = (core, port) {
            self.app_protocol(ns, name, port, &resolved, p);
        }
        Some(Ok(resolved))
    }

    /// Sets backend `native`'s protocol from the `appProtocol` of the Service port
    /// it stands for (`kubernetes.io/h2c` → `h2c`; `http`, `kubernetes.io/ws` →
    /// `http1`); other values are warned about and left to the layer's default.
    fn app_protocol(&mut self, ns: &str, name: &str, port: u16, native: &str, p: &str) {
        let Some(app) = self.parents.app_protocol(ns, name, port).map(str::to_owned) else {
            return;
        };
        let proto = match app.as_str() {
            "kubernetes.io/h2c" => BackendProtocol::H2c,
            "http" | "kubernetes.io/ws" => BackendProtocol::Http1,
            other => {
                self.warn(
                    p,
                    format!("appProtocol `{other}` of Service `{ns}/{name}` port {port} is not applied: the backend is spoken to over HTTP/1.1 unless its `protocol` is set"),
                );
                return;
            }
        };
        let previous = self
            .out
            .backend_config(native)
            .map(|b| b.protocol.replace(proto));
        if let Some(Some(old)) = previous.filter(|old| *old != Some(proto)) {
            self.warn(
                p,
                format!("backend `{native}` was given protocol {old:?} elsewhere; the Service port's appProtocol `{app}` sets {proto:?}"),
            );
        }
    }

    pub(super) fn duration(&mut self, s: &str, p: &str) -> Option<ConfigDuration> {
        match s.parse::<ConfigDuration>() {
            Ok(d) => Some(d),
            Err(e) => {
                self.invalid(p, e.to_string());
                None
            }
        }
    }

    pub(super) fn timeouts(&mut self, t: &Timeouts, p: &str) -> Option<TimeoutsConfig> {
        let request = t
            .request
            .as_deref()
            .and_then(|s| self.duration(s, &format!("{p}.request")));
        let per_try = t
            .backend_request
            .as_deref()
            .and_then(|s| self.duration(s, &format!("{p}.backendRequest")));
        // "0s" disables a timeout.
        let nonzero = |d: Option<ConfigDuration>| d.filter(|d| !d.as_duration().is_zero());
        let (request, per_try) = (nonzero(request), nonzero(per_try));
        if let (Some(r), Some(b)) = (request, per_try) {
            if b > r {
                self.invalid(
                    &format!("{p}.backendRequest"),
                    format!("backendRequest timeout {b} is longer than the request timeout {r}"),
                );
                return None;
            }
        }
        (request.is_some() || per_try.is_some()).then_some(TimeoutsConfig { request, per_try })
    }

    pub(super) fn retry(&mut self, r: &Retry, p: &str) -> Option<RetryConfig> {
        let attempts = r.attempts.unwrap_or(1);
        if attempts < 0 {
            self.invalid(&format!("{p}.attempts"), format!("{attempts} is negative"));
            return None;
        }
        if attempts > MAX_RETRY_ATTEMPTS {
            self.unsupported(
                &format!("{p}.attempts"),
                format!("{attempts} retries: at most {MAX_RETRY_ATTEMPTS} are supported"),
            );
            return None;
        }
        let mut codes = Vec::new();
        let mut ok = true;
        if !self.limit(&format!("{p}.codes"), r.codes.len(), 200, "codes") {
            return None;
        }
        for (k, &c) in r.codes.iter().enumerate() {
            match u16::try_from(c) {
                Ok(c) if (400..=599).contains(&c) => {
                    if !codes.contains(&c) {
                        codes.push(c);
                    }
                }
                _ => {
                    self.invalid(
                        &format!("{p}.codes[{k}]"),
                        format!("status code {c} is out of range 400 ..= 599"),
                    );
                    ok = false;
                }
            }
        }
        let backoff = match &r.backoff {
            Some(s) => Some(self.duration(s, &format!("{p}.backoff"))?),
            None => None,
        };
        // An explicit zero disables retries.
        if !ok || attempts == 0 {
            return None;
        }
        // GEP-1731: retry the listed codes, and (the API's SHOULD) disconnects,
        // resets and timeouts: `connect-failure` and `reset` (which covers a per-try
        // timeout). A request that is not idempotent is still retried only when no
        // connection was made (`non_idempotent` stays off), so it is never sent twice.
        let mut on = vec![RetryOn::ConnectFailure, RetryOn::Reset];
        if !codes.is_empty() {
            on.push(RetryOn::RetriableStatusCodes);
        }
        Some(RetryConfig {
            attempts: u32::try_from(attempts).unwrap_or(1),
            on,
            status_codes: codes,
            backoff,
            ..RetryConfig::default()
        })
    }

    pub(super) fn session_persistence(
        &mut self,
        s: &SessionPersistence,
        p: &str,
    ) -> Option<SessionPersistenceConfig> {
        let name = s
            .session_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned());
        if name.len() > 128 {
            self.invalid(&format!("{p}.sessionName"), "longer than 128 characters");
            return None;
        }
        let absolute = match &s.absolute_timeout {
            Some(d) => Some(self.duration(d, &format!("{p}.absoluteTimeout"))?),
            None => None,
        };
        if let Some(d) = &s.idle_timeout {
            self.duration(d, &format!("{p}.idleTimeout"))?;
            self.warn(
                &format!("{p}.idleTimeout"),
                "idleTimeout is not applied: sessions end only when the cookie does",
            );
        }
        match s.kind.unwrap_or(SessionType::Cookie) {
            SessionType::Header => {
                if s.cookie_config.is_some() {
                    self.invalid(
                        &format!("{p}.cookieConfig"),
                        "cookieConfig is for `type: Cookie`",
                    );
                    return None;
                }
                self.warn(
                    p,
                    format!("header session persistence: requests are pinned by the value of `{name}` that clients send; the layer does not issue it"),
                );
                if absolute.is_some() {
                    self.warn(
                        &format!("{p}.absoluteTimeout"),
                        "absoluteTimeout is not applied to header sessions",
                    );
                }
                Some(SessionPersistenceConfig {
                    cookie: None,
                    header: Some(name),
                })
            }
            SessionType::Cookie => {
                let lifetime = s
                    .cookie_config
                    .as_ref()
                    .and_then(|c| c.lifetime_type)
                    .unwrap_or(Lifetime::Session);
                let ttl = match lifetime {
                    Lifetime::Permanent => {
                        if absolute.is_none() {
                            self.invalid(
                                &format!("{p}.absoluteTimeout"),
                                "absoluteTimeout must be set when the cookie lifetimeType is Permanent",
                            );
                            return None;
                        }
                        absolute
                    }
                    Lifetime::Session => {
                        if absolute.is_some() {
                            self.warn(
                                &format!("{p}.absoluteTimeout"),
                                "absoluteTimeout of a session cookie is not applied: the session lasts as long as the browser keeps the cookie",
                            );
                        }
                        None
                    }
                };
                Some(SessionPersistenceConfig {
                    cookie: Some(CookieConfig {
                        name,
                        ttl,
                        ..CookieConfig::default()
                    }),
                    header: None,
                })
            }
        }
    }

    /// A `CORS` filter; `None` after an error.
    pub(super) fn cors(&mut self, c: &CorsFilter, p: &str) -> Option<CorsConfig> {
        if !self.limit(
            &format!("{p}.allowOrigins"),
            c.allow_origins.len(),
            64,
            "origins",
        ) {
            return None;
        }
        let max_age = match c.max_age {
            None => None,
            Some(n) => match u32::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.invalid(
                        &format!("{p}.maxAge"),
                        format!("{n} is out of range 0 ..= 4294967295"),
                    );
                    return None;
                }
            },
        };
        let config = CorsConfig {
            allow_origins: c.allow_origins.clone(),
            allow_methods: c.allow_methods.clone(),
            allow_headers: c.allow_headers.clone(),
            expose_headers: c.expose_headers.clone(),
            allow_credentials: c.allow_credentials.unwrap_or(false),
            max_age,
        };
        // The native checks, reported at the source's field.
        if let Err((field, i, value)) = crate::Cors::new(&config) {
            let src = match field {
                "allow_origins" => "allowOrigins",
                "allow_methods" => "allowMethods",
                "allow_headers" => "allowHeaders",
                _ => "exposeHeaders",
            };
            self.invalid(
                &format!("{p}.{src}[{i}]"),
                format!("`{value}` is not valid here"),
            );
            return None;
        }
        Some(config)
    }
}
