//! PEM files: certificate chains, private keys, CA bundles, and the system's trusted roots.
//!
//! Every function reads at most [`MAX_PEM_BYTES`] of a file, checks what it decodes (each
//! certificate parses as X.509, each key is one ring can sign with) and answers a
//! [`TlsError`] naming the file, whatever the file holds.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// The most bytes read from a PEM file: a CA bundle of a few hundred roots is well under it.
pub const MAX_PEM_BYTES: u64 = 4 << 20;

/// Reads the certificates of a PEM file, in order (a chain: the leaf first, then the
/// intermediates). Sections of other kinds (a key in the same file) are skipped.
///
/// # Errors
///
/// [`TlsError::Read`] if the file cannot be read; [`TlsError::Invalid`] if it is larger than
/// [`MAX_PEM_BYTES`], malformed PEM, has no certificate, or one that is not X.509.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_bounded(path)?;
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(&bytes) {
        let cert = item.map_err(|e| invalid(path, pem_problem(&e)))?;
        match x509_parser::parse_x509_certificate(&cert) {
            Ok(([], _)) => certs.push(cert),
            _ => {
                return Err(invalid(
                    path,
                    format!(
                        "certificate {} is not a valid X.509 certificate",
                        certs.len() + 1
                    ),
                ));
            }
        }
    }
    if certs.is_empty() {
        return Err(invalid(
            path,
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".to_string(),
        ));
    }
    Ok(certs)
}

/// Reads the one private key of a PEM file: PKCS#8 (`BEGIN PRIVATE KEY`), SEC1 (`BEGIN EC
/// PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`). Other sections (certificates, EC
/// parameters) are skipped.
///
/// # Errors
///
/// [`TlsError::Read`] if the file cannot be read; [`TlsError::Invalid`] if it is too large,
/// malformed PEM, holds no key or more than one, or a key ring cannot sign with (encrypted
/// keys are not supported).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_bounded(path)?;
    let mut keys = PrivateKeyDer::pem_slice_iter(&bytes);
    let key = match keys.next() {
        Some(Ok(key)) => key,
        Some(Err(e)) => return Err(invalid(path, pem_problem(&e))),
        None => {
            let problem = if bytes.windows(9).any(|w| w == b"ENCRYPTED") {
                "an encrypted private key: give it unencrypted (and readable by its owner only)"
            } else {
                "no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----, \
                 -----BEGIN EC PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
            };
            return Err(invalid(path, problem.to_string()));
        }
    };
    match keys.next() {
        None => {}
        Some(Ok(_)) => {
            return Err(invalid(
                path,
                "more than one private key in it: give one".to_string(),
            ));
        }
        Some(Err(e)) => return Err(invalid(path, pem_problem(&e))),
    }
    if crate::provider()
        .key_provider
        .load_private_key(key.clone_key())
        .is_err()
    {
        return Err(invalid(
            path,
            "not a private key that can sign (supported: ECDSA P-256 or P-384, Ed25519, \
             RSA of 2048 bits or more)"
                .to_string(),
        ));
    }
    Ok(key)
}

/// Reads a CA bundle: every certificate of the file becomes a trust anchor.
///
/// # Errors
///
/// As [`load_certs`], and [`TlsError::Invalid`] if a certificate cannot be a trust anchor.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in load_certs(path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            invalid(
                path,
                format!("certificate {} cannot be a trust anchor: {e}", i + 1),
            )
        })?;
    }
    Ok(roots)
}

/// The system's trusted roots (`SSL_CERT_FILE` or `SSL_CERT_DIR` if set, else the
/// distribution's bundle). Certificates rustls cannot use are skipped, as browsers do.
///
/// # Errors
///
/// [`TlsError::SystemRoots`] if none could be loaded.
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_string(), ToString::to_string);
        return Err(TlsError::SystemRoots(format!(
            "no usable certificate ({why}); give the CA's certificate instead"
        )));
    }
    Ok(roots)
}

/// Reads a whole file of at most [`MAX_PEM_BYTES`].
fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    let read_error = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(invalid(
            path,
            format!("larger than {MAX_PEM_BYTES} bytes: not a PEM file of certificates or keys"),
        ));
    }
    Ok(bytes)
}

fn invalid(path: &Path, problem: String) -> TlsError {
    TlsError::Invalid {
        path: path.to_path_buf(),
        problem,
    }
}

/// Says what is wrong without quoting the file (pem's own messages quote the offending line,
/// which in a key file should not reach a log).
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => {
            "a PEM section has no END line (is the file truncated?)".to_string()
        }
        pem::Error::IllegalSectionStart { .. } => "a malformed PEM BEGIN line".to_string(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".to_string(),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_string(),
        pem::Error::Io(e) => e.to_string(),
        _ => "malformed PEM".to_string(),
    }
}
