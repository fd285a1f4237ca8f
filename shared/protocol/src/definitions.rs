//! Registered definitions in the `weft_definitions` bucket (key `<name>.<version>`), read
//! the same way by clients (`weft run --name`) and coordinators (sub-workflows).

use async_nats::jetstream::kv;
use futures::StreamExt;

use crate::subjects;
use weft_lang::definition::WorkflowDef;

/// A definition could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// Nothing is registered under that name (and version).
    #[error("{0}")]
    NotFound(String),
    /// The bucket could not be read.
    #[error("definitions bucket: {0}")]
    Store(String),
    /// What is stored is not a workflow.
    #[error("stored definition `{key}` is unreadable: {message}")]
    Decode {
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
}

/// Every registered (name, version), sorted.
pub async fn list(store: &kv::Store) -> Result<Vec<(String, u32)>, DefinitionError> {
    let mut keys = store.keys().await.map_err(|e| DefinitionError::Store(e.to_string()))?;
    let mut out = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| DefinitionError::Store(e.to_string()))?;
        if let Some((name, version)) = key.rsplit_once('.')
            && let Ok(version) = version.parse()
        {
            out.push((name.to_owned(), version));
        }
    }
    out.sort();
    Ok(out)
}

/// The latest registered version of `name`.
pub async fn latest(store: &kv::Store, name: &str) -> Result<u32, DefinitionError> {
    list(store)
        .await?
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .max()
        .ok_or_else(|| DefinitionError::NotFound(format!("no workflow `{name}` is registered")))
}

/// A registered definition; the latest version if `version` is `None`.
pub async fn load(store: &kv::Store, name: &str, version: Option<u32>) -> Result<WorkflowDef, DefinitionError> {
    let version = match version {
        Some(v) => v,
        None => latest(store, name).await?,
    };
    let key = subjects::definition_key(name, version);
    let bytes =
        store.get(&key).await.map_err(|e| DefinitionError::Store(e.to_string()))?.ok_or_else(|| {
            DefinitionError::NotFound(format!("no version {version} of workflow `{name}` is registered"))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| DefinitionError::Decode { key, message: e.to_string() })
}
