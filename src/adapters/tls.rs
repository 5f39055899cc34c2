//! The one TLS crypto provider of the process (rustls with ring), installed once before any
//! HTTP client is built, so that every client agrees on it, and the error of a client that
//! could not be built.

/// Installs ring as the process-wide rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// An HTTP client that could not be built (its TLS set-up, most often).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the {what} HTTP client: {source}")]
pub struct ClientError {
    /// Which client: `alert`, `webhook`.
    pub what: &'static str,
    /// What reqwest said.
    pub source: reqwest::Error,
}
