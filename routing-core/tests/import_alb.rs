//! ALB `describe-rules` import, checked against AWS's documented semantics: rules
//! compete by priority (not specificity), the default rule is last, path patterns are
//! case-sensitive globs, host and header values case-insensitive globs, values of one
//! condition are ORed and conditions ANDed; weighted target groups keep their exact
//! weights; everything not expressible is refused with its field path and line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::line_of;
use routing_core::import::{
    import, BackendMap, BackendTarget, ImportErrorKind, ImportErrors, ImportOptions, Imported,
    Source, SourceKind,
};
use routing_core::{Action, Config, RequestInfo, RouteTable, RulePrecedence};

fn fixture(name: &str) -> String {
    common::fixture("alb", name)
}

fn load_with(name: &str, opts: &ImportOptions) -> Imported {
    let text = fixture(name);
    import(&[Source::new(name, &text)], opts).unwrap_or_else(|e| panic!("{e}"))
}

fn load(name: &str) -> Imported {
    load_with(name, &ImportOptions::default())
}

fn fail(name: &str, text: &str) -> ImportErrors {
    match import(&[Source::new(name, text)], &ImportOptions::default()) {
        Ok(i) => panic!("expected errors, got {:#?}", i.config),
        Err(e) => e,
    }
}

/// What the table does with `req`: `RULE -> BACKEND` (`*` when the rule splits
/// traffic), `RULE -> redirect …`, `RULE -> fixed STATUS`, or `none`.
fn outcome(table: &RouteTable, req: &RequestInfo) -> String {
    let Ok(d) = table.decide(req, &mut rand::rng()) else {
        return "none".into();
    };
    let rule = d.rule().name().unwrap_or("?").to_owned();
    let what = match d.rule().action() {
        Action::Forward(f) if f.backends().len() > 1 => "*".to_owned(),
        Action::Forward(_) => d.backend().map_or("-", |b| b.name()).to_owned(),
        Action::Redirect(r) => format!(
            "redirect {} {}://{}:{} {}",
            r.status.as_u16(),
            r.scheme.as_deref().unwrap_or("-"),
            r.hostname.as_deref().unwrap_or("-"),
            r.port.map_or("-".into(), |p| p.to_string()),
            r.path.as_ref().map_or("-".into(), |p| format!("{p:?}")),
        ),
        Action::FixedResponse(f) => format!("fixed {}", f.status.as_u16()),
        _ => "other".into(),
    };
    format!("{rule} -> {what}")
}

fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> RequestInfo {
    let mut r = RequestInfo::new(method.parse().unwrap(), uri);
    for (k, v) in headers {
        r = r.header(k, v);
    }
    r
}

/// Method, URI, headers, expected [`outcome`].
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn path_and_host_routing_follows_priorities() {
    let imported = load("path-host.json");
    assert_eq!(
        imported.kinds,
        std::collections::BTreeSet::from([SourceKind::AlbRules])
    );
    let table = imported.validate().unwrap();
    let h = |k, v| (k, v);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // Priority order wins over specificity: `/api/*` (priority 1) beats the exact
        // `/api/cart` (priority 2), which is never reached.
        ("GET", "http://shop.test/api/cart", &[], "priority-1 -> shop-api"),
        ("GET", "http://shop.test/api/", &[], "priority-1 -> shop-api"),
        // `/api/*` needs the `/api/` prefix; the default rule comes last.
        ("GET", "http://shop.test/api", &[], "default -> *"),
        // Path patterns are case-sensitive.
        ("GET", "http://shop.test/API/cart", &[], "default -> *"),
        // `?` is exactly one character, `*` any number; values ORed.
        ("GET", "http://shop.test/img/ab.png", &[], "priority-3 -> shop-static"),
        ("GET", "http://shop.test/img/a.png", &[], "default -> *"),
        ("GET", "http://shop.test/img/abc.png", &[], "default -> *"),
        ("GET", "http://shop.test/img/abXpng", &[], "default -> *"),
        ("GET", "http://shop.test/static/css/site.css", &[], "priority-3 -> shop-static"),
        ("GET", "http://shop.test/static", &[], "default -> *"),
        // The path is matched without the query.
        ("GET", "http://shop.test/static/a?x=/api/", &[], "priority-3 -> shop-static"),
        // Host AND method AND header; host and header values are case-insensitive,
        // the port is not part of the host.
        ("POST", "http://ADMIN.Example.COM/", &[h("x-beta", "YES")], "priority-10 -> shop-admin"),
        ("PUT", "http://admin.example.com:8443/", &[h("X-BETA", "On-trial")], "priority-10 -> shop-admin"),
        // One condition fails: the next rule by priority, `*.example.com`, applies.
        ("GET", "http://admin.example.com/", &[h("x-beta", "yes")], "priority-20 -> shop-tenants"),
        ("POST", "http://admin.example.com/", &[h("x-beta", "no")], "priority-20 -> shop-tenants"),
        ("POST", "http://admin.example.com/", &[], "priority-20 -> shop-tenants"),
        ("POST", "http://admin.example.org/", &[h("x-beta", "yes")], "default -> *"),
        // A lower priority number still wins across condition kinds.
        ("POST", "http://admin.example.com/api/cart", &[h("x-beta", "yes")], "priority-1 -> shop-api"),
        // `*` in a host matches any characters, dots included, but the `.` is literal.
        ("GET", "http://a.b.Example.com/", &[], "priority-20 -> shop-tenants"),
        ("GET", "http://example.com/", &[], "default -> *"),
        ("GET", "http://aexample.com/", &[], "default -> *"),
        // Header values: ORed, case-insensitive, wildcards.
        ("GET", "http://shop.test/", &[h("user-agent", "Mozilla/5.0 (Linux; ANDROID 14)")], "priority-30 -> shop-mobile"),
        ("GET", "http://shop.test/", &[h("User-Agent", "Safari (iPhone; mobile)")], "priority-30 -> shop-mobile"),
        ("GET", "http://shop.test/", &[h("user-agent", "curl/8.5")], "default -> *"),
        // Query: key/value pairs ORed, values case-insensitive, `\\*` a literal `*`,
        // ANDed with the path.
        ("GET", "http://shop.test/search?q=x&version=BETA", &[], "priority-40 -> shop-search-beta"),
        ("GET", "http://shop.test/search?channel=Pre*View", &[], "priority-40 -> shop-search-beta"),
        ("GET", "http://shop.test/search?channel=preXview", &[], "default -> *"),
        ("GET", "http://shop.test/search?version=gamma", &[], "default -> *"),
        ("GET", "http://shop.test/find?version=beta", &[], "default -> *"),
        // The documented (warned) difference: parameter names are case-sensitive here.
        ("GET", "http://shop.test/search?VERSION=beta", &[], "default -> *"),
        ("GET", "http://shop.test/old-shop/item/7", &[], "priority-50 -> redirect 302 -://shop.example.com:- Full(\"/\")"),
    ];
    let mut wrong = Vec::new();
    for (method, uri, headers, want) in cases {
        let got = outcome(&table, &req(method, uri, headers));
        if got != *want {
            wrong.push(format!(
                "{method} {uri} {headers:?}: got `{got}`, want `{want}`"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn path_host_native_shape() {
    let text = fixture("path-host.json");
    let imported = load("path-host.json");
    let route = &imported.config.routes[0];
    assert_eq!(imported.config.routes.len(), 1);
    assert_eq!(route.name, "shop-alb/a1b2c3d4e5f60718");
    assert_eq!(route.precedence, Some(RulePrecedence::FirstMatch));
    assert!(route.hostnames.is_empty());
    let names: Vec<_> = route
        .rules
        .iter()
        .map(|r| r.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "priority-1",
            "priority-2",
            "priority-3",
            "priority-10",
            "priority-20",
            "priority-30",
            "priority-40",
            "priority-50",
            "default"
        ]
    );
    // Each native rule points back at its ALB rule (the file lists priority 2 first).
    let rule_lines: Vec<_> = imported.origins[0]
        .rules
        .iter()
        .map(|l| (l.path.clone(), l.line))
        .collect();
    assert_eq!(
        rule_lines[0],
        (
            "Rules[1]".into(),
            Some(line_of(&text, "\"RuleArn\"", 1) - 1)
        )
    );
    assert_eq!(
        rule_lines[1],
        (
            "Rules[0]".into(),
            Some(line_of(&text, "\"RuleArn\"", 0) - 1)
        )
    );
    assert_eq!(rule_lines[8].0, "Rules[8]");
    let p = |i: usize| {
        route.rules[i]
            .matches
            .iter()
            .map(|m| m.path.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(p(0)[0].starts_with.as_deref(), Some("/api/"));
    assert_eq!(p(1)[0].exact.as_deref(), Some("/api/cart"));
    assert_eq!(p(2)[0].regex.as_deref(), Some("(?s)/img/..\\.png"));
    assert_eq!(p(2)[1].starts_with.as_deref(), Some("/static/"));
    // Two methods × one host × one (ORed) header condition = two matches.
    let admin = &route.rules[3].matches;
    assert_eq!(admin.len(), 2);
    assert_eq!(
        admin
            .iter()
            .map(|m| m.method.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["POST", "PUT"]
    );
    assert!(admin
        .iter()
        .all(|m| m.authority.as_ref().unwrap().exact.as_deref() == Some("admin.example.com")));
    assert_eq!(admin[0].headers[0].name, "X-Beta");
    assert_eq!(
        admin[0].headers[0].regex.as_deref(),
        Some("(?s)(?:[yY][eE][sS]|[oO][nN].*)")
    );
    // The default rule: 80/20 exactly, ALB's target group stickiness cookie.
    let default = &route.rules[8];
    assert!(default.matches.is_empty());
    let weights: Vec<_> = default
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.weight))
        .collect();
    assert_eq!(weights, [("shop-blue", 80), ("shop-green", 20)]);
    let cookie = default
        .session_persistence
        .as_ref()
        .unwrap()
        .cookie
        .as_ref()
        .unwrap();
    assert_eq!(cookie.name, "AWSALBTG");
    assert_eq!(
        cookie.ttl.unwrap().as_duration(),
        std::time::Duration::from_secs(3600)
    );
    let table = imported.validate().unwrap();
    let rule = table.rules().last().unwrap();
    match &rule.policy().session_persistence {
        Some(routing_core::SessionPersistence::Cookie(c)) => {
            assert_eq!(
                (c.name.as_str(), c.ttl),
                ("AWSALBTG", Some(std::time::Duration::from_secs(3600)))
            );
        }
        other => panic!("{other:?}"),
    }
    // One query-string condition: one warning, at its line; and the sticky weighted
    // forward's semantics (ALB: cookies beat weights), at its stickiness config.
    assert_eq!(imported.warnings.len(), 2, "{:?}", imported.warnings);
    let sticky = &imported.warnings[1];
    assert_eq!(
        sticky.at.path,
        "Rules[8].Actions[0].ForwardConfig.TargetGroupStickinessConfig"
    );
    assert!(
        sticky.message.contains("cookies beat weights"),
        "{}",
        sticky.message
    );
    let w = &imported.warnings[0];
    assert_eq!(w.at.path, "Rules[6].Conditions[1].QueryStringConfig");
    assert_eq!(w.at.line, Some(line_of(&text, "\"QueryStringConfig\"", 0)));
    assert_eq!(
        w.at.resource.as_deref(),
        Some("ALB listener shop-alb/a1b2c3d4e5f60718")
    );
    assert!(w.message.contains("case-sensitively"), "{}", w.message);
}

#[test]
fn weighted_target_groups_through_a_backend_map() {
    let blue = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/payments-blue/11aa22bb33cc44dd";
    let mut map = BackendMap::default();
    // By ARN, by target group name, and with an address.
    map.insert(blue, BackendTarget::Name("payments-v7".into()));
    map.insert("payments-green", BackendTarget::Name("payments-v8".into()));
    map.insert(
        "payments-canary",
        BackendTarget::Full {
            name: "payments-v9".into(),
            address: Some("10.1.0.9:8080".parse().unwrap()),
        },
    );
    let opts = ImportOptions::default().with_backend_map(map.clone());
    let imported = load_with("blue-green.json", &opts);
    let cfg = &imported.config;
    let rule = &cfg.routes[0].rules[0];
    let weights: Vec<_> = rule
        .backends
        .iter()
        .map(|b| (b.name.as_str(), b.weight))
        .collect();
    assert_eq!(
        weights,
        [("payments-v7", 80), ("payments-v8", 20), ("payments-v9", 0)]
    );
    assert_eq!(
        cfg.backends[2].address,
        Some("10.1.0.9:8080".parse().unwrap())
    );
    assert!(rule.session_persistence.is_none(), "stickiness is disabled");
    assert_eq!(cfg.routes[0].name, "payments/b2c3d4e5f6071829");
    let table = imported.validate().unwrap();
    let pay = RequestInfo::get("https://PAY.example.com/checkout");
    let mut rng = rand::rng();
    let (mut v7, n) = (0, 4000);
    for _ in 0..n {
        let d = table.decide(&pay, &mut rng).unwrap();
        match d.backend().unwrap().name() {
            "payments-v7" => v7 += 1,
            "payments-v8" => {}
            other => panic!("weight 0 got traffic: {other}"),
        }
    }
    assert!((3000..3400).contains(&v7), "{v7} of {n} to blue");
    // Another host: the default fixed response.
    assert_eq!(
        outcome(&table, &RequestInfo::get("https://other.example.com/")),
        "default -> fixed 404"
    );
    // A map without one of the target groups: an error at its ARN.
    let mut partial = BackendMap::default();
    partial.insert(blue, BackendTarget::Name("payments-v7".into()));
    partial.insert("payments-green", BackendTarget::Name("payments-v8".into()));
    let text = fixture("blue-green.json");
    let err = import(
        &[Source::new("blue-green.json", &text)],
        &ImportOptions::default().with_backend_map(partial),
    )
    .unwrap_err();
    assert_eq!(err.errors().len(), 1, "{err}");
    let e = &err.errors()[0];
    assert_eq!(
        e.at.path,
        "Rules[0].Actions[0].ForwardConfig.TargetGroups[2].TargetGroupArn"
    );
    assert_eq!(e.at.line, Some(line_of(&text, "payments-canary", 0)));
    assert!(
        matches!(&e.kind, ImportErrorKind::UnknownBackend(m) if m.contains("targetgroup/payments-canary/99cc00dd11ee22ff") && m.contains("`payments-canary`")),
        "{e}"
    );
}

#[test]
fn fixed_responses_and_redirects() {
    let maint = load("maintenance.json");
    let table = maint.validate().unwrap();
    assert_eq!(
        outcome(&table, &RequestInfo::get("http://www.test/healthz")),
        "priority-1 -> fixed 200"
    );
    assert_eq!(
        outcome(&table, &RequestInfo::get("http://www.test/cart")),
        "default -> fixed 503"
    );
    let d = table
        .decide(&RequestInfo::get("http://www.test/"), &mut rand::rng())
        .unwrap();
    let Action::FixedResponse(f) = d.rule().action() else {
        panic!()
    };
    assert_eq!(f.body, "<h1>Down for maintenance</h1>");
    assert_eq!(f.headers["content-type"], "text/html");

    let https = load("http-to-https.json");
    let table = https.validate().unwrap();
    // HTTPS on 443, host, path and query kept (`#{host}`, `/#{path}`, `#{query}`).
    assert_eq!(
        outcome(&table, &RequestInfo::get("http://www.example.com/a/b?c=d")),
        "default -> redirect 301 https://-:443 -"
    );
    assert!(https.warnings.is_empty(), "{:?}", https.warnings);
}

#[test]
fn authentication_fails_closed_unless_lossy_and_pagination_is_warned() {
    let text = fixture("authenticated.json");
    let auth_line = Some(line_of(&text, "\"Type\": \"authenticate-oidc\"", 0) - 1);
    // By default an authentication action the router cannot apply is refused: the
    // rule would forward unauthenticated requests.
    let err = fail("authenticated.json", &text);
    let got: Vec<_> = err
        .errors()
        .iter()
        .map(|e| (e.at.path.as_str(), e.at.line))
        .collect();
    assert_eq!(got, [("Rules[0].Actions[0]", auth_line)]);
    assert!(
        matches!(&err.errors()[0].kind, ImportErrorKind::Lossy(m) if m.contains("WITHOUT being authenticated")),
        "{:?}",
        err.errors()[0].kind
    );
    // With allow_lossy it is imported, and said so.
    let imported = load_with(
        "authenticated.json",
        &ImportOptions::default().with_allow_lossy(true),
    );
    let got: Vec<_> = imported
        .warnings
        .iter()
        .map(|w| (w.at.path.as_str(), w.at.line))
        .collect();
    assert_eq!(
        got,
        [
            ("NextMarker", Some(line_of(&text, "NextMarker", 0))),
            ("Rules[0].Actions[0]", auth_line),
        ]
    );
    assert!(imported.warnings[0]
        .message
        .contains("rules on other pages are missing"));
    assert!(imported.warnings[1]
        .message
        .contains("`authenticate-oidc` cannot be applied in-process"));
    assert!(imported.warnings[1]
        .message
        .contains("WITHOUT being authenticated"));
    assert!(imported.warnings[1].message.contains("allow_lossy"));
    // The rule forwards (to the backend the ALB would have sent the user to).
    let table = imported.validate().unwrap();
    assert_eq!(
        outcome(&table, &RequestInfo::get("https://www.test/account/orders")),
        "priority-10 -> account"
    );
    assert_eq!(
        outcome(&table, &RequestInfo::get("https://www.test/")),
        "default -> www"
    );
    // deny_warnings turns the pagination warning into an error as well.
    let strict = ImportOptions::default()
        .with_allow_lossy(true)
        .with_deny_warnings(true);
    let err = import(&[Source::new("authenticated.json", &text)], &strict).unwrap_err();
    assert!(err
        .errors()
        .iter()
        .all(|e| matches!(e.kind, ImportErrorKind::Warning(_))));
    assert_eq!(err.errors().len(), 2);
}

#[test]
fn refusals_carry_field_paths_and_lines() {
    let text = fixture("errors.json");
    let err = fail("errors.json", &text);
    let l = |needle: &str, nth: usize| Some(line_of(&text, needle, nth));
    let got: Vec<_> = err
        .errors()
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                ImportErrorKind::Unsupported(_) => "unsupported",
                ImportErrorKind::Invalid(_) => "invalid",
                other => panic!("{other:?}"),
            };
            (kind, e.at.path.as_str(), e.at.line)
        })
        .collect();
    let want = [
        // Ordering problems come first (the rules are sorted before conversion).
        ("invalid", "Rules[4].Priority", l("\"Priority\": \"4\"", 1)),
        ("invalid", "Rules[5].Priority", l("\"high\"", 0)),
        (
            "unsupported",
            "Rules[0].Conditions[0]",
            l("\"Field\": \"source-ip\"", 0).map(|n| n - 1),
        ),
        (
            "unsupported",
            "Rules[1].Conditions[0].QueryStringConfig.Values[0]",
            l("\"Value\": \"debug\"", 0).map(|n| n - 1),
        ),
        (
            "unsupported",
            "Rules[2].Actions[0].RedirectConfig.Path",
            l("/v2/#{path}", 0),
        ),
        (
            "invalid",
            "Rules[3].Actions[0].TargetGroupArn",
            l("loadbalancer/app/legacy-alb", 0),
        ),
        (
            "unsupported",
            "Rules[6].Actions[0].RedirectConfig.Port",
            l("\"Port\": \"#{port}\"", 1),
        ),
        (
            "unsupported",
            "Rules[6].Actions[0].RedirectConfig.Query",
            l("utm=alb", 0),
        ),
        (
            "invalid",
            "Rules[7].Actions[0].ForwardConfig.TargetGroups",
            l("\"TargetGroups\"", 0),
        ),
        (
            "invalid",
            "Rules[8].Conditions",
            l("\"Priority\": \"9\"", 0).map(|n| n + 1),
        ),
        (
            "unsupported",
            "Rules[9].Conditions[0].HostHeaderConfig.RegexValues",
            l("RegexValues", 0),
        ),
        (
            "unsupported",
            "Rules[10].Transforms[0]",
            l("\"Transforms\"", 0).map(|n| n + 1),
        ),
        (
            "invalid",
            "Rules[11].Actions[0].Type",
            l("\"Priority\": \"12\"", 0).map(|n| n + 13),
        ),
        ("unsupported", "Rules[11].Actions[1].Type", l("teleport", 0)),
    ];
    assert_eq!(got, want, "{err}");
    let msg = |path: &str| {
        err.errors()
            .iter()
            .find(|e| e.at.path == path)
            .map(|e| e.kind.to_string())
            .unwrap()
    };
    assert!(msg("Rules[4].Priority").contains("also the priority of `Rules[3]`"));
    assert!(msg("Rules[0].Conditions[0]").contains("source-ip"));
    assert!(msg("Rules[1].Conditions[0].QueryStringConfig.Values[0]").contains("without `Key`"));
    assert!(msg("Rules[2].Actions[0].RedirectConfig.Path").contains("/v2/#{path}"));
    assert!(msg("Rules[8].Conditions").contains("125 alternatives"));
    assert!(err
        .errors()
        .iter()
        .all(|e| e.at.resource.as_deref() == Some("ALB listener legacy-alb/90ab000000000e4")));
}

#[test]
fn unknown_fields_are_parse_errors() {
    let text = "{\n  \"Rules\": [\n    {\n      \"Priority\": \"1\",\n      \"Conditions\": [{\"Field\": \"path-pattern\", \"Values\": [\"/\"], \"Colour\": \"red\"}],\n      \"Actions\": []\n    }\n  ]\n}\n";
    let err = fail("rules.json", text);
    let e = &err.errors()[0];
    assert!(matches!(e.kind, ImportErrorKind::Parse(_)), "{e}");
    assert_eq!(e.at.path, "Rules[0].Conditions[0].Colour");
    assert_eq!(e.at.line, Some(5));
    let err = fail("rules.json", "{\"Rules\": [], \"ResponseMetadata\": {}}");
    assert_eq!(err.errors()[0].at.path, "ResponseMetadata");
    assert!(matches!(err.errors()[0].kind, ImportErrorKind::Parse(_)));
}

/// A one-rule listing around `conditions` and `actions` (JSON fragments).
fn one_rule(conditions: &str, actions: &str) -> String {
    format!(
        r#"{{"Rules": [
  {{"RuleArn": "arn:aws:elasticloadbalancing:us-east-1:111122223333:listener-rule/app/web/0123456789abcdef/fedcba9876543210/1111",
    "Priority": "5",
    "Conditions": {conditions},
    "Actions": {actions},
    "IsDefault": false}}
]}}"#
    )
}

const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/web/0123456789abcdef";

#[test]
fn smaller_cases() {
    let fwd = format!(r#"[{{"Type": "forward", "TargetGroupArn": "{TG}"}}]"#);
    // Legacy `Values` alone; a path pattern that is only `*`.
    let i = import(
        &[Source::new(
            "a.json",
            &one_rule(r#"[{"Field": "path-pattern", "Values": ["*"]}]"#, &fwd),
        )],
        &ImportOptions::default(),
    )
    .unwrap();
    let t = i.validate().unwrap();
    assert_eq!(
        outcome(&t, &RequestInfo::get("http://x/anything")),
        "priority-5 -> web"
    );
    // `Values` and `PathPatternConfig.Values` that differ.
    let e = fail(
        "b.json",
        &one_rule(
            r#"[{"Field": "path-pattern", "Values": ["/a"], "PathPatternConfig": {"Values": ["/b"]}}]"#,
            &fwd,
        ),
    );
    assert_eq!(e.errors()[0].at.path, "Rules[0].Conditions[0].Values");
    // A `Field` that is not ALB's.
    let e = fail(
        "c.json",
        &one_rule(r#"[{"Field": "cookie", "Values": ["a"]}]"#, &fwd),
    );
    assert_eq!(e.errors()[0].at.path, "Rules[0].Conditions[0].Values");
    let e = fail("c.json", &one_rule(r#"[{"Field": "cookie"}]"#, &fwd));
    assert!(matches!(
        e.errors()[0].kind,
        ImportErrorKind::Unsupported(_)
    ));
    assert_eq!(e.errors()[0].at.path, "Rules[0].Conditions[0].Field");
    // A whole-host rewrite is expressible; a capture-based one is not.
    let transform = |regex: &str| {
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/*"]}]"#, &fwd).replace(
            "\"IsDefault\": false",
            &format!(r#""IsDefault": false, "Transforms": [{{"Type": "host-header-rewrite", "HostHeaderRewriteConfig": {{"Rewrites": [{{"Regex": "{regex}", "Replace": "internal.example.com"}}]}}}}]"#),
        )
    };
    let i = import(
        &[Source::new("d.json", &transform("^.*$"))],
        &ImportOptions::default(),
    )
    .unwrap();
    let rw = i.config.routes[0].rules[0]
        .filters
        .as_ref()
        .unwrap()
        .url_rewrite
        .as_ref()
        .unwrap();
    assert_eq!(rw.hostname.as_deref(), Some("internal.example.com"));
    i.validate().unwrap();
    let e = fail("e.json", &transform("^www\\\\.(.*)$"));
    assert_eq!(e.errors()[0].at.path, "Rules[0].Transforms[0]");
    // Stickiness without a duration; a weight above 999; a query key with wildcards.
    let sticky = format!(
        r#"[{{"Type": "forward", "ForwardConfig": {{"TargetGroups": [{{"TargetGroupArn": "{TG}", "Weight": 1000}}], "TargetGroupStickinessConfig": {{"Enabled": true}}}}}}]"#
    );
    let e = fail(
        "f.json",
        &one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, &sticky),
    );
    let paths: Vec<_> = e.errors().iter().map(|e| e.at.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Rules[0].Actions[0].ForwardConfig.TargetGroups[0].Weight",
            "Rules[0].Actions[0].ForwardConfig.TargetGroupStickinessConfig.DurationSeconds"
        ]
    );
    let e = fail(
        "g.json",
        &one_rule(
            r#"[{"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "utm_*", "Value": "x"}]}}]"#,
            &fwd,
        ),
    );
    assert_eq!(
        e.errors()[0].at.path,
        "Rules[0].Conditions[0].QueryStringConfig.Values[0].Key"
    );
    // No ARN to name the listener after: `alb-rules`.
    let i = import(
        &[Source::new(
            "h.json",
            &format!(
                r#"{{"Rules": [{{"Priority": "default", "IsDefault": true, "Actions": {fwd}}}]}}"#
            ),
        )],
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(i.config.routes[0].name, "alb-rules");
}

#[test]
fn several_listeners_are_warned_about() {
    let (a, b) = (fixture("maintenance.json"), fixture("path-host.json"));
    let imported = import(
        &[
            Source::new("maintenance.json", &a),
            Source::new("path-host.json", &b),
        ],
        &ImportOptions::default(),
    )
    .unwrap();
    let names: Vec<_> = imported
        .config
        .routes
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["www-alb/44dd000000000c2", "shop-alb/a1b2c3d4e5f60718"]
    );
    let w = imported
        .warnings
        .iter()
        .find(|w| w.message.contains("several ALB listeners"))
        .unwrap();
    assert_eq!(
        (w.at.source.as_str(), w.at.path.as_str(), w.at.line),
        ("path-host.json", "Rules", Some(2))
    );
    // As warned: the first listener's default rule answers everything.
    let table = imported.validate().unwrap();
    assert_eq!(
        outcome(&table, &RequestInfo::get("http://shop.test/api/cart")),
        "default -> fixed 503"
    );
}

#[test]
fn imports_round_trip_through_native_yaml() {
    for name in [
        "path-host.json",
        "blue-green.json",
        "http-to-https.json",
        "maintenance.json",
        "authenticated.json",
    ] {
        let imported = load_with(name, &ImportOptions::default().with_allow_lossy(true));
        let yaml = imported.config.to_yaml();
        let back = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{name}: {e}\n{yaml}"));
        assert_eq!(back, imported.config, "{name}");
        back.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn hostile_input_never_panics() {
    // Truncated and mutated fixtures: errors or results, never a panic.
    for name in ["path-host.json", "errors.json", "blue-green.json"] {
        let text = fixture(name);
        let cut: Vec<usize> = (0..text.len())
            .step_by(127)
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for &i in &cut {
            let _ = import(&[Source::new(name, &text[..i])], &ImportOptions::default());
            for with in ["\"", "[", "*"] {
                let mut m = text.clone();
                let end = (i + 1..=m.len())
                    .find(|&j| m.is_char_boundary(j))
                    .unwrap_or(m.len());
                m.replace_range(i..end, with);
                if let Ok(imported) = import(&[Source::new(name, &m)], &ImportOptions::default()) {
                    let _ = imported.validate();
                }
            }
        }
    }
    let fwd = format!(r#"[{{"Type": "forward", "TargetGroupArn": "{TG}"}}]"#);
    let cases = [
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/é?*ü"]}]"#, &fwd),
        one_rule(r#"[{"Field": "path-pattern", "Values": [""]}]"#, &fwd),
        one_rule(r#"[{"Field": "host-header", "Values": ["*?*"]}]"#, &fwd),
        one_rule(r#"[{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "bad header", "Values": ["\u0000"]}}]"#, &fwd),
        one_rule(r#"[{"Field": "http-header", "HttpHeaderConfig": {"Values": ["a"]}}]"#, &fwd),
        one_rule(r#"[{"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "\\", "Value": "\\"}]}}]"#, &fwd),
        one_rule(r#"[{"Field": "http-request-method", "HttpRequestMethodConfig": {"Values": ["get", ""]}}]"#, &fwd),
        one_rule(r#"[{}]"#, &fwd),
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, r#"[{"Type": "forward", "Order": -9223372036854775808, "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "arn:::::targetgroup//", "Weight": -9223372036854775808}], "TargetGroupStickinessConfig": {"Enabled": true, "DurationSeconds": -9223372036854775808}}}]"#),
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, r#"[{"Type": "redirect", "RedirectConfig": {"Protocol": "", "Port": "99999", "Host": "", "Path": "", "Query": "", "StatusCode": ""}}]"#),
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, r#"[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "65536", "ContentType": "x\ny"}}]"#),
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, "[]"),
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, r#"[{"Type": "authenticate-cognito", "AuthenticateCognitoConfig": {"x": [1]}}]"#),
        one_rule(&format!("[{}]", vec![r#"{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "x", "Values": ["a"]}}"#; 1000].join(",")), &fwd),
        one_rule(&format!("[{}]", vec![r#"{"Field": "query-string", "QueryStringConfig": {"Values": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}}"#; 64].join(",")), &fwd),
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, &fwd).replace("\"5\"", "\"99999999999999999999\""),
        one_rule(r#"[{"Field": "path-pattern", "Values": ["/"]}]"#, &fwd).replace("\"5\"", "\"default\""),
        r#"{"Rules": {"a": 1}}"#.to_owned(),
        r#"{"Rules": null, "NextMarker": 7}"#.to_owned(),
        "Rules: [[], 1, x]".to_owned(),
    ];
    for text in &cases {
        if let Ok(imported) = import(&[Source::new("x.json", text)], &ImportOptions::default()) {
            let _ = imported.validate();
        }
    }
}

/// A sticky weighted forward: `blue` at weight 100, `green` drained to weight 0.
fn sticky_drained() -> String {
    let tg = |n: &str| {
        format!(
            "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/{n}/0123456789abcdef"
        )
    };
    one_rule(
        r#"[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]"#,
        &format!(
            r#"[{{"Type": "forward", "ForwardConfig": {{
                "TargetGroups": [{{"TargetGroupArn": "{}", "Weight": 100}}, {{"TargetGroupArn": "{}", "Weight": 0}}],
                "TargetGroupStickinessConfig": {{"Enabled": true, "DurationSeconds": 3600}}}}}}]"#,
            tg("blue"),
            tg("green")
        ),
    )
}

#[test]
fn sticky_sessions_on_a_weight_zero_group_follow_the_chosen_semantics() {
    use routing_core::{Selection, SessionPersistence};
    let text = sticky_drained();
    let pick = |opts: &ImportOptions| {
        let imported = import(&[Source::new("sticky.json", &text)], opts).unwrap();
        let table = imported.validate().unwrap();
        let req = RequestInfo::get("http://pay.test/checkout");
        let m = table.find(&req).unwrap();
        let Some(SessionPersistence::Cookie(c)) =
            &table.rules()[m.rule].policy().session_persistence
        else {
            panic!("a stickiness cookie");
        };
        let keep = c.keep_at_zero_weight;
        let green = table.backend_id("green").unwrap();
        // A valid cookie for `green` (weight 0) is the selection's preference, as the
        // layer passes it.
        let d = table
            .select(m, &req, &mut rand::rng(), Selection::new().prefer(green))
            .unwrap();
        (
            imported.warnings,
            keep,
            d.backend().unwrap().name().to_owned(),
            d.preferred(),
        )
    };
    // Default: the library's semantics (re-pin at once), with a warning naming the option.
    let (warnings, keep, backend, preferred) = pick(&ImportOptions::default());
    assert!(!keep);
    assert_eq!((backend.as_str(), preferred), ("blue", false));
    let w: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("cookies beat weights"), "{w:?}");
    assert!(w[0].contains("--alb-stickiness alb"), "{w:?}");
    assert!(
        warnings[0]
            .at
            .path
            .ends_with("ForwardConfig.TargetGroupStickinessConfig"),
        "{}",
        warnings[0].at
    );
    // ALB's semantics: the cookie keeps its session on the drained group.
    let (warnings, keep, backend, preferred) =
        pick(&ImportOptions::default().with_alb_cookie_beats_weight(true));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(keep);
    assert_eq!((backend.as_str(), preferred), ("green", true));
    // A single target group: nothing to warn about.
    let single = one_rule(
        r#"[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]"#,
        &format!(
            r#"[{{"Type": "forward", "ForwardConfig": {{"TargetGroups": [{{"TargetGroupArn": "{TG}"}}],
                "TargetGroupStickinessConfig": {{"Enabled": true, "DurationSeconds": 60}}}}}}]"#
        ),
    );
    let i = import(
        &[Source::new("one.json", &single)],
        &ImportOptions::default(),
    )
    .unwrap();
    assert!(i.warnings.is_empty(), "{:?}", i.warnings);
}
