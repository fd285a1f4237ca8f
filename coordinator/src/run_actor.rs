//! The actor holding one run: applies the run's logged inputs to its state machine and
//! carries out the effects. Timers that fire are written to the log, not applied: what is
//! applied is always what the log holds.

use std::time::Duration;

use async_nats::jetstream;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use weft_shared::wire::{Millis, Outcome, RunRecord, TaskResult, now_ms};

use crate::log::{self, Entry};
use crate::machine::{Effect, Input, Run, Timer};
use crate::nats::Nats;
use crate::supervisor::SupervisorMsg;

mod spans;

/// The run actor.
#[derive(Debug)]
pub struct RunActor;

/// Messages to a run actor.
// Messages are moved once into the mailbox; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RunMsg {
    /// Apply a logged input, stored at `at`; ack its message once applied.
    Apply {
        /// The input.
        input: Input,
        /// When the log stored it: the machine's `now`.
        at: Millis,
        /// The log message to ack.
        message: Option<Box<jetstream::Message>>,
    },
    /// A timer fired: write it to the log.
    Fired(Timer),
    /// The run's record.
    Record(RpcReplyPort<RunRecord>),
}

/// How the actor begins.
#[derive(Debug)]
pub enum Start {
    /// A new run: apply `Start` at `at`, then ack the creation entry.
    New {
        /// When the creation was logged.
        at: Millis,
        /// The creation entry.
        message: Box<jetstream::Message>,
    },
    /// A run rebuilt from its log: do again what may not have been done.
    Resume,
}

/// What a run actor starts from.
#[derive(Debug)]
pub struct RunArgs {
    /// The run (new, or rebuilt from its log).
    pub run: Run,
    /// NATS handles.
    pub nats: Nats,
    /// Who to tell when the run ends.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The run's partition.
    pub partition: u32,
    /// How to begin.
    pub start: Start,
    /// The run's trace (`traceparent` of its submit), if traced.
    pub trace: Option<String>,
}

/// A run actor's state.
#[derive(Debug)]
pub struct RunState {
    run: Run,
    nats: Nats,
    supervisor: ActorRef<SupervisorMsg>,
    partition: u32,
    start: Option<Start>,
    spans: spans::RunSpans,
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunState;
    type Arguments = RunArgs;

    async fn pre_start(&self, _myself: ActorRef<RunMsg>, args: RunArgs) -> Result<RunState, ActorProcessingErr> {
        Ok(RunState {
            run: args.run,
            nats: args.nats,
            supervisor: args.supervisor,
            partition: args.partition,
            start: Some(args.start),
            spans: spans::RunSpans::new(args.trace.as_deref()),
        })
    }

    async fn post_start(&self, myself: ActorRef<RunMsg>, state: &mut RunState) -> Result<(), ActorProcessingErr> {
        match state.start.take() {
            Some(Start::New { at, message }) => {
                state.nats.store(&state.run.record()).await?;
                apply(&myself, state, Input::Start, at, Some(message)).await;
            }
            Some(Start::Resume) => {
                let effects = state.run.resume(now_ms());
                tracing::info!(run_id = %state.run.id(), status = ?state.run.status(), "resuming");
                let (finished, follow_ups) = carry_out(&myself, state, effects).await;
                for input in follow_ups {
                    log_input(state, input).await;
                }
                if finished {
                    end(&myself, state).await;
                }
            }
            None => {}
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RunMsg>,
        msg: RunMsg,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RunMsg::Record(reply) => {
                let _ = reply.send(state.run.record());
            }
            RunMsg::Apply { input, at, message } => {
                if let (Input::Result { result }, Some(m)) = (&input, &message) {
                    state.spans.result(&state.run, result, m.headers.as_ref());
                }
                apply(&myself, state, input, at, message).await
            }
            RunMsg::Fired(timer) => log_input(state, Input::Timer { timer }).await,
        }
        Ok(())
    }
}

/// Applies a logged input, carries out its effects, acks its message.
async fn apply(
    myself: &ActorRef<RunMsg>,
    state: &mut RunState,
    input: Input,
    at: Millis,
    message: Option<Box<jetstream::Message>>,
) {
    let effects = state.run.apply(input, at);
    let (finished, follow_ups) = carry_out(myself, state, effects).await;
    for input in follow_ups {
        log_input(state, input).await;
    }
    if let Some(message) = message
        && let Err(e) = message.ack().await
    {
        // Redelivered later and ignored by the machine, which applies a result once.
        tracing::warn!(run_id = %state.run.id(), error = %e, "log entry not acked");
    }
    if finished {
        end(myself, state).await;
    }
}

/// Writes an input to the run's log; it comes back through the partition and is applied
/// then, like every other input. Retried each second while the log cannot be reached (the
/// entry's id makes a repeat harmless).
async fn log_input(state: &RunState, input: Input) {
    let run_id = state.run.id();
    let id = format!("input:{run_id}:{}", serde_json::to_string(&input).unwrap_or_default());
    let subject = log::subject(state.partition, run_id);
    let entry = Entry::Input { input };
    if log::append(&state.nats.js, subject.clone(), &entry, &id).await.is_ok() {
        return;
    }
    let js = state.nats.js.clone();
    tokio::spawn(async move {
        for attempt in 1..=600u32 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match log::append(&js, subject.clone(), &entry, &id).await {
                Ok(()) => return,
                Err(e) if attempt % 30 == 1 => tracing::warn!(%run_id, error = %e, "input not logged yet; retrying"),
                Err(_) => {}
            }
        }
        tracing::error!(%run_id, "input abandoned after 10 minutes: {entry:?}");
    });
}

/// The run is over: its record is stored, its log purged, the supervisor told.
async fn end(myself: &ActorRef<RunMsg>, state: &RunState) {
    if let Err(e) = log::purge(&state.nats.js, state.partition, state.run.id()).await {
        tracing::warn!(run_id = %state.run.id(), error = %e, "finished run's log not purged");
    }
    let _ = state.supervisor.cast(SupervisorMsg::Finished(state.run.id()));
    myself.stop(None);
}

/// Carries out effects in order; returns whether the run finished, and inputs that
/// effects turned into (a dispatch refused becomes that attempt's failure).
async fn carry_out(myself: &ActorRef<RunMsg>, state: &mut RunState, effects: Vec<Effect>) -> (bool, Vec<Input>) {
    let mut follow_ups = Vec::new();
    let finished = effects.contains(&Effect::Finished);
    if finished {
        // Store the final record before announcing the end, so whoever hears
        // `run_finished` finds the record.
        if let Err(e) = state.nats.store(&state.run.record()).await {
            tracing::error!(run_id = %state.run.id(), error = %e, "final record not stored");
        }
    }
    for effect in effects {
        match effect {
            Effect::Dispatch(task) => {
                tracing::debug!(run_id = %task.run_id, step_id = %task.step_id, attempt = task.attempt, tool = %task.tool, "dispatch");
                let headers = state.spans.dispatch(&state.run, &task);
                if let Err(error) = state.nats.dispatch(&task, headers).await {
                    let now = now_ms();
                    follow_ups.push(Input::Result {
                        result: TaskResult {
                            run_id: task.run_id,
                            step_id: task.step_id,
                            attempt: task.attempt,
                            compensation: task.compensation,
                            worker: "coordinator".to_owned(),
                            started_ms: now,
                            finished_ms: now,
                            outcome: Outcome::Err(error),
                        },
                    });
                }
            }
            Effect::Schedule { timer, after } => {
                myself.send_after(after, move || RunMsg::Fired(timer));
            }
            Effect::Cancel(cancel) => state.nats.cancel(&cancel).await,
            Effect::Emit(event) => {
                state.spans.event(&state.run, &event);
                state.nats.emit(&event).await;
            }
            Effect::Finished => {
                let record = state.run.record();
                let trace_id = state.spans.trace_id().unwrap_or_default();
                tracing::info!(run_id = %record.run_id, workflow = %record.workflow, status = ?record.status, %trace_id, "run finished");
            }
        }
    }
    (finished, follow_ups)
}
