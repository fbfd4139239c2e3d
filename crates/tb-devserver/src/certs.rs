//! Self-signed certificates for trying TLS and X.509 device authentication on one machine
//! (`devserver --tls-selfsigned DIR`): a CA, a server certificate for `localhost` and
//! `127.0.0.1` signed by it, and a device (client) certificate signed by it. Made with the
//! `rcgen` crate (ECDSA P-256), written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::error::DevServerError;

/// The files [`write_self_signed`] made (or found), all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// The CA certificate: what clients trust (`ca_certs=`, `--cafile`).
    pub ca_cert: PathBuf,
    /// The CA's private key (to sign more device certificates).
    pub ca_key: PathBuf,
    /// The server certificate (`--tls-cert`), for `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    /// Its private key (`--tls-key`).
    pub server_key: PathBuf,
    /// A device certificate (`cert_file=`), to register as X509_CERTIFICATE credentials.
    pub device_cert: PathBuf,
    /// Its private key (`key_file=`).
    pub device_key: PathBuf,
}

impl SelfSigned {
    fn in_dir(dir: &Path) -> SelfSigned {
        SelfSigned {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            device_cert: dir.join("device.pem"),
            device_key: dir.join("device-key.pem"),
        }
    }

    fn all(&self) -> [&PathBuf; 6] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
            &self.device_cert,
            &self.device_key,
        ]
    }
}

/// Writes a CA, a server certificate and a device certificate to folder `dir` (created if
/// missing), unless all six files are there already: then they are kept, so clients that trust
/// the CA keep working across restarts. Valid from 2024 to 2049.
///
/// # Errors
/// `Config` naming what could not be made or written.
pub fn write_self_signed(dir: &Path) -> Result<SelfSigned, DevServerError> {
    let files = SelfSigned::in_dir(dir);
    if files.all().iter().all(|p| p.is_file()) {
        return Ok(files);
    }
    let fail = |e: &dyn std::fmt::Display| {
        DevServerError::Config(format!(
            "self-signed certificates in {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let params = |cn: &str, names: &[&str]| -> Result<CertificateParams, DevServerError> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(names).map_err(|e| fail(&e))?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.distinguished_name
            .push(DnType::OrganizationName, "thingsboard_sdk dev server");
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2049, 12, 31);
        Ok(p)
    };

    let ca_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut ca = params("thingsboard_sdk dev server CA", &[])?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| fail(&e))?;

    let server_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut server = params("localhost", &["localhost", "127.0.0.1"])?;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(|e| fail(&e))?;

    let device_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut device = params("X509 Device", &[])?;
    device.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let device_cert = device
        .signed_by(&device_key, &ca_cert, &ca_key)
        .map_err(|e| fail(&e))?;

    for (path, pem) in [
        (&files.ca_cert, ca_cert.pem()),
        (&files.ca_key, ca_key.serialize_pem()),
        (&files.server_cert, server_cert.pem()),
        (&files.server_key, server_key.serialize_pem()),
        (&files.device_cert, device_cert.pem()),
        (&files.device_key, device_key.serialize_pem()),
    ] {
        std::fs::write(path, pem).map_err(|e| fail(&e))?;
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("tb-devserver-certs-{}", uuid::Uuid::new_v4()));
        let files = write_self_signed(&dir).expect("write");
        let first = std::fs::read_to_string(&files.device_cert).expect("read");
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
        let again = write_self_signed(&dir).expect("again");
        assert_eq!(again, files);
        assert_eq!(
            std::fs::read_to_string(&files.device_cert).expect("read"),
            first
        );
        // The pair loads as a rustls server configuration.
        assert!(crate::net::tls::acceptor(&files.server_cert, &files.server_key).is_ok());
        assert!(crate::net::tls::acceptor(&files.server_cert, &files.device_key).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
