//! TLS with rustls (ring provider): the settings of a TLS upstream
//! ([`UpstreamTls`]: SNI, a custom CA, a client certificate for mTLS) and of a TLS
//! listener ([`ServerTls`]: certificate, ALPN `h2` and `http/1.1`, optional client
//! certificate verification).
//!
//! Certificates and keys are PEM text. Bad input is a [`TlsError`] naming the field
//! it came from; nothing here panics.
//!
//! ```
//! use routing_tower::tls::UpstreamTls;
//! // The public web roots, SNI from the address (an IP) unless a name is set.
//! let tls = UpstreamTls::new().with_server_name("api.internal").unwrap();
//! assert_eq!(tls.server_name(), Some("api.internal"));
//! assert!(UpstreamTls::new().with_ca_pem(b"not pem").is_err());
//! ```

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// A TLS setting that could not be used: which field, and why.
#[derive(Debug, thiserror::Error)]
#[error("tls.{field}: {message}")]
pub struct TlsError {
    /// The setting (`ca`, `client_cert`, `client_key`, `server_name`, `cert`, `key`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

fn err(field: &'static str, message: impl fmt::Display) -> TlsError {
    TlsError {
        field,
        message: message.to_string(),
    }
}

/// The ring provider: this crate builds without aws-lc-rs (no cmake, no nasm).
/// rustls 0.23.48 deprecates it for lacking post-quantum key exchange, which only
/// aws-lc-rs offers; classical X25519/P-256 is what ring gives.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM text (at least one).
fn certs(field: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(field, e))?;
    if certs.is_empty() {
        return Err(err(field, "no CERTIFICATE in the PEM text"));
    }
    Ok(certs)
}

/// The private key of a PEM text (PKCS#8, PKCS#1 or SEC1).
fn key(field: &'static str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| err(field, e))
}

/// How [`HttpBackend`](crate::HttpBackend) speaks TLS to one upstream.
///
/// Two settings with the same server name, CA and client certificate have the same
/// [`identity`](Self::identity): backends built with them share connections (the
/// connection pool is keyed by it); different ones never do.
#[derive(Clone)]
pub struct UpstreamTls {
    server_name: Option<String>,
    /// Custom roots; `None` means the public web roots (webpki-roots).
    roots: Option<Vec<CertificateDer<'static>>>,
    client: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .field("custom_ca", &self.roots.is_some())
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

impl Default for UpstreamTls {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamTls {
    /// Verify the upstream against the public web roots, SNI from the address.
    pub fn new() -> Self {
        Self {
            server_name: None,
            roots: None,
            client: None,
        }
    }

    /// The name sent as SNI and verified in the upstream's certificate (default:
    /// the upstream's IP address, verified against the certificate's IP SANs).
    ///
    /// ```
    /// assert!(routing_tower::tls::UpstreamTls::new().with_server_name("bad name!").is_err());
    /// ```
    pub fn with_server_name(mut self, name: &str) -> Result<Self, TlsError> {
        ServerName::try_from(name.to_owned()).map_err(|e| err("server_name", e))?;
        self.server_name = Some(name.to_owned());
        Ok(self)
    }

    /// Trust only the CA certificates of this PEM text (instead of the web roots).
    pub fn with_ca_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        let ca = certs("ca", pem)?;
        let mut store = RootCertStore::empty();
        for c in &ca {
            store.add(c.clone()).map_err(|e| err("ca", e))?;
        }
        self.roots = Some(ca);
        Ok(self)
    }

    /// Present this certificate chain and key to the upstream (mTLS).
    pub fn with_client_identity_pem(
        mut self,
        cert_chain: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, TlsError> {
        let chain = certs("client_cert", cert_chain)?;
        let key = key("client_key", key_pem)?;
        self.client = Some((chain, Arc::new(key)));
        Ok(self)
    }

    /// The configured SNI name, if any.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// A digest of the server name, CA and client certificate: what the connection
    /// pool is keyed by, next to the upstream address and protocol.
    ///
    /// ```
    /// use routing_tower::tls::UpstreamTls;
    /// let a = UpstreamTls::new().with_server_name("a.internal").unwrap();
    /// let b = UpstreamTls::new().with_server_name("b.internal").unwrap();
    /// assert_ne!(a.identity(), b.identity());
    /// assert_eq!(a.identity(), a.clone().identity());
    /// ```
    pub fn identity(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        let mut field = |tag: &[u8], bytes: &[u8]| {
            h.update(tag);
            h.update(&(bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(b"sni", self.server_name.as_deref().unwrap_or("").as_bytes());
        match &self.roots {
            None => field(b"roots", b"webpki"),
            Some(ca) => ca.iter().for_each(|c| field(b"ca", c)),
        }
        if let Some((chain, key)) = &self.client {
            chain.iter().for_each(|c| field(b"cert", c));
            field(b"key", key.secret_der());
        }
        *h.finalize().as_bytes()
    }

    /// The rustls client configuration offering `alpn`.
    pub(crate) fn client_config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, TlsError> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            Some(ca) => {
                for c in ca {
                    store.add(c.clone()).map_err(|e| err("ca", e))?;
                }
            }
            None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("ca", e))?
            .with_root_certificates(store);
        let mut config = match &self.client {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| err("client_key", e))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// A TLS listener's settings: its certificate chain and key, ALPN `h2` then
/// `http/1.1`, and optionally the CA client certificates must chain to (mTLS).
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let cert = std::fs::read("proxy.crt")?;
/// let key = std::fs::read("proxy.key")?;
/// let acceptor = routing_tower::tls::ServerTls::new(&cert, &key)?.acceptor()?;
/// # let _ = acceptor; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    client_ca: Option<Vec<CertificateDer<'static>>>,
    alpn: Vec<Vec<u8>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("certificates", &self.chain.len())
            .field("client_auth", &self.client_ca.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A certificate chain and its key (PEM), offering `h2` and `http/1.1`.
    pub fn new(cert_chain: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Ok(Self {
            chain: certs("cert", cert_chain)?,
            key: Arc::new(key("key", key_pem)?),
            client_ca: None,
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        })
    }

    /// Require client certificates chaining to this CA (PEM).
    pub fn with_client_ca_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        self.client_ca = Some(certs("client_ca", pem)?);
        Ok(self)
    }

    /// Offer only these ALPN protocols, in preference order (default `h2`,
    /// `http/1.1`).
    #[must_use]
    pub fn with_alpn(mut self, protocols: &[&[u8]]) -> Self {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// The rustls server configuration.
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| err("cert", e))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut store = RootCertStore::empty();
                for c in ca {
                    store.add(c.clone()).map_err(|e| err("client_ca", e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(store),
                    provider(),
                )
                .build()
                .map_err(|e| err("client_ca", e))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| err("key", e))?;
        config.alpn_protocols = self.alpn.clone();
        Ok(config)
    }

    /// A tokio-rustls acceptor for [`serve_tls`](crate::server::serve_tls).
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(
            self.server_config()?,
        )))
    }
}
