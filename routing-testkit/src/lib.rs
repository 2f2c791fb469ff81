//! The shared test kit of the routing workspace (`publish = false`): what the tests,
//! benchmarks and the `cargo xtask` demo use to drive the crates from outside.
//!
//! * [`netns`]: network-namespace topologies (client, load balancer, targets on one
//!   bridge), a TCP name server per target, and the helpers to run code inside a
//!   namespace — for the XDP tests, the L4 demo and the nftables baseline. Needs root.
//!   With the `ebpf` feature, `Topology::prepare_native` readies a veth for native XDP.
//! * [`packet`]: Ethernet/IPv4/IPv6/TCP frames to build and check, for
//!   `BPF_PROG_TEST_RUN` tests and benchmarks.
//! * [`openmetrics`]: a strict OpenMetrics text parser, for the exporters' tests.
//! * `http` (feature `http`): serve a tower service on 127.0.0.1, upstreams that
//!   answer with their name and count requests, a client that reads answers whole —
//!   for routing-tower's tests and the `cargo xtask demo` harness.
//! * [`etcd`]: a real etcd server on 127.0.0.1 for one test (temporary data, killed
//!   on drop), for routing-etcd's tests.
//! * [`prometheus`]: a real Prometheus on 127.0.0.1 scraping given targets every
//!   second (temporary data, killed on drop), for the fleet tests and demo.
//! * `kubeapi` (feature `kube-api`): a loopback Kubernetes API server speaking the
//!   real wire protocol (list, streamed watch, bookmarks, 410 Gone, 409 Conflict), for
//!   routing-kube's tests.
//!
//! ```
//! let frame = routing_testkit::packet::TcpPacket::syn(
//!     "198.51.100.2:40000".parse().unwrap(),
//!     "192.0.2.1:80".parse().unwrap(),
//! )
//! .build();
//! assert!(routing_testkit::packet::parse(&frame).unwrap().checksums_ok);
//! ```

pub mod ecmp;
pub mod etcd;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kube-api")]
pub mod kubeapi;
pub mod netns;
pub mod openmetrics;
pub mod packet;
pub mod prometheus;
