//! The public Gateway API conformance suite (kubernetes-sigs/gateway-api,
//! `conformance/tests/httproute-*.yaml`), replayed on the wire.
//!
//! Each upstream manifest sits unchanged under
//! `routing-core/tests/fixtures/gateway-conformance/` (header: upstream path and
//! commit), next to an excerpt of `conformance/base/manifests.yaml` (Namespaces,
//! the plain-HTTP Gateways, the Services). A suite imports base + manifest with
//! [`routing_core::import`], builds a [`RoutingLayer`] in front of one real echo
//! server per backend on 127.0.0.1, serves the layer on 127.0.0.1 and sends the
//! upstream test's requests through a real HTTP client. The expectations are the
//! upstream `.go` file's `ExpectedResponse`s: the backend that answered (the echo
//! server's `x-backend`), the status, the redirect `Location` (scheme, host, port,
//! path, defaults as the upstream `CompareRoundTrip`), the path, host and headers the
//! backend saw, and the response headers. Mirrored copies are checked on the mirror
//! backend's request count, timeouts with the echo server's `?delay=`, retries with
//! its `responseCode` / `succeedAfter` simulation (as the upstream echo server).
//!
//! Upstream HTTPRoute tests left out, and why:
//! * TLS only: `HTTPRouteHTTPSListener`, `HTTPRouteHTTPSListenerDetectMisdirectedRequests`.
//! * Status only (they send no request; the outcome is a route condition):
//!   `HTTPRouteDisallowedKind` (TLSRoute kinds), `HTTPRouteObservedGenerationBump`,
//!   `HTTPRouteInvalidParentRefNotMatchingListenerPort`,
//!   `HTTPRouteInvalidParentRefSectionNameNotMatchingPort`,
//!   `HTTPRouteRetryWithTimeouts`, `HTTPRouteRetryConnectionError` (no request table).
//! * Needs a real cluster or protocol support outside this layer:
//!   `HTTPRouteServiceTypes` (Service types and EndpointSlices), `HTTPRouteListenerPortMatching` and
//!   `HTTPRouteRedirectPortAndScheme` (several listener ports on one Gateway: the
//!   layer serves one socket), `HTTPRouteRequestPercentageMirror` (a statistical
//!   count over the cluster's logs).
//!
//! The cases per upstream test are in `suites()` and `aimed_suites()`;
//! `every_ported_case_passes` prints the count per test; `HTTPRouteWeight` is
//! `weights_split_as_upstream_expects`,
//! `HTTPRouteRequestHeaderModifierBackendWeights` is
//! `backend_filters_follow_the_weighted_pick`;
//! `HTTPRouteBackendProtocolH2C` is `backend_protocol_h2c_reaches_an_h2c_only_upstream`
//! and `HTTPRouteBackendProtocolWebSocket` is
//! `backend_protocol_websocket_reaches_a_websocket_upstream` (the Service port's
//! `appProtocol` picks the protocol, through the importer and the layer's
//! [`HttpBackend`]); the status-only
//! `HTTPRouteInvalidCrossNamespaceParentRef` and
//! `HTTPRouteInvalidParentRefNotMatchingSectionName` are checked on the import
//! (the route is left out) in `routes_upstream_refuses_are_left_out`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use routing_core::import::{import, ImportOptions, Source};
use routing_core::Router;
use routing_testkit::http::{client, send, serve, Server};
use routing_tower::client::UpstreamProtocol;
use routing_tower::{Backends, HttpBackend, NotFound, RoutingLayer};
use tower::Layer;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../routing-core/tests/fixtures/gateway-conformance/"
);

/// The namespace of the conformance infrastructure.
const INFRA: &str = "gateway-conformance-infra";

// ---------------------------------------------------------------------------------
// Cases.
// ---------------------------------------------------------------------------------

/// An expected redirect, compared as the upstream `CompareRoundTrip` does: an
/// unset host is not checked, an unset scheme means `http`, an unset path means the
/// request's path, an unset port means the scheme's default or none.
#[derive(Debug, Clone, Default)]
struct Redirect {
    scheme: Option<&'static str>,
    host: Option<&'static str>,
    port: Option<&'static str>,
    path: Option<&'static str>,
}

/// One request and what must come back (an upstream `ExpectedResponse`).
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    host: Option<&'static str>,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    /// The Service that must answer (the name; the namespace is in the native
    /// backend name the layer used, checked by `ns`).
    backend: Option<&'static str>,
    ns: Option<&'static str>,
    redirect: Option<Redirect>,
    seen_path: Option<&'static str>,
    seen_host: Option<&'static str>,
    seen_headers: Vec<(&'static str, &'static str)>,
    seen_absent: Vec<&'static str>,
    resp_headers: Vec<(&'static str, &'static str)>,
    resp_absent: Vec<&'static str>,
    /// Backends that must receive a mirrored copy.
    mirrored: Vec<&'static str>,
    /// Response headers the echo backend sets (upstream `BackendSetResponseHeaders`).
    backend_sets: Vec<(&'static str, &'static str)>,
}

/// `GET path`, expected 200.
fn get(path: &'static str) -> Case {
    Case {
        method: "GET",
        host: None,
        path,
        headers: Vec::new(),
        status: 200,
        backend: None,
        ns: None,
        redirect: None,
        seen_path: None,
        seen_host: None,
        seen_headers: Vec::new(),
        seen_absent: Vec::new(),
        resp_headers: Vec::new(),
        resp_absent: Vec::new(),
        mirrored: Vec::new(),
        backend_sets: Vec::new(),
    }
}

impl Case {
    fn method(mut self, m: &'static str) -> Self {
        self.method = m;
        self
    }
    fn host(mut self, h: &'static str) -> Self {
        self.host = Some(h);
        self
    }
    fn h(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }
    /// Answered by `backend` in the infrastructure namespace.
    fn to(self, backend: &'static str) -> Self {
        self.answered_in(backend, INFRA)
    }
    fn answered_in(mut self, backend: &'static str, ns: &'static str) -> Self {
        self.backend = Some(backend);
        self.ns = Some(ns);
        self
    }
    fn status(mut self, s: u16) -> Self {
        self.status = s;
        self
    }
    fn redirect(mut self, status: u16, r: Redirect) -> Self {
        self.status = status;
        self.redirect = Some(r);
        self
    }
    fn seen_path(mut self, p: &'static str) -> Self {
        self.seen_path = Some(p);
        self
    }
    fn seen_host(mut self, h: &'static str) -> Self {
        self.seen_host = Some(h);
        self
    }
    fn seen(mut self, name: &'static str, value: &'static str) -> Self {
        self.seen_headers.push((name, value));
        self
    }
    fn seen_absent(mut self, name: &'static str) -> Self {
        self.seen_absent.push(name);
        self
    }
    fn resp(mut self, name: &'static str, value: &'static str) -> Self {
        self.resp_headers.push((name, value));
        self
    }
    fn resp_absent(mut self, name: &'static str) -> Self {
        self.resp_absent.push(name);
        self
    }
    fn backend_sets(mut self, name: &'static str, value: &'static str) -> Self {
        self.backend_sets.push((name, value));
        self
    }
    fn mirrored(mut self, backend: &'static str) -> Self {
        self.mirrored.push(backend);
        self
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`,
/// answered by the layer (upstream accepts 200 or 204; the layer answers 204).
fn preflight(path: &'static str, origin: &'static str, method: &'static str) -> Case {
    get(path)
        .method("OPTIONS")
        .h("Origin", origin)
        .h("access-control-request-method", method)
        .status(204)
}

fn redirect() -> Redirect {
    Redirect::default()
}

impl Redirect {
    fn scheme(mut self, s: &'static str) -> Self {
        self.scheme = Some(s);
        self
    }
    fn host(mut self, h: &'static str) -> Self {
        self.host = Some(h);
        self
    }
    fn port(mut self, p: &'static str) -> Self {
        self.port = Some(p);
        self
    }
    fn path(mut self, p: &'static str) -> Self {
        self.path = Some(p);
        self
    }
}

/// One upstream test: its short name, manifest and cases.
struct Suite {
    test: &'static str,
    manifest: &'static str,
    cases: Vec<Case>,
}

/// A suite whose layer stands for the Gateway(s) the upstream test sends to
/// (`--gateway NS/NAME[/section]`), and whose manifest may lose the documents of
/// one kind (`without`: upstream deletes them half-way).
struct Aimed {
    suite: Suite,
    gateways: &'static [&'static str],
    without: Option<&'static str>,
}

fn aimed(
    test: &'static str,
    manifest: &'static str,
    gateways: &'static [&'static str],
    without: Option<&'static str>,
    cases: Vec<Case>,
) -> Aimed {
    Aimed {
        suite: Suite {
            test,
            manifest,
            cases,
        },
        gateways,
        without,
    }
}

const WEB: &str = "gateway-conformance-web-backend";
const APP: &str = "gateway-conformance-app-backend";
const SAME: &[&str] = &["gateway-conformance-infra/same-namespace"];

/// `HTTPRouteRequestHeaderModifier`'s cases, which upstream also runs for
/// `HTTPRouteBackendRequestHeaderModifier` (the filters on the backendRefs).
fn request_header_modifier_cases() -> Vec<Case> {
    vec![
        get("/set")
            .h("Some-Other-Header", "val")
            .to(V1)
            .seen_path("/set")
            .seen("Some-Other-Header", "val")
            .seen("X-Header-Set", "set-overwrites-values"),
        get("/set")
            .h("Some-Other-Header", "val")
            .h("X-Header-Set", "some-other-value")
            .to(V1)
            .seen("Some-Other-Header", "val")
            .seen("X-Header-Set", "set-overwrites-values"),
        get("/add")
            .h("Some-Other-Header", "val")
            .to(V1)
            .seen("Some-Other-Header", "val")
            .seen("X-Header-Add", "add-appends-values"),
        get("/add")
            .h("Some-Other-Header", "val")
            .h("X-Header-Add", "some-other-value")
            .to(V1)
            .seen("Some-Other-Header", "val")
            .seen("X-Header-Add", "some-other-value,add-appends-values"),
        get("/remove")
            .h("X-Header-Remove", "val")
            .to(V1)
            .seen_path("/remove")
            .seen_absent("X-Header-Remove"),
        get("/multiple")
            .h("X-Header-Set-2", "set-val-2")
            .h("X-Header-Add-2", "add-val-2")
            .h("X-Header-Remove-2", "remove-val-2")
            .h("Another-Header", "another-header-val")
            .to(V1)
            .seen("X-Header-Set-1", "header-set-1")
            .seen("X-Header-Set-2", "header-set-2")
            .seen("X-Header-Add-1", "header-add-1")
            .seen("X-Header-Add-2", "add-val-2,header-add-2")
            .seen("X-Header-Add-3", "header-add-3")
            .seen("Another-Header", "another-header-val")
            .seen_absent("X-Header-Remove-1")
            .seen_absent("X-Header-Remove-2"),
        get("/case-insensitivity")
            .h("x-header-set", "original-val-set")
            .h("x-header-add", "original-val-add")
            .h("x-header-remove", "original-val-remove")
            .h("Another-Header", "another-header-val")
            .to(V1)
            .seen("X-Header-Set", "header-set")
            .seen("X-Header-Add", "original-val-add,header-add")
            .seen("Another-Header", "another-header-val")
            .seen_absent("X-Header-Remove"),
    ]
}

/// The suites about attachment (Gateways, listeners, ReferenceGrants, invalid
/// references).
fn aimed_suites() -> Vec<Aimed> {
    vec![
        aimed(
            "HTTPRouteCrossNamespace",
            "httproute-cross-namespace.yaml",
            &["gateway-conformance-infra/backend-namespaces"],
            None,
            vec![get("/").answered_in("web-backend", WEB)],
        ),
        aimed(
            "HTTPRouteInvalidBackendRefUnknownKind",
            "httproute-invalid-backendref-unknown-kind.yaml",
            SAME,
            None,
            vec![get("/v2").status(500)],
        ),
        aimed(
            "HTTPRouteInvalidCrossNamespaceBackendRef",
            "httproute-invalid-cross-namespace-backend-ref.yaml",
            SAME,
            None,
            vec![get("/").status(500)],
        ),
        aimed(
            "HTTPRouteInvalidNonExistentBackendRef",
            "httproute-invalid-nonexistent-backendref.yaml",
            SAME,
            None,
            vec![get("/").status(500)],
        ),
        aimed(
            "HTTPRouteInvalidReferenceGrant",
            "httproute-invalid-reference-grant.yaml",
            SAME,
            None,
            vec![get("/").status(500)],
        ),
        aimed(
            "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant",
            "httproute-partially-invalid-via-invalid-reference-grant.yaml",
            SAME,
            None,
            vec![
                get("/v2").status(500),
                get("/").answered_in("app-backend-v1", APP),
            ],
        ),
        aimed(
            "HTTPRouteReferenceGrant",
            "httproute-reference-grant.yaml",
            SAME,
            None,
            vec![get("/").answered_in("web-backend", WEB)],
        ),
        aimed(
            "HTTPRouteReferenceGrant (grant deleted)",
            "httproute-reference-grant.yaml",
            SAME,
            Some("ReferenceGrant"),
            vec![get("/").status(500)],
        ),
        aimed(
            "HTTPRouteMultipleGateways (same-namespace)",
            "httproute-multiple-gateways.yaml",
            SAME,
            None,
            vec![get("/shared").to(V1), get("/").to(V2)],
        ),
        aimed(
            "HTTPRouteMultipleGateways (all-namespaces)",
            "httproute-multiple-gateways.yaml",
            &["gateway-conformance-infra/all-namespaces"],
            None,
            vec![get("/shared").to(V1), get("/").to(V3)],
        ),
        aimed(
            "HTTPRouteListenerHostnameMatching",
            "httproute-listener-hostname-matching.yaml",
            &["gateway-conformance-infra/httproute-listener-hostname-matching"],
            None,
            vec![
                get("/").host("bar.com").to(V1),
                get("/").host("foo.bar.com").to(V2),
                get("/").host("baz.bar.com").to(V3),
                get("/").host("boo.bar.com").to(V3),
                get("/").host("multiple.prefixes.bar.com").to(V3),
                get("/").host("multiple.prefixes.foo.com").to(V3),
                get("/").host("foo.com").status(404),
                get("/").host("no.matching.host").status(404),
            ],
        ),
        aimed(
            "HTTPRouteHostnameIntersection (-all Gateway)",
            "httproute-hostname-intersection.yaml",
            &["gateway-conformance-infra/httproute-hostname-intersection-all"],
            None,
            vec![
                get("/").host("first.com").to(V2),
                get("/").host("sub.first.com").to(V2),
                get("/").host("second.com").to(V2),
                get("/").host("sub.second.com").to(V2),
                get("/").host("third.com").status(404),
                get("/").host("sub.third.com").status(404),
            ],
        ),
        aimed(
            "HTTPRouteHostnameIntersection",
            "httproute-hostname-intersection.yaml",
            &["gateway-conformance-infra/httproute-hostname-intersection"],
            None,
            vec![
                get("/s1").host("very.specific.com").to(V1),
                get("/s1").host("very.specific.com:1234").to(V1),
                get("/s1").host("non.matching.com").status(404),
                get("/s1").host("foo.nonmatchingwildcard.io").status(404),
                get("/s1").host("foo.wildcard.io").status(404),
                get("/non-matching-prefix")
                    .host("very.specific.com")
                    .status(404),
                get("/s2").host("foo.wildcard.io").to(V2),
                get("/s2").host("bar.wildcard.io").to(V2),
                get("/s2").host("foo.bar.wildcard.io").to(V2),
                get("/s2").host("non.matching.com").status(404),
                get("/s2").host("wildcard.io").status(404),
                get("/s2").host("very.specific.com").status(404),
                get("/non-matching-prefix")
                    .host("foo.wildcard.io")
                    .status(404),
                get("/s3").host("very.specific.com").to(V3),
                get("/s3").host("non.matching.com").status(404),
                get("/s3").host("foo.specific.com").status(404),
                get("/s3").host("foo.wildcard.io").status(404),
                get("/non-matching-prefix")
                    .host("very.specific.com")
                    .status(404),
                get("/s4").host("foo.anotherwildcard.io").to(V1),
                get("/s4").host("bar.anotherwildcard.io").to(V1),
                get("/s4").host("foo.bar.anotherwildcard.io").to(V1),
                get("/s4").host("anotherwildcard.io").status(404),
                get("/s4").host("foo.wildcard.io").status(404),
                get("/s4").host("very.specific.com").status(404),
                get("/non-matching-prefix")
                    .host("foo.anotherwildcard.io")
                    .status(404),
                get("/s5").host("specific.but.wrong.com").status(404),
                get("/s5").host("wildcard.io").status(404),
            ],
        ),
    ]
}

const V1: &str = "infra-backend-v1";
const V2: &str = "infra-backend-v2";
const V3: &str = "infra-backend-v3";

fn suites() -> Vec<Suite> {
    vec![
        Suite {
            test: "HTTPRouteSimpleSameNamespace",
            manifest: "httproute-simple-same-namespace.yaml",
            cases: vec![get("/").to(V1)],
        },
        Suite {
            test: "HTTPRouteMatching",
            manifest: "httproute-matching.yaml",
            cases: vec![
                get("/").to(V1),
                get("/example").to(V1),
                get("/").h("Version", "one").to(V1),
                get("/v2").to(V2),
                get("/v2/example").to(V2),
                get("/").h("Version", "two").to(V2),
                get("/v2/").to(V2),
                get("/v2example").to(V1),
                get("/foo/v2/example").to(V1),
            ],
        },
        Suite {
            test: "HTTPRouteExactPathMatching",
            manifest: "httproute-exact-path-matching.yaml",
            cases: vec![
                get("/one").to(V1),
                get("/two").to(V2),
                get("/").status(404),
                get("/one/example").status(404),
                get("/two/").status(404),
                get("/Two").status(404),
            ],
        },
        Suite {
            test: "HTTPRouteHeaderMatching",
            manifest: "httproute-header-matching.yaml",
            cases: vec![
                get("/").h("Version", "one").to(V1),
                get("/").h("Version", "two").to(V2),
                get("/").h("Version", "two").h("Color", "orange").to(V1),
                get("/").h("Version", "two").h("Color", "blue").to(V2),
                get("/").h("Color", "orange").status(404),
                get("/").h("Some-Other-Header", "one").status(404),
                get("/").h("Color", "blue").to(V1),
                get("/").h("Color", "green").to(V1),
                get("/").h("Color", "red").to(V2),
                get("/").h("Color", "yellow").to(V2),
                get("/").h("Color", "purple").status(404),
            ],
        },
        Suite {
            test: "HTTPRouteMethodMatching",
            manifest: "httproute-method-matching.yaml",
            cases: vec![
                get("/").method("POST").to(V1),
                get("/").method("GET").to(V2),
                get("/").method("HEAD").status(404),
                get("/path1").method("GET").to(V1),
                get("/").method("PUT").h("version", "one").to(V2),
                get("/path2").method("POST").h("version", "two").to(V3),
                get("/path3").method("PATCH").to(V1),
                get("/path4").method("DELETE").h("version", "three").to(V1),
                get("/").method("PUT").status(404),
                get("/path4").method("DELETE").status(404),
                get("/path5").method("PATCH").to(V1),
                get("/").method("PATCH").h("version", "four").to(V2),
            ],
        },
        Suite {
            test: "HTTPRouteQueryParamMatching",
            manifest: "httproute-query-param-matching.yaml",
            cases: vec![
                get("/?animal=whale").to(V1),
                get("/?animal=dolphin").to(V2),
                get("/?animal=dolphin&color=blue").to(V3),
                get("/?ANIMAL=Whale").to(V3),
                get("/?animal=whale&otherparam=irrelevant").to(V1),
                get("/?animal=dolphin&color=yellow").to(V2),
                get("/?color=blue").status(404),
                get("/?animal=dog").status(404),
                get("/?animal=whaledolphin").status(404),
                get("/").status(404),
                get("/path1?animal=whale").to(V1),
                get("/?animal=whale").h("version", "one").to(V2),
                get("/path2?animal=whale").h("version", "two").to(V3),
                get("/path3?animal=shark").to(V1),
                get("/path4?animal=kraken").h("version", "three").to(V1),
                get("/?animal=shark").status(404),
                get("/path4?animal=kraken").status(404),
                get("/path5?animal=hydra").to(V1),
                get("/?animal=hydra").h("version", "four").to(V3),
            ],
        },
        Suite {
            test: "HTTPRoutePathMatchOrder",
            manifest: "httproute-path-match-order.yaml",
            cases: vec![
                get("/match/exact/one").to(V3),
                get("/match/exact").to(V2),
                get("/match").to(V1),
                get("/match/prefix/one/any").to(V2),
                get("/match/prefix/any").to(V1),
                get("/match/any").to(V3),
            ],
        },
        Suite {
            test: "HTTPRouteMatchingAcrossRoutes",
            manifest: "httproute-matching-across-routes.yaml",
            cases: vec![
                get("/").host("example.com").to(V1),
                get("/example").host("example.com").to(V1),
                get("/example").host("example.net").to(V1),
                get("/example")
                    .host("example.com")
                    .h("Version", "one")
                    .to(V1),
                get("/v2").host("example.com").to(V2),
                get("/v2").host("example.net").to(V1),
                get("/v2/example").host("example.com").to(V2),
                get("/").host("example.com").h("Version", "two").to(V2),
            ],
        },
        Suite {
            test: "HTTPRoute303Redirect",
            manifest: "httproute-303-redirect.yaml",
            cases: vec![get("/see-other")
                .method("POST")
                .redirect(303, redirect().path("/see-other"))],
        },
        Suite {
            test: "HTTPRoute307Redirect",
            manifest: "httproute-307-redirect.yaml",
            cases: vec![get("/temporary").redirect(307, redirect().path("/temporary"))],
        },
        Suite {
            test: "HTTPRoute308Redirect",
            manifest: "httproute-308-redirect.yaml",
            cases: vec![get("/permanent").redirect(308, redirect().path("/permanent"))],
        },
        Suite {
            test: "HTTPRouteRedirectPath",
            manifest: "httproute-redirect-path.yaml",
            cases: vec![
                get("/original-prefix/lemon")
                    .redirect(302, redirect().path("/replacement-prefix/lemon")),
                get("/full/path/original").redirect(302, redirect().path("/full-path-replacement")),
                get("/path-and-host").redirect(
                    302,
                    redirect().host("example.org").path("/replacement-prefix"),
                ),
                get("/path-and-status").redirect(301, redirect().path("/replacement-prefix")),
                get("/full-path-and-host").redirect(
                    302,
                    redirect().host("example.org").path("/replacement-full"),
                ),
                get("/full-path-and-status").redirect(301, redirect().path("/replacement-full")),
            ],
        },
        Suite {
            test: "HTTPRouteRedirectHostAndStatus",
            manifest: "httproute-redirect-host-and-status.yaml",
            cases: vec![
                get("/hostname-redirect").redirect(302, redirect().host("example.org")),
                get("/host-and-status").redirect(301, redirect().host("example.org")),
            ],
        },
        Suite {
            test: "HTTPRouteRewriteHost",
            manifest: "httproute-rewrite-host.yaml",
            cases: vec![
                get("/one")
                    .host("rewrite.example")
                    .to(V1)
                    .seen_path("/one")
                    .seen_host("one.example.org"),
                get("/two")
                    .host("rewrite.example")
                    .to(V2)
                    .seen_path("/two")
                    .seen_host("example.org"),
                get("/rewrite-host-and-modify-headers")
                    .host("rewrite.example")
                    .h("X-Header-Remove", "remove-val")
                    .h("X-Header-Add-Append", "append-val-1")
                    .to(V2)
                    .seen_path("/rewrite-host-and-modify-headers")
                    .seen_host("test.example.org")
                    .seen("X-Header-Add", "header-val-1")
                    .seen("X-Header-Add-Append", "append-val-1,header-val-2")
                    .seen("X-Header-Set", "set-overwrites-values")
                    .seen_absent("X-Header-Remove"),
            ],
        },
        Suite {
            test: "HTTPRouteRewritePath",
            manifest: "httproute-rewrite-path.yaml",
            cases: vec![
                get("/prefix/one/two").to(V1).seen_path("/one/two"),
                get("/strip-prefix/three").to(V1).seen_path("/three"),
                get("/strip-prefix").to(V1).seen_path("/"),
                get("/full/one/two").to(V1).seen_path("/one"),
                get("/full/rewrite-path-and-modify-headers/test")
                    .h("X-Header-Remove", "remove-val")
                    .h("X-Header-Add-Append", "append-val-1")
                    .h("X-Header-Set", "set-val")
                    .to(V1)
                    .seen_path("/test")
                    .seen("X-Header-Add", "header-val-1")
                    .seen("X-Header-Add-Append", "append-val-1,header-val-2")
                    .seen("X-Header-Set", "set-overwrites-values")
                    .seen_absent("X-Header-Remove"),
                get("/prefix/rewrite-path-and-modify-headers/one")
                    .h("X-Header-Remove", "remove-val")
                    .h("X-Header-Add-Append", "append-val-1")
                    .h("X-Header-Set", "set-val")
                    .to(V1)
                    .seen_path("/prefix/one")
                    .seen("X-Header-Add", "header-val-1")
                    .seen("X-Header-Add-Append", "append-val-1,header-val-2")
                    .seen("X-Header-Set", "set-overwrites-values")
                    .seen_absent("X-Header-Remove"),
            ],
        },
        Suite {
            test: "HTTPRouteNoBackendRefs",
            manifest: "httproute-omitted-backendrefs.yaml",
            cases: vec![
                get("/forward").to(V1),
                get("/omitted-no-forward").status(500),
                get("/empty-no-forward").status(500),
            ],
        },
        Suite {
            test: "HTTPRouteNamedRule",
            manifest: "httproute-named-rule.yaml",
            cases: vec![get("/named").to(V1), get("/unnamed").to(V2)],
        },
        Suite {
            test: "HTTPRouteTimeoutRequest",
            manifest: "httproute-timeout-request.yaml",
            cases: vec![
                get("/request-timeout").to(V1),
                get("/request-timeout?delay=1s").status(504),
                get("/disable-request-timeout?delay=1s").to(V1),
            ],
        },
        Suite {
            test: "HTTPRouteTimeoutBackendRequest",
            manifest: "httproute-timeout-backend-request.yaml",
            cases: vec![
                get("/backend-timeout").to(V1),
                get("/backend-timeout?delay=1s").status(504),
                get("/disable-backend-timeout?delay=1s").to(V1),
            ],
        },
        Suite {
            test: "HTTPRouteRedirectPort",
            manifest: "httproute-redirect-port.yaml",
            cases: vec![
                get("/port").redirect(302, redirect().port("8083")),
                get("/port-and-host").redirect(302, redirect().host("example.org").port("8083")),
                get("/port-and-status").redirect(301, redirect().port("8083")),
                get("/port-and-host-and-status")
                    .redirect(302, redirect().host("example.org").port("8083")),
            ],
        },
        Suite {
            test: "HTTPRouteRedirectScheme",
            manifest: "httproute-redirect-scheme.yaml",
            cases: vec![
                get("/scheme").redirect(302, redirect().scheme("https")),
                get("/scheme-and-host")
                    .redirect(302, redirect().scheme("https").host("example.org")),
                get("/scheme-and-status").redirect(301, redirect().scheme("https")),
                get("/scheme-and-host-and-status")
                    .redirect(302, redirect().scheme("https").host("example.org")),
            ],
        },
        Suite {
            test: "HTTPRouteRequestHeaderModifier",
            manifest: "httproute-request-header-modifier.yaml",
            cases: request_header_modifier_cases(),
        },
        // The same expectations with the filters on the backendRefs (upstream runs
        // `HTTPRouteRequestHeaderModifier.Test` on the `-backend` manifest).
        Suite {
            test: "HTTPRouteBackendRequestHeaderModifier",
            manifest: "httproute-request-header-modifier-backend.yaml",
            cases: request_header_modifier_cases(),
        },
        Suite {
            test: "HTTPRouteBackendURLRewrite",
            manifest: "httproute-backend-url-rewrite.yaml",
            cases: vec![
                get("/full/original").to(V1).seen_path("/rewritten-full"),
                get("/prefix/original")
                    .to(V1)
                    .seen_path("/rewritten-prefix/original"),
            ],
        },
        Suite {
            test: "HTTPRouteBackendRequestRedirect",
            manifest: "httproute-backend-request-redirect.yaml",
            cases: vec![
                get("/full/original").redirect(302, redirect().path("/redirected-full")),
                get("/prefix/original")
                    .redirect(302, redirect().path("/redirected-prefix/original")),
            ],
        },
        Suite {
            test: "HTTPRouteResponseHeaderModifier",
            manifest: "httproute-response-header-modifier.yaml",
            cases: vec![
                get("/set")
                    .backend_sets("Some-Other-Header", "val")
                    .to(V1)
                    .resp("Some-Other-Header", "val")
                    .resp("X-Header-Set", "set-overwrites-values"),
                get("/set")
                    .backend_sets("Some-Other-Header", "val")
                    .backend_sets("X-Header-Set", "some-other-value")
                    .to(V1)
                    .resp("Some-Other-Header", "val")
                    .resp("X-Header-Set", "set-overwrites-values"),
                get("/add")
                    .backend_sets("Some-Other-Header", "val")
                    .to(V1)
                    .resp("Some-Other-Header", "val")
                    .resp("X-Header-Add", "add-appends-values"),
                get("/add")
                    .backend_sets("Some-Other-Header", "val")
                    .backend_sets("X-Header-Add", "some-other-value")
                    .to(V1)
                    .resp("Some-Other-Header", "val")
                    .resp("X-Header-Add", "some-other-value,add-appends-values"),
                get("/remove")
                    .backend_sets("X-Header-Remove", "val")
                    .to(V1)
                    .resp_absent("X-Header-Remove"),
                get("/multiple")
                    .backend_sets("X-Header-Set-2", "set-val-2")
                    .backend_sets("X-Header-Add-2", "add-val-2")
                    .backend_sets("X-Header-Remove-2", "remove-val-2")
                    .backend_sets("Another-Header", "another-header-val")
                    .backend_sets("X-Header-Remove-1", "val")
                    .to(V1)
                    .resp("X-Header-Set-1", "header-set-1")
                    .resp("X-Header-Set-2", "header-set-2")
                    .resp("X-Header-Add-1", "header-add-1")
                    .resp("X-Header-Add-2", "add-val-2,header-add-2")
                    .resp("X-Header-Add-3", "header-add-3")
                    .resp("Another-Header", "another-header-val")
                    .resp_absent("X-Header-Remove-1")
                    .resp_absent("X-Header-Remove-2"),
                get("/case-insensitivity")
                    .backend_sets("x-header-set", "original-val-set")
                    .backend_sets("x-header-add", "original-val-add")
                    .backend_sets("x-header-remove", "original-val-remove")
                    .backend_sets("Another-Header", "another-header-val")
                    .to(V1)
                    .resp("X-Header-Set", "header-set")
                    .resp("X-Header-Add", "original-val-add,header-add")
                    .resp("X-Lowercase-Add", "lowercase-add")
                    .resp("X-Mixedcase-Add-1", "mixedcase-add-1")
                    .resp("X-Mixedcase-Add-2", "mixedcase-add-2")
                    .resp("X-Uppercase-Add", "uppercase-add")
                    .resp("Another-Header", "another-header-val")
                    .resp_absent("x-header-remove"),
                get("/response-and-request-header-modifiers")
                    .h("X-Header-Remove", "remove-val")
                    .h("X-Header-Add-Append", "append-val-1")
                    .h("X-Header-Echo", "echo")
                    .backend_sets("X-Header-Set-2", "set-val-2")
                    .backend_sets("X-Header-Add-2", "add-val-2")
                    .backend_sets("X-Header-Remove-2", "remove-val-2")
                    .backend_sets("Another-Header", "another-header-val")
                    .backend_sets("X-Header-Remove-1", "remove-val-1")
                    .backend_sets("X-Header-Echo", "echo")
                    .to(V1)
                    .seen("X-Header-Add", "header-val-1")
                    .seen("X-Header-Set", "set-overwrites-values")
                    .seen("X-Header-Add-Append", "append-val-1,header-val-2")
                    .seen("X-Header-Echo", "echo")
                    .seen_absent("X-Header-Remove")
                    .resp("X-Header-Set-1", "header-set-1")
                    .resp("X-Header-Set-2", "header-set-2")
                    .resp("X-Header-Add-1", "header-add-1")
                    .resp("X-Header-Add-2", "add-val-2,header-add-2")
                    .resp("Another-Header", "another-header-val")
                    .resp("X-Header-Echo", "echo")
                    .resp_absent("X-Header-Remove-1")
                    .resp_absent("X-Header-Remove-2"),
            ],
        },
        Suite {
            test: "HTTPRouteRequestMirror",
            manifest: "httproute-request-mirror.yaml",
            cases: vec![
                get("/mirror").to(V1).seen_path("/mirror").mirrored(V2),
                get("/mirror-and-modify-headers")
                    .h("X-Header-Remove", "remove-val")
                    .h("X-Header-Add-Append", "append-val-1")
                    .to(V1)
                    .seen_path("/mirror-and-modify-headers")
                    .seen("X-Header-Add", "header-val-1")
                    .seen("X-Header-Add-Append", "append-val-1,header-val-2")
                    .seen("X-Header-Set", "set-overwrites-values")
                    .seen_absent("X-Header-Remove")
                    .mirrored(V2),
            ],
        },
        Suite {
            test: "HTTPRouteRetry",
            manifest: "httproute-retry.yaml",
            cases: vec![
                get("/retry/code-500-attempts-3?responseCode=500&succeedAfter=2").to(V3),
                get("/retry/code-500-attempts-3?responseCode=500&succeedAfter=4")
                    .to(V3)
                    .status(500),
                get("/retry/code-500-attempts-3?responseCode=503&succeedAfter=2")
                    .to(V3)
                    .status(503),
                get("/retry/code-all-attempts-2?responseCode=500&succeedAfter=1").to(V3),
                get("/retry/code-all-attempts-2?responseCode=500&succeedAfter=3")
                    .to(V3)
                    .status(500),
                get("/retry/code-all-attempts-2?responseCode=502&succeedAfter=1").to(V3),
                get("/retry/code-all-attempts-2?responseCode=502&succeedAfter=3")
                    .to(V3)
                    .status(502),
                get("/retry/code-all-attempts-2?responseCode=503&succeedAfter=1").to(V3),
                get("/retry/code-all-attempts-2?responseCode=503&succeedAfter=3")
                    .to(V3)
                    .status(503),
                get("/retry/code-all-attempts-2?responseCode=504&succeedAfter=1").to(V3),
                get("/retry/code-all-attempts-2?responseCode=504&succeedAfter=3")
                    .to(V3)
                    .status(504),
            ],
        },
        Suite {
            test: "HTTPRouteCORS",
            manifest: "httproute-cors.yaml",
            cases: vec![
                preflight("/cors-1", "https://www.foo.com", "GET")
                    .h("access-control-request-headers", "x-header-1, x-header-2")
                    .resp("access-control-allow-origin", "https://www.foo.com")
                    .resp("access-control-allow-methods", "GET, OPTIONS")
                    .resp("access-control-allow-headers", "x-header-1, x-header-2")
                    .resp("access-control-expose-headers", "x-header-3, x-header-4")
                    .resp("access-control-max-age", "3600")
                    .resp("access-control-allow-credentials", "true"),
                preflight("/cors-1", "https://www.bar.com", "GET")
                    .h("access-control-request-headers", "x-header-1, x-header-2")
                    .resp("access-control-allow-origin", "https://www.bar.com")
                    .resp("access-control-allow-methods", "GET, OPTIONS")
                    .resp("access-control-allow-headers", "x-header-1, x-header-2")
                    .resp("access-control-expose-headers", "x-header-3, x-header-4")
                    .resp("access-control-max-age", "3600")
                    .resp("access-control-allow-credentials", "true"),
                preflight("/cors-1", "https://xpto.www.bar.com", "GET")
                    .h("access-control-request-headers", "x-header-1, x-header-2")
                    .resp("access-control-allow-origin", "https://xpto.www.bar.com")
                    .resp("access-control-allow-methods", "GET, OPTIONS")
                    .resp("access-control-allow-headers", "x-header-1, x-header-2")
                    .resp("access-control-expose-headers", "x-header-3, x-header-4")
                    .resp("access-control-max-age", "3600")
                    .resp("access-control-allow-credentials", "true"),
                preflight("/cors-1", "https://foobar.com", "GET")
                    .resp_absent("access-control-allow-origin"),
                get("/cors-1")
                    .h("Origin", "https://www.foo.com")
                    .h("access-control-request-method", "GET")
                    .h("access-control-request-headers", "x-header-1, x-header-2")
                    .to(V1)
                    .resp("access-control-allow-origin", "https://www.foo.com"),
                get("/cors-1")
                    .h("Origin", "https://www.bar.com")
                    .h("access-control-request-method", "GET")
                    .h("access-control-request-headers", "x-header-1, x-header-2")
                    .to(V1)
                    .resp("access-control-allow-origin", "https://www.bar.com"),
                get("/cors-1")
                    .h("Origin", "https://foobar.com")
                    .h("access-control-request-method", "GET")
                    .to(V1)
                    .resp_absent("access-control-allow-origin"),
                preflight("/cors-2", "https://www.foo.com", "POST")
                    .resp("access-control-allow-methods", "POST")
                    .resp("access-control-allow-origin", "https://www.foo.com")
                    .resp_absent("access-control-allow-credentials"),
                preflight("/cors-2", "https://www.foo.com", "POST")
                    .resp_absent("access-control-allow-credentials"),
                preflight("/cors-wildcard-origin", "https://foobar.com", "PUT")
                    .resp("access-control-allow-origin", "https://foobar.com")
                    .resp("access-control-allow-methods", "PUT")
                    .resp_absent("access-control-allow-credentials"),
                preflight("/cors-wildcard-origin", "https://foobar.com:12345", "PUT")
                    .resp("access-control-allow-origin", "https://foobar.com:12345")
                    .resp("access-control-allow-methods", "PUT")
                    .resp_absent("access-control-allow-credentials"),
                get("/cors-wildcard-origin")
                    .method("PUT")
                    .h("Origin", "https://foobar.com:12345")
                    .to(V1)
                    .resp("access-control-allow-origin", "https://foobar.com:12345"),
                get("/cors-wildcard-origin")
                    .method("PUT")
                    .h("Origin", "https://foobar.com")
                    .to(V1)
                    .resp("access-control-allow-origin", "https://foobar.com")
                    .resp_absent("access-control-allow-credentials"),
                preflight(
                    "/cors-wildcard-methods-headers",
                    "https://other.foo.com",
                    "PUT",
                )
                .h("access-control-request-headers", "x-header-1, x-header-2")
                .resp("access-control-allow-origin", "https://other.foo.com")
                .resp("access-control-allow-methods", "PUT")
                .resp("access-control-allow-headers", "x-header-1, x-header-2")
                .resp("access-control-allow-credentials", "true"),
                preflight(
                    "/cors-wildcard-methods-headers-unauth",
                    "https://other.foo.com",
                    "PUT",
                )
                .h("access-control-request-headers", "x-header-1, x-header-2")
                .resp("access-control-allow-origin", "https://other.foo.com")
                .resp("access-control-allow-methods", "PUT")
                .resp("access-control-allow-headers", "x-header-1, x-header-2")
                .resp_absent("access-control-allow-credentials"),
                get("/cors-wildcard-methods-headers")
                    .h("Origin", "https://other.foo.com")
                    .to(V1)
                    .resp("access-control-allow-origin", "https://other.foo.com")
                    .resp("access-control-allow-credentials", "true"),
                get("/cors-wildcard-methods-headers-unauth")
                    .h("Origin", "https://other.foo.com")
                    .to(V1)
                    .resp("access-control-allow-origin", "https://other.foo.com")
                    .resp_absent("access-control-allow-credentials"),
            ],
        },
        Suite {
            test: "HTTPRouteRequestMultipleMirrors",
            manifest: "httproute-request-multiple-mirrors.yaml",
            cases: vec![
                get("/multi-mirror")
                    .to(V1)
                    .seen_path("/multi-mirror")
                    .mirrored(V2)
                    .mirrored(V3),
                get("/multi-mirror-and-modify-request-headers")
                    .h("X-Header-Remove", "remove-val")
                    .h("X-Header-Add-Append", "append-val-1")
                    .to(V1)
                    .seen_path("/multi-mirror-and-modify-request-headers")
                    .seen("X-Header-Add", "header-val-1")
                    .seen("X-Header-Add-Append", "append-val-1,header-val-2")
                    .seen("X-Header-Set", "set-overwrites-values")
                    .seen_absent("X-Header-Remove")
                    .mirrored(V2)
                    .mirrored(V3),
            ],
        },
    ]
}

// ---------------------------------------------------------------------------------
// The echo backends.
// ---------------------------------------------------------------------------------

/// Requests each backend received, by native backend name.
type Hits = Arc<HashMap<String, AtomicU64>>;

/// The Service name and namespace of a native backend name made by the importer
/// (`name:port` in the route's namespace, `ns/name:port` in another).
fn service_of(native: &str, route_ns: &str) -> (String, String) {
    let no_port = native.rsplit_once(':').map_or(native, |(n, _)| n);
    match no_port.split_once('/') {
        Some((ns, name)) => (name.to_owned(), ns.to_owned()),
        None => (no_port.to_owned(), route_ns.to_owned()),
    }
}

/// Parses the echo server's `delay` (`1s`, `500ms`).
fn delay_of(v: &str) -> Option<Duration> {
    if let Some(ms) = v.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    v.strip_suffix('s')?
        .parse()
        .ok()
        .map(Duration::from_secs_f64)
}

/// An echo server as the upstream suite's: answers 200 (or the simulated retry
/// status) naming itself in `x-backend` / `x-backend-namespace`, and reports the
/// request it saw (`x-echo-path`, `x-echo-host`, `x-echo-method`, and every request
/// header as `x-echo-h-<name>`, values joined with `,` as upstream compares them). `?delay=1s` waits first;
/// `?responseCode=500&succeedAfter=2` fails the first two requests of one case
/// (counted by its `x-case` header); each `x-echo-set-header: Name:value` becomes a
/// response header.
async fn echo(native: String, service: String, ns: String, hits: Hits) -> Server {
    let tries: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let svc = tower::service_fn(move |req: Request<Incoming>| {
        let hits = Arc::clone(&hits);
        let tries = Arc::clone(&tries);
        let (native, service, ns) = (native.clone(), service.clone(), ns.clone());
        async move {
            if let Some(h) = hits.get(&native) {
                h.fetch_add(1, Ordering::SeqCst);
            }
            let query: HashMap<String, String> = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            if let Some(d) = query.get("delay").and_then(|d| delay_of(d)) {
                tokio::time::sleep(d).await;
            }
            let mut status = StatusCode::OK;
            if let (Some(code), Some(after)) =
                (query.get("responseCode"), query.get("succeedAfter"))
            {
                let key = req
                    .headers()
                    .get("x-case")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let n = {
                    let mut t = tries.lock().unwrap();
                    let n = t.entry(key).or_insert(0);
                    *n += 1;
                    *n
                };
                if n <= after.parse::<u64>().unwrap_or(0) {
                    status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
                }
            }
            let mut res = Response::new(Full::new(Bytes::from(service.clone())));
            *res.status_mut() = status;
            let h = res.headers_mut();
            h.insert("x-backend", service.parse().unwrap());
            h.insert("x-backend-namespace", ns.parse().unwrap());
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            h.insert("x-echo-path", path.parse().unwrap());
            h.insert("x-echo-method", req.method().as_str().parse().unwrap());
            let host = req
                .headers()
                .get(http::header::HOST)
                .cloned()
                .unwrap_or_else(|| http::HeaderValue::from_static(""));
            h.insert("x-echo-host", host);
            let mut seen: HashMap<String, Vec<String>> = HashMap::new();
            for (k, v) in req.headers() {
                seen.entry(k.as_str().to_owned())
                    .or_default()
                    .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
            }
            for v in req.headers().get_all("x-echo-set-header") {
                let text = String::from_utf8_lossy(v.as_bytes()).into_owned();
                if let Some((k, v)) = text.split_once(':') {
                    if let (Ok(k), Ok(v)) = (
                        http::HeaderName::from_bytes(k.trim().as_bytes()),
                        v.trim().parse::<http::HeaderValue>(),
                    ) {
                        h.append(k, v);
                    }
                }
            }
            for (k, v) in seen {
                let name = http::HeaderName::from_bytes(format!("x-echo-h-{k}").as_bytes());
                if let (Ok(name), Ok(value)) = (name, v.join(",").parse()) {
                    h.insert(name, value);
                }
            }
            Ok::<_, Infallible>(res)
        }
    });
    serve(svc).await
}

// ---------------------------------------------------------------------------------
// Running a suite.
// ---------------------------------------------------------------------------------

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{name}"))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The proxy in front of the echo backends of one imported manifest.
struct Stand {
    proxy: Server,
    hits: Hits,
    _servers: Vec<Server>,
}

async fn stand(manifest: &str, gateways: &[&str], without: Option<&str>) -> Stand {
    let mut text = read(manifest);
    if let Some(kind) = without {
        text = text
            .split("\n---\n")
            .filter(|d| !d.contains(&format!("\nkind: {kind}\n")))
            .collect::<Vec<_>>()
            .join("\n---\n");
    }
    stand_from(manifest, &text, gateways).await
}

/// [`stand`] for a manifest given as text (`manifest` names it in messages).
async fn stand_from(manifest: &str, text: &str, gateways: &[&str]) -> Stand {
    let base = read("base.yaml");
    let imported = import(
        &[Source::new("base.yaml", &base), Source::new(manifest, text)],
        &ImportOptions::default().with_gateways(gateways.iter().copied()),
    )
    .unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let names: Vec<String> = imported
        .config
        .backends
        .iter()
        .map(|b| b.name.clone())
        .collect();
    let hits: Hits = Arc::new(
        names
            .iter()
            .map(|n| (n.clone(), AtomicU64::new(0)))
            .collect(),
    );
    // The route's namespace decides what an unqualified backend name means.
    let route_ns = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("namespace: "))
        .unwrap_or(INFRA)
        .to_owned();
    let mut backends = Backends::new();
    let mut servers = Vec::new();
    for n in &names {
        let (service, ns) = service_of(n, &route_ns);
        let s = echo(n.clone(), service, ns, Arc::clone(&hits)).await;
        backends = backends.with(n.as_str(), HttpBackend::new(s.addr));
        servers.push(s);
    }
    let router = Router::new(imported.config).unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let layer = RoutingLayer::builder(router)
        .backends(backends)
        .rng_seed(7)
        .build();
    let proxy = serve(layer.layer(NotFound)).await;
    Stand {
        proxy,
        hits,
        _servers: servers,
    }
}

/// Sends one case and returns what is wrong with the answer.
async fn check(stand: &Stand, c: &Case, id: &str) -> Result<(), String> {
    let addr = stand.proxy.addr;
    let mut b = Request::builder()
        .method(c.method)
        .uri(format!("http://{addr}{}", c.path))
        .header("x-case", id);
    if let Some(h) = c.host {
        b = b.header(http::header::HOST, h);
    }
    for (k, v) in &c.headers {
        b = b.header(*k, *v);
    }
    for (k, v) in &c.backend_sets {
        b = b.header("x-echo-set-header", format!("{k}:{v}"));
    }
    let before: HashMap<&str, u64> = stand
        .hits
        .iter()
        .map(|(k, v)| (k.as_str(), v.load(Ordering::SeqCst)))
        .collect();
    let a = send(&client(), b.body(Full::new(Bytes::new())).unwrap()).await;
    let mut errs = Vec::new();
    if a.status.as_u16() != c.status {
        errs.push(format!(
            "status {} (body {:?}), want {}",
            a.status, a.body, c.status
        ));
    }
    let hdr = |name: &str| {
        let all: Vec<String> = a
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!all.is_empty()).then(|| all.join(","))
    };
    if let Some(want) = c.backend {
        let got = hdr("x-backend");
        if got.as_deref() != Some(want) {
            errs.push(format!("backend {got:?}, want {want}"));
        }
        let got_ns = hdr("x-backend-namespace");
        if got_ns.as_deref() != c.ns {
            errs.push(format!("backend namespace {got_ns:?}, want {:?}", c.ns));
        }
    } else if c.status != 200 {
        if let Some(got) = hdr("x-backend") {
            errs.push(format!(
                "answered by backend {got}, want the layer's {}",
                c.status
            ));
        }
    }
    if let Some(want) = c.seen_path {
        let got = hdr("x-echo-path");
        if got.as_deref() != Some(want) {
            errs.push(format!("backend saw path {got:?}, want {want}"));
        }
    }
    if let Some(want) = c.seen_host {
        let got = hdr("x-echo-host");
        if got.as_deref() != Some(want) {
            errs.push(format!("backend saw host {got:?}, want {want}"));
        }
    }
    for (k, want) in &c.seen_headers {
        let got = hdr(&format!("x-echo-h-{}", k.to_ascii_lowercase()));
        if got.as_deref() != Some(*want) {
            errs.push(format!("backend saw {k}: {got:?}, want {want}"));
        }
    }
    for k in &c.seen_absent {
        if let Some(got) = hdr(&format!("x-echo-h-{}", k.to_ascii_lowercase())) {
            errs.push(format!("backend saw {k}: {got}, want it absent"));
        }
    }
    for (k, want) in &c.resp_headers {
        let got = hdr(k);
        if got.as_deref() != Some(*want) {
            errs.push(format!("response {k}: {got:?}, want {want}"));
        }
    }
    for k in &c.resp_absent {
        if let Some(got) = hdr(k) {
            errs.push(format!("response {k}: {got}, want it absent"));
        }
    }
    if let Some(r) = &c.redirect {
        check_location(hdr("location"), r, c.path, addr.port(), &mut errs);
    }
    for m in &c.mirrored {
        let key = stand
            .hits
            .keys()
            .find(|k| service_of(k, INFRA).0 == *m)
            .cloned()
            .unwrap_or_default();
        let was = before.get(key.as_str()).copied().unwrap_or(0);
        let mut ok = false;
        for _ in 0..200 {
            if stand
                .hits
                .get(&key)
                .is_some_and(|h| h.load(Ordering::SeqCst) > was)
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !ok {
            errs.push(format!("no mirrored copy reached {m} within 2 s"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

/// Compares a `Location` with the expectation, defaults as upstream.
/// The layer listens on `listener_port`, where upstream's Gateway listener is on 80:
/// that port in a `Location` stands for 80.
fn check_location(
    got: Option<String>,
    r: &Redirect,
    req_path: &str,
    listener_port: u16,
    errs: &mut Vec<String>,
) {
    let Some(loc) = got else {
        errs.push("no Location".to_owned());
        return;
    };
    let Ok(uri) = loc.parse::<http::Uri>() else {
        errs.push(format!("Location {loc:?} is not a URI"));
        return;
    };
    let scheme = uri.scheme_str().unwrap_or("");
    let want_scheme = r.scheme.unwrap_or("http");
    if scheme != want_scheme {
        errs.push(format!(
            "Location {loc}: scheme {scheme}, want {want_scheme}"
        ));
    }
    let host = uri.host().unwrap_or("");
    if let Some(h) = r.host {
        if host != h {
            errs.push(format!("Location {loc}: host {host}, want {h}"));
        }
    }
    let port = uri
        .port_u16()
        .map(|p| if p == listener_port { 80 } else { p }.to_string());
    match r.port {
        Some(p) => {
            if port.as_deref() != Some(p) {
                errs.push(format!("Location {loc}: port {port:?}, want {p}"));
            }
        }
        None => {
            let default = if scheme == "https" { "443" } else { "80" };
            if port.as_deref().is_some_and(|p| p != default) {
                errs.push(format!(
                    "Location {loc}: port {port:?}, want none or {default}"
                ));
            }
        }
    }
    let path = uri.path();
    let want_path = r
        .path
        .unwrap_or_else(|| req_path.split('?').next().unwrap_or(req_path));
    if path != want_path {
        errs.push(format!("Location {loc}: path {path}, want {want_path}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ported_case_passes() {
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    let all = suites()
        .into_iter()
        .map(|suite| Aimed {
            suite,
            gateways: &[],
            without: None,
        })
        .chain(aimed_suites());
    for a in all {
        let s = a.suite;
        let stand = stand(s.manifest, a.gateways, a.without).await;
        for (i, c) in s.cases.iter().enumerate() {
            let id = format!("{}#{i}", s.test);
            if let Err(e) = check(&stand, c, &id).await {
                failures.push(format!(
                    "{id} {} {} host {:?} headers {:?}: {e}",
                    c.method, c.path, c.host, c.headers
                ));
            }
        }
        counts.push(format!("{} {}", s.test, s.cases.len()));
    }
    println!("cases per upstream test: {}", counts.join(", "));
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `HTTPRouteWeight` (upstream `conformance/utils/weight`): 500 requests, each
/// backend's share within 5 points of its weight (70 / 30 / 0). The layer's RNG
/// is seeded, so the run is reproducible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_as_upstream_expects() {
    let stand = stand("httproute-weight.yaml", &[], None).await;
    let c = client();
    let mut seen: HashMap<String, u32> = HashMap::new();
    let total = 500u32;
    for i in 0..total {
        let req = Request::get(format!("http://{}/", stand.proxy.addr))
            .header("x-case", format!("weight#{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let a = send(&c, req).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        *seen.entry(a.body).or_default() += 1;
    }
    for (backend, want) in [(V1, 0.7), (V2, 0.3), (V3, 0.0)] {
        let got = f64::from(seen.get(backend).copied().unwrap_or(0)) / f64::from(total);
        assert!(
            (got - want).abs() <= 0.05,
            "{backend}: {got:.3} of the requests, want {want} ± 0.05 ({seen:?})"
        );
    }
    assert_eq!(seen.get(V3), None, "weight 0 gets nothing");
}

/// `HTTPRouteRequestHeaderModifierBackendWeights`: two backendRefs of equal weight,
/// each setting `Backend: <its name>`; over 100 requests every one reaches the
/// backend its header names (the filter goes with the backend picked), and both
/// are picked.
#[tokio::test]
async fn backend_filters_follow_the_weighted_pick() {
    let stand = stand(
        "httproute-request-header-modifier-backend-weights.yaml",
        &[],
        None,
    )
    .await;
    let c = client();
    let mut seen: HashMap<String, u32> = HashMap::new();
    for i in 0..100 {
        let req = Request::get(format!("http://{}/", stand.proxy.addr))
            .header("x-case", format!("backend-weights#{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let a = send(&c, req).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let told: Vec<_> = a.headers.get_all("x-echo-h-backend").iter().collect();
        assert_eq!(told.len(), 1, "one Backend header: {told:?}");
        assert_eq!(told[0].to_str().unwrap(), a.body, "request {i}");
        *seen.entry(a.body).or_default() += 1;
    }
    assert_eq!(seen.len(), 2, "both backends picked: {seen:?}");
}

/// The spec's rule for an invalid backendRef next to valid ones ("requests that
/// would have been sent to it MUST receive a 500"), on the wire: a route
/// splitting 1:1 between a live Service and one that does not exist answers about
/// half its requests 500, the rest from the live backend, and the stand-in
/// backend for the unresolved reference is never called.
#[tokio::test]
async fn an_invalid_backend_ref_fails_only_its_share() {
    let manifest = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: half-invalid
  namespace: gateway-conformance-infra
spec:
  parentRefs: [{name: same-namespace}]
  rules:
    - backendRefs:
        - {name: infra-backend-v1, port: 8080, weight: 1}
        - {name: no-such-service, port: 8080, weight: 1}
";
    let stand = stand_from("half-invalid.yaml", manifest, SAME).await;
    let c = client();
    let (mut ok, mut failed) = (0u32, 0u32);
    for i in 0..400 {
        let req = Request::get(format!("http://{}/", stand.proxy.addr))
            .header("x-case", format!("half-invalid#{i}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let a = send(&c, req).await;
        match a.status.as_u16() {
            200 => {
                assert_eq!(a.body, V1);
                ok += 1;
            }
            500 => failed += 1,
            other => panic!("status {other}: {}", a.body),
        }
    }
    assert!(
        (140..=260).contains(&failed),
        "{failed} of 400 answered 500 ({ok} ok)"
    );
    let unresolved = stand
        .hits
        .get(routing_core::import::UNRESOLVED_BACKEND)
        .expect("the stand-in backend is declared");
    assert_eq!(unresolved.load(Ordering::SeqCst), 0, "never called");
}

/// Status-only upstream tests whose route must not be accepted
/// (`HTTPRouteInvalidParentRefNotMatchingSectionName`,
/// `HTTPRouteInvalidCrossNamespaceParentRef`): the import leaves the route out,
/// with a warning at its `parentRefs`, so nothing is routable.
#[test]
fn routes_upstream_refuses_are_left_out() {
    for (manifest, route) in [
        (
            "httproute-invalid-parentref-not-matching-section-name.yaml",
            "HTTPRoute gateway-conformance-infra/httproute-listener-not-matching-section-name",
        ),
        (
            "httproute-invalid-cross-namespace-parent-ref.yaml",
            "HTTPRoute gateway-conformance-web-backend/invalid-cross-namespace-parent-ref",
        ),
    ] {
        let (base, text) = (read("base.yaml"), read(manifest));
        let err = import(
            &[
                Source::new("base.yaml", &base),
                Source::new(manifest, &text),
            ],
            &ImportOptions::default(),
        )
        .expect_err("no route is accepted");
        assert!(
            err.errors().iter().all(|e| matches!(
                e.kind,
                routing_core::import::ImportErrorKind::NothingRoutable
            )),
            "{err}"
        );
        let left: Vec<_> = err
            .warnings()
            .iter()
            .filter(|w| w.message.starts_with("left out"))
            .map(|w| (w.at.resource.as_deref().unwrap_or(""), w.at.path.as_str()))
            .collect();
        assert_eq!(left, [(route, "spec.parentRefs")], "{manifest}");
    }
}

// ---------------------------------------------------------------------------------
// Backend protocols from the Service port's appProtocol.
// ---------------------------------------------------------------------------------

/// Imports base + `manifest` and returns the one backend's name and the protocol the
/// importer gave it.
fn imported_backend(manifest: &str) -> (routing_core::Config, String, UpstreamProtocol) {
    let imported = import(
        &[
            Source::new("base.yaml", &read("base.yaml")),
            Source::new(manifest, &read(manifest)),
        ],
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{manifest}: {e}"));
    let config = imported.config;
    assert_eq!(config.backends.len(), 1, "{manifest}: one backendRef");
    let b = &config.backends[0];
    let protocol = b.protocol.map(UpstreamProtocol::from).unwrap_or_default();
    let name = b.name.clone();
    (config, name, protocol)
}

/// The layer with backend `name` at `addr` in `protocol`, served by
/// [`routing_tower::server::serve`] (HTTP/1.1 + h2c, upgrades) on 127.0.0.1.
async fn protocol_proxy(
    config: routing_core::Config,
    name: &str,
    addr: std::net::SocketAddr,
    protocol: UpstreamProtocol,
) -> std::net::SocketAddr {
    let backend = HttpBackend::builder().protocol(protocol).build(addr);
    let layer = RoutingLayer::builder(Router::new(config).unwrap())
        .backends(Backends::new().with(name, backend))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let px = listener.local_addr().unwrap();
    tokio::spawn(routing_tower::server::serve(
        listener,
        layer.layer(NotFound),
        routing_tower::server::ServerLimits::default(),
        std::future::pending(),
    ));
    px
}

/// One HTTP/2 prior-knowledge GET to `addr`; the status and `x-backend`.
async fn h2c_get(addr: std::net::SocketAddr) -> (StatusCode, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("http://{addr}/"))
        .version(http::Version::HTTP_2)
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let backend = res
        .headers()
        .get("x-backend")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status(), backend)
}

/// `HTTPRouteBackendProtocolH2C`: the route's backendRef is `infra-backend-v1`
/// port 8081, whose ServicePort has `appProtocol: kubernetes.io/h2c`. The upstream
/// test sends an HTTP/2 prior-knowledge request for `/` and expects a 200 from
/// `infra-backend-v1` (the h2c upgrade mechanism is deliberately not tested, as
/// upstream). The upstream here speaks h2c only: HTTP/1.1 to it fails.
#[tokio::test]
async fn backend_protocol_h2c_reaches_an_h2c_only_upstream() {
    let manifest = "httproute-backend-protocol-h2c.yaml";
    let (config, name, protocol) = imported_backend(manifest);
    assert_eq!(
        protocol,
        UpstreamProtocol::H2c,
        "appProtocol kubernetes.io/h2c"
    );
    // An upstream that accepts HTTP/2 with prior knowledge and nothing else.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        // Bounded by the test: aborted at its end.
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let mut res = Response::new(Full::new(Bytes::from_static(b"h2c")));
                res.headers_mut()
                    .insert("x-backend", "infra-backend-v1".parse().unwrap());
                if req.version() != http::Version::HTTP_2 {
                    *res.status_mut() = StatusCode::HTTP_VERSION_NOT_SUPPORTED;
                }
                Ok::<_, Infallible>(res)
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc),
            );
        }
    });
    let px = protocol_proxy(config.clone(), &name, up, protocol).await;
    for _ in 0..3 {
        assert_eq!(
            h2c_get(px).await,
            (StatusCode::OK, "infra-backend-v1".to_owned()),
            "{manifest}: http2 prior knowledge request should reach backend"
        );
    }
    // The control: the same upstream spoken to in HTTP/1.1 (no appProtocol) fails.
    let wrong = protocol_proxy(config, &name, up, UpstreamProtocol::Http1).await;
    let (status, _) = h2c_get(wrong).await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "HTTP/1.1 to an h2c-only upstream"
    );
    server.abort();
}

/// `HTTPRouteBackendProtocolWebSocket`: the backendRef is `infra-backend-v1` port
/// 8082, `appProtocol: kubernetes.io/ws`. The upstream test dials `ws://<gw>/ws`
/// with an `Origin`, sends the text frame `Websocket Support!` and the binary frame
/// 1..=7, and expects each echoed unchanged.
#[tokio::test]
async fn backend_protocol_websocket_reaches_a_websocket_upstream() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let manifest = "httproute-backend-protocol-websocket.yaml";
    let (config, name, protocol) = imported_backend(manifest);
    assert_eq!(
        protocol,
        UpstreamProtocol::Http1,
        "appProtocol kubernetes.io/ws"
    );
    // A WebSocket echo server (the upstream echo-basic image echoes frames as is).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let px = protocol_proxy(config, &name, up, protocol).await;
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{px}/ws"),
    )
    .unwrap();
    req.headers_mut().insert(
        "origin",
        "ws://gateway/backend_protocol_websocket".parse().unwrap(),
    );
    let tcp = tokio::net::TcpStream::connect(px).await.unwrap();
    let (mut ws, res) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    for msg in [
        Message::text("Websocket Support!"),
        Message::binary(vec![1u8, 2, 3, 4, 5, 6, 7]),
    ] {
        ws.send(msg.clone()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a reply in time")
            .unwrap()
            .unwrap();
        assert_eq!(got, msg, "{manifest}: echoed unchanged");
    }
    ws.close(None).await.unwrap();
    server.abort();
}
