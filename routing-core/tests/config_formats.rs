//! The configuration model reads the same from YAML, JSON and TOML, and `Config::to_yaml`
//! writes what `Config::from_yaml` reads back — for a config that sets every field of the
//! model and for random, structured configs (which `validate` must never panic on).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use routing_core::{
    BackendConfig, Config, ConfigDuration, ConnectionPoolConfig, CookieConfig, CorsConfig,
    FaultAbortConfig, FaultConfig, FaultDelayConfig, FiltersConfig, FixedResponseConfig,
    HashOnConfig, HeaderMatchConfig, HeaderModifierConfig, HeaderValueConfig, LoadBalancerConfig,
    MatchConfig, MirrorConfig, OutlierDetectionConfig, PathMatchConfig, PathModifierConfig,
    QueryMatchConfig, RedirectConfig, RetryConfig, RetryOn, RouteConfig, RuleConfig,
    RulePrecedence, SessionPersistenceConfig, SimpleLoadBalancer, StringMatchConfig, TcpForwarding,
    TcpHashOn, TcpHealthCheckConfig, TcpServiceConfig, TimeoutsConfig, UrlRewriteConfig,
    WeightedBackendConfig,
};

// ---------------------------------------------------------------------------------------
// One config, three formats
// ---------------------------------------------------------------------------------------

const YAML: &str = r#"
maglev_table_size: 251
panic_threshold: 30.5
backends:
  - name: web-v1
    address: 10.0.0.1:8080
  - name: web-v2
    address: 10.0.0.2:8080
  - name: shadow
routes:
  - name: web
    hostnames: [www.example.com, "*.example.org"]
    rules:
      - name: canary
        matches:
          - path: {prefix: /api}
            method: POST
            headers:
              - {name: x-canary, exact: "true"}
              - {name: x-debug, present: true}
            query: [{name: v, regex: "[0-9]+"}]
          - path: {exact: /login}
            scheme: https
            authority: {prefix: www.}
        backends:
          - {name: web-v1, weight: 90}
          - {name: web-v2, weight: 10}
        load_balancer: {consistent_hash: {cookie: session}}
        timeouts: {request: 10s, per_try: 2s500ms}
        retry:
          attempts: 3
          on: [5xx, reset, retriable-status-codes]
          status_codes: [503]
          backoff: 50ms
        mirror: {backend: shadow, percent: 12.5}
        filters:
          request_headers:
            set: [{name: x-env, value: prod}]
            remove: [x-internal]
          url_rewrite: {hostname: internal.example.com, path: {full: /v2}}
      - name: old
        matches: [{path: {exact: /old}}]
        redirect: {scheme: https, hostname: new.example.com, port: 8443, path: {full: /new}, status: 301}
      - name: down
        matches: [{path: {prefix: /down}}]
        fixed_response: {status: 503, body: maintenance, headers: {retry-after: "120"}}
tcp_services:
  - name: db
    vip: 10.1.0.1:5432
    backends: [{name: web-v1, weight: 2}, {name: web-v2}]
    hash_on: source_ip
"#;

const JSON: &str = r#"{
  "maglev_table_size": 251,
  "panic_threshold": 30.5,
  "backends": [
    {"name": "web-v1", "address": "10.0.0.1:8080"},
    {"name": "web-v2", "address": "10.0.0.2:8080"},
    {"name": "shadow"}
  ],
  "routes": [{
    "name": "web",
    "hostnames": ["www.example.com", "*.example.org"],
    "rules": [
      {
        "name": "canary",
        "matches": [
          {
            "path": {"prefix": "/api"},
            "method": "POST",
            "headers": [{"name": "x-canary", "exact": "true"}, {"name": "x-debug", "present": true}],
            "query": [{"name": "v", "regex": "[0-9]+"}]
          },
          {"path": {"exact": "/login"}, "scheme": "https", "authority": {"prefix": "www."}}
        ],
        "backends": [{"name": "web-v1", "weight": 90}, {"name": "web-v2", "weight": 10}],
        "load_balancer": {"consistent_hash": {"cookie": "session"}},
        "timeouts": {"request": "10s", "per_try": "2s500ms"},
        "retry": {
          "attempts": 3,
          "on": ["5xx", "reset", "retriable-status-codes"],
          "status_codes": [503],
          "backoff": "50ms"
        },
        "mirror": {"backend": "shadow", "percent": 12.5},
        "filters": {
          "request_headers": {"set": [{"name": "x-env", "value": "prod"}], "remove": ["x-internal"]},
          "url_rewrite": {"hostname": "internal.example.com", "path": {"full": "/v2"}}
        }
      },
      {
        "name": "old",
        "matches": [{"path": {"exact": "/old"}}],
        "redirect": {"scheme": "https", "hostname": "new.example.com", "port": 8443, "path": {"full": "/new"}, "status": 301}
      },
      {
        "name": "down",
        "matches": [{"path": {"prefix": "/down"}}],
        "fixed_response": {"status": 503, "body": "maintenance", "headers": {"retry-after": "120"}}
      }
    ]
  }],
  "tcp_services": [{
    "name": "db",
    "vip": "10.1.0.1:5432",
    "backends": [{"name": "web-v1", "weight": 2}, {"name": "web-v2"}],
    "hash_on": "source_ip"
  }]
}"#;

const TOML: &str = r#"
maglev_table_size = 251
panic_threshold = 30.5

[[backends]]
name = "web-v1"
address = "10.0.0.1:8080"

[[backends]]
name = "web-v2"
address = "10.0.0.2:8080"

[[backends]]
name = "shadow"

[[routes]]
name = "web"
hostnames = ["www.example.com", "*.example.org"]

[[routes.rules]]
name = "canary"
backends = [{ name = "web-v1", weight = 90 }, { name = "web-v2", weight = 10 }]
load_balancer = { consistent_hash = { cookie = "session" } }
timeouts = { request = "10s", per_try = "2s500ms" }
retry = { attempts = 3, on = ["5xx", "reset", "retriable-status-codes"], status_codes = [503], backoff = "50ms" }
mirror = { backend = "shadow", percent = 12.5 }

[[routes.rules.matches]]
path = { prefix = "/api" }
method = "POST"
headers = [{ name = "x-canary", exact = "true" }, { name = "x-debug", present = true }]
query = [{ name = "v", regex = "[0-9]+" }]

[[routes.rules.matches]]
path = { exact = "/login" }
scheme = "https"
authority = { prefix = "www." }

[routes.rules.filters.request_headers]
set = [{ name = "x-env", value = "prod" }]
remove = ["x-internal"]

[routes.rules.filters.url_rewrite]
hostname = "internal.example.com"
path = { full = "/v2" }

[[routes.rules]]
name = "old"
matches = [{ path = { exact = "/old" } }]
redirect = { scheme = "https", hostname = "new.example.com", port = 8443, path = { full = "/new" }, status = 301 }

[[routes.rules]]
name = "down"
matches = [{ path = { prefix = "/down" } }]
fixed_response = { status = 503, body = "maintenance", headers = { retry-after = "120" } }

[[tcp_services]]
name = "db"
vip = "10.1.0.1:5432"
backends = [{ name = "web-v1", weight = 2 }, { name = "web-v2" }]
hash_on = "source_ip"
"#;

#[test]
fn yaml_json_and_toml_of_the_same_config_are_equal() {
    let yaml = Config::from_yaml(YAML).unwrap_or_else(|e| panic!("YAML must parse: {e}"));
    let json = Config::from_json(JSON).unwrap_or_else(|e| panic!("JSON must parse: {e}"));
    let toml = Config::from_toml(TOML).unwrap_or_else(|e| panic!("TOML must parse: {e}"));
    assert_eq!(yaml, json, "YAML and JSON must give the same Config");
    assert_eq!(yaml, toml, "YAML and TOML must give the same Config");

    // The common value is the config written above, not an accidental default.
    let rule = &yaml.routes[0].rules[0];
    assert_eq!(yaml.maglev_table_size, Some(251));
    assert_eq!(yaml.panic_threshold, Some(30.5));
    assert_eq!(yaml.routes[0].rules.len(), 3);
    assert_eq!(
        rule.timeouts
            .as_ref()
            .and_then(|t| t.per_try)
            .map(ConfigDuration::as_duration),
        Some(Duration::from_millis(2_500))
    );
    assert_eq!(
        rule.retry.as_ref().map(|r| r.on.clone()),
        Some(vec![
            RetryOn::ServerError,
            RetryOn::Reset,
            RetryOn::RetriableStatusCodes
        ])
    );
    assert!(rule.matches[0].headers[1].present);
    assert_eq!(rule.backends[1].weight, 10);
    assert_eq!(
        yaml.tcp_services[0].backends[1].weight, 1,
        "weight defaults to 1"
    );
    assert_eq!(yaml.tcp_services[0].hash_on, Some(TcpHashOn::SourceIp));
    assert_eq!(
        yaml.routes[0].rules[2]
            .fixed_response
            .as_ref()
            .map(|f| f.headers.get("retry-after").cloned()),
        Some(Some("120".to_owned()))
    );

    // It is valid, and the table keeps the config it was built from.
    let table = yaml
        .clone()
        .validate()
        .unwrap_or_else(|e| panic!("must be valid: {e}"));
    assert_eq!(table.config(), &yaml);
    assert_eq!(table.rules().len(), 3);
}

#[test]
fn from_path_and_text_reads_each_format() {
    let yaml = Config::from_path_and_text("routes.yaml", YAML).expect("yaml");
    assert_eq!(
        Config::from_path_and_text("routes.json", JSON).expect("json"),
        yaml
    );
    assert_eq!(
        Config::from_path_and_text("routes.toml", TOML).expect("toml"),
        yaml
    );
    assert_eq!(
        Config::from_path_and_text("routes.yml", YAML).expect("yml"),
        yaml
    );
}

#[test]
fn to_yaml_of_a_parsed_config_round_trips() {
    let cfg = Config::from_yaml(YAML).expect("valid YAML");
    let text = cfg.to_yaml();
    let back = Config::from_yaml(&text)
        .unwrap_or_else(|e| panic!("to_yaml output must parse: {e}\n{text}"));
    assert_eq!(back, cfg, "parse → to_yaml → parse must give the original");
    assert_eq!(back.to_yaml(), text, "to_yaml must be stable");
}

// ---------------------------------------------------------------------------------------
// Every field of the model
// ---------------------------------------------------------------------------------------

fn dur(s: &str) -> ConfigDuration {
    s.parse().unwrap_or_else(|e| panic!("`{s}`: {e}"))
}

fn hdr(name: &str) -> HeaderMatchConfig {
    HeaderMatchConfig {
        invert: false,
        name: name.into(),
        exact: None,
        prefix: None,
        regex: None,
        present: false,
        absent: false,
    }
}

/// A config that sets every field of every struct of the model at least once (the struct
/// literals are exhaustive: a new field fails to compile here until it is covered).
fn everything() -> Config {
    let path_prefix = |p: &str| PathMatchConfig {
        starts_with: None,
        exact: None,
        prefix: Some(p.into()),
        regex: None,
    };
    let forward = RuleConfig {
        name: Some("forward-everything".into()),
        matches: vec![
            MatchConfig {
                path: Some(path_prefix("/api")),
                method: Some("POST".into()),
                scheme: Some("https".into()),
                authority: Some(StringMatchConfig {
                    exact: Some("api.example.com".into()),
                    prefix: None,
                    regex: None,
                }),
                headers: vec![
                    HeaderMatchConfig {
                        exact: Some("true".into()),
                        ..hdr("x-exact")
                    },
                    HeaderMatchConfig {
                        prefix: Some("Bearer ".into()),
                        ..hdr("authorization")
                    },
                    HeaderMatchConfig {
                        regex: Some("v[0-9]+".into()),
                        ..hdr("x-version")
                    },
                    HeaderMatchConfig {
                        present: true,
                        ..hdr("x-present")
                    },
                    HeaderMatchConfig {
                        absent: true,
                        ..hdr("x-absent")
                    },
                ],
                query: vec![
                    QueryMatchConfig {
                        name: "exact".into(),
                        exact: Some("1".into()),
                        regex: None,
                        present: false,
                    },
                    QueryMatchConfig {
                        name: "regex".into(),
                        exact: None,
                        regex: Some("[a-z]+".into()),
                        present: false,
                    },
                    QueryMatchConfig {
                        name: "present".into(),
                        exact: None,
                        regex: None,
                        present: true,
                    },
                ],
            },
            MatchConfig {
                path: Some(path_prefix("/v1/")),
                authority: Some(StringMatchConfig {
                    exact: None,
                    prefix: Some("api.".into()),
                    regex: None,
                }),
                ..MatchConfig::default()
            },
            MatchConfig {
                authority: Some(StringMatchConfig {
                    exact: None,
                    prefix: None,
                    regex: Some(r"[a-z]+\.example\.com".into()),
                }),
                ..MatchConfig::default()
            },
        ],
        backends: vec![
            WeightedBackendConfig::new("v1", 1_000_000),
            WeightedBackendConfig::new("v2", 0),
            WeightedBackendConfig::new("v3", 1),
        ],
        load_balancer: Some(LoadBalancerConfig {
            simple: None,
            consistent_hash: Some(HashOnConfig {
                header: None,
                cookie: Some("session".into()),
                query: None,
                source_ip: false,
            }),
        }),
        redirect: None,
        fixed_response: None,
        filters: Some(FiltersConfig {
            request_headers: Some(HeaderModifierConfig {
                set: vec![HeaderValueConfig {
                    name: "x-env".into(),
                    value: "prod".into(),
                }],
                add: vec![HeaderValueConfig {
                    name: "x-trace".into(),
                    value: "on; level=2".into(),
                }],
                remove: vec!["x-internal".into(), "cookie".into()],
            }),
            response_headers: Some(HeaderModifierConfig {
                set: vec![HeaderValueConfig {
                    name: "cache-control".into(),
                    value: "no-store".into(),
                }],
                add: vec![],
                remove: vec!["server".into()],
            }),
            url_rewrite: Some(UrlRewriteConfig {
                hostname: Some("internal.example.com".into()),
                path: Some(PathModifierConfig {
                    full: None,
                    prefix: Some("/internal".into()),
                }),
            }),
            cors: Some(CorsConfig {
                allow_origins: vec!["https://*.example.com".into()],
                allow_methods: vec!["GET".into()],
                allow_headers: vec!["x-a".into()],
                expose_headers: vec!["x-b".into()],
                allow_credentials: true,
                max_age: Some(600),
            }),
        }),
        timeouts: Some(TimeoutsConfig {
            request: Some(dur("1h2m3s4ms")),
            per_try: Some(dur("250ms")),
        }),
        retry: Some(RetryConfig {
            attempts: 10,
            on: vec![
                RetryOn::ServerError,
                RetryOn::GatewayError,
                RetryOn::Reset,
                RetryOn::ConnectFailure,
                RetryOn::RetriableStatusCodes,
            ],
            status_codes: vec![409, 503],
            backoff: Some(dur("40ms")),
            max_body_bytes: Some(1 << 20),
            budget_percent: Some(12.5),
            budget_min_per_second: Some(3),
            non_idempotent: Some(true),
        }),
        fault: Some(FaultConfig {
            delay: Some(FaultDelayConfig {
                fixed: dur("1s500ms"),
                percent: Some(0.1),
            }),
            abort: Some(FaultAbortConfig {
                status: 503,
                percent: Some(99.99),
            }),
            headers: vec![HeaderMatchConfig {
                exact: Some("chaos".into()),
                ..hdr("x-fault")
            }],
        }),
        mirror: Some(MirrorConfig {
            backend: "shadow".into(),
            percent: Some(33.3),
        }),
        mirrors: vec![MirrorConfig {
            backend: "shadow".into(),
            percent: Some(5.0),
        }],
        session_persistence: Some(SessionPersistenceConfig {
            cookie: Some(CookieConfig {
                name: "sticky".into(),
                ttl: Some(dur("24h")),
                path: Some("/api".into()),
                domain: Some(".example.com".into()),
                secure: true,
                http_only: true,
                same_site: Some("Strict".into()),
                keep_at_zero_weight: false,
            }),
            header: None,
        }),
    };
    let round_robin = RuleConfig {
        name: Some("round-robin".into()),
        matches: vec![MatchConfig {
            path: Some(PathMatchConfig {
                starts_with: None,
                exact: Some("/rr".into()),
                prefix: None,
                regex: None,
            }),
            ..MatchConfig::default()
        }],
        backends: vec![
            WeightedBackendConfig::new("v1", 3),
            WeightedBackendConfig::new("v2", 1),
        ],
        load_balancer: Some(LoadBalancerConfig {
            simple: Some(SimpleLoadBalancer::RoundRobin),
            consistent_hash: None,
        }),
        session_persistence: Some(SessionPersistenceConfig {
            cookie: None,
            header: Some("x-session".into()),
        }),
        ..RuleConfig::default()
    };
    let hashed = |name: &str, on: HashOnConfig| RuleConfig {
        name: Some(name.into()),
        matches: vec![MatchConfig {
            path: Some(PathMatchConfig {
                starts_with: None,
                exact: None,
                prefix: None,
                regex: Some(format!("/{name}/.*")),
            }),
            ..MatchConfig::default()
        }],
        backends: vec![WeightedBackendConfig::new("v1", 1)],
        load_balancer: Some(LoadBalancerConfig {
            simple: None,
            consistent_hash: Some(on),
        }),
        ..RuleConfig::default()
    };
    let random = RuleConfig {
        name: Some("random".into()),
        matches: vec![MatchConfig {
            method: Some("DELETE".into()),
            scheme: Some("http".into()),
            ..MatchConfig::default()
        }],
        backends: vec![WeightedBackendConfig::new("v3", 7)],
        load_balancer: Some(LoadBalancerConfig {
            simple: Some(SimpleLoadBalancer::Random),
            consistent_hash: None,
        }),
        ..RuleConfig::default()
    };
    let redirect = RuleConfig {
        name: Some("redirect".into()),
        matches: vec![MatchConfig {
            path: Some(path_prefix("/old")),
            ..MatchConfig::default()
        }],
        redirect: Some(RedirectConfig {
            scheme: Some("https".into()),
            hostname: Some("new.example.com".into()),
            port: Some(8443),
            path: Some(PathModifierConfig {
                full: None,
                prefix: Some("/new".into()),
            }),
            status: Some(308),
        }),
        filters: Some(FiltersConfig {
            request_headers: None,
            response_headers: Some(HeaderModifierConfig {
                set: vec![],
                add: vec![HeaderValueConfig {
                    name: "x-moved".into(),
                    value: "yes".into(),
                }],
                remove: vec![],
            }),
            url_rewrite: None,
            cors: None,
        }),
        ..RuleConfig::default()
    };
    let redirect_full = RuleConfig {
        name: Some("redirect-full".into()),
        matches: vec![MatchConfig {
            path: Some(PathMatchConfig {
                starts_with: None,
                exact: Some("/x".into()),
                prefix: None,
                regex: None,
            }),
            ..MatchConfig::default()
        }],
        redirect: Some(RedirectConfig {
            path: Some(PathModifierConfig {
                full: Some("/y".into()),
                prefix: None,
            }),
            ..RedirectConfig::default()
        }),
        filters: Some(FiltersConfig {
            url_rewrite: Some(UrlRewriteConfig {
                hostname: None,
                path: Some(PathModifierConfig {
                    full: Some("/z".into()),
                    prefix: None,
                }),
            }),
            ..FiltersConfig::default()
        }),
        ..RuleConfig::default()
    };
    let fixed = RuleConfig {
        name: Some("maintenance".into()),
        matches: vec![MatchConfig {
            path: Some(path_prefix("/down")),
            ..MatchConfig::default()
        }],
        fixed_response: Some(FixedResponseConfig {
            status: 503,
            body: Some("down for maintenance\nback soon: \"really\" # not a comment".into()),
            headers: BTreeMap::from([
                ("retry-after".to_owned(), "120".to_owned()),
                (
                    "content-type".to_owned(),
                    "text/plain; charset=utf-8".to_owned(),
                ),
                ("x-yes".to_owned(), "yes".to_owned()),
                ("x-null".to_owned(), "null".to_owned()),
            ]),
        }),
        timeouts: Some(TimeoutsConfig {
            request: Some(dur("0s")),
            per_try: None,
        }),
        fault: Some(FaultConfig {
            delay: None,
            abort: Some(FaultAbortConfig {
                status: 500,
                percent: None,
            }),
            headers: vec![],
        }),
        ..RuleConfig::default()
    };
    Config {
        backends: vec![
            BackendConfig {
                name: "v1".into(),
                address: Some("10.0.0.1:8080".parse().expect("addr")),
                connection_pool: None,
                protocol: None,
                endpoints: Vec::new(),
            },
            BackendConfig {
                name: "v2".into(),
                address: Some("10.0.0.2:8080".parse().expect("addr")),
                connection_pool: None,
                protocol: None,
                endpoints: Vec::new(),
            },
            BackendConfig {
                name: "v3".into(),
                address: Some("[2001:db8::3]:8080".parse().expect("addr")),
                connection_pool: Some(ConnectionPoolConfig {
                    max_concurrent_requests: 64,
                    max_pending_requests: Some(16),
                }),
                protocol: None,
                endpoints: Vec::new(),
            },
            BackendConfig {
                name: "shadow".into(),
                address: None,
                connection_pool: None,
                protocol: None,
                endpoints: Vec::new(),
            },
        ],
        routes: vec![
            RouteConfig {
                precedence: None,
                name: "api".into(),
                hostnames: vec!["api.example.com".into(), "*.example.com".into()],
                rules: vec![
                    forward,
                    round_robin,
                    hashed(
                        "by-header",
                        HashOnConfig {
                            header: Some("x-user".into()),
                            cookie: None,
                            query: None,
                            source_ip: false,
                        },
                    ),
                    hashed(
                        "by-query",
                        HashOnConfig {
                            header: None,
                            cookie: None,
                            query: Some("user".into()),
                            source_ip: false,
                        },
                    ),
                    hashed(
                        "by-ip",
                        HashOnConfig {
                            header: None,
                            cookie: None,
                            query: None,
                            source_ip: true,
                        },
                    ),
                    random,
                ],
            },
            RouteConfig {
                precedence: None,
                name: "any-host".into(),
                hostnames: vec![],
                rules: vec![redirect, redirect_full, fixed],
            },
        ],
        tcp_services: vec![
            TcpServiceConfig {
                name: "db".into(),
                vip: "10.1.0.1:5432".parse().expect("vip"),
                backends: vec![
                    WeightedBackendConfig::new("v1", 2),
                    WeightedBackendConfig::new("v2", 1),
                ],
                hash_on: Some(TcpHashOn::SourceIp),
                forwarding: None,
                dsr_source: None,
                maglev_seed: None,
                health_check: None,
            },
            TcpServiceConfig {
                name: "db6".into(),
                vip: "[2001:db8::100]:5432".parse().expect("vip"),
                backends: vec![WeightedBackendConfig::new("v3", 1)],
                hash_on: Some(TcpHashOn::FiveTuple),
                forwarding: Some(TcpForwarding::DsrIpip),
                dsr_source: Some("2001:db8::9".parse().expect("dsr source")),
                maglev_seed: Some(7),
                health_check: Some(TcpHealthCheckConfig {
                    http_path: Some("/healthz".into()),
                    expect_status: Some(204),
                    interval: Some(ConfigDuration::new(Duration::from_millis(2_000))),
                    timeout: Some(ConfigDuration::new(Duration::from_millis(300))),
                    rise: Some(3),
                    fall: Some(1),
                }),
            },
        ],
        maglev_table_size: Some(251),
        panic_threshold: Some(33.5),
        outlier_detection: Some(OutlierDetectionConfig {
            consecutive_5xx: Some(3),
            consecutive_gateway_errors: Some(2),
            interval: Some(ConfigDuration::new(Duration::from_millis(5_000))),
            base_ejection_time: Some(ConfigDuration::new(Duration::from_millis(15_000))),
            max_ejection_time: Some(ConfigDuration::new(Duration::from_millis(120_000))),
            max_ejection_percent: Some(30),
        }),
        path_normalization: Some(routing_core::PathNormalization {
            enabled: true,
            merge_slashes: false,
            escaped_slashes: routing_core::EscapedSlashes::Decode,
        }),
    }
}

#[test]
fn the_everything_config_is_valid() {
    let cfg = everything();
    let table = cfg
        .clone()
        .validate()
        .unwrap_or_else(|e| panic!("the all-fields config must be valid: {e}"));
    assert_eq!(table.config(), &cfg);
    assert_eq!(table.rules().len(), 9);
}

#[test]
fn to_yaml_round_trips_every_field_of_the_model() {
    let cfg = everything();
    let text = cfg.to_yaml();
    let back = Config::from_yaml(&text)
        .unwrap_or_else(|e| panic!("to_yaml output must parse: {e}\n{text}"));
    assert_eq!(
        back, cfg,
        "parse(to_yaml(cfg)) must equal cfg; YAML was:\n{text}"
    );
    assert_eq!(back.to_yaml(), text, "to_yaml must be stable");
    // Every field name of the model appears in the output: none is skipped by accident.
    for field in [
        "backends:",
        "address:",
        "routes:",
        "hostnames:",
        "rules:",
        "matches:",
        "path:",
        "exact:",
        "prefix:",
        "regex:",
        "method:",
        "scheme:",
        "authority:",
        "headers:",
        "present:",
        "absent:",
        "query:",
        "weight:",
        "load_balancer:",
        "simple:",
        "consistent_hash:",
        "header:",
        "cookie:",
        "source_ip:",
        "redirect:",
        "hostname:",
        "port:",
        "status:",
        "full:",
        "fixed_response:",
        "body:",
        "filters:",
        "request_headers:",
        "response_headers:",
        "set:",
        "add:",
        "remove:",
        "value:",
        "url_rewrite:",
        "timeouts:",
        "request:",
        "per_try:",
        "retry:",
        "attempts:",
        "on:",
        "status_codes:",
        "backoff:",
        "max_body_bytes:",
        "budget_percent:",
        "budget_min_per_second:",
        "fault:",
        "delay:",
        "fixed:",
        "percent:",
        "abort:",
        "mirror:",
        "backend:",
        "session_persistence:",
        "ttl:",
        "domain:",
        "secure:",
        "http_only:",
        "same_site:",
        "tcp_services:",
        "vip:",
        "hash_on:",
        "maglev_table_size:",
        "panic_threshold:",
        "outlier_detection:",
        "consecutive_5xx:",
        "consecutive_gateway_errors:",
        "base_ejection_time:",
        "max_ejection_time:",
        "max_ejection_percent:",
        "connection_pool:",
        "max_concurrent_requests:",
        "max_pending_requests:",
    ] {
        assert!(
            text.contains(field),
            "to_yaml output must contain `{field}`:\n{text}"
        );
    }
}

#[test]
fn json_and_toml_serialisations_read_back_equal() {
    let cfg = everything();
    let json = serde_json::to_string_pretty(&cfg).expect("serialise JSON");
    assert_eq!(
        Config::from_json(&json).unwrap_or_else(|e| panic!("{e}\n{json}")),
        cfg,
        "JSON written by serde must read back equal"
    );
    let toml = toml::to_string(&cfg).expect("serialise TOML");
    assert_eq!(
        Config::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}")),
        cfg,
        "TOML written by serde must read back equal"
    );
}

#[test]
fn durations_round_trip_through_to_yaml() {
    for s in [
        "0s",
        "1ms",
        "999ms",
        "59s",
        "1m",
        "1h",
        "1h2m3s4ms",
        "99999h",
        "99999s",
        "99999ms",
        "1h99999m",
    ] {
        let d = dur(s);
        let cfg = Config {
            routes: vec![RouteConfig {
                precedence: None,
                name: "r".into(),
                hostnames: vec![],
                rules: vec![RuleConfig {
                    timeouts: Some(TimeoutsConfig {
                        request: Some(d),
                        per_try: None,
                    }),
                    ..RuleConfig::default()
                }],
            }],
            ..Config::default()
        };
        let text = cfg.to_yaml();
        let back = Config::from_yaml(&text).unwrap_or_else(|e| panic!("`{s}`: {e}\n{text}"));
        assert_eq!(back, cfg, "duration `{s}` must round-trip");
    }
}

/// Regression: the parser used to accept `99999h1h` (100 000 h), which `Display` wrote as
/// `100000h` — six digits, which the parser rejects — so `to_yaml` wrote a config that
/// `from_yaml` refused.
#[test]
fn every_parsed_duration_round_trips_through_to_yaml() {
    // `99999h1h` fits GEP-2257's grammar but has no valid canonical form (`100000h`
    // has six digits): it is refused, so whatever parses can be written back.
    let over = "routes: [{name: r, rules: [{fixed_response: {status: 200}, timeouts: {request: 99999h1h}}]}]";
    let err = Config::from_yaml(over).expect_err("durations above 99999h59m59s999ms are refused");
    assert!(err.to_string().contains("timeouts.request"), "{err}");
    let max = "routes: [{name: r, rules: [{fixed_response: {status: 200}, timeouts: {request: 99999h59m59s999ms}}]}]";
    let cfg = Config::from_yaml(max).expect("the largest canonical duration parses");
    let text = cfg.to_yaml();
    let back = Config::from_yaml(&text);
    assert!(
        back.as_ref().ok() == Some(&cfg),
        "a parsed config must read back from its own to_yaml output; to_yaml wrote:\n{text}\nand from_yaml said: {:?}",
        back.err().map(|e| e.to_string())
    );
}

// ---------------------------------------------------------------------------------------
// Random structured configs
// ---------------------------------------------------------------------------------------

/// Names: mostly declared backends, sometimes unknown or empty.
const NAMES: &[&str] = &["a", "b", "c", "web-1", "ghost", ""];
/// Values that YAML could misread if written without quotes.
const TEXT: &[&str] = &[
    "x",
    "",
    "true",
    "false",
    "null",
    "~",
    "yes",
    "no",
    "on",
    "1",
    "-1",
    "1.5",
    "0x1F",
    "0o7",
    "1e3",
    ".inf",
    ".nan",
    "- a",
    "a: b",
    "#c",
    "'q'",
    "\"d\"",
    "multi\nline",
    " lead",
    "trail ",
    "é😀",
    "[a]",
    "{a}",
    "*ref",
    "&anchor",
    "!tag",
    "%x",
    "@x",
    "`x",
    "|",
    ">",
    "2001-01-01",
    "a\tb",
];
const PATHS: &[&str] = &[
    "/",
    "/api",
    "/api/",
    "/a b",
    "api",
    "/a?b",
    "/caf\u{e9}",
    "",
];
const REGEXES: &[&str] = &[".*", "/api/v[0-9]+", "(", "a)|(b", "[z-a]", ""];
const HEADERS: &[&str] = &["x-a", "X-Upper", "authorization", "bad name", "", "a:b"];
const HOSTS: &[&str] = &[
    "a.test",
    "*.a.test",
    "A.Test",
    "bad_host",
    "a..b",
    "",
    "*",
    "xn--bcher-kva.example",
];
const ADDRS: &[&str] = &["10.0.0.1:80", "10.0.0.2:8080", "[::1]:80", "0.0.0.0:0"];
const STATUSES: &[u16] = &[0, 99, 100, 200, 301, 302, 308, 404, 503, 599, 600, u16::MAX];

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(NAMES).prop_map(str::to_owned)
}
fn text() -> impl Strategy<Value = String> {
    prop::sample::select(TEXT).prop_map(str::to_owned)
}
fn path() -> impl Strategy<Value = String> {
    prop::sample::select(PATHS).prop_map(str::to_owned)
}
fn regex() -> impl Strategy<Value = String> {
    prop::sample::select(REGEXES).prop_map(str::to_owned)
}
fn header() -> impl Strategy<Value = String> {
    prop::sample::select(HEADERS).prop_map(str::to_owned)
}
fn host() -> impl Strategy<Value = String> {
    prop::sample::select(HOSTS).prop_map(str::to_owned)
}
fn status() -> impl Strategy<Value = u16> {
    prop::sample::select(STATUSES)
}
fn opt<S: Strategy>(s: S) -> impl Strategy<Value = Option<S::Value>> {
    prop::option::of(s)
}
/// Finite percentages, in and out of range (NaN is left out: it is never equal to itself).
fn percent() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(100.0),
        -10.0..110.0f64,
        prop::num::f64::NORMAL
    ]
}
/// Durations up to the parser's maximum, 99999h59m59s999ms.
fn duration() -> impl Strategy<Value = ConfigDuration> {
    prop_oneof![0u64..100_000, 0u64..360_000_000_000]
        .prop_map(|ms| ConfigDuration::new(Duration::from_millis(ms)))
}

fn weighted_backend() -> impl Strategy<Value = WeightedBackendConfig> {
    (name(), 0u64..=1_000_000).prop_map(|(name, weight)| WeightedBackendConfig::new(name, weight))
}

fn path_match() -> impl Strategy<Value = PathMatchConfig> {
    (opt(path()), opt(path()), opt(regex()), opt(path())).prop_map(
        |(exact, prefix, regex, starts_with)| PathMatchConfig {
            exact,
            prefix,
            regex,
            starts_with,
        },
    )
}

fn string_match() -> impl Strategy<Value = StringMatchConfig> {
    (opt(text()), opt(text()), opt(regex())).prop_map(|(exact, prefix, regex)| StringMatchConfig {
        exact,
        prefix,
        regex,
    })
}

fn header_match() -> impl Strategy<Value = HeaderMatchConfig> {
    (
        header(),
        opt(text()),
        opt(text()),
        opt(regex()),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(name, exact, prefix, regex, present, absent, invert)| HeaderMatchConfig {
                name,
                exact,
                prefix,
                regex,
                present,
                absent,
                invert,
            },
        )
}

fn query_match() -> impl Strategy<Value = QueryMatchConfig> {
    (name(), opt(text()), opt(regex()), any::<bool>()).prop_map(|(name, exact, regex, present)| {
        QueryMatchConfig {
            name,
            exact,
            regex,
            present,
        }
    })
}

fn request_match() -> impl Strategy<Value = MatchConfig> {
    (
        opt(path_match()),
        opt(prop::sample::select(&["GET", "POST", "get", "G ET", ""][..]).prop_map(str::to_owned)),
        opt(prop::sample::select(&["http", "HTTPS", "ftp"][..]).prop_map(str::to_owned)),
        opt(string_match()),
        prop::collection::vec(header_match(), 0..3),
        prop::collection::vec(query_match(), 0..2),
    )
        .prop_map(
            |(path, method, scheme, authority, headers, query)| MatchConfig {
                path,
                method,
                scheme,
                authority,
                headers,
                query,
            },
        )
}

fn hash_on() -> impl Strategy<Value = HashOnConfig> {
    (opt(header()), opt(name()), opt(name()), any::<bool>()).prop_map(
        |(header, cookie, query, source_ip)| HashOnConfig {
            header,
            cookie,
            query,
            source_ip,
        },
    )
}

fn load_balancer() -> impl Strategy<Value = LoadBalancerConfig> {
    (
        opt(prop_oneof![
            Just(SimpleLoadBalancer::Random),
            Just(SimpleLoadBalancer::RoundRobin)
        ]),
        opt(hash_on()),
    )
        .prop_map(|(simple, consistent_hash)| LoadBalancerConfig {
            simple,
            consistent_hash,
        })
}

fn path_modifier() -> impl Strategy<Value = PathModifierConfig> {
    (opt(path()), opt(path())).prop_map(|(full, prefix)| PathModifierConfig { full, prefix })
}

fn redirect() -> impl Strategy<Value = RedirectConfig> {
    (
        opt(prop::sample::select(&["http", "https", "ftp"][..]).prop_map(str::to_owned)),
        opt(host()),
        opt(any::<u16>()),
        opt(path_modifier()),
        opt(status()),
    )
        .prop_map(|(scheme, hostname, port, path, status)| RedirectConfig {
            scheme,
            hostname,
            port,
            path,
            status,
        })
}

fn fixed_response() -> impl Strategy<Value = FixedResponseConfig> {
    (
        status(),
        opt(text()),
        prop::collection::btree_map(header(), text(), 0..3),
    )
        .prop_map(|(status, body, headers)| FixedResponseConfig {
            status,
            body,
            headers,
        })
}

fn header_value() -> impl Strategy<Value = HeaderValueConfig> {
    (header(), text()).prop_map(|(name, value)| HeaderValueConfig { name, value })
}

fn header_modifier() -> impl Strategy<Value = HeaderModifierConfig> {
    (
        prop::collection::vec(header_value(), 0..2),
        prop::collection::vec(header_value(), 0..2),
        prop::collection::vec(header(), 0..2),
    )
        .prop_map(|(set, add, remove)| HeaderModifierConfig { set, add, remove })
}

fn filters() -> impl Strategy<Value = FiltersConfig> {
    (
        opt(header_modifier()),
        opt(header_modifier()),
        opt((opt(host()), opt(path_modifier()))
            .prop_map(|(hostname, path)| UrlRewriteConfig { hostname, path })),
    )
        .prop_map(
            |(request_headers, response_headers, url_rewrite)| FiltersConfig {
                request_headers,
                response_headers,
                url_rewrite,
                cors: None,
            },
        )
}

fn retry_on() -> impl Strategy<Value = RetryOn> {
    prop_oneof![
        Just(RetryOn::ServerError),
        Just(RetryOn::GatewayError),
        Just(RetryOn::Reset),
        Just(RetryOn::ConnectFailure),
        Just(RetryOn::RetriableStatusCodes),
    ]
}

fn retry() -> impl Strategy<Value = RetryConfig> {
    (
        0u32..12,
        prop::collection::vec(retry_on(), 0..3),
        prop::collection::vec(status(), 0..3),
        opt(duration()),
        opt(any::<u64>()),
        opt(percent()),
        opt(any::<u32>()),
    )
        .prop_map(
            |(
                attempts,
                on,
                status_codes,
                backoff,
                max_body_bytes,
                budget_percent,
                budget_min_per_second,
            )| {
                RetryConfig {
                    attempts,
                    on,
                    status_codes,
                    backoff,
                    max_body_bytes,
                    budget_percent,
                    budget_min_per_second,
                    non_idempotent: None,
                }
            },
        )
}

fn fault() -> impl Strategy<Value = FaultConfig> {
    (
        opt((duration(), opt(percent()))
            .prop_map(|(fixed, percent)| FaultDelayConfig { fixed, percent })),
        opt((status(), opt(percent()))
            .prop_map(|(status, percent)| FaultAbortConfig { status, percent })),
        prop::collection::vec(header_match(), 0..2),
    )
        .prop_map(|(delay, abort, headers)| FaultConfig {
            delay,
            abort,
            headers,
        })
}

fn cookie() -> impl Strategy<Value = CookieConfig> {
    (
        prop::sample::select(&["s", "session-id", "a;b", ""][..]).prop_map(str::to_owned),
        opt(duration()),
        opt(path()),
        opt(host()),
        any::<bool>(),
        any::<bool>(),
        opt(prop::sample::select(&["Strict", "Lax", "None", "lax"][..]).prop_map(str::to_owned)),
    )
        .prop_map(
            |(name, ttl, path, domain, secure, http_only, same_site)| CookieConfig {
                name,
                ttl,
                path,
                domain,
                secure,
                http_only,
                same_site,
                keep_at_zero_weight: false,
            },
        )
}

fn session_persistence() -> impl Strategy<Value = SessionPersistenceConfig> {
    (opt(cookie()), opt(header()))
        .prop_map(|(cookie, header)| SessionPersistenceConfig { cookie, header })
}

fn rule() -> impl Strategy<Value = RuleConfig> {
    (
        opt(name()),
        prop::collection::vec(request_match(), 0..3),
        prop::collection::vec(weighted_backend(), 0..4),
        opt(load_balancer()),
        opt(redirect()),
        opt(fixed_response()),
        opt(filters()),
        opt((opt(duration()), opt(duration()))
            .prop_map(|(request, per_try)| TimeoutsConfig { request, per_try })),
        opt(retry()),
        opt(fault()),
        opt((name(), opt(percent()))
            .prop_map(|(backend, percent)| MirrorConfig { backend, percent })),
        opt(session_persistence()),
    )
        .prop_map(
            |(
                name,
                matches,
                backends,
                load_balancer,
                redirect,
                fixed_response,
                filters,
                timeouts,
                retry,
                fault,
                mirror,
                session_persistence,
            )| RuleConfig {
                name,
                matches,
                backends,
                load_balancer,
                redirect,
                fixed_response,
                filters,
                timeouts,
                retry,
                fault,
                mirror,
                mirrors: vec![],
                session_persistence,
            },
        )
}

fn route() -> impl Strategy<Value = RouteConfig> {
    (
        name(),
        prop::collection::vec(host(), 0..3),
        prop::collection::vec(rule(), 0..3),
        prop::option::of(prop::sample::select(vec![
            RulePrecedence::Specificity,
            RulePrecedence::FirstMatch,
        ])),
    )
        .prop_map(|(name, hostnames, rules, precedence)| RouteConfig {
            name,
            hostnames,
            rules,
            precedence,
        })
}

fn tcp_service() -> impl Strategy<Value = TcpServiceConfig> {
    (
        name(),
        prop::sample::select(ADDRS).prop_map(|a| a.parse().expect("address")),
        prop::collection::vec(weighted_backend(), 0..3),
        opt(prop_oneof![
            Just(TcpHashOn::FiveTuple),
            Just(TcpHashOn::SourceIp)
        ]),
    )
        .prop_map(|(name, vip, backends, hash_on)| TcpServiceConfig {
            name,
            vip,
            backends,
            hash_on,
            forwarding: None,
            dsr_source: None,
            maglev_seed: None,
            health_check: None,
        })
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop::collection::vec(
            (
                name(),
                opt(prop::sample::select(ADDRS).prop_map(|a| a.parse().expect("address"))),
            )
                .prop_map(|(name, address)| BackendConfig {
                    name,
                    address,
                    connection_pool: None,
                    protocol: None,
                    endpoints: Vec::new(),
                }),
            0..5,
        ),
        prop::collection::vec(route(), 0..3),
        prop::collection::vec(tcp_service(), 0..2),
        // Small Maglev tables keep the many builds fast; `None` uses the default size.
        prop::sample::select(&[None, Some(2), Some(3), Some(7), Some(65_536), Some(251)][..]),
        opt(percent()),
    )
        .prop_map(
            |(backends, routes, tcp_services, maglev_table_size, panic_threshold)| Config {
                backends,
                routes,
                tcp_services,
                maglev_table_size,
                panic_threshold,
                outlier_detection: None,
                path_normalization: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `to_yaml` writes what `from_yaml` reads back, for any shape of config.
    #[test]
    fn to_yaml_round_trips_random_configs(cfg in config()) {
        let text = cfg.to_yaml();
        let back = Config::from_yaml(&text);
        prop_assert!(back.is_ok(), "to_yaml output must parse: {:?}\n{}", back.err(), text);
        prop_assert_eq!(back.ok(), Some(cfg), "parse(to_yaml(cfg)) must equal cfg:\n{}", text);
    }

    /// `validate` never panics; when it accepts, the table keeps the config; when it
    /// refuses, every error has a path that its message names, and the verdict is stable.
    #[test]
    fn validate_never_panics_and_reports_paths(cfg in config()) {
        match cfg.clone().validate() {
            Ok(table) => prop_assert_eq!(table.config(), &cfg),
            Err(err) => {
                let errs = err.errors().to_vec();
                prop_assert!(!errs.is_empty(), "a refusal lists at least one error: {:?}", err);
                let text = err.to_string();
                for e in &errs {
                    prop_assert!(!e.path.is_empty(), "every error has a path: {:?}", e);
                    prop_assert!(text.contains(&format!("{}: {}", e.path, e.kind)),
                        "the message names `{}`:\n{}", e.path, text);
                }
                let again = cfg.clone().validate().err().map(|e| e.errors().to_vec());
                prop_assert_eq!(again, Some(errs), "validation must be deterministic");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Random configs that are valid by construction
// ---------------------------------------------------------------------------------------

/// The backends every valid config declares (all IPv4, so any can be an L4 target).
fn declared_backends() -> Vec<BackendConfig> {
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, n)| BackendConfig {
            name: (*n).to_owned(),
            address: Some(format!("10.0.0.{}:80", i + 1).parse().expect("address")),
            connection_pool: None,
            protocol: None,
            endpoints: Vec::new(),
        })
        .collect()
}

/// One to three distinct declared backends with weights in `0 ..= MAX_WEIGHT`.
fn valid_backends() -> impl Strategy<Value = Vec<WeightedBackendConfig>> {
    prop::sample::subsequence(vec!["a", "b", "c"], 1..=3).prop_flat_map(|names| {
        let n = names.len();
        prop::collection::vec(0u64..=1_000_000, n).prop_map(move |weights| {
            names
                .iter()
                .zip(weights)
                .map(|(name, weight)| WeightedBackendConfig::new((*name).to_owned(), weight))
                .collect()
        })
    })
}

fn one_of_three(kind: u8, value: String) -> (Option<String>, Option<String>, Option<String>) {
    match kind {
        0 => (Some(value), None, None),
        1 => (None, Some(value), None),
        _ => (None, None, Some(value)),
    }
}

fn valid_path_match() -> impl Strategy<Value = PathMatchConfig> {
    prop_oneof![
        prop::sample::select(&["/", "/api", "/api/v1", "/caf\u{e9}"][..]).prop_map(|p| {
            PathMatchConfig {
                exact: Some(p.into()),
                prefix: None,
                regex: None,
                starts_with: None,
            }
        }),
        prop::sample::select(&["/", "/api", "/api/", "/static"][..]).prop_map(|p| {
            PathMatchConfig {
                exact: None,
                prefix: Some(p.into()),
                regex: None,
                starts_with: None,
            }
        }),
        prop::sample::select(&["/", "/api", "/api-", "/static/"][..]).prop_map(|p| {
            PathMatchConfig {
                exact: None,
                prefix: None,
                regex: None,
                starts_with: Some(p.into()),
            }
        }),
        prop::sample::select(&[".*", "/api/v[0-9]+", "/(a|b)/.*", ""][..]).prop_map(|p| {
            PathMatchConfig {
                exact: None,
                prefix: None,
                regex: Some(p.into()),
                starts_with: None,
            }
        }),
    ]
}

fn valid_header_match() -> impl Strategy<Value = HeaderMatchConfig> {
    (
        prop::sample::select(&["x-a", "X-Upper", "user-agent"][..]),
        0u8..5,
        prop::sample::select(TEXT).prop_filter("header-safe", |t| !t.contains('\n')),
    )
        .prop_map(|(name, kind, value)| {
            let (exact, prefix, regex) = if kind < 3 {
                // A regex of escaped text is always valid.
                let v = if kind == 2 {
                    regex_escape(value)
                } else {
                    value.to_owned()
                };
                one_of_three(kind, v)
            } else {
                (None, None, None)
            };
            HeaderMatchConfig {
                name: name.into(),
                exact,
                prefix,
                regex,
                present: kind == 3,
                absent: kind == 4,
                invert: false,
            }
        })
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~ ".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

fn valid_match() -> impl Strategy<Value = MatchConfig> {
    (
        opt(valid_path_match()),
        opt(prop::sample::select(&["GET", "POST", "DELETE"][..]).prop_map(str::to_owned)),
        opt(prop::sample::select(&["http", "https", "HTTPS"][..]).prop_map(str::to_owned)),
        opt(
            (0u8..3, prop::sample::select(&["a.test", "b.test"][..])).prop_map(|(k, v)| {
                let (exact, prefix, regex) = one_of_three(k, regex_escape(v));
                StringMatchConfig {
                    exact,
                    prefix,
                    regex,
                }
            }),
        ),
        prop::collection::vec(valid_header_match(), 0..3),
        prop::collection::vec(
            (prop::sample::select(&["q", "v", "Q"][..]), 0u8..3).prop_map(|(name, k)| {
                QueryMatchConfig {
                    name: name.into(),
                    exact: (k == 0).then(|| "1".to_owned()),
                    regex: (k == 1).then(|| "[0-9]+".to_owned()),
                    present: k == 2,
                }
            }),
            0..2,
        ),
    )
        .prop_map(
            |(path, method, scheme, authority, headers, query)| MatchConfig {
                path,
                method,
                scheme,
                authority,
                headers,
                query,
            },
        )
}

fn valid_load_balancer() -> impl Strategy<Value = LoadBalancerConfig> {
    prop_oneof![
        Just(LoadBalancerConfig {
            simple: Some(SimpleLoadBalancer::Random),
            consistent_hash: None
        }),
        Just(LoadBalancerConfig {
            simple: Some(SimpleLoadBalancer::RoundRobin),
            consistent_hash: None
        }),
        (0u8..4).prop_map(|k| LoadBalancerConfig {
            simple: None,
            consistent_hash: Some(HashOnConfig {
                header: (k == 0).then(|| "x-user".to_owned()),
                cookie: (k == 1).then(|| "user".to_owned()),
                query: (k == 2).then(|| "user".to_owned()),
                source_ip: k == 3,
            }),
        }),
    ]
}

fn valid_header_modifier() -> impl Strategy<Value = HeaderModifierConfig> {
    let pair = (
        prop::sample::select(&["x-a", "X-Upper", "cache-control"][..]),
        prop::sample::select(TEXT).prop_filter("header-safe", |t| !t.contains(['\n', '\t'])),
    )
        .prop_map(|(name, value)| HeaderValueConfig {
            name: name.into(),
            value: value.into(),
        });
    (
        prop::collection::vec(pair.clone(), 0..2),
        prop::collection::vec(pair, 0..2),
        prop::collection::vec(
            prop::sample::select(&["x-a", "server"][..]).prop_map(str::to_owned),
            0..2,
        ),
    )
        .prop_map(|(set, add, remove)| HeaderModifierConfig { set, add, remove })
}

fn valid_policy_rule() -> impl Strategy<Value = RuleConfig> {
    let timeouts = (opt(duration()), opt(duration())).prop_map(|(a, b)| {
        // `per_try` must not be longer than a non-zero `request`.
        let (request, per_try) = match (a, b) {
            (Some(a), Some(b)) if !a.as_duration().is_zero() => (Some(a.max(b)), Some(a.min(b))),
            other => other,
        };
        TimeoutsConfig { request, per_try }
    });
    let retry = (
        1u32..=10,
        prop::collection::vec(retry_on(), 0..3),
        prop::collection::vec(100u16..=599, 1..3),
        opt(duration()),
        opt(0u64..=16 << 20),
        opt(0.0..=100.0f64),
        opt(any::<u32>()),
    )
        .prop_map(
            |(
                attempts,
                on,
                status_codes,
                backoff,
                max_body_bytes,
                budget_percent,
                budget_min_per_second,
            )| RetryConfig {
                attempts,
                on,
                status_codes,
                backoff,
                max_body_bytes,
                budget_percent,
                budget_min_per_second,
                non_idempotent: None,
            },
        );
    let fault = (
        0u8..3,
        duration(),
        opt(0.0..=100.0f64),
        200u16..=599,
        opt(0.0..=100.0f64),
    )
        .prop_map(|(k, fixed, dp, status, ap)| FaultConfig {
            delay: (k != 1).then_some(FaultDelayConfig { fixed, percent: dp }),
            abort: (k != 0).then_some(FaultAbortConfig {
                status,
                percent: ap,
            }),
            headers: vec![],
        });
    let mirror = (
        prop::sample::select(&["a", "b", "c"][..]),
        opt(0.0..=100.0f64),
    )
        .prop_map(|(b, percent)| MirrorConfig {
            backend: b.into(),
            percent,
        });
    let session = prop_oneof![
        prop::sample::select(&["x-session", "X-Sticky"][..]).prop_map(|h| {
            SessionPersistenceConfig {
                cookie: None,
                header: Some(h.into()),
            }
        }),
        (
            opt(duration()),
            any::<bool>(),
            any::<bool>(),
            opt(prop::sample::select(&["Strict", "Lax", "None"][..]))
        )
            .prop_map(
                |(ttl, secure, http_only, same_site)| SessionPersistenceConfig {
                    cookie: Some(CookieConfig {
                        name: "sticky".into(),
                        ttl,
                        path: Some("/app".into()),
                        domain: Some(".example.com".into()),
                        secure,
                        http_only,
                        same_site: same_site.map(str::to_owned),
                        keep_at_zero_weight: false,
                    }),
                    header: None,
                }
            ),
    ];
    let filters = (
        opt(valid_header_modifier()),
        opt(valid_header_modifier()),
        any::<bool>(),
    )
        .prop_map(
            |(request_headers, response_headers, rewrite)| FiltersConfig {
                request_headers,
                response_headers,
                url_rewrite: rewrite.then(|| UrlRewriteConfig {
                    hostname: Some("internal.example.com".into()),
                    path: Some(PathModifierConfig {
                        full: Some("/rewritten".into()),
                        prefix: None,
                    }),
                }),
                cors: None,
            },
        );
    (
        prop::collection::vec(valid_match(), 0..3),
        valid_backends(),
        opt(valid_load_balancer()),
        opt(filters),
        opt(timeouts),
        opt(retry),
        opt(fault),
        opt(mirror),
        opt(session),
    )
        .prop_map(
            |(
                matches,
                backends,
                load_balancer,
                filters,
                timeouts,
                retry,
                fault,
                mirror,
                session_persistence,
            )| {
                RuleConfig {
                    name: None,
                    matches,
                    backends,
                    load_balancer,
                    redirect: None,
                    fixed_response: None,
                    filters,
                    timeouts,
                    retry,
                    fault,
                    mirror,
                    mirrors: vec![],
                    session_persistence,
                }
            },
        )
}

fn valid_rule() -> impl Strategy<Value = RuleConfig> {
    prop_oneof![
        3 => valid_policy_rule(),
        1 => (
            prop::collection::vec(valid_match(), 0..2),
            opt(prop::sample::select(&["http", "https"][..])),
            opt(prop::sample::select(&["a.test", "new.example.com"][..])),
            opt(any::<u16>()),
            prop::sample::select(&[None, Some(301), Some(302), Some(303), Some(307), Some(308)][..]),
        )
            .prop_map(|(matches, scheme, hostname, port, status)| RuleConfig {
                matches,
                redirect: Some(RedirectConfig {
                    scheme: scheme.map(str::to_owned),
                    hostname: hostname.map(str::to_owned),
                    port,
                    path: Some(PathModifierConfig { full: Some("/moved".into()), prefix: None }),
                    status,
                }),
                ..RuleConfig::default()
            }),
        1 => (prop::collection::vec(valid_match(), 0..2), 100u16..=599, opt(text()))
            .prop_map(|(matches, status, body)| RuleConfig {
                matches,
                fixed_response: Some(FixedResponseConfig {
                    status,
                    body,
                    headers: BTreeMap::from([("content-type".to_owned(), "text/plain".to_owned())]),
                }),
                ..RuleConfig::default()
            }),
    ]
}

fn valid_config() -> impl Strategy<Value = Config> {
    (
        prop::collection::vec(
            (
                prop::sample::subsequence(vec!["a.test", "*.a.test", "B.TEST", "c.test"], 0..=2),
                prop::collection::vec(valid_rule(), 1..4),
            ),
            0..3,
        ),
        opt(valid_backends()),
        prop::sample::select(&[None, Some(7), Some(251), Some(65_537)][..]),
        opt(0.0..=100.0f64),
    )
        .prop_map(|(routes, tcp, maglev_table_size, panic_threshold)| Config {
            backends: declared_backends(),
            routes: routes
                .into_iter()
                .enumerate()
                .map(|(i, (hostnames, rules))| RouteConfig {
                    precedence: None,
                    name: format!("route-{i}"),
                    hostnames: hostnames.into_iter().map(str::to_owned).collect(),
                    rules: rules
                        .into_iter()
                        .enumerate()
                        .map(|(j, r)| RuleConfig {
                            name: Some(format!("rule-{j}")),
                            ..r
                        })
                        .collect(),
                })
                .collect(),
            tcp_services: tcp
                .map(|backends| TcpServiceConfig {
                    name: "l4".into(),
                    vip: "10.9.0.1:443".parse().expect("vip"),
                    backends,
                    hash_on: Some(TcpHashOn::SourceIp),
                    forwarding: None,
                    dsr_source: None,
                    maglev_seed: None,
                    health_check: None,
                })
                .into_iter()
                .collect(),
            maglev_table_size,
            panic_threshold,
            outlier_detection: None,
            path_normalization: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Valid configs are accepted, keep their config, round-trip through `to_yaml`, and
    /// can route a request without panicking.
    #[test]
    fn valid_random_configs_are_accepted_and_round_trip(cfg in valid_config()) {
        let text = cfg.to_yaml();
        prop_assert_eq!(Config::from_yaml(&text).ok(), Some(cfg.clone()), "round trip of:\n{}", text);
        let table = match cfg.clone().validate() {
            Ok(t) => t,
            Err(e) => return Err(TestCaseError::fail(format!("must be valid: {e}\n{text}"))),
        };
        prop_assert_eq!(table.config(), &cfg);
        let req = routing_core::RequestInfo::get("http://a.test/api/v1?q=1").header("x-user", "u1");
        let _ = table.decide(&req, &mut rand::rng());
    }
}
