//! The supervisor: spawns a run actor per accepted run, routes results and commands to
//! it, and forgets it when the run ends.

use std::collections::HashMap;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde_json::Value;
use uuid::Uuid;
use weft_shared::plan::Plan;
use weft_shared::wire::{TaskResult, now_ms};

use crate::machine::{Input, Run};
use crate::nats::Nats;
use crate::run_actor::{RunActor, RunArgs, RunMsg};

/// The supervisor actor.
#[derive(Debug)]
pub struct Supervisor;

/// Messages to the supervisor.
// Messages are moved once into the mailbox; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Start a validated run (a no-op if it is already running).
    Start {
        /// Its id.
        run_id: Uuid,
        /// What to run.
        plan: Box<Plan>,
        /// Its input.
        input: Value,
        /// Ok once the run is stored and started.
        reply: RpcReplyPort<Result<(), String>>,
    },
    /// The actor of a running run, if any.
    Lookup(Uuid, RpcReplyPort<Option<ActorRef<RunMsg>>>),
    /// Every running run.
    Active(RpcReplyPort<Vec<ActorRef<RunMsg>>>),
    /// A worker's result, with the message to ack once applied.
    Result(Box<TaskResult>, async_nats::jetstream::Message),
    /// A run ended.
    Finished(Uuid),
}

/// The supervisor's state.
#[derive(Debug)]
pub struct SupervisorState {
    nats: Nats,
    runs: HashMap<Uuid, ActorRef<RunMsg>>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Nats;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        nats: Nats,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState { nats, runs: HashMap::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Start { run_id, plan, input, reply } => {
                if state.runs.contains_key(&run_id) {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                let run = Run::new(run_id, *plan, input, now_ms());
                let args = RunArgs { run, nats: state.nats.clone(), supervisor: myself.clone() };
                match Actor::spawn_linked(None, RunActor, args, myself.get_cell()).await {
                    Ok((actor, _)) => {
                        let _ = actor.cast(RunMsg::Input(Input::Start, None));
                        state.runs.insert(run_id, actor);
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(format!("the run could not start: {e}")));
                    }
                }
            }
            SupervisorMsg::Lookup(run_id, reply) => {
                let _ = reply.send(state.runs.get(&run_id).cloned());
            }
            SupervisorMsg::Active(reply) => {
                let _ = reply.send(state.runs.values().cloned().collect());
            }
            SupervisorMsg::Result(result, message) => match state.runs.get(&result.run_id) {
                Some(actor) => {
                    let _ = actor.cast(RunMsg::Input(Input::Result { result: *result }, Some(message)));
                }
                None => {
                    // The run is over (or unknown): nothing to apply it to.
                    tracing::debug!(run_id = %result.run_id, step_id = %result.step_id, "result for a run that is not running");
                    tokio::spawn(async move {
                        let _ = message.ack().await;
                    });
                }
            },
            SupervisorMsg::Finished(run_id) => {
                state.runs.remove(&run_id);
            }
        }
        Ok(())
    }

    // The default stops the supervisor when a child stops: a run ending is normal.
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, error) = &event {
            let id = cell.get_id();
            if let Some(run_id) = state.runs.iter().find(|(_, a)| a.get_id() == id).map(|(r, _)| *r) {
                tracing::error!(%run_id, %error, "run actor failed");
                state.runs.remove(&run_id);
            }
        }
        Ok(())
    }
}
