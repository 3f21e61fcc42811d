//! What a listening process (`haze serve`, `haze controller`) is told about TLS, and protected
//! mode: a process that would listen beyond loopback without TLS and authentication refuses to
//! start unless `--insecure` says that is meant (docs/security.md).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use haze_tls::ClientAuth;
use haze_tls::rustls::{ClientConfig, ServerConfig};

/// How often `--insecure` reminds the log that nothing is protected.
const INSECURE_REMINDER: Duration = Duration::from_secs(60);

/// `--tls-cert`, `--tls-key`, `--tls-ca` and `--insecure`.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ServerTlsArgs {
    /// This process's certificate (PEM, the leaf first), issued by the cluster's CA
    /// (`haze certs issue node NAME`): TLS on every port it listens on.
    #[arg(long, value_name = "PEM", requires_all = ["tls_key", "tls_ca"])]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "PEM", requires_all = ["tls_cert", "tls_ca"])]
    pub(crate) tls_key: Option<PathBuf>,
    /// The cluster's CA (PEM): the certificates of nodes (and of clients that present one)
    /// must chain to it.
    #[arg(long, value_name = "PEM", requires_all = ["tls_cert", "tls_key"])]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Listen beyond loopback without TLS and authentication: anyone who reaches the port can
    /// read, write and (on a controller) take the cluster. Logged as a warning every minute.
    #[arg(long)]
    pub(crate) insecure: bool,
}

/// The TLS configurations of a process that has a certificate.
pub(crate) struct Tls {
    /// What its listeners serve: client certificates optional, verified against the CA.
    pub(crate) server: Arc<ServerConfig>,
    /// How it dials others (peers, the controller): its certificate, servers verified
    /// against the CA.
    pub(crate) client: Arc<ClientConfig>,
}

impl ServerTlsArgs {
    /// The configurations, if `--tls-cert` was given (clap makes sure the three come
    /// together).
    pub(crate) fn load(&self) -> anyhow::Result<Option<Tls>> {
        let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca)
        else {
            return Ok(None);
        };
        let server = haze_tls::server_config(cert, key, Some(ca), ClientAuth::Optional)
            .context("loading --tls-cert, --tls-key and --tls-ca")?;
        let client = haze_tls::client_config(Some(ca), Some((cert, key)))
            .context("loading --tls-cert, --tls-key and --tls-ca")?;
        Ok(Some(Tls { server, client }))
    }
}

/// The addresses `addr` (`HOST:PORT`) resolves to: what a listener would bind, checked by
/// [`protected_mode`] before anything listens.
pub(crate) async fn resolve(addr: &str) -> anyhow::Result<Vec<SocketAddr>> {
    Ok(tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("resolving {addr}"))?
        .collect())
}

/// Protected mode: `what` (a node, the controller) listening on `bound` may serve beyond
/// loopback only when `protected` (TLS on and callers authenticated), or with `--insecure`,
/// which starts a task that warns every minute (call from within the runtime).
///
/// # Errors
///
/// A message naming the address and the flags that protect it (`how`).
pub(crate) fn protected_mode(
    what: &str,
    bound: &[SocketAddr],
    protected: bool,
    insecure: bool,
    how: &str,
) -> anyhow::Result<()> {
    let exposed: Vec<String> = bound
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(ToString::to_string)
        .collect();
    if protected || exposed.is_empty() {
        return Ok(());
    }
    if !insecure {
        bail!(
            "refusing to serve {what} on {} without TLS and authentication: anyone who reaches \
             it could read and write every key. {how}; or listen on 127.0.0.1 only; or give \
             --insecure if this network is trusted (docs/security.md)",
            exposed.join(", ")
        );
    }
    let exposed = exposed.join(", ");
    let what = what.to_string();
    tokio::spawn(async move {
        loop {
            tracing::warn!(
                addresses = %exposed,
                "--insecure: serving {what} without TLS and authentication beyond loopback; \
                 anyone who reaches these addresses can read and write every key"
            );
            tokio::time::sleep(INSECURE_REMINDER).await;
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::protected_mode;

    #[tokio::test]
    async fn only_loopback_or_protected_or_insecure_may_listen() {
        let loopback = [
            "127.0.0.1:7700".parse().unwrap(),
            "[::1]:7780".parse().unwrap(),
        ];
        let exposed = ["0.0.0.0:7700".parse().unwrap()];
        protected_mode("a node", &loopback, false, false, "use TLS").unwrap();
        protected_mode("a node", &exposed, true, false, "use TLS").unwrap();
        protected_mode("a node", &exposed, false, true, "use TLS").unwrap();
        let refused = protected_mode("a node", &exposed, false, false, "give --tls-cert")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("0.0.0.0:7700"), "{refused}");
        assert!(refused.contains("give --tls-cert"), "{refused}");
        assert!(refused.contains("--insecure"), "{refused}");
    }
}
