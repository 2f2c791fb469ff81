//! Fingerprints of a table, for convergence across a fleet: replicas fed the same
//! configuration (a file, or the same Kubernetes objects) compute equal values, so
//! an operator comparing them across replicas' metrics sees which replicas route
//! alike — the generation counter alone cannot say it (it counts local updates).

use crate::hash::stable_hash;
use crate::select::Strategy;
use crate::RouteTable;

/// Seed of the table fingerprints ("tablefp\0").
const SEED: u64 = 0x7461_626c_6566_7000;

/// Which Maglev table a [`MaglevFingerprint`] is of.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaglevScope {
    /// A consistent-hash rule's table over its backends.
    Rule {
        /// The route's name.
        route: String,
        /// The rule's index in the route.
        rule: usize,
    },
    /// A backend's endpoint pool table over its endpoints.
    Endpoints {
        /// The backend's name.
        backend: String,
    },
}

/// The fingerprint of one Maglev table of a [`RouteTable`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaglevFingerprint {
    /// Which table.
    pub scope: MaglevScope,
    /// Slot by slot, the backend (or endpoint) each slot names, hashed.
    pub fingerprint: u64,
}

impl RouteTable {
    /// A fingerprint of the whole table: the stable hash of its configuration's
    /// JSON, backends sorted by name and endpoints by address (orders that mean
    /// nothing). Equal on replicas given equal configurations; the generation is
    /// not part of it.
    ///
    /// ```
    /// let yaml = "backends: [{name: a}]\nroutes: [{name: r, rules: [{backends: [{name: a}]}]}]";
    /// let a = routing_core::Router::from_yaml(yaml).unwrap();
    /// let b = routing_core::Router::from_yaml(yaml).unwrap();
    /// b.update_yaml(yaml).unwrap(); // a second generation, the same table
    /// assert_ne!(a.load().generation(), b.load().generation());
    /// assert_eq!(a.load().fingerprint(), b.load().fingerprint());
    /// ```
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        // The model serialises to JSON without error (string keys only); if it ever
        // did not, every replica would hash the same empty text.
        // Canonical: the order of backends and of a pool's endpoints means nothing.
        let mut config = self.config.clone();
        config.backends.sort_by(|a, b| a.name.cmp(&b.name));
        for b in &mut config.backends {
            b.endpoints.sort_by_key(|e| e.address);
        }
        let json = serde_json::to_vec(&config).unwrap_or_default();
        stable_hash(&json, SEED)
    }

    /// The fingerprint of every Maglev table the table holds: each consistent-hash
    /// rule's (over its backends) and each endpoint pool's (over its endpoints), in
    /// table order; plus the L4 tables in [`tcp_fingerprint`](Self::tcp_fingerprint).
    ///
    /// ```
    /// let t = routing_core::RouteTable::from_yaml(r#"
    /// backends: [{name: a}, {name: b, endpoints: [{address: "10.0.0.1:80"}]}]
    /// routes: [{name: r, rules: [{backends: [{name: a}, {name: b}], load_balancer: {consistent_hash: {header: x-user}}}]}]
    /// "#).unwrap();
    /// let fps = t.maglev_fingerprints();
    /// assert_eq!(fps.len(), 2);
    /// assert_eq!(fps[0].scope, routing_core::MaglevScope::Rule { route: "r".into(), rule: 0 });
    /// ```
    #[must_use]
    pub fn maglev_fingerprints(&self) -> Vec<MaglevFingerprint> {
        let mut out = Vec::new();
        for rule in self.rules.iter() {
            let Some(f) = rule.forward() else { continue };
            let Strategy::ConsistentHash(m) = f.strategy() else {
                continue;
            };
            let per: Vec<u64> = f
                .backends()
                .iter()
                .map(|wb| stable_hash(self.backend(wb.id()).name().as_bytes(), SEED))
                .collect();
            let mut buf = Vec::with_capacity(m.len() * 8);
            for &slot in m.slots() {
                let h = per.get(slot as usize).copied().unwrap_or(u64::MAX);
                buf.extend_from_slice(&h.to_le_bytes());
            }
            out.push(MaglevFingerprint {
                scope: MaglevScope::Rule {
                    route: self.routes[rule.route_index()].name().to_owned(),
                    rule: rule.index_in_route(),
                },
                fingerprint: stable_hash(&buf, SEED),
            });
        }
        for b in self.backends.iter() {
            if let Some(pool) = b.endpoints() {
                out.push(MaglevFingerprint {
                    scope: MaglevScope::Endpoints {
                        backend: b.name().to_owned(),
                    },
                    fingerprint: pool.fingerprint(),
                });
            }
        }
        out
    }

    /// One fingerprint of all Maglev tables: the rules', the endpoint pools' and
    /// the L4 ones ([`tcp_fingerprint`](Self::tcp_fingerprint)).
    ///
    /// ```
    /// let yaml = "backends: [{name: b, endpoints: [{address: '10.0.0.1:80'}, {address: '10.0.0.2:80'}]}]";
    /// let other = "backends: [{name: b, endpoints: [{address: '10.0.0.1:80'}]}]";
    /// let t = |y| routing_core::RouteTable::from_yaml(y).unwrap().maglev_fingerprint();
    /// assert_eq!(t(yaml), t(yaml));
    /// assert_ne!(t(yaml), t(other));
    /// ```
    #[must_use]
    pub fn maglev_fingerprint(&self) -> u64 {
        let mut buf = Vec::new();
        for fp in self.maglev_fingerprints() {
            let scope = match &fp.scope {
                MaglevScope::Rule { route, rule } => format!("rule\0{route}\0{rule}\0"),
                MaglevScope::Endpoints { backend } => format!("endpoints\0{backend}\0"),
            };
            buf.extend_from_slice(scope.as_bytes());
            buf.extend_from_slice(&fp.fingerprint.to_le_bytes());
        }
        buf.extend_from_slice(&self.tcp_fingerprint().to_le_bytes());
        stable_hash(&buf, SEED)
    }
}
