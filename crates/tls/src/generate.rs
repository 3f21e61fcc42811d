//! A cluster CA and the certificates it issues, as files (the cargo feature `generate`; only
//! `haze certs` uses it).
//!
//! A directory holds the CA (`ca.pem`, `ca.key`) and the certificates issued with it
//! (`NAME.pem`, `NAME.key`). Keys are ECDSA P-256 in PKCS#8, written with mode 0600; nothing
//! existing is ever overwritten. The CA may sign only end-entity certificates (path length 0).
//! A node's certificate serves and dials (server and client authentication), a client's only
//! dials, so a client's certificate cannot pose as a node's server.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType,
};
use rustls::pki_types::DnsName;
use time::OffsetDateTime;

use crate::load::{load_certs, load_key};
use crate::{Identity, IdentityKind, TlsError};

/// The CA's certificate in a directory: give it to every node and client.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key in a directory: whoever holds it can issue any identity.
pub const CA_KEY: &str = "ca.key";
/// How long a CA is valid: 10 years.
pub const CA_DAYS: u32 = 3650;
/// How long a node's or client's certificate is valid unless told otherwise: 1 year.
pub const LEAF_DAYS: u32 = 365;
/// The longest validity accepted: 100 years.
pub const MAX_DAYS: u32 = 36_500;
/// Certificates are valid from an hour before they are made, so that a machine whose clock is
/// a little behind the issuer's accepts them at once.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The files a generation wrote, and until when the certificate is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
    /// The end of the certificate's validity (to the second).
    pub not_after: SystemTime,
}

/// Creates a cluster CA in `dir` (created, mode 0700, if missing): a new key and a
/// self-signed certificate valid for [`CA_DAYS`] from `now`, in `ca.key` and `ca.pem`.
///
/// # Errors
///
/// [`TlsError::Exists`] if either file exists (nothing is written); [`TlsError::Write`] if
/// the directory or a file cannot be written.
pub fn init_ca(dir: &Path, now: SystemTime) -> Result<Written, TlsError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    refuse_existing(&[&cert_path, &key_path])?;
    let (not_before, not_after) = validity(now, CA_DAYS)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    // Named after its key, so that two clusters' CAs never share a name: a certificate of
    // another cluster then fails as "unknown issuer", not as a bad signature.
    let tag: String = params
        .key_identifier(&key)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    params.distinguished_name = distinguished_name(&format!("Haze cluster CA {tag}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key)?;
    let mut dir_builder = fs::DirBuilder::new();
    dir_builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir_builder, 0o700);
    dir_builder.create(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_pair(&key_path, &key.serialize_pem(), &cert_path, &cert.pem())?;
    Ok(Written {
        cert: cert_path,
        key: key_path,
        not_after: to_system_time(not_after),
    })
}

/// Issues a certificate for the identity `kind`/`name`, signed by the CA in `dir`, valid for
/// `days` from `now`, into `NAME.pem` and `NAME.key` there. Its subject alternative names are
/// `names_and_addresses` (each an IP address or a DNS name, `*.` wildcards allowed: where the
/// holder is reached, for a server's certificate) and the identity's URI.
///
/// # Errors
///
/// [`TlsError::InvalidName`], [`TlsError::InvalidSubjectName`] or [`TlsError::InvalidDays`]
/// for bad arguments; the CA files' errors (the CA key must be PKCS#8, as [`init_ca`] writes
/// it, and be the key of `ca.pem`); [`TlsError::Exists`] if either file exists (nothing is
/// written); [`TlsError::Write`].
pub fn issue(
    dir: &Path,
    kind: IdentityKind,
    name: &str,
    names_and_addresses: &[String],
    days: u32,
    now: SystemTime,
) -> Result<Written, TlsError> {
    let identity = Identity::new(kind, name)?;
    let mut sans = Vec::new();
    for entry in names_and_addresses {
        let san = subject_name(entry)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    let uri = Ia5String::try_from(identity.uri())?;
    sans.push(SanType::URI(uri));
    let (not_before, not_after) = validity(now, days)?;

    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    refuse_existing(&[&cert_path, &key_path])?;
    let issuer = load_issuer(dir)?;

    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&identity.to_string());
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match kind {
        IdentityKind::Node => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        IdentityKind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    write_pair(&key_path, &key.serialize_pem(), &cert_path, &cert.pem())?;
    Ok(Written {
        cert: cert_path,
        key: key_path,
        not_after: to_system_time(not_after),
    })
}

/// The CA of `dir`, checked: `ca.pem` is a CA certificate and `ca.key` is its key.
fn load_issuer(dir: &Path) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let invalid = |path: &Path, problem: String| TlsError::Invalid {
        path: path.to_path_buf(),
        problem,
    };
    let ca_cert = load_certs(&cert_path)?.swap_remove(0);
    let key = KeyPair::try_from(&load_key(&key_path)?).map_err(|_| {
        invalid(
            &key_path,
            "the CA key must be ECDSA or Ed25519 in PKCS#8 (BEGIN PRIVATE KEY), as \
             `haze certs init` writes it"
                .to_string(),
        )
    })?;
    let parsed = x509_parser::parse_x509_certificate(&ca_cert)
        .map_err(|_| invalid(&cert_path, "not a valid X.509 certificate".to_string()))?
        .1;
    if !parsed.is_ca() {
        return Err(invalid(&cert_path, "not a CA certificate".to_string()));
    }
    if parsed.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
        return Err(invalid(
            &key_path,
            format!("not the key of {}", cert_path.display()),
        ));
    }
    Ok(Issuer::from_ca_cert_der(&ca_cert, key)?)
}

/// An IP address or a DNS name (a `*.` wildcard allowed) as a subject alternative name.
fn subject_name(entry: &str) -> Result<SanType, TlsError> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = || TlsError::InvalidSubjectName(entry.to_string());
    let checked = entry.strip_prefix("*.").unwrap_or(entry);
    DnsName::try_from(checked).map_err(|_| bad())?;
    let name = Ia5String::try_from(entry.to_ascii_lowercase()).map_err(|_| bad())?;
    Ok(SanType::DnsName(name))
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Haze");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The validity of a certificate made at `now` for `days`, to the second.
fn validity(now: SystemTime, days: u32) -> Result<(OffsetDateTime, OffsetDateTime), TlsError> {
    if days == 0 || days > MAX_DAYS {
        return Err(TlsError::InvalidDays(days));
    }
    let span = Duration::from_secs(u64::from(days) * 86_400);
    let date = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .and_then(|since| i64::try_from(since.as_secs()).ok())
            .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
            .ok_or_else(|| TlsError::Config("the clock's time cannot date a certificate".into()))
    };
    Ok((
        date(now.checked_sub(BACKDATE))?,
        date(now.checked_add(span))?,
    ))
}

fn to_system_time(t: OffsetDateTime) -> SystemTime {
    // `validity` made `t` from a SystemTime after the epoch, to the second.
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn refuse_existing(paths: &[&Path]) -> Result<(), TlsError> {
    for path in paths {
        // `symlink_metadata`: a dangling link counts as existing (writing would follow it).
        if fs::symlink_metadata(path).is_ok() {
            return Err(TlsError::Exists(path.to_path_buf()));
        }
    }
    Ok(())
}

/// Writes the key (0600), then the certificate (0644); both must be new files. If the
/// certificate cannot be written the key is removed again, so no half pair is left.
fn write_pair(key_path: &Path, key: &str, cert_path: &Path, cert: &str) -> Result<(), TlsError> {
    write_new(key_path, key.as_bytes(), 0o600)?;
    write_new(cert_path, cert.as_bytes(), 0o644).inspect_err(|_| {
        let _ = fs::remove_file(key_path);
    })
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let write_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::Exists(path.to_path_buf())
        } else {
            TlsError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut file = options.open(path).map_err(write_error)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}
