//! The XDP program on the topology (`topo.rs`), through `routing-ebpf`'s library API
//! (`XdpBalancer`): load, program from a `RouteTable`, attach inside the
//! load-balancer namespace, read stats, detach on drop.
//!
//! Only in builds with the `ebpf` feature (the tasks that use it run themselves
//! again in such a build first, see `main.rs`).

use std::net::SocketAddr;

/// The `tcp_services` configuration for `vip` and `targets` with `weights` (target
/// `i` is named `t{i}`, as its server greets).
pub(crate) fn config_yaml(vip: SocketAddr, targets: &[SocketAddr], weights: &[u32]) -> String {
    let backends: Vec<String> = targets
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{name: t{i}, address: '{a}'}}"))
        .collect();
    let weighted: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{{name: t{i}, weight: {w}}}"))
        .collect();
    format!(
        "backends: [{}]\ntcp_services: [{{name: demo, vip: '{vip}', backends: [{}]}}]\n",
        backends.join(", "),
        weighted.join(", ")
    )
}

pub(crate) use imp::attach;

mod imp {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    use anyhow::{Context, Result};
    use routing_core::RouteTable;
    use routing_ebpf::{AttachMode, XdpBalancer};

    use super::config_yaml;
    use crate::topo::Topology;

    /// The program attached to the load balancer's interface; detached on drop (and
    /// gone anyway when the namespace is deleted).
    pub(crate) struct Attached {
        /// The loader.
        lb: XdpBalancer,
        /// The VIP.
        vip: SocketAddr,
        /// The targets' addresses.
        targets: Vec<SocketAddr>,
    }

    /// Loads the program, programs the VIP with `weights`, attaches it to the load
    /// balancer's interface (from a thread inside its namespace), natively or in
    /// generic mode; natively also the trivial pass program to that interface's peer
    /// in the switch.
    pub(crate) fn attach(topo: &Topology, weights: &[u32], native: bool) -> Result<Attached> {
        let mode = if native {
            AttachMode::Driver
        } else {
            AttachMode::Skb
        };
        let mut a = Attached {
            lb: XdpBalancer::load(&routing_ebpf::Options::default())
                .map_err(|e| anyhow::anyhow!(shorten(&e.to_string())))
                .context("loading the XDP program")?,
            vip: Topology::vip(),
            targets: topo.target_addrs(),
        };
        a.set_weights(weights)?;
        let iface = topo.lb_iface();
        let lb = &mut a.lb;
        topo.lb()
            .run(|| lb.attach(iface, mode))
            .context("entering the load-balancer namespace")?
            .with_context(|| format!("attaching to {iface} in {mode:?} mode"))?;
        if native {
            // Native XDP_TX out of a veth needs a program on its peer.
            topo.prepare_native(&mut a.lb)
                .context("attaching xdp_pass to the load balancer's veth peer")?;
        }
        Ok(a)
    }

    /// A long error (the verifier's log) cut to its first and last lines.
    fn shorten(msg: &str) -> String {
        let lines: Vec<&str> = msg.lines().collect();
        if lines.len() <= 16 {
            return msg.to_owned();
        }
        format!(
            "{}\n  [... {} lines of the verifier's log ...]\n{}",
            lines[..3].join("\n"),
            lines.len() - 11,
            lines[lines.len() - 8..].join("\n")
        )
    }

    impl Attached {
        /// Programs new weights live (`XdpBalancer::apply`).
        pub(crate) fn set_weights(&mut self, weights: &[u32]) -> Result<()> {
            let table = RouteTable::from_yaml(&config_yaml(self.vip, &self.targets, weights))
                .context("the generated configuration is invalid")?;
            self.lb.apply(&table).context("programming the VIP")?;
            Ok(())
        }

        /// New flows per target name, from the program's counters.
        pub(crate) fn new_flows(&self) -> Result<BTreeMap<String, u64>> {
            let stats = self.lb.stats()?;
            Ok(stats
                .vips
                .iter()
                .flat_map(|v| v.targets.iter().map(|t| (t.name.clone(), t.new_flows)))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_generated_config_is_valid() {
        let vip = "192.0.2.1:8080".parse().expect("vip");
        let targets = ["203.0.113.10:8080", "203.0.113.11:8080"].map(|a| a.parse().expect("a"));
        let t = routing_core::RouteTable::from_yaml(&super::config_yaml(vip, &targets, &[75, 25]))
            .expect("valid configuration");
        let s = &t.tcp_services()[0];
        assert_eq!(s.vip(), vip);
        assert_eq!(s.forward().backends().len(), 2);
    }
}
