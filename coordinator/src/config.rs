//! The coordinator's configuration: every field documented with its default.

use std::time::Duration;

use weft_protocol::topology::Retention;

/// How a coordinator runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// NATS server URL (default `nats://127.0.0.1:4222`, env `NATS_URL`).
    pub nats_url: String,
    /// How long events, finished runs and tool advertisements are kept.
    pub retention: Retention,
    /// Ack wait of the partition consumers: an entry not acked by then is redelivered
    /// (default 30s).
    pub ack_wait: Duration,
    /// Partitions the runs are spread over; every coordinator must use the same number
    /// (default 8, env `WEFT_PARTITIONS`).
    pub partitions: u32,
    /// A partition's pin moves to another coordinator when its owner has not pulled for
    /// this long (default 6s).
    pub pin_timeout: Duration,
    /// How long the live tool catalogue is cached for submit-time validation (default 2s).
    pub catalogue_ttl: Duration,
    /// Resource pools and capacities created at start if missing (default none, env
    /// `WEFT_POOLS` as `gpu=2,api=4`); an existing pool keeps its capacity.
    pub pools: Vec<(String, u32)>,
    /// What a workflow may ask, and each run may do (see `weft_lang::limits`).
    pub limits: weft_lang::limits::Limits,
    /// Model prices that budgets cost model calls at (default none: costs are 0, and a
    /// workflow with a `cost` budget is refused; env `WEFT_PRICES`, a JSON file).
    pub prices: Prices,
    /// Set once the coordinator serves its API: from then on `/healthz` (served with the
    /// metrics) asks the supervisor actor, NATS and JetStream for an answer.
    pub health: weft_service::metrics::Health,
}

/// A model's price, per million tokens (in any one currency: budgets use the same unit).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    pub prompt: f64,
    /// Per million completion tokens.
    pub completion: f64,
}

/// Prices by model name, as the provider reports it in `usage`
/// (`{"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}}`).
pub type Prices = std::collections::BTreeMap<String, Price>;

impl Default for Config {
    fn default() -> Config {
        Config {
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            retention: Retention::default(),
            ack_wait: Duration::from_secs(30),
            partitions: 8,
            pin_timeout: Duration::from_secs(6),
            catalogue_ttl: Duration::from_secs(2),
            pools: Vec::new(),
            limits: weft_lang::limits::Limits::default(),
            prices: Prices::new(),
            health: weft_service::metrics::Health::new(),
        }
    }
}
