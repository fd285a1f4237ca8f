//! The supervisor: owns partitions, rebuilds their runs from the log when it takes one
//! over, spawns a run actor per run, routes log entries to them, and forgets runs that end
//! or partitions it no longer owns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use uuid::Uuid;
use weft_shared::definition::WorkflowDef;
use weft_shared::validate;

use crate::log::{self, Decoded};
use crate::machine::{Input, Run};
use crate::nats::Nats;
use crate::run_actor::{RunActor, RunArgs, RunMsg, Start};

/// The supervisor actor.
#[derive(Debug)]
pub struct Supervisor;

/// Messages to the supervisor.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// An entry of a partition's log, delivered to this coordinator as its owner.
    Log {
        /// The partition.
        partition: u32,
        /// The message (acked once applied).
        message: Box<jetstream::Message>,
    },
    /// The actor of a running run, if this coordinator runs it.
    Lookup(Uuid, ractor::RpcReplyPort<Option<ActorRef<RunMsg>>>),
    /// Every run this coordinator runs.
    Active(ractor::RpcReplyPort<Vec<ActorRef<RunMsg>>>),
    /// A run ended.
    Finished(Uuid),
    /// Let go of partitions that stopped arriving (the pin moved elsewhere).
    CheckOwnership,
}

/// What the supervisor starts from.
#[derive(Debug)]
pub struct SupervisorArgs {
    /// NATS handles.
    pub nats: Nats,
    /// A partition whose ticks have not arrived for this long is considered lost.
    pub lost_after: Duration,
}

/// A partition this coordinator owns.
#[derive(Debug)]
struct Owned {
    /// Entries up to this stream sequence were applied by replay.
    replayed_to: u64,
    /// When an entry of it last arrived.
    last_seen: Instant,
}

/// The supervisor's state.
#[derive(Debug)]
pub struct SupervisorState {
    nats: Nats,
    lost_after: Duration,
    owned: HashMap<u32, Owned>,
    runs: HashMap<Uuid, (u32, ActorRef<RunMsg>)>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        myself.send_interval(args.lost_after / 2, || SupervisorMsg::CheckOwnership);
        Ok(SupervisorState {
            nats: args.nats,
            lost_after: args.lost_after,
            owned: HashMap::new(),
            runs: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Log { partition, message } => {
                if !state.owned.contains_key(&partition) {
                    claim(&myself, state, partition).await;
                }
                route(&myself, state, partition, *message).await;
            }
            SupervisorMsg::Lookup(run_id, reply) => {
                let _ = reply.send(state.runs.get(&run_id).map(|(_, a)| a.clone()));
            }
            SupervisorMsg::Active(reply) => {
                let _ = reply.send(state.runs.values().map(|(_, a)| a.clone()).collect());
            }
            SupervisorMsg::Finished(run_id) => {
                state.runs.remove(&run_id);
            }
            SupervisorMsg::CheckOwnership => {
                let lost: Vec<u32> = state
                    .owned
                    .iter()
                    .filter(|(_, o)| o.last_seen.elapsed() > state.lost_after)
                    .map(|(p, _)| *p)
                    .collect();
                for p in lost {
                    tracing::warn!(partition = p, "partition no longer delivered here; letting its runs go");
                    state.owned.remove(&p);
                    state.runs.retain(|_, (rp, actor)| {
                        if *rp == p {
                            actor.stop(Some("partition lost".into()));
                        }
                        *rp != p
                    });
                }
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
            if let Some(run_id) = state.runs.iter().find(|(_, (_, a))| a.get_id() == id).map(|(r, _)| *r) {
                // Its log is intact: the next owner of the partition (or this one, after a
                // restart) rebuilds it.
                tracing::error!(%run_id, %error, "run actor failed");
                state.runs.remove(&run_id);
            }
        }
        Ok(())
    }
}

/// Compiles a logged definition (it was validated when submitted).
fn plan_of(def: &WorkflowDef) -> Option<weft_shared::plan::Plan> {
    validate::compile(def, None)
        .map_err(|e| tracing::error!(workflow = %def.name, "logged definition invalid: {e}"))
        .ok()
}

/// Takes a partition over: rebuilds every run of it from the log and resumes them.
async fn claim(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, partition: u32) {
    let started = Instant::now();
    let (histories, replayed_to) = match log::read_partition(&state.nats.js, partition).await {
        Ok(read) => read,
        Err(e) => {
            // Without the history nothing of this partition can be applied safely: leave it
            // unowned; its messages are redelivered after the ack wait.
            tracing::error!(partition, error = %e, "cannot read the partition's log");
            return;
        }
    };
    let mut resumed = 0;
    for (run_id, history) in histories {
        let Some((creation, created)) = history.created else { continue };
        let Some(plan) = plan_of(&creation.definition) else { continue };
        let mut run = Run::new(run_id, plan, creation.input, created)
            .with_reply_to(log::subject(partition, run_id))
            .with_parent(creation.parent);
        let trace = creation.trace;
        run.apply(Input::Start, created);
        for (input, at) in history.inputs {
            run.apply(input, at);
        }
        spawn(myself, state, partition, run, Start::Resume, trace).await;
        resumed += 1;
    }
    tracing::info!(partition, runs = resumed, took = ?started.elapsed(), "partition owned");
    state.owned.insert(partition, Owned { replayed_to, last_seen: Instant::now() });
}

async fn spawn(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    partition: u32,
    run: Run,
    start: Start,
    trace: Option<String>,
) {
    let run_id = run.id();
    let args = RunArgs { run, nats: state.nats.clone(), supervisor: myself.clone(), partition, start, trace };
    match Actor::spawn_linked(None, RunActor, args, myself.get_cell()).await {
        Ok((actor, _)) => {
            state.runs.insert(run_id, (partition, actor));
        }
        Err(e) => tracing::error!(%run_id, error = %e, "run actor did not start"),
    }
}

/// Applies one delivered entry: start a run, or hand an input to its actor.
async fn route(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    partition: u32,
    message: jetstream::Message,
) {
    let Some((seq, at)) = log::stored_at(&message) else {
        let _ = message.ack().await;
        return;
    };
    let Some(owned) = state.owned.get_mut(&partition) else { return }; // claim failed: redelivered later
    owned.last_seen = Instant::now();
    if seq <= owned.replayed_to {
        let _ = message.ack().await; // already applied by the replay
        return;
    }
    let decoded = match log::decode(&message.subject, &message.payload) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let run_id = log::run_of(&message.subject);
    match (decoded, run_id) {
        (Decoded::Tick, _) => {
            let _ = message.ack().await;
        }
        (Decoded::Created(creation), Some(run_id)) => {
            if state.runs.contains_key(&run_id) {
                let _ = message.ack().await;
                return;
            }
            let Some(plan) = plan_of(&creation.definition) else {
                let _ = message.ack_with(AckKind::Term).await;
                return;
            };
            let trace = creation.trace;
            let run = Run::new(run_id, plan, creation.input, at)
                .with_reply_to(log::subject(partition, run_id))
                .with_parent(creation.parent);
            spawn(myself, state, partition, run, Start::New { at, message: Box::new(message) }, trace).await;
        }
        (Decoded::Input(input), Some(run_id)) => match state.runs.get(&run_id) {
            Some((_, actor)) => {
                let _ = actor.cast(RunMsg::Apply { input, at, message: Some(Box::new(message)) });
            }
            None => {
                tracing::debug!(%run_id, "input for a run that is not running");
                let _ = message.ack().await;
            }
        },
        _ => {
            let _ = message.ack_with(AckKind::Term).await;
        }
    }
}
