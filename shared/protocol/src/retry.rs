//! The one retry policy of Weft's processes: try again after a doubling delay, capped,
//! until an operation succeeds, fails in a way no retry helps, the policy gives up, or the
//! process shuts down.
//!
//! Each use names its policy as a constant with its reason (how long a run's log entry may
//! take to store, how patient a client is with an election). Retries of *steps* are not
//! this: they are the workflow's own `retry` policy, decided by the run's state machine.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// When a policy stops trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// After this long since the first try.
    After(Duration),
    /// After this many tries in all.
    Tries(u32),
    /// Never (only a shutdown stops it).
    Never,
}

/// How to retry: delays from `first`, doubling, at most `max`, until `give_up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Delay after the first failure.
    pub first: Duration,
    /// Longest delay.
    pub max: Duration,
    /// When to stop.
    pub give_up: GiveUp,
}

impl Policy {
    /// A policy that never gives up by itself.
    pub const fn new(first: Duration, max: Duration) -> Policy {
        Policy { first, max, give_up: GiveUp::Never }
    }

    /// The same, giving up after `patience`.
    pub const fn for_at_most(self, patience: Duration) -> Policy {
        Policy { give_up: GiveUp::After(patience), ..self }
    }

    /// The same, giving up after `tries` tries.
    pub const fn tries(self, tries: u32) -> Policy {
        Policy { give_up: GiveUp::Tries(tries), ..self }
    }

    /// Its delays, one per failure.
    pub fn backoff(&self) -> Backoff {
        Backoff { policy: *self, next: self.first }
    }
}

/// The delays of a [`Policy`], for loops that keep state between tries (a consumer that is
/// bound again, a pull that resumes).
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    next: Duration,
}

impl Backoff {
    /// The next delay (doubling up to the policy's `max`).
    pub fn next_delay(&mut self) -> Duration {
        let now = self.next;
        self.next = now.saturating_mul(2).min(self.policy.max);
        now
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.policy.first;
    }
}

/// Why [`retry`] stopped without a success.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The operation failed in a way the caller said no retry helps.
    Failed(E),
    /// The policy gave up; the last error.
    GaveUp(E),
    /// Shutdown came first.
    ShutDown,
}

impl<E> Stopped<E> {
    /// The operation's last error, if it ran at all.
    pub fn error(self) -> Option<E> {
        match self {
            Stopped::Failed(e) | Stopped::GaveUp(e) => Some(e),
            Stopped::ShutDown => None,
        }
    }
}

/// Runs `op` until it succeeds, fails with an error `retryable` refuses, `policy` gives
/// up, or `shutdown` (if any) is cancelled, waiting the policy's delays between tries.
pub async fn retry<T, E, Fut>(
    policy: &Policy,
    shutdown: Option<&CancellationToken>,
    retryable: impl Fn(&E) -> bool,
    mut op: impl FnMut() -> Fut,
) -> Result<T, Stopped<E>>
where
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut backoff = policy.backoff();
    for tries in 1u32.. {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(e) if !retryable(&e) => return Err(Stopped::Failed(e)),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        let out_of_patience = match policy.give_up {
            GiveUp::After(patience) => started.elapsed() + delay > patience,
            GiveUp::Tries(most) => tries >= most,
            GiveUp::Never => false,
        };
        if out_of_patience {
            return Err(Stopped::GaveUp(error));
        }
        if !pause(delay, shutdown).await {
            return Err(Stopped::ShutDown);
        }
    }
    unreachable!("the loop returns")
}

/// Sleeps for `delay`; false if `shutdown` fired first.
pub async fn pause(delay: Duration, shutdown: Option<&CancellationToken>) -> bool {
    match shutdown {
        Some(token) => tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = token.cancelled() => false,
        },
        None => {
            tokio::time::sleep(delay).await;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const QUICK: Policy = Policy::new(Duration::from_millis(1), Duration::from_millis(4));

    #[test]
    fn delays_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut b = Policy::new(Duration::from_millis(100), Duration::from_secs(5)).backoff();
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn retries_until_success_a_refusal_or_the_end_of_patience() {
        let calls = AtomicU32::new(0);
        let third = retry(
            &QUICK,
            None,
            |_: &&str| true,
            || async { if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err("not yet") } else { Ok(3) } },
        )
        .await;
        assert_eq!(third.ok(), Some(3));

        let refused = retry(&QUICK, None, |e: &&str| *e != "bad", || async { Err::<(), _>("bad") }).await;
        assert!(matches!(refused, Err(Stopped::Failed("bad"))));

        calls.store(0, Ordering::SeqCst);
        let tired = retry(
            &QUICK.tries(4),
            None,
            |_: &&str| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("down")
            },
        )
        .await;
        assert!(matches!(tired, Err(Stopped::GaveUp("down"))));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let stopped = retry(&QUICK, Some(&shutdown), |_: &&str| true, || async { Err::<(), _>("down") }).await;
        assert!(matches!(stopped, Err(Stopped::ShutDown)));
    }
}
