//! The actor holding one run: feeds inputs to the state machine and carries out its effects.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use weft_shared::wire::{Outcome, RunRecord, TaskResult, now_ms};

use crate::machine::{Effect, Input, Run};
use crate::nats::Nats;
use crate::supervisor::SupervisorMsg;

/// The run actor.
#[derive(Debug)]
pub struct RunActor;

/// Messages to a run actor.
// Messages are moved once into the mailbox; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RunMsg {
    /// Apply an input; ack the JetStream message that carried it once applied.
    Input(Input, Option<async_nats::jetstream::Message>),
    /// The run's record.
    Record(RpcReplyPort<RunRecord>),
}

/// What a run actor starts from.
#[derive(Debug)]
pub struct RunArgs {
    /// The run, not started.
    pub run: Run,
    /// NATS handles.
    pub nats: Nats,
    /// Who to tell when the run ends.
    pub supervisor: ActorRef<SupervisorMsg>,
}

/// A run actor's state.
#[derive(Debug)]
pub struct RunState {
    run: Run,
    nats: Nats,
    supervisor: ActorRef<SupervisorMsg>,
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunState;
    type Arguments = RunArgs;

    async fn pre_start(&self, _myself: ActorRef<RunMsg>, args: RunArgs) -> Result<RunState, ActorProcessingErr> {
        // Accepted means stored: the record exists before the run does anything.
        args.nats.store(&args.run.record()).await?;
        Ok(RunState { run: args.run, nats: args.nats, supervisor: args.supervisor })
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
            RunMsg::Input(input, carrier) => {
                // Effects can fail into new inputs (a task too large to send): apply those too.
                let mut inputs = vec![input];
                let mut finished = false;
                while let Some(input) = inputs.pop() {
                    let effects = state.run.apply(input, now_ms());
                    let (done, follow_ups) = carry_out(&myself, state, effects).await;
                    finished |= done;
                    inputs.extend(follow_ups);
                }
                if let Some(message) = carrier
                    && let Err(e) = message.ack().await
                {
                    tracing::warn!(run_id = %state.run.id(), error = %e, "result not acked; it will be redelivered and ignored");
                }
                if finished {
                    let _ = state.supervisor.cast(SupervisorMsg::Finished(state.run.id()));
                    myself.stop(None);
                }
            }
        }
        Ok(())
    }
}

/// Carries out effects in order; returns whether the run finished, and inputs that
/// effects turned into (a dispatch refused becomes that attempt's failure).
async fn carry_out(myself: &ActorRef<RunMsg>, state: &RunState, effects: Vec<Effect>) -> (bool, Vec<Input>) {
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
                if let Err(error) = state.nats.dispatch(&task).await {
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
                myself.send_after(after, move || RunMsg::Input(Input::Timer { timer }, None));
            }
            Effect::Cancel(cancel) => state.nats.cancel(&cancel).await,
            Effect::Emit(event) => state.nats.emit(&event).await,
            Effect::Finished => {
                let record = state.run.record();
                tracing::info!(run_id = %record.run_id, workflow = %record.workflow, status = ?record.status, "run finished");
            }
        }
    }
    (finished, follow_ups)
}
