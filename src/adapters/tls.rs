//! The one TLS crypto provider of the process (rustls with ring), installed once before any
//! HTTP client is built, so that every client agrees on it.

/// Installs ring as the process-wide rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
