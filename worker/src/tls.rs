//! TLS for the worker's HTTP clients (`http`, `llm`, MCP over Streamable HTTP).
//!
//! reqwest is built without a crypto provider of its own, so the process has one: ring,
//! which async-nats already uses, instead of a second crypto library to build and audit.

/// Installs ring as the process's rustls provider, unless the embedding program chose one.
pub fn install_provider() {
    // An error means a provider is installed already: that one is used.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client of the process's provider. Every HTTP client of the worker comes from here.
pub(crate) fn http_client() -> reqwest::Client {
    install_provider();
    // With a provider installed, building cannot fail on TLS (reqwest's only other failure
    // is a system resolver configuration it cannot read, which it does not read on Linux).
    reqwest::Client::new()
}
