//! The tool calls running on this worker, so a `CancelTask` can find and stop them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use weft_protocol::wire::CancelTask;

/// Running calls, by an internal serial number.
#[derive(Debug, Clone, Default)]
pub(super) struct Running {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    calls: HashMap<u64, Call>,
}

#[derive(Debug)]
struct Call {
    run_id: Uuid,
    step_id: String,
    attempt: u32,
    cancel: CancellationToken,
}

/// Removes its call from [`Running`] when dropped.
#[derive(Debug)]
pub(super) struct Registration {
    running: Running,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.running.lock().calls.remove(&self.id);
    }
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map usable: recover it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a call until the returned registration is dropped.
    pub(super) fn insert(&self, run_id: Uuid, step_id: &str, attempt: u32, cancel: CancellationToken) -> Registration {
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.calls.insert(id, Call { run_id, step_id: step_id.to_owned(), attempt, cancel });
        Registration { running: self.clone(), id }
    }

    /// Cancels every call `request` names; returns how many.
    pub(super) fn cancel(&self, request: &CancelTask) -> usize {
        let inner = self.lock();
        let matching = inner.calls.values().filter(|c| {
            c.run_id == request.run_id
                && request.step_id.as_ref().is_none_or(|s| *s == c.step_id)
                && request.attempt.is_none_or(|a| a == c.attempt)
        });
        let mut count = 0;
        for call in matching {
            call.cancel.cancel();
            count += 1;
        }
        count
    }

    /// How many calls are running.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancels_what_the_request_names() {
        let running = Running::default();
        let (run, other) = (Uuid::now_v7(), Uuid::now_v7());
        let calls = [(run, "a", 1), (run, "a", 2), (run, "b", 1), (other, "a", 1)];
        let tokens: Vec<CancellationToken> = calls.iter().map(|_| CancellationToken::new()).collect();
        let registrations: Vec<Registration> =
            calls.iter().zip(&tokens).map(|((r, s, a), t)| running.insert(*r, s, *a, t.clone())).collect();
        let fired = || tokens.iter().map(CancellationToken::is_cancelled).collect::<Vec<_>>();

        assert_eq!(running.cancel(&CancelTask { run_id: run, step_id: Some("a".into()), attempt: Some(2) }), 1);
        assert_eq!(fired(), [false, true, false, false]);
        assert_eq!(running.cancel(&CancelTask { run_id: run, step_id: None, attempt: None }), 3);
        assert_eq!(fired(), [true, true, true, false]);

        assert_eq!(running.len(), 4);
        drop(registrations);
        assert_eq!(running.len(), 0);
        assert_eq!(running.cancel(&CancelTask { run_id: other, step_id: None, attempt: None }), 0);
    }
}
