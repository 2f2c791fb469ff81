//! The routing kinds watched as dynamic objects.

use kube::api::{ApiResource, GroupVersionKind};

/// A routing kind the source can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`).
    HttpRoute,
    /// Gateway API `GRPCRoute` (`gateway.networking.k8s.io/v1`).
    GrpcRoute,
    /// Gateway API `Gateway` (`gateway.networking.k8s.io/v1`).
    Gateway,
    /// Gateway API `ReferenceGrant` (`gateway.networking.k8s.io/v1beta1`).
    ReferenceGrant,
    /// Istio `VirtualService` (`networking.istio.io/v1`).
    VirtualService,
    /// Istio `DestinationRule` (`networking.istio.io/v1`).
    DestinationRule,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::Gateway,
        Kind::ReferenceGrant,
        Kind::VirtualService,
        Kind::DestinationRule,
    ];

    /// Group, version, kind and plural.
    #[must_use]
    pub fn api_resource(self) -> ApiResource {
        let (g, v, k, plural) = match self {
            Kind::HttpRoute => ("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes"),
            Kind::GrpcRoute => ("gateway.networking.k8s.io", "v1", "GRPCRoute", "grpcroutes"),
            Kind::Gateway => ("gateway.networking.k8s.io", "v1", "Gateway", "gateways"),
            Kind::ReferenceGrant => (
                "gateway.networking.k8s.io",
                "v1beta1",
                "ReferenceGrant",
                "referencegrants",
            ),
            Kind::VirtualService => (
                "networking.istio.io",
                "v1",
                "VirtualService",
                "virtualservices",
            ),
            Kind::DestinationRule => (
                "networking.istio.io",
                "v1",
                "DestinationRule",
                "destinationrules",
            ),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural)
    }
}
