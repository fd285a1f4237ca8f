//! The supervisor: owns partitions, rebuilds their runs from the log when it takes one
//! over, spawns a run actor per active run, routes log entries to them, parks runs that
//! only wait for outside input, compacts the log behind finished runs, and forgets runs
//! that end or partitions it no longer owns.
//!
//! A *parked* run is one whose machine waits only for a signal, a child run's end or a
//! resume: no task on a worker, no timer armed (`Run::can_park`). It needs no actor
//! until its next input, so the supervisor keeps it as plain data and spawns an actor again
//! when an input arrives. Tens of thousands of runs waiting for a human then cost their
//! state, not an actor each.
//!
//! The log of a partition is compacted by sequence: every second, entries below the first
//! entry of the oldest run still live (and below what was routed) belong to finished runs
//! and are purged in one request per partition.
//!
//! No handler waits on long I/O or on another actor: a claim reads and replays its
//! partition in a task (`claim.rs`) and the runs come back as a message, with the
//! partition's deliveries kept meanwhile; an actor whose run can park hands it over in a message.

mod claim;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use uuid::Uuid;
use weft_protocol::wire::{RunRecord, RunSummary, now_ms};

use crate::admission::Admission;
use crate::log::{self, Decoded};
use crate::metrics::METRICS;
use crate::nats::{Nats, NatsError};
use crate::plans::Plans;
use crate::pools::Pools;
use crate::run_actor::spans::RunSpans;
use crate::run_actor::{Parked, Question, Questions, RunActor, RunArgs, RunMsg, Start};

/// How often the log is compacted.
const COMPACT_EVERY: Duration = Duration::from_secs(1);

/// The supervisor actor.
#[derive(Debug)]
pub(crate) struct Supervisor;

/// Messages to the supervisor.
#[derive(Debug)]
pub(crate) enum SupervisorMsg {
    /// An entry of a partition's log, delivered to this coordinator as its owner.
    Log {
        /// The partition.
        partition: u32,
        /// The message (acked once applied).
        message: Box<jetstream::Message>,
    },
    /// A run this coordinator runs, if it does.
    Lookup(Uuid, ractor::RpcReplyPort<Option<Found<Box<RunRecord>>>>),
    /// Which of these runs this coordinator runs: parked ones as their summary.
    Listed(Vec<Uuid>, ractor::RpcReplyPort<Vec<(Uuid, Found<RunSummary>)>>),
    /// A run ended.
    Finished(Uuid),
    /// A run's actor has applied `applied` inputs and its run waits only for outside input:
    /// the supervisor keeps `parked` (a copy of the run) and stops the actor, unless it
    /// routed more inputs to it meanwhile.
    CanPark {
        /// The run.
        run_id: Uuid,
        /// How many routed inputs the actor applied so far.
        applied: u64,
        /// The run as it is now.
        parked: Box<Parked>,
    },
    /// A partition's log was read and its runs rebuilt (or the read failed).
    Claimed {
        /// The partition.
        partition: u32,
        /// Its runs.
        replayed: Result<claim::Replayed, NatsError>,
    },
    /// Let go of partitions that stopped arriving (the pin moved elsewhere).
    CheckOwnership,
    /// Purge what finished runs left in the log.
    Compact,
    /// A partition's log was purged below `below` (or the purge failed).
    Compacted {
        /// The partition.
        partition: u32,
        /// Entries below this sequence are gone.
        below: u64,
        /// Whether the purge succeeded.
        ok: bool,
    },
}

/// A run this coordinator runs, as the API sees it: its actor, which knows everything of
/// it, or, parked, what was asked for (its record, or its summary for a listing).
#[derive(Debug)]
pub(crate) enum Found<T> {
    /// Its actor.
    Active(Live),
    /// Parked: what was asked for.
    Parked(T),
}

/// A run's actor and the questions it answers ahead of its inputs.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    actor: ActorRef<RunMsg>,
    questions: Arc<Questions>,
}

impl Live {
    /// Asks the actor (`None` if it stopped meanwhile or did not answer in time). The
    /// handle goes before the wait: held, it kept the question alive after the actor
    /// stopped, and the asker waited out the whole timeout.
    async fn ask<T>(
        self,
        question: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Question,
        timeout: Duration,
    ) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.questions.ask(&self.actor, question(reply));
        drop(self);
        tokio::time::timeout(timeout, answer).await.ok()?.ok()
    }
}

impl Found<Box<RunRecord>> {
    /// The run's record.
    pub(crate) async fn record(self, timeout: Duration) -> Option<RunRecord> {
        match self {
            Found::Parked(record) => Some(*record),
            Found::Active(live) => live.ask(Question::Record, timeout).await,
        }
    }
}

impl Found<RunSummary> {
    /// The run's summary.
    pub(crate) async fn summary(self, timeout: Duration) -> Option<RunSummary> {
        match self {
            Found::Parked(summary) => Some(summary),
            Found::Active(live) => live.ask(Question::Summary, timeout).await,
        }
    }
}

/// What the supervisor starts from.
#[derive(Debug)]
pub(crate) struct SupervisorArgs {
    /// NATS handles.
    pub nats: Arc<Nats>,
    /// Admits child runs.
    pub admission: Arc<Admission>,
    /// The resource pools.
    pub pools: Arc<Pools>,
    /// A partition whose ticks have not arrived for this long is considered lost.
    pub lost_after: Duration,
}

/// A partition this coordinator owns.
#[derive(Debug)]
struct Owned {
    /// Entries up to this stream sequence were applied by replay.
    replayed_to: u64,
    /// The highest sequence routed so far.
    routed_to: u64,
    /// Entries below this sequence were purged.
    purged_below: u64,
    /// A purge is under way.
    purging: bool,
    /// When an entry of it last arrived.
    last_seen: Instant,
    /// Live runs by the sequence of their first entry: the oldest bounds compaction.
    live: BTreeSet<(u64, Uuid)>,
}

impl Owned {
    fn new(replayed_to: u64) -> Owned {
        Owned {
            replayed_to,
            routed_to: replayed_to,
            purged_below: 0,
            purging: false,
            last_seen: Instant::now(),
            live: BTreeSet::new(),
        }
    }

    /// Entries below this sequence belong to runs that are over (or to no run).
    fn watermark(&self) -> u64 {
        let routed = self.routed_to + 1;
        self.live.first().map_or(routed, |(seq, _)| (*seq).min(routed))
    }
}

/// A run of an owned partition.
#[derive(Debug)]
struct Slot {
    partition: u32,
    /// Sequence of its first log entry.
    first_seq: u64,
    state: SlotState,
}

#[derive(Debug)]
enum SlotState {
    /// Its actor, and how many inputs were routed to it.
    Active { live: Live, routed: u64 },
    /// No actor: it waits for outside input.
    Parked(Box<Parked>),
}

/// The supervisor's state.
#[derive(Debug)]
pub(crate) struct SupervisorState {
    nats: Arc<Nats>,
    admission: Arc<Admission>,
    pools: Arc<Pools>,
    lost_after: Duration,
    owned: HashMap<u32, Owned>,
    /// Partitions being claimed, with the entries delivered meanwhile, in order.
    claiming: HashMap<u32, Vec<jetstream::Message>>,
    runs: HashMap<Uuid, Slot>,
    /// Plans of the definitions read from the log (shared with claim tasks).
    plans: Arc<Mutex<Plans>>,
    /// Redrives of runs that were still ending when they arrived: started once they have.
    redrives: HashMap<Uuid, Stashed>,
}

/// A redrive's creation entry, kept until the run it continues has ended here.
#[derive(Debug)]
struct Stashed {
    partition: u32,
    seq: u64,
    at: weft_protocol::wire::Millis,
    creation: Box<log::Creation>,
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
        myself.send_interval(COMPACT_EVERY, || SupervisorMsg::Compact);
        Ok(SupervisorState {
            nats: args.nats,
            admission: args.admission,
            pools: args.pools,
            lost_after: args.lost_after,
            owned: HashMap::new(),
            claiming: HashMap::new(),
            runs: HashMap::new(),
            plans: Arc::default(),
            redrives: HashMap::new(),
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
                if state.owned.contains_key(&partition) {
                    route(&myself, state, partition, *message).await;
                } else if let Some(buffered) = state.claiming.get_mut(&partition) {
                    buffered.push(*message);
                } else {
                    state.claiming.insert(partition, vec![*message]);
                    let (nats, plans, supervisor) = (state.nats.clone(), state.plans.clone(), myself.clone());
                    state.nats.background.spawn(async move {
                        let replayed = claim::replay(nats, plans, partition).await;
                        let _ = supervisor.cast(SupervisorMsg::Claimed { partition, replayed });
                    });
                }
            }
            SupervisorMsg::Claimed { partition, replayed } => {
                let buffered = state.claiming.remove(&partition).unwrap_or_default();
                match replayed {
                    Ok(replayed) => {
                        own(&myself, state, partition, replayed).await;
                        for message in buffered {
                            route(&myself, state, partition, message).await;
                        }
                    }
                    // Without the history nothing of this partition can be applied safely:
                    // it stays unowned, and the entries held are redelivered after the ack
                    // wait (the next one starts another claim).
                    Err(e) => tracing::error!(partition, error = %e, "cannot read the partition's log"),
                }
            }
            SupervisorMsg::Lookup(run_id, reply) => {
                let _ = reply.send(state.runs.get(&run_id).map(Slot::found));
            }
            SupervisorMsg::Listed(ids, reply) => {
                let found =
                    ids.into_iter().filter_map(|id| state.runs.get(&id).map(|slot| (id, slot.listed()))).collect();
                let _ = reply.send(found);
            }
            SupervisorMsg::Finished(run_id) => {
                state.forget(run_id);
                if let Some(Stashed { partition, seq, at, creation }) = state.redrives.remove(&run_id)
                    && let Some(run) = claim::new_run(&state.plans, partition, run_id, &creation, at)
                {
                    let parked = Parked { run, spans: RunSpans::new(creation.trace.as_deref()) };
                    spawn(&myself, state, partition, seq, parked, Start::Redriven { at }).await;
                }
            }
            SupervisorMsg::CanPark { run_id, applied, parked } => park(state, run_id, applied, parked),
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
                    state.redrives.retain(|_, stashed| stashed.partition != p);
                    state.runs.retain(|_, slot| {
                        if slot.partition == p
                            && let SlotState::Active { live, .. } = &slot.state
                        {
                            live.actor.stop(Some("partition lost".into()));
                        }
                        slot.partition != p
                    });
                }
                count_holdings(state);
            }
            SupervisorMsg::Compact => compact(&myself, state),
            SupervisorMsg::Compacted { partition, below, ok } => {
                if let Some(owned) = state.owned.get_mut(&partition) {
                    owned.purging = false;
                    if ok {
                        owned.purged_below = owned.purged_below.max(below);
                    }
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
            let failed = state.runs.iter().find_map(|(run_id, slot)| match &slot.state {
                SlotState::Active { live, .. } if live.actor.get_id() == id => Some(*run_id),
                _ => None,
            });
            if let Some(run_id) = failed {
                // Its log is intact: the next owner of the partition (or this one, after a
                // restart) rebuilds it.
                tracing::error!(%run_id, %error, "run actor failed");
                state.forget(run_id);
            }
        }
        Ok(())
    }
}

impl Slot {
    fn listed(&self) -> Found<RunSummary> {
        match &self.state {
            SlotState::Active { live, .. } => Found::Active(live.clone()),
            SlotState::Parked(parked) => Found::Parked(parked.run.summary()),
        }
    }

    fn found(&self) -> Found<Box<RunRecord>> {
        match &self.state {
            SlotState::Active { live, .. } => Found::Active(live.clone()),
            SlotState::Parked(parked) => Found::Parked(Box::new(parked.run.record())),
        }
    }
}

impl SupervisorState {
    /// Forgets a run that ended (or whose actor failed): its entries may be compacted.
    fn forget(&mut self, run_id: Uuid) {
        if let Some(slot) = self.runs.remove(&run_id)
            && let Some(owned) = self.owned.get_mut(&slot.partition)
        {
            owned.live.remove(&(slot.first_seq, run_id));
        }
    }

    fn insert(&mut self, run_id: Uuid, slot: Slot) {
        if let Some(owned) = self.owned.get_mut(&slot.partition) {
            owned.live.insert((slot.first_seq, run_id));
        }
        self.runs.insert(run_id, slot);
    }
}

/// Owns a partition whose runs were rebuilt: parks those that wait only for outside
/// input, resumes the others in actors.
async fn own(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, partition: u32, replayed: claim::Replayed) {
    state.owned.insert(partition, Owned::new(replayed.replayed_to));
    let claims = replayed
        .runs
        .iter()
        .flat_map(|r| r.run.claims().into_iter().map(|c| (r.run_id, c.step, c.attempt, c.pool)))
        .collect();
    let (pools, partitions) = (state.pools.clone(), state.nats.partitions);
    let before = replayed.started_ms;
    state.nats.background.spawn(async move { pools.reconcile(partition, partitions, before, claims).await });
    let (mut resumed, mut parked) = (0, 0);
    let now = now_ms();
    for claim::Rebuilt { run_id, first_seq, run, spans } in replayed.runs {
        if run.can_park() && run.resume(now).is_empty() {
            let state_ = SlotState::Parked(Box::new(Parked { run, spans }));
            state.insert(run_id, Slot { partition, first_seq, state: state_ });
            parked += 1;
        } else {
            spawn(myself, state, partition, first_seq, Parked { run, spans }, Start::Resume).await;
            resumed += 1;
        }
    }
    let took = replayed.started.elapsed();
    tracing::info!(partition, runs = resumed + parked, parked, ?took, "partition owned");
}

/// Starts an actor for a run.
async fn spawn(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    partition: u32,
    first_seq: u64,
    parked: Parked,
    start: Start,
) {
    let run_id = parked.run.id();
    let questions = Arc::new(Questions::default());
    let args = RunArgs {
        parked,
        questions: questions.clone(),
        nats: state.nats.clone(),
        admission: state.admission.clone(),
        pools: state.pools.clone(),
        supervisor: myself.clone(),
        partition,
        start,
    };
    match Actor::spawn_linked(None, RunActor, args, myself.get_cell()).await {
        Ok((actor, _)) => {
            state.insert(
                run_id,
                Slot { partition, first_seq, state: SlotState::Active { live: Live { actor, questions }, routed: 0 } },
            );
        }
        Err(e) => tracing::error!(%run_id, error = %e, "run actor did not start"),
    }
}

/// An actor whose run can park hands it over, unless inputs were routed to it since: then it says
/// so again once it has applied them.
fn park(state: &mut SupervisorState, run_id: Uuid, applied: u64, parked: Box<Parked>) {
    let Some(slot) = state.runs.get_mut(&run_id) else { return };
    let SlotState::Active { live, routed } = &slot.state else { return };
    if *routed != applied {
        return;
    }
    // Nothing was routed to it that it has not applied, so its mailbox holds no input.
    live.actor.stop(Some("parked".into()));
    slot.state = SlotState::Parked(parked);
}

/// Sets the gauges of what this coordinator holds (on its ownership tick: a scrape sees
/// them at most that old).
fn count_holdings(state: &SupervisorState) {
    let parked = state.runs.values().filter(|slot| matches!(slot.state, SlotState::Parked(_))).count();
    let held: u64 = state.owned.values().map(|o| (o.routed_to + 1).saturating_sub(o.watermark())).sum();
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    METRICS.partitions_owned.set(gauge(state.owned.len() as u64));
    METRICS.runs_parked.set(gauge(parked as u64));
    METRICS.log_entries_held.set(gauge(held));
}

/// Purges, for each owned partition, the entries below its watermark (one request each, in
/// the background; the next round retries a failure).
fn compact(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState) {
    for (&partition, owned) in &mut state.owned {
        let below = owned.watermark();
        if owned.purging || below <= owned.purged_below {
            continue;
        }
        owned.purging = true;
        let (js, supervisor) = (state.nats.js.clone(), myself.clone());
        state.nats.background.spawn(async move {
            let result = log::purge_below(&js, partition, below).await;
            if let Err(e) = &result {
                tracing::debug!(partition, below, error = %e, "log not compacted");
            }
            let _ = supervisor.cast(SupervisorMsg::Compacted { partition, below, ok: result.is_ok() });
        });
    }
}

/// Applies one delivered entry: start a run, or hand an input to its actor (waking a
/// parked run).
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
    owned.routed_to = owned.routed_to.max(seq);
    let decoded = match log::decode(&message.subject, &message.payload) {
        Ok(d) => d,
        Err(e) => {
            log::dead_letter(&state.nats.js, &message.subject, seq, &message.payload, &e.to_string()).await;
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
            if state.runs.contains_key(&run_id) && creation.seed.is_some() {
                // A redrive is accepted only of a run whose record says it ended: this one
                // is ending (its actor has not told so yet). It starts once it has; until
                // then the ending run's first entry keeps the log from being compacted past
                // this one, and a takeover replays it.
                state.redrives.insert(run_id, Stashed { partition, seq, at, creation });
                let _ = message.ack().await;
                return;
            }
            if state.runs.contains_key(&run_id) {
                tracing::warn!(%run_id, seq, "a second creation of the run ignored: a run is created once");
                let _ = message.ack().await;
                return;
            }
            let Some(run) = claim::new_run(&state.plans, partition, run_id, &creation, at) else {
                let _ = message.ack_with(AckKind::Term).await;
                return;
            };
            let parked = Parked { run, spans: RunSpans::new(creation.trace.as_deref()) };
            spawn(myself, state, partition, seq, parked, Start::New { at, message: Box::new(message) }).await;
        }
        (Decoded::Input(input), Some(run_id)) => {
            if matches!(state.runs.get(&run_id), Some(Slot { state: SlotState::Parked(_), .. }))
                && let Some(Slot { first_seq, state: SlotState::Parked(parked), .. }) = state.runs.remove(&run_id)
            {
                spawn(myself, state, partition, first_seq, *parked, Start::Woken).await;
            }
            match state.runs.get_mut(&run_id) {
                Some(Slot { state: SlotState::Active { live, routed }, .. }) => {
                    *routed += 1;
                    if matches!(input, crate::machine::Input::Cancel { compensate: false, .. }) {
                        live.questions.ending();
                    }
                    let _ = live.actor.cast(RunMsg::Apply { input, at, message: Some(Box::new(message)) });
                }
                _ => {
                    tracing::debug!(%run_id, "input for a run that is not running");
                    let _ = message.ack().await;
                }
            }
        }
        _ => {
            let _ = message.ack_with(AckKind::Term).await;
        }
    }
}
