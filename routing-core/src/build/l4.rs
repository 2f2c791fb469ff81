//! Building the L4 `tcp_services`.

use super::*;

impl Builder<'_> {
    pub(super) fn tcp_services(&mut self, services: &[TcpServiceConfig]) -> TcpTable {
        let mut table = TcpTable::default();
        let mut names: HashMap<&str, String> = HashMap::new();
        let mut vips: HashMap<std::net::SocketAddr, String> = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            let p = format!("tcp_services[{i}]");
            self.unique(&mut names, &s.name, format!("{p}.name"));
            if let Some(first) = vips.get(&s.vip) {
                self.errs.push(
                    format!("{p}.vip"),
                    K::DuplicateName {
                        name: s.vip.to_string(),
                        first: first.clone(),
                    },
                );
            } else {
                vips.insert(s.vip, format!("{p}.vip"));
            }
            let forwarding = s.forwarding.unwrap_or_default();
            match (forwarding, s.dsr_source) {
                (TcpForwarding::DsrIpip, None) => self.errs.push(
                    format!("{p}.dsr_source"),
                    K::Conflict {
                        reason:
                            "`forwarding: dsr_ipip` needs `dsr_source` (the outer source address)",
                    },
                ),
                (TcpForwarding::DsrIpip, Some(a)) if a.is_ipv4() != s.vip.is_ipv4() => {
                    self.errs.push(
                        format!("{p}.dsr_source"),
                        K::Conflict {
                            reason: "`dsr_source` must have the same IP family as the VIP",
                        },
                    )
                }
                (TcpForwarding::Dnat, Some(_)) => self.errs.push(
                    format!("{p}.dsr_source"),
                    K::Conflict {
                        reason: "`dsr_source` is only used with `forwarding: dsr_ipip`",
                    },
                ),
                _ => {}
            }
            if s.backends.is_empty() {
                self.errs.push(format!("{p}.backends"), K::Empty);
                continue;
            }
            let backends = self.weighted_backends(&s.backends, &p, None);
            for (k, wb) in s.backends.iter().enumerate() {
                let id = self.backend_ids.get(wb.name.as_str()).copied();
                if let Some(id) = id {
                    let addr = self.backends[id.index()].address;
                    match addr {
                        None => self.errs.push(
                            format!("{p}.backends[{k}].name"),
                            K::Conflict {
                                reason: "an L4 target needs an `address` in `backends`",
                            },
                        ),
                        Some(a) if a.is_ipv4() != s.vip.is_ipv4() => self.errs.push(
                            format!("{p}.backends[{k}].name"),
                            K::Conflict {
                                reason: "an L4 target must have the same IP family as the VIP",
                            },
                        ),
                        Some(_) => {}
                    }
                }
            }
            let health_check = s
                .health_check
                .as_ref()
                .and_then(|hc| self.tcp_health_check(hc, &format!("{p}.health_check")));
            let seed = s.maglev_seed.unwrap_or(0);
            if let Some(maglev) = self.maglev_seeded(&backends, &format!("{p}.backends"), seed) {
                table.by_vip.insert(s.vip, table.services.len());
                table.services.push(TcpService {
                    name: s.name.as_str().into(),
                    vip: s.vip,
                    hash_on: s.hash_on.unwrap_or(TcpHashOn::FiveTuple),
                    forwarding,
                    dsr_source: s
                        .dsr_source
                        .filter(|_| forwarding == TcpForwarding::DsrIpip),
                    forward: Forward::new(
                        backends,
                        Strategy::ConsistentHash(Arc::clone(&maglev)),
                        self.panic_threshold,
                    ),
                    maglev,
                    maglev_seed: seed,
                    health_check,
                });
            }
        }
        table
    }

    fn tcp_health_check(
        &mut self,
        hc: &TcpHealthCheckConfig,
        p: &str,
    ) -> Option<crate::l4::TcpHealthCheck> {
        let before = self.errs.len();
        let dur = |v: Option<ConfigDuration>, d: u64| {
            v.map_or(
                std::time::Duration::from_millis(d),
                ConfigDuration::as_duration,
            )
        };
        let interval = dur(hc.interval, 1_000);
        let timeout = dur(hc.timeout, 500);
        if interval.is_zero() {
            self.errs.push(
                format!("{p}.interval"),
                K::OutOfRange {
                    value: "0s".into(),
                    allowed: "a duration above zero",
                },
            );
        }
        if timeout.is_zero() || timeout > interval {
            self.errs.push(
                format!("{p}.timeout"),
                K::OutOfRange {
                    value: format!("{timeout:?}"),
                    allowed: "above zero and at most `interval`",
                },
            );
        }
        for (field, v) in [("rise", hc.rise), ("fall", hc.fall)] {
            if let Some(v) = v.filter(|v| !(1..=100).contains(v)) {
                self.errs.push(
                    format!("{p}.{field}"),
                    K::OutOfRange {
                        value: v.to_string(),
                        allowed: "1 to 100 checks",
                    },
                );
            }
        }
        if let Some(path) = &hc.http_path {
            if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
                self.errs.push(
                    format!("{p}.http_path"),
                    K::InvalidPath {
                        path: path.clone(),
                        reason: "must start with `/` and hold no spaces or control characters",
                    },
                );
            }
        }
        match (hc.expect_status, &hc.http_path) {
            (Some(st), Some(_)) if !(100..=599).contains(&st) => self.errs.push(
                format!("{p}.expect_status"),
                K::OutOfRange {
                    value: st.to_string(),
                    allowed: "an HTTP status, 100 to 599",
                },
            ),
            (Some(_), None) => self.errs.push(
                format!("{p}.expect_status"),
                K::Conflict {
                    reason: "`expect_status` is only used with `http_path`",
                },
            ),
            _ => {}
        }
        (self.errs.len() == before).then(|| crate::l4::TcpHealthCheck {
            http_path: hc.http_path.as_deref().map(Into::into),
            expect_status: hc.expect_status.unwrap_or(200),
            interval,
            timeout,
            rise: hc.rise.unwrap_or(2),
            fall: hc.fall.unwrap_or(2),
        })
    }
}
