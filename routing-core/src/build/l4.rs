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
