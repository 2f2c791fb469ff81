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
            if let Some(maglev) = self.maglev(&backends, &format!("{p}.backends")) {
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
                });
            }
        }
        table
    }
}
