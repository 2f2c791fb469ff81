//! The compiled rules of a table: routes (hostnames and a range of rules), rules
//! (matches, an action, a policy) and the key a consistent hash reads.

use http::HeaderName;

use crate::config::RulePrecedence;
use crate::hash::stable_hash;
use crate::matching::RequestMatch;
use crate::policy::{FixedResponse, Policy, Redirect};
use crate::precedence::HostSpecificity;
use crate::request::{cookie, RouteRequest};
use crate::select::Forward;

/// An HTTP route: name, hostnames and the range of its rules.
#[derive(Debug)]
pub struct Route {
    pub(crate) name: Box<str>,
    pub(crate) hostnames: Box<[Box<str>]>,
    pub(crate) rules: std::ops::Range<usize>,
    pub(crate) precedence: RulePrecedence,
}

impl Route {
    /// How the route's rules compete ([`RulePrecedence`]).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, precedence: first_match, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.routes()[0].precedence(), routing_core::RulePrecedence::FirstMatch);
    /// ```
    #[must_use]
    pub fn precedence(&self) -> RulePrecedence {
        self.precedence
    }

    /// Its name.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.routes()[0].name(), "shop");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its hostnames, lowercased (empty: every host).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, hostnames: [Shop.Test], rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(&*t.routes()[0].hostnames()[0], "shop.test");
    /// ```
    #[must_use]
    pub fn hostnames(&self) -> &[Box<str>] {
        &self.hostnames
    }

    /// Indices of its rules in [`RouteTable::rules`](crate::RouteTable::rules).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.routes()[0].rule_indices(), 0..1);
    /// ```
    #[must_use]
    pub fn rule_indices(&self) -> std::ops::Range<usize> {
        self.rules.clone()
    }

    /// How specifically this route's hostnames match `authority` (`None`: not at all).
    ///
    /// ```
    /// use routing_core::HostSpecificity;
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: shop, hostnames: ['*.test', a.test], rules: [{backends: [{name: a}]}]}]").unwrap();
    /// let r = &t.routes()[0];
    /// assert_eq!(r.host_specificity(Some("a.test:80")), Some(HostSpecificity::Exact));
    /// assert_eq!(r.host_specificity(Some("b.test")), Some(HostSpecificity::Wildcard { suffix_len: 5 }));
    /// assert_eq!(r.host_specificity(Some("test")), None);
    /// ```
    #[must_use]
    pub fn host_specificity(&self, authority: Option<&str>) -> Option<HostSpecificity> {
        if self.hostnames.is_empty() {
            return Some(HostSpecificity::Any);
        }
        let host = crate::request::normalize_host(authority?);
        self.hostnames
            .iter()
            .filter_map(|h| match h.strip_prefix('*') {
                None => (**h == *host).then_some(HostSpecificity::Exact),
                Some(suffix) => (host.len() > suffix.len() && host.ends_with(suffix)).then_some(
                    HostSpecificity::Wildcard {
                        suffix_len: suffix.len().min(u16::MAX as usize) as u16,
                    },
                ),
            })
            .max()
    }
}

/// What a rule does with a matching request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action {
    /// Forward to weighted backends.
    Forward(Forward),
    /// Answer with a redirect.
    Redirect(Redirect),
    /// Answer with a fixed response.
    FixedResponse(FixedResponse),
}

/// The key consistent hashing reads from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashOn {
    /// A header's value.
    Header(HeaderName),
    /// A cookie's value.
    Cookie(Box<str>),
    /// A query parameter's value.
    Query(Box<str>),
    /// The client IP.
    SourceIp,
}

impl HashOn {
    /// The key's hash for `req`, or `None` when the request lacks it.
    ///
    /// ```
    /// use routing_core::{HashOn, RequestInfo};
    /// let on = HashOn::Cookie("session".into());
    /// let req = RequestInfo::get("/").header("cookie", "a=1; session=abc");
    /// assert_eq!(on.key(&req), Some(routing_core::stable_hash(b"abc", 0)));
    /// assert_eq!(on.key(&RequestInfo::get("/")), None);
    /// ```
    pub fn key<R: RouteRequest + ?Sized>(&self, req: &R) -> Option<u64> {
        match self {
            HashOn::Header(name) => req
                .headers()
                .get(name)
                .map(|v| stable_hash(v.as_bytes(), 0)),
            HashOn::Cookie(name) => {
                cookie(req.headers(), name).map(|v| stable_hash(v.as_bytes(), 0))
            }
            HashOn::Query(name) => req.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == &**name)
                    .map(|(_, v)| stable_hash(v.as_bytes(), 0))
            }),
            HashOn::SourceIp => req.source_ip().map(|ip| match ip {
                std::net::IpAddr::V4(a) => stable_hash(&a.octets(), 0),
                std::net::IpAddr::V6(a) => stable_hash(&a.octets(), 0),
            }),
        }
    }
}

/// A rule: its matches, its action and its policy.
#[derive(Debug)]
pub struct Rule {
    pub(crate) route: usize,
    pub(crate) index_in_route: usize,
    pub(crate) name: Option<Box<str>>,
    pub(crate) matches: Box<[RequestMatch]>,
    pub(crate) action: Action,
    pub(crate) policy: Policy,
    pub(crate) hash_on: Option<HashOn>,
}

impl Rule {
    /// Index of its route in [`RouteTable::routes`](crate::RouteTable::routes).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].route_index(), 0);
    /// ```
    #[must_use]
    pub fn route_index(&self) -> usize {
        self.route
    }

    /// Its position within its route.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].index_in_route(), 0);
    /// ```
    #[must_use]
    pub fn index_in_route(&self) -> usize {
        self.index_in_route
    }

    /// Its name, if given.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{name: canary, backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].name(), Some("canary"));
    /// ```
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Its matches (ORed). A rule written without matches has one match-everything entry.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert_eq!(t.rules()[0].matches().len(), 1);
    /// ```
    #[must_use]
    pub fn matches(&self) -> &[RequestMatch] {
        &self.matches
    }

    /// Its action.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("routes: [{name: r, rules: [{fixed_response: {status: 418}}]}]").unwrap();
    /// assert!(matches!(t.rules()[0].action(), routing_core::Action::FixedResponse(f) if f.status == 418));
    /// ```
    #[must_use]
    pub fn action(&self) -> &Action {
        &self.action
    }

    /// The forwarding state, when the action is [`Action::Forward`].
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]").unwrap();
    /// assert!(t.rules()[0].forward().is_some());
    /// ```
    #[must_use]
    pub fn forward(&self) -> Option<&Forward> {
        match &self.action {
            Action::Forward(f) => Some(f),
            _ => None,
        }
    }

    /// The policy for the HTTP layer.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], timeouts: {request: 3s}}]}]").unwrap();
    /// assert_eq!(t.rules()[0].policy().timeouts.request, Some(std::time::Duration::from_secs(3)));
    /// ```
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Applies the rule's request filters to `parts` as the HTTP layer does before
    /// forwarding: the request header changes, then the URL rewrite for the match
    /// `match_index` that matched ([`UrlRewrite::apply`](crate::UrlRewrite::apply)).
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], filters: {request_headers: {set: [{name: x-env, value: canary}]}}}]}]").unwrap();
    /// let (mut parts, ()) = http::Request::get("http://shop/").body(()).unwrap().into_parts();
    /// t.rules()[0].apply_request_filters(0, &mut parts);
    /// assert_eq!(parts.headers["x-env"], "canary");
    /// ```
    pub fn apply_request_filters(&self, match_index: usize, parts: &mut http::request::Parts) {
        self.policy.request_headers.apply(&mut parts.headers);
        if let (Some(rw), Some(m)) = (&self.policy.url_rewrite, self.matches.get(match_index)) {
            rw.apply(parts, m.path());
        }
    }

    /// The key consistent hashing uses, if the rule is sticky by key.
    ///
    /// ```
    /// # let t = routing_core::RouteTable::from_yaml("backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}], load_balancer: {consistent_hash: {header: x-user}}}]}]").unwrap();
    /// assert!(matches!(t.rules()[0].hash_on(), Some(routing_core::HashOn::Header(_))));
    /// ```
    #[must_use]
    pub fn hash_on(&self) -> Option<&HashOn> {
        self.hash_on.as_ref()
    }
}
