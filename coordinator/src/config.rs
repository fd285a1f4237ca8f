//! The coordinator's configuration: every field documented with its default.

use std::time::Duration;

use weft_shared::client::setup::Retention;

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS server URL (default `nats://127.0.0.1:4222`, env `NATS_URL`).
    pub nats_url: String,
    /// How long events, finished runs and tool advertisements are kept.
    pub retention: Retention,
    /// Ack wait of the results consumer: an unacked result is redelivered after it (default 30s).
    pub results_ack_wait: Duration,
    /// How long the live tool catalogue is cached for submit-time validation (default 2s).
    pub catalogue_ttl: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            retention: Retention::default(),
            results_ack_wait: Duration::from_secs(30),
            catalogue_ttl: Duration::from_secs(2),
        }
    }
}
