//! Prometheus / OpenMetrics text exposition of the balancer's counters
//! ([`XdpBalancer::stats`](crate::XdpBalancer::stats)).
//!
//! [`encode`] renders a [`Stats`] as one whole scrape in the OpenMetrics 1.0 text
//! format (the format of `routing_tower::metrics`; serve it with [`CONTENT_TYPE`]).
//! It is written by hand, without a metrics dependency: the counters are plain data
//! already summed over CPUs.
//!
//! ```
//! use routing_ebpf::{Stats, TargetStats, VipStats};
//!
//! let stats = Stats {
//!     vips: vec![VipStats {
//!         name: "web".into(),
//!         vip: "192.0.2.1:80".parse().unwrap(),
//!         forwarded: 10, replies: 8, passed: 1, dropped: 0, parse_failures: 0,
//!         targets: vec![TargetStats {
//!             name: "a".into(),
//!             address: "203.0.113.10:8080".parse().unwrap(),
//!             weight: 3, packets: 10, bytes: 1500, new_flows: 2,
//!             state: routing_ebpf::TargetState::Active,
//!         }],
//!     }],
//!     ..Stats::default()
//! };
//! let text = routing_ebpf::metrics::encode(&stats);
//! assert!(text.contains(
//!     "routing_ebpf_target_packets_total{vip=\"web\",target=\"a\",address=\"203.0.113.10:8080\"} 10\n"
//! ));
//! assert!(text.ends_with("# EOF\n"));
//! ```
//!
//! # Metrics
//!
//! | Metric | Type | Labels | Meaning |
//! |---|---|---|---|
//! | `routing_ebpf_target_packets_total` | counter | `vip`, `target`, `address` | packets forwarded to the target |
//! | `routing_ebpf_target_bytes_total` | counter | `vip`, `target`, `address` | bytes (whole frames) forwarded to the target |
//! | `routing_ebpf_target_new_flows_total` | counter | `vip`, `target`, `address` | connections assigned to the target |
//! | `routing_ebpf_target_weight` | gauge | `vip`, `target`, `address` | the target's configured weight |
//! | `routing_ebpf_vip_packets_total` | counter | `vip`, `address`, `action` = `forwarded`, `reply`, `passed`, `dropped` | packets of the VIP by what was done with them |
//! | `routing_ebpf_vip_parse_failures_total` | counter | `vip`, `address` | of the dropped, packets with a malformed TCP header |
//! | `routing_ebpf_passed_packets_total` | counter | `reason` = `not_ip`, `not_tcp`, `not_vip`, `fragment`, `parse_failure`, `too_deep` | packets passed to the kernel without being attributed to a VIP |
//!
//! `vip` and `target` are the service and backend names of the route table; a
//! target's counters start at zero when it is added.

use std::fmt::Write;

use crate::{Stats, TargetStats, VipStats};

/// The `Content-Type` of the text [`encode`] produces (OpenMetrics 1.0 text).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One whole scrape of `stats`, ending in `# EOF`.
///
/// ```
/// let text = routing_ebpf::metrics::encode(&routing_ebpf::Stats::default());
/// assert!(text.contains("routing_ebpf_passed_packets_total{reason=\"not_ip\"} 0\n"));
/// ```
#[must_use]
pub fn encode(stats: &Stats) -> String {
    let mut out = Text(String::new());

    type TargetValue = fn(&TargetStats) -> u64;
    let target_metrics: [(&str, &str, &str, TargetValue); 4] = [
        (
            "routing_ebpf_target_packets",
            "counter",
            "Packets forwarded to the target.",
            |t| t.packets,
        ),
        (
            "routing_ebpf_target_bytes",
            "counter",
            "Bytes (whole frames) forwarded to the target.",
            |t| t.bytes,
        ),
        (
            "routing_ebpf_target_new_flows",
            "counter",
            "Connections assigned to the target.",
            |t| t.new_flows,
        ),
        (
            "routing_ebpf_target_weight",
            "gauge",
            "The target's configured weight.",
            |t| u64::from(t.weight),
        ),
    ];
    for (name, kind, help, value) in target_metrics {
        out.family(name, kind, help);
        for vip in &stats.vips {
            for t in &vip.targets {
                let address = t.address.to_string();
                out.sample(
                    name,
                    kind,
                    &[
                        ("vip", &vip.name),
                        ("target", &t.name),
                        ("address", &address),
                    ],
                    value(t),
                );
            }
        }
    }

    let name = "routing_ebpf_vip_packets";
    out.family(
        name,
        "counter",
        "Packets of the VIP: forwarded to a target, replies rewritten back, passed to the kernel (next hop unresolved), dropped.",
    );
    type VipValue = fn(&VipStats) -> u64;
    let actions: [(&str, VipValue); 4] = [
        ("forwarded", |v| v.forwarded),
        ("reply", |v| v.replies),
        ("passed", |v| v.passed),
        ("dropped", |v| v.dropped),
    ];
    for vip in &stats.vips {
        let address = vip.vip.to_string();
        for (action, value) in actions {
            out.sample(
                name,
                "counter",
                &[
                    ("vip", &vip.name),
                    ("address", &address),
                    ("action", action),
                ],
                value(vip),
            );
        }
    }

    let name = "routing_ebpf_vip_parse_failures";
    out.family(
        name,
        "counter",
        "Packets to the VIP dropped for a malformed TCP header.",
    );
    for vip in &stats.vips {
        let address = vip.vip.to_string();
        out.sample(
            name,
            "counter",
            &[("vip", &vip.name), ("address", &address)],
            vip.parse_failures,
        );
    }

    let name = "routing_ebpf_passed_packets";
    out.family(
        name,
        "counter",
        "Packets passed to the kernel without being attributed to a VIP, by reason.",
    );
    let g = &stats.global;
    for (reason, n) in [
        ("not_ip", g.not_ip),
        ("not_tcp", g.not_tcp),
        ("not_vip", g.not_vip),
        ("fragment", g.fragments),
        ("parse_failure", g.parse_failures),
        ("too_deep", g.too_deep),
    ] {
        out.sample(name, "counter", &[("reason", reason)], n);
    }

    out.0.push_str("# EOF\n");
    out.0
}

/// The text being written; `write!` to a `String` cannot fail.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, kind: &str, labels: &[(&str, &str)], value: u64) {
        self.0.push_str(name);
        if kind == "counter" {
            self.0.push_str("_total");
        }
        self.0.push('{');
        for (i, (key, val)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let _ = write!(self.0, "{key}=\"{}\"", escape(val, true));
        }
        let _ = writeln!(self.0, "}} {value}");
    }
}

/// Escapes `\`, newline and (in label values) `"`, as OpenMetrics requires.
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GlobalStats;
    use std::collections::HashMap;

    use routing_testkit::openmetrics::{value, Sample};

    /// The test kit's OpenMetrics parser, plus what this exporter promises beyond
    /// the format: every sample carries labels.
    fn parse(text: &str) -> Result<(HashMap<String, String>, Vec<Sample>), String> {
        let (types, samples) = routing_testkit::openmetrics::parse(text)?;
        if let Some(s) = samples.iter().find(|s| s.labels.is_empty()) {
            return Err(format!("{} has no labels", s.name));
        }
        Ok((types, samples))
    }

    fn target(name: &str, address: &str, weight: u32, packets: u64) -> TargetStats {
        TargetStats {
            name: name.into(),
            address: address.parse().expect("address"),
            weight,
            packets,
            bytes: packets * 100,
            new_flows: packets / 10,
            state: crate::TargetState::Active,
        }
    }

    #[test]
    fn counters_are_exact_and_format_valid() {
        let stats = Stats {
            vips: vec![
                VipStats {
                    name: "web".into(),
                    vip: "192.0.2.1:80".parse().expect("vip"),
                    forwarded: 300,
                    replies: 250,
                    passed: 4,
                    dropped: 3,
                    parse_failures: 1,
                    targets: vec![
                        target("a", "203.0.113.10:8080", 3, 200),
                        target("b", "203.0.113.11:8080", 1, 100),
                    ],
                },
                VipStats {
                    name: "web6".into(),
                    vip: "[2001:db8::1]:443".parse().expect("vip"),
                    forwarded: 0,
                    replies: 0,
                    passed: 0,
                    dropped: 0,
                    parse_failures: 0,
                    targets: vec![target("a", "[2001:db8::10]:8443", 0, 0)],
                },
            ],
            global: GlobalStats {
                not_ip: 1,
                not_tcp: 2,
                not_vip: 3,
                fragments: 4,
                parse_failures: 5,
                too_deep: 6,
                untracked: 7,
                ah: 8,
            },
        };
        let text = encode(&stats);
        let (types, samples) = parse(&text).expect(&text);
        assert_eq!(types.len(), 7);
        assert_eq!(types["routing_ebpf_target_weight"], "gauge");
        assert_eq!(types["routing_ebpf_target_packets"], "counter");

        let v = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);
        let a = [
            ("vip", "web"),
            ("target", "a"),
            ("address", "203.0.113.10:8080"),
        ];
        let b = [
            ("vip", "web"),
            ("target", "b"),
            ("address", "203.0.113.11:8080"),
        ];
        let a6 = [
            ("vip", "web6"),
            ("target", "a"),
            ("address", "[2001:db8::10]:8443"),
        ];
        assert_eq!(v("routing_ebpf_target_packets_total", &a), Some(200.0));
        assert_eq!(v("routing_ebpf_target_packets_total", &b), Some(100.0));
        assert_eq!(v("routing_ebpf_target_bytes_total", &a), Some(20_000.0));
        assert_eq!(v("routing_ebpf_target_new_flows_total", &b), Some(10.0));
        assert_eq!(v("routing_ebpf_target_weight", &a), Some(3.0));
        assert_eq!(v("routing_ebpf_target_weight", &a6), Some(0.0));
        let web = [("vip", "web"), ("address", "192.0.2.1:80")];
        for (action, n) in [
            ("forwarded", 300.0),
            ("reply", 250.0),
            ("passed", 4.0),
            ("dropped", 3.0),
        ] {
            let labels = [web[0], web[1], ("action", action)];
            assert_eq!(
                v("routing_ebpf_vip_packets_total", &labels),
                Some(n),
                "{action}"
            );
        }
        assert_eq!(v("routing_ebpf_vip_parse_failures_total", &web), Some(1.0));
        for (i, reason) in [
            "not_ip",
            "not_tcp",
            "not_vip",
            "fragment",
            "parse_failure",
            "too_deep",
        ]
        .into_iter()
        .enumerate()
        {
            assert_eq!(
                v("routing_ebpf_passed_packets_total", &[("reason", reason)]),
                Some(i as f64 + 1.0)
            );
        }
        // 3 targets × 4 + 2 VIPs × 4 + 2 + 6.
        assert_eq!(samples.len(), 12 + 8 + 2 + 6);
    }

    #[test]
    fn empty_stats_and_escaping() {
        let text = encode(&Stats::default());
        let (types, samples) = parse(&text).expect(&text);
        assert_eq!(types.len(), 7);
        assert_eq!(samples.len(), 6);

        let mut stats = Stats::default();
        stats.vips.push(VipStats {
            name: "we\"b\\\n".into(),
            vip: "192.0.2.1:80".parse().expect("vip"),
            forwarded: 1,
            replies: 0,
            passed: 0,
            dropped: 0,
            parse_failures: 0,
            targets: Vec::new(),
        });
        let text = encode(&stats);
        assert!(text.contains("vip=\"we\\\"b\\\\\\n\""), "{text}");
        let (_, samples) = parse(&text).expect(&text);
        let labels = [
            ("vip", "we\"b\\\n"),
            ("address", "192.0.2.1:80"),
            ("action", "forwarded"),
        ];
        assert_eq!(
            value(&samples, "routing_ebpf_vip_packets_total", &labels),
            Some(1.0)
        );
    }
}
