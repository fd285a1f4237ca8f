//! What can stop a worker from starting. Once running, a worker does not fail: NATS
//! outages and bad tasks are logged and retried or answered.

use crate::demo::DemoError;
use crate::registry::RegistryError;

/// Why a worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The connection could not even be attempted (bad URL, unreadable credentials).
    #[error(transparent)]
    Connect(#[from] weft_service::connect::ConnectError),
    /// There is nothing to serve.
    #[error("no tools to serve")]
    NoTools,
    /// A tool could not be registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The demo tools could not be loaded.
    #[error(transparent)]
    Demo(#[from] DemoError),
}
