//! go-plugin's side of the handshake: Terraform starts this binary with a magic cookie and the
//! client's certificate in the environment; the plugin listens on loopback, serves gRPC over
//! mutual TLS (its own self-signed certificate, the client's certificate as the only trusted
//! root), and prints one line that tells Terraform where and how to connect:
//!
//! ```text
//! 1|6|tcp|127.0.0.1:PORT|grpc|BASE64(DER of the server certificate)
//! ```
//!
//! (core protocol 1, plugin protocol 6). Nothing else may ever be written to standard output.
//!
//! The client is authenticated by pinning: the certificate it presents must be byte for byte the
//! one Terraform put in `PLUGIN_CLIENT_CERT` (and its handshake signature must verify with it).
//! go-plugin's client certificate is a self-signed CA certificate, which a chain verifier
//! (webpki) refuses as an end entity, so rustls is configured here rather than through tonic.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::sync::Notify;
use tonic::transport::Server;

use crate::proto::plugin::grpc_controller_server::{GrpcController, GrpcControllerServer};
use crate::proto::plugin::Empty;
use crate::proto::tfplugin6::provider_server::ProviderServer;
use crate::provider::MlopsProvider;

/// The cookie Terraform sets, so that the binary run by hand explains itself instead.
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
/// Plugin protocol served.
const PROTOCOL_VERSION: &str = "6";

/// Why the plugin could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// go-plugin's controller: `Shutdown` stops the server.
struct Controller {
    stop: Arc<Notify>,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _: tonic::Request<Empty>) -> Result<tonic::Response<Empty>, tonic::Status> {
        self.stop.notify_one();
        Ok(tonic::Response::new(Empty {}))
    }
}

/// Serves the provider until Terraform shuts it down.
pub async fn serve() -> Result<(), StartError> {
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        return Err(StartError(
            "this is a Terraform plugin: it is started by terraform (see provider/README or the main README's \
             \"Terraform provider\" section for a dev_overrides configuration), not run by hand"
                .into(),
        ));
    }
    if let Ok(versions) = std::env::var("PLUGIN_PROTOCOL_VERSIONS") {
        if !versions.split(',').any(|v| v.trim() == PROTOCOL_VERSION) {
            return Err(StartError(format!(
                "Terraform offers plugin protocol versions {versions}; this provider speaks version 6 \
                 (Terraform 1.0 or newer)"
            )));
        }
    }
    let client_cert = std::env::var("PLUGIN_CLIENT_CERT").unwrap_or_default();
    let (tls, server_der) = if client_cert.trim().is_empty() {
        (None, Vec::new())
    } else {
        let (config, der) = tls_config(&client_cert)?;
        (Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))), der)
    };

    let listener = bind().await?;
    let addr = listener.local_addr().map_err(|e| StartError(format!("cannot read the listening address: {e}")))?;
    let stop = Arc::new(Notify::new());
    let provider = MlopsProvider::new(stop.clone());
    let router = Server::builder()
        .add_service(GrpcControllerServer::new(Controller { stop: stop.clone() }))
        .add_service(ProviderServer::new(provider).max_decoding_message_size(256 << 20));

    let line = format!("1|{PROTOCOL_VERSION}|tcp|{addr}|grpc|{}\n", base64_raw(&server_der));
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).and_then(|_| out.flush()).map_err(|e| StartError(e.to_string()))?;
    drop(out);

    let shutdown = async move { stop.notified().await };
    let Some(acceptor) = tls else {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        return router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| StartError(format!("gRPC server: {e}")));
    };
    // Handshakes run concurrently; connections that fail them are dropped.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                    }
                    Err(e) => eprintln!("terraform-provider-mlops: TLS handshake failed: {e}"),
                }
            });
        }
    });
    router
        .serve_with_incoming_shutdown(tokio_stream::wrappers::ReceiverStream::new(rx), shutdown)
        .await
        .map_err(|e| StartError(format!("gRPC server: {e}")))
}

/// The client certificate Terraform gave, and nothing else, is accepted.
#[derive(Debug)]
struct PinnedClient {
    cert: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for PinnedClient {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the client certificate Terraform announced".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

impl PinnedClient {
    /// ring's algorithms plus ECDSA P-521 with SHA-512 (what go-plugin's client key uses).
    fn algorithms(&self) -> rustls::crypto::WebPkiSupportedAlgorithms {
        static ALGORITHMS: std::sync::OnceLock<rustls::crypto::WebPkiSupportedAlgorithms> = std::sync::OnceLock::new();
        static P521_ONLY: [&dyn rustls_pki_types::SignatureVerificationAlgorithm; 1] = [&P521_SHA512];
        let ring = self.provider.signature_verification_algorithms;
        *ALGORITHMS.get_or_init(|| {
            let all: Vec<&'static dyn rustls_pki_types::SignatureVerificationAlgorithm> =
                ring.all.iter().copied().chain(P521_ONLY).collect();
            let mut mapping = ring.mapping.to_vec();
            mapping.push((SignatureScheme::ECDSA_NISTP521_SHA512, &P521_ONLY));
            // Made once per process; leaked to get the 'static slices rustls wants.
            rustls::crypto::WebPkiSupportedAlgorithms {
                all: Box::leak(all.into_boxed_slice()),
                mapping: Box::leak(mapping.into_boxed_slice()),
            }
        })
    }
}

/// ECDSA on P-521 with SHA-512, verified by the `p521` crate.
#[derive(Debug)]
struct P521Sha512;

static P521_SHA512: P521Sha512 = P521Sha512;

impl rustls_pki_types::SignatureVerificationAlgorithm for P521Sha512 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), rustls_pki_types::InvalidSignature> {
        use p521::ecdsa::signature::Verifier;
        let key =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| rustls_pki_types::InvalidSignature)?;
        let sig = p521::ecdsa::Signature::from_der(signature).map_err(|_| rustls_pki_types::InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| rustls_pki_types::InvalidSignature)
    }

    fn public_key_alg_id(&self) -> rustls_pki_types::AlgorithmIdentifier {
        rustls_pki_types::alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> rustls_pki_types::AlgorithmIdentifier {
        rustls_pki_types::alg_id::ECDSA_SHA512
    }
}

/// The server's TLS configuration (HTTP/2 by ALPN, the client pinned) and its certificate (DER).
fn tls_config(client_pem: &str) -> Result<(rustls::ServerConfig, Vec<u8>), StartError> {
    let client = CertificateDer::from_pem_slice(client_pem.as_bytes())
        .map_err(|e| StartError(format!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedClient { cert: client.as_ref().to_vec(), provider: provider.clone() });
    let (cert_pem, key_pem, der) = server_identity()?;
    let chain = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| StartError(e.to_string()))?];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| StartError(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError(format!("TLS configuration: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| StartError(format!("TLS configuration: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((config, der))
}

/// A listener on loopback, within PLUGIN_MIN_PORT..=PLUGIN_MAX_PORT when Terraform sets them.
async fn bind() -> Result<tokio::net::TcpListener, StartError> {
    let port = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u16>().ok());
    let (min, max) = (port("PLUGIN_MIN_PORT").unwrap_or(0), port("PLUGIN_MAX_PORT").unwrap_or(0));
    if min == 0 || max < min {
        return tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| StartError(format!("cannot listen on 127.0.0.1: {e}")));
    }
    for p in min..=max {
        if let Ok(l) = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], p))).await {
            return Ok(l);
        }
    }
    Err(StartError(format!("no free port on 127.0.0.1 in {min}..={max}")))
}

/// A fresh self-signed certificate for `localhost` (what go-plugin's client expects as the
/// server name), valid as its own root.
fn server_identity() -> Result<(String, String, Vec<u8>), StartError> {
    let err = |e: rcgen::Error| StartError(format!("cannot make the server certificate: {e}"));
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "localhost");
    dn.push(rcgen::DnType::OrganizationName, "terraform-provider-mlops");
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyAgreement,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(60)).into();
    params.not_after = (now + std::time::Duration::from_secs(3 * 365 * 24 * 3600)).into();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem(), cert.der().to_vec()))
}

/// Standard base64 without padding (Go's `base64.RawStdEncoding`, which go-plugin decodes).
fn base64_raw(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64_raw;

    #[test]
    fn base64_has_no_padding() {
        assert_eq!(base64_raw(b"f"), "Zg");
        assert_eq!(base64_raw(b"fo"), "Zm8");
        assert_eq!(base64_raw(b"foo"), "Zm9v");
        assert_eq!(base64_raw(b"foobar"), "Zm9vYmFy");
    }
}
