//! The MQTTS listener: rustls in front of the same [`serve`] loop as the plain listener.
//!
//! spec: thingsboard-mqtt.md, 3.3. A client may present a certificate or not. Without one it
//! authenticates as on the plain port (token, MQTT basic). With one, ThingsBoard uses the
//! certificate and ignores the username: the certificate (base64 DER, the PEM body) is looked
//! up among X509_CERTIFICATE credentials, and an unknown one gets CONNACK "not authorised".
//!
//! Design: the verifier accepts any client certificate instead of checking it against a CA,
//! because ThingsBoard matches the certificate itself, not its issuer. It still checks the
//! handshake signature, so a client must hold the private key of the certificate it shows.
//! The certificate's validity dates are read here (x509-parser, a well-kept parser; rustls
//! does not expose them) and a certificate outside them is refused at CONNECT, as
//! ThingsBoard refuses an expired one ("not authorised").

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::mqtt::{serve, LiveGuard};
use crate::error::DevServerError;
use crate::log::LOG_TARGET;
use crate::session::ClientCert;
use crate::shared::Shared;

/// Bound on a TLS handshake; a client that stalls in it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts any client certificate whose owner proves it holds the key (see the module doc).
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS acceptor for the server certificate chain in `cert` and the key in `key` (PEM).
///
/// # Errors
/// `Config` naming the file that cannot be read or the key that does not fit.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, DevServerError> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        DevServerError::Config(format!("TLS {what} {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("certificate", cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", cert, &e))?;
    if chain.is_empty() {
        return Err(bad("certificate", cert, &"no CERTIFICATE in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DevServerError::Config(format!("TLS: {e}")))?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain, private)
        .map_err(|e| bad("key (does it match the certificate?)", key, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The PEM body of a DER certificate (base64, no armour, no line breaks): the form
/// X509_CERTIFICATE credentials are compared in.
pub(crate) fn certificate_body(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// Why a client certificate (DER) cannot be used `now` (Unix seconds), if it cannot: outside
/// its validity dates, or not parseable.
pub(crate) fn validity_problem(der: &[u8], now: i64) -> Option<String> {
    let cert = match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert,
        Err(e) => return Some(format!("client certificate cannot be parsed: {e}")),
    };
    let v = cert.validity();
    if now < v.not_before.timestamp() {
        Some(format!(
            "client certificate not valid before {}",
            v.not_before
        ))
    } else if now > v.not_after.timestamp() {
        Some(format!("client certificate expired on {}", v.not_after))
    } else {
        None
    }
}

/// Accepts MQTTS connections until shutdown; each handshake runs in the connection's task.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn_id = shared.conn_seq.fetch_add(1, Ordering::Relaxed) + 1;
                    let guard = LiveGuard::new(&shared);
                    tokio::spawn(handshake(
                        shared.clone(),
                        acceptor.clone(),
                        stream,
                        peer,
                        conn_id,
                        shutdown.clone(),
                        guard,
                    ));
                }
                Err(e) => {
                    log::warn!(target: LOG_TARGET, "TLS accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn handshake(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    conn_id: u64,
    shutdown: watch::Receiver<bool>,
    guard: LiveGuard,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared
                .logs
                .emit(format!("[conn {conn_id}] {peer} TLS handshake failed: {e}"));
            return;
        }
        Err(_) => {
            shared.logs.emit(format!(
                "[conn {conn_id}] {peer} TLS handshake timed out after {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            ));
            return;
        }
    };
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| ClientCert {
            body: certificate_body(c),
            invalid: validity_problem(c, crate::store::now_ms() / 1000),
        });
    serve(shared, tls, peer, conn_id, shutdown, guard, cert).await;
}
