//! Building request matches: paths, strings, headers, query parameters, regexes.

use super::*;

impl Builder<'_> {
    pub(super) fn regex(&mut self, pattern: &str, path: String) -> Option<Regex> {
        if self.regexes.2 {
            return None;
        }
        let (count, bytes) = (self.regexes.0 + 1, self.regexes.1 + pattern.len());
        if count > MAX_TOTAL_REGEXES || bytes > MAX_TOTAL_REGEX_BYTES {
            // Reported once, at the first pattern over the budget.
            self.regexes.2 = true;
            self.errs.push(
                path,
                K::OutOfRange {
                    value: format!("{count} regexes, {bytes} bytes of patterns in all"),
                    allowed: "at most 65536 regexes and 2 MiB of patterns per configuration",
                },
            );
            return None;
        }
        self.regexes = (count, bytes, false);
        // Compile the pattern alone first: wrapping an unbalanced pattern such as
        // `a)|(b` in `^(?:…)$` would silently change its meaning.
        let compile = |p: &str| RegexBuilder::new(p).size_limit(REGEX_SIZE_LIMIT).build();
        match compile(pattern).and_then(|_| compile(&crate::matching::anchored(pattern))) {
            Ok(r) => Some(r),
            Err(e) => {
                self.errs.push(
                    path,
                    K::InvalidRegex {
                        pattern: pattern.to_owned(),
                        message: e.to_string(),
                    },
                );
                None
            }
        }
    }

    pub(super) fn request_path(&mut self, value: &str, path: String) -> bool {
        let reason = if !value.starts_with('/') {
            Some("must start with `/`")
        } else if value.bytes().any(|c| c == b'?' || c == b'#') {
            Some("must not contain `?` or `#`")
        } else if value
            .bytes()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            Some("must not contain whitespace or control characters")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.errs.push(
                    path,
                    K::InvalidPath {
                        path: value.to_owned(),
                        reason,
                    },
                );
                false
            }
            None => true,
        }
    }

    pub(super) fn path_match(&mut self, pm: &PathMatchConfig, p: &str) -> Option<PathMatch> {
        if !exactly_one(&[
            pm.exact.is_some(),
            pm.prefix.is_some(),
            pm.regex.is_some(),
            pm.starts_with.is_some(),
        ]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["exact", "prefix", "regex", "starts_with"],
                },
            );
            return None;
        }
        if let Some(sw) = &pm.starts_with {
            return self
                .request_path(sw, format!("{p}.starts_with"))
                .then(|| PathMatch::StartsWith(sw.as_str().into()));
        }
        if let Some(e) = &pm.exact {
            return self
                .request_path(e, format!("{p}.exact"))
                .then(|| PathMatch::Exact(e.as_str().into()));
        }
        if let Some(pre) = &pm.prefix {
            return self
                .request_path(pre, format!("{p}.prefix"))
                .then(|| PathMatch::Prefix(pre.trim_end_matches('/').into()));
        }
        let r = pm.regex.as_deref().unwrap_or_default();
        self.regex(r, format!("{p}.regex")).map(PathMatch::Regex)
    }

    pub(super) fn string_match(
        &mut self,
        exact: &Option<String>,
        prefix: &Option<String>,
        regex: &Option<String>,
        p: &str,
    ) -> Option<StringMatch> {
        if !exactly_one(&[exact.is_some(), prefix.is_some(), regex.is_some()]) {
            self.errs.push(
                p,
                K::ExactlyOne {
                    fields: &["exact", "prefix", "regex"],
                },
            );
            return None;
        }
        if let Some(e) = exact {
            return Some(StringMatch::Exact(e.as_str().into()));
        }
        if let Some(pre) = prefix {
            return Some(StringMatch::Prefix(pre.as_str().into()));
        }
        self.regex(regex.as_deref().unwrap_or_default(), format!("{p}.regex"))
            .map(StringMatch::Regex)
    }

    pub(super) fn header_name(&mut self, name: &str, path: String) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => Some(n),
            Err(_) => {
                self.errs.push(
                    path,
                    K::InvalidHttp {
                        what: "header name",
                        value: name.to_owned(),
                    },
                );
                None
            }
        }
    }

    pub(super) fn header_value(&mut self, value: &str, path: String) -> Option<HeaderValue> {
        match HeaderValue::from_str(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.errs.push(
                    path,
                    K::InvalidHttp {
                        what: "header value",
                        value: value.to_owned(),
                    },
                );
                None
            }
        }
    }

    pub(super) fn header_matches(&mut self, hs: &[HeaderMatchConfig], p: &str) -> Vec<HeaderMatch> {
        let mut out = Vec::new();
        for (l, h) in hs.iter().enumerate() {
            let hp = format!("{p}.headers[{l}]");
            let name = self.header_name(&h.name, format!("{hp}.name"));
            let value = if !exactly_one(&[
                h.exact.is_some(),
                h.prefix.is_some(),
                h.regex.is_some(),
                h.present,
                h.absent,
            ]) {
                self.errs.push(
                    &*hp,
                    K::ExactlyOne {
                        fields: &["exact", "prefix", "regex", "present", "absent"],
                    },
                );
                None
            } else if h.present {
                Some(ValueMatch::Present)
            } else if h.absent {
                Some(ValueMatch::Absent)
            } else {
                self.string_match(&h.exact, &h.prefix, &h.regex, &hp)
                    .map(ValueMatch::Is)
            };
            if let (Some(name), Some(value)) = (name, value) {
                let next = self.header_ids.len().min(u16::MAX as usize) as u16;
                let id = *self.header_ids.entry(name.clone()).or_insert(next);
                out.push(HeaderMatch {
                    name,
                    id,
                    value,
                    invert: h.invert,
                });
            }
        }
        out
    }

    pub(super) fn request_match(&mut self, m: &MatchConfig, p: &str) -> Option<RequestMatch> {
        let before = self.errs.len();
        let path = match &m.path {
            Some(pm) => self.path_match(pm, &format!("{p}.path")),
            None => Some(PathMatch::Prefix("".into())),
        };
        let method = m
            .method
            .as_ref()
            .and_then(|s| match Method::from_bytes(s.as_bytes()) {
                Ok(me) if !s.bytes().any(|c| c.is_ascii_lowercase()) => Some(me),
                _ => {
                    self.errs.push(
                        format!("{p}.method"),
                        K::InvalidHttp {
                            what: "method (uppercase token, e.g. `GET`)",
                            value: s.clone(),
                        },
                    );
                    None
                }
            });
        let scheme = m.scheme.as_ref().and_then(|s| {
            let lower = s.to_ascii_lowercase();
            if lower == "http" || lower == "https" {
                Some(lower.into_boxed_str())
            } else {
                self.errs.push(
                    format!("{p}.scheme"),
                    K::InvalidHttp {
                        what: "scheme (`http` or `https`)",
                        value: s.clone(),
                    },
                );
                None
            }
        });
        let authority = m.authority.as_ref().and_then(|a| {
            self.string_match(&a.exact, &a.prefix, &a.regex, &format!("{p}.authority"))
        });
        let headers = self.header_matches(&m.headers, p);
        let mut query = Vec::new();
        for (l, q) in m.query.iter().enumerate() {
            let qp = format!("{p}.query[{l}]");
            if q.name.is_empty() {
                self.errs.push(format!("{qp}.name"), K::Empty);
            }
            if !exactly_one(&[q.exact.is_some(), q.regex.is_some(), q.present]) {
                self.errs.push(
                    &*qp,
                    K::ExactlyOne {
                        fields: &["exact", "regex", "present"],
                    },
                );
                continue;
            }
            let value = if q.present {
                Some(ValueMatch::Present)
            } else {
                self.string_match(&q.exact, &None, &q.regex, &qp)
                    .map(ValueMatch::Is)
            };
            if let Some(value) = value {
                query.push(QueryMatch {
                    name: q.name.as_str().into(),
                    value,
                });
            }
        }
        if self.errs.len() != before {
            return None;
        }
        Some(RequestMatch {
            path: path?,
            method,
            scheme,
            authority,
            headers: headers.into(),
            query: query.into(),
        })
    }
}
