//! The actor holding one run: applies the run's logged inputs to its state machine and
//! carries out the effects. Timers that fire are written to the log, not applied: what is
//! applied is always what the log holds.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use weft_protocol::definitions::{self, DefinitionError};
use weft_protocol::wire::{Millis, Outcome, RunRecord, RunStatus, RunSummary, TaskResult, ToolError, codes, now_ms};

use weft_protocol::retry::{Policy, Stopped, retry};

use crate::admission::{Admission, AdmitError, Request};
use crate::log::{self, Entry};
use crate::machine::{ChildResult, ChildStart, Effect, Input, Run, Timer};
use crate::metrics::{self, METRICS};
use crate::nats::Nats;
use crate::pools::Pools;
use crate::supervisor::SupervisorMsg;

pub(crate) mod spans;

/// The run actor.
#[derive(Debug)]
pub(crate) struct RunActor;

/// Messages to a run actor.
// Messages are moved once into the mailbox; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum RunMsg {
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
    /// A question is waiting in the run's [`Questions`]: wakes an idle actor to answer it.
    Asked,
}

/// A question about a run: its record, or its line in a listing.
#[derive(Debug)]
pub(crate) enum Question {
    /// The run's record.
    Record(tokio::sync::oneshot::Sender<RunRecord>),
    /// The run's line in a listing.
    Summary(tokio::sync::oneshot::Sender<RunSummary>),
}

/// Questions about a run, answered ahead of the inputs in its mailbox: before each message
/// the actor handles, it answers every question asked meanwhile. Asked through the
/// mailbox, a status waited behind every result queued before it (100,000 of them for a
/// wide `for_each`), and timed out.
///
/// The lane also says when a cancel of the run is stored in its log but still queued
/// behind other inputs (`ending`): the run will end when it is applied, so the tasks the
/// inputs before it make ready are not published (a replay would publish them again if the
/// coordinator died first, then apply the cancel). A cancel no longer waits for a
/// for_each's every queued result to publish its successor.
#[derive(Debug, Default)]
pub(crate) struct Questions {
    asked: std::sync::Mutex<Vec<Question>>,
    ending: std::sync::atomic::AtomicBool,
}

impl Questions {
    /// Asks `question` of the run of `actor`; the answer comes on the question's sender.
    pub(crate) fn ask(&self, actor: &ActorRef<RunMsg>, question: Question) {
        self.asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(question);
        let _ = actor.cast(RunMsg::Asked);
    }

    /// A cancel (without compensation) of the run is stored in its log, not applied yet.
    pub(crate) fn ending(&self) {
        self.ending.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_ending(&self) -> bool {
        self.ending.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn answer(&self, run: &Run) {
        let asked = std::mem::take(&mut *self.asked.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for question in asked {
            match question {
                Question::Record(reply) => {
                    let _ = reply.send(run.record());
                }
                Question::Summary(reply) => {
                    let _ = reply.send(run.summary());
                }
            }
        }
    }
}

/// A run without an actor: what a new actor needs to carry on with it.
#[derive(Debug)]
pub(crate) struct Parked {
    /// The run.
    pub run: Run,
    /// Its spans.
    pub spans: spans::RunSpans,
}

/// How the actor begins.
#[derive(Debug)]
pub(crate) enum Start {
    /// A new run: apply `Start` at `at`, then ack the creation entry.
    New {
        /// When the creation was logged.
        at: Millis,
        /// The creation entry.
        message: Box<jetstream::Message>,
    },
    /// A redrive whose creation entry was acked when it arrived (its run was ending):
    /// apply `Start` at `at`.
    Redriven {
        /// When the creation was logged.
        at: Millis,
    },
    /// A run rebuilt from its log: do again what may not have been done.
    Resume,
    /// A parked run an input woke up: the input follows.
    Woken,
}

/// What a run actor starts from.
#[derive(Debug)]
pub(crate) struct RunArgs {
    /// The run (new, rebuilt from its log, or parked) and its spans.
    pub parked: Parked,
    /// NATS handles (shared: one run's actor is spawned per run and per wake).
    pub nats: Arc<Nats>,
    /// Admits the child runs its `workflow` steps start.
    pub admission: Arc<Admission>,
    /// The resource pools its steps hold units of.
    pub pools: Arc<Pools>,
    /// Who to tell when the run ends.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The run's partition.
    pub partition: u32,
    /// How to begin.
    pub start: Start,
    /// Questions asked of it.
    pub questions: Arc<Questions>,
}

/// A run actor's state.
#[derive(Debug)]
pub(crate) struct RunState {
    run: Run,
    nats: Arc<Nats>,
    admission: Arc<Admission>,
    pools: Arc<Pools>,
    supervisor: ActorRef<SupervisorMsg>,
    partition: u32,
    start: Option<Start>,
    spans: spans::RunSpans,
    /// Inputs routed by the supervisor and applied (it parks the run only when it routed
    /// no more than these).
    applied: u64,
    questions: Arc<Questions>,
    /// Its tasks in flight as last added to the process's gauge.
    counted_in_flight: i64,
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunState;
    type Arguments = RunArgs;

    async fn pre_start(&self, _myself: ActorRef<RunMsg>, args: RunArgs) -> Result<RunState, ActorProcessingErr> {
        Ok(RunState {
            run: args.parked.run,
            nats: args.nats,
            admission: args.admission,
            pools: args.pools,
            supervisor: args.supervisor,
            partition: args.partition,
            start: Some(args.start),
            spans: args.parked.spans,
            applied: 0,
            questions: args.questions,
            counted_in_flight: 0,
        })
    }

    /// Questions asked as it stopped are answered, not left to time out.
    async fn post_stop(&self, _myself: ActorRef<RunMsg>, state: &mut RunState) -> Result<(), ActorProcessingErr> {
        state.questions.answer(&state.run);
        METRICS.tasks_in_flight.dec_by(state.counted_in_flight);
        METRICS.runs_active.dec();
        Ok(())
    }

    async fn post_start(&self, myself: ActorRef<RunMsg>, state: &mut RunState) -> Result<(), ActorProcessingErr> {
        METRICS.runs_active.inc();
        match state.start.take() {
            Some(Start::New { at, message }) => {
                // The record stored at submit says `running` already: the next store is
                // the final one.
                apply(&myself, state, Input::Start, at, Some(message)).await;
            }
            Some(Start::Redriven { at }) => apply(&myself, state, Input::Start, at, None).await,
            Some(Start::Resume) => {
                let effects = state.run.resume(now_ms());
                tracing::info!(run_id = %state.run.id(), status = ?state.run.status(), "resuming");
                let (finished, follow_ups) = carry_out(&myself, state, effects, None).await;
                for input in follow_ups {
                    log_input(state, input).await;
                }
                if finished {
                    end(&myself, state).await;
                }
            }
            Some(Start::Woken) | None => {}
        }
        count_in_flight(state);
        offer_to_park(state);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RunMsg>,
        msg: RunMsg,
        state: &mut RunState,
    ) -> Result<(), ActorProcessingErr> {
        state.questions.answer(&state.run);
        match msg {
            RunMsg::Asked => {}
            RunMsg::Apply { input, at, message } => {
                let mut answer = None;
                if let Input::Result { result } = &input {
                    if let Some(m) = &message {
                        state.spans.result(&state.run, result, m.headers.as_ref());
                        METRICS.payload("result", m.payload.len());
                    }
                    answer = metrics::Answer::of(&state.run, result);
                }
                apply(&myself, state, input, at, message).await;
                if let Some(answer) = answer {
                    answer.count();
                }
                state.applied += 1;
                count_in_flight(state);
                offer_to_park(state);
            }
            RunMsg::Fired(timer) => {
                // The firing instant makes the id unique: a timer the machine armed again
                // (it came early) must not be dropped as a duplicate of its first firing.
                let input = Input::Timer { timer };
                let id = format!("timer:{}:{}:{}", state.run.id(), input_key(&input), now_ms());
                append_input(state, input, id).await;
            }
        }
        Ok(())
    }
}

/// Brings the process's tasks-in-flight gauge up to date with this run's.
fn count_in_flight(state: &mut RunState) {
    let now = i64::try_from(state.run.tasks_in_flight()).unwrap_or(i64::MAX);
    METRICS.tasks_in_flight.inc_by(now - state.counted_in_flight);
    state.counted_in_flight = now;
}

/// Tells the supervisor when the run waits only for outside input, handing it a copy of
/// the run so it may be parked (the actor is stopped then).
fn offer_to_park(state: &RunState) {
    if state.run.can_park() {
        let parked = Box::new(Parked { run: state.run.clone(), spans: state.spans.clone() });
        let _ =
            state.supervisor.cast(SupervisorMsg::CanPark { run_id: state.run.id(), applied: state.applied, parked });
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
    let seq = message.as_deref().and_then(log::stored_at).map(|(seq, _)| seq);
    let (finished, follow_ups) = carry_out(myself, state, effects, seq).await;
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
/// then, like every other input.
async fn log_input(state: &RunState, input: Input) {
    let id = format!("input:{}:{}", state.run.id(), input_key(&input));
    append_input(state, input, id).await;
}

async fn append_input(state: &RunState, input: Input, id: String) {
    let subject = log::subject(state.partition, state.run.id());
    append_reliably(&state.nats, subject, Entry::Input { input }, id).await;
}

/// An input's JSON, as the key of its message id.
fn input_key(input: &Input) -> String {
    serde_json::to_string(input).expect("inputs are plain data and always serialise")
}

/// Appends to a run's log that could not be stored at once: each second, for 10 minutes
/// (a NATS restart, a leader election), in the background. The entry's id makes a repeat
/// harmless.
const APPEND_RETRY: Policy =
    Policy::new(Duration::from_secs(1), Duration::from_secs(1)).for_at_most(Duration::from_secs(600));

/// Appends an entry to a run's log, retried in the background while the log cannot be
/// reached ([`APPEND_RETRY`]).
pub(crate) async fn append_reliably(nats: &Nats, subject: String, entry: Entry, id: String) {
    let Err(first) = log::append(&nats.js, subject.clone(), &entry, &id).await else { return };
    tracing::warn!(%subject, error = %first, "log entry not stored yet; retrying");
    let (js, shutdown) = (nats.js.clone(), nats.shutdown.clone());
    nats.background.spawn(async move {
        let stored =
            retry(&APPEND_RETRY, Some(&shutdown), |_| true, || log::append(&js, subject.clone(), &entry, &id)).await;
        match stored {
            Ok(()) => tracing::info!(%subject, "log entry stored after retries"),
            Err(Stopped::ShutDown) => {
                tracing::info!(%subject, "shutting down: the log entry is left to the next owner")
            }
            Err(e) => tracing::error!(%subject, error = ?e.error(), "log entry abandoned after 10 minutes: {entry:?}"),
        }
    });
}

/// Starts a child run for a `workflow` step: its record and its creation entry, unless it
/// exists already (a takeover starting it again). Returns the input telling the parent it
/// could not start, or that it already ended.
async fn start_child(state: &mut RunState, start: ChildStart) -> Option<Input> {
    let child_id = start.child_id;
    let ended = |status: RunStatus, output: Option<serde_json::Value>, error: Option<ToolError>| Input::Child {
        result: ChildResult {
            step: start.parent.step.clone(),
            attempt: start.parent.attempt,
            child_id,
            status,
            output,
            error,
            spent: None,
        },
    };
    let refused = |message: String| {
        let error = ToolError::new(format!("sub-workflow `{}`: {message}", start.workflow));
        ended(RunStatus::Failed, None, Some(error.with_code(codes::CHILD_FAILED).permanent()))
    };
    match state.nats.stored(child_id).await {
        Ok(Some(record)) if record.status.is_terminal() => {
            let (output, error) = child_outcome(&record);
            let mut input = ended(record.status, output, error);
            if let Input::Child { result } = &mut input {
                result.spent = record.spent;
            }
            return Some(input);
        }
        Err(e @ crate::nats::StoreError::Corrupt { .. }) => return Some(refused(e.to_string())),
        // Not there, still running, or not readable for now: starting it again is harmless
        // (its record is created only once, and a second creation is ignored).
        Ok(_) | Err(crate::nats::StoreError::Unavailable { .. }) => {}
    }
    let loaded = match &start.definition {
        // A plan a model wrote, checked when it was accepted.
        Some(def) => Ok((**def).clone()),
        None => definitions::load(&state.nats.infra.definitions, &start.workflow, start.version).await,
    };
    let definition = match loaded {
        Ok(d) => d,
        Err(DefinitionError::Store(e)) => {
            let error =
                ToolError::new(format!("sub-workflow `{}`: {e}", start.workflow)).with_code(codes::CHILD_FAILED);
            return Some(ended(RunStatus::Failed, None, Some(error)));
        }
        Err(e) => return Some(refused(e.to_string())),
    };
    let trace = state.spans.child(&state.run, &start, &definition.name);
    let request = Request {
        run_id: child_id,
        definition,
        input: start.input.clone(),
        trace,
        parent: Some(start.parent.clone()),
        limits: state.run.limits(),
        tools: Vec::new(),
        prices: crate::config::Prices::new(),
        seed: None,
    };
    match state.admission.child(request).await {
        Ok(()) => None,
        Err(e @ (AdmitError::Invalid { .. } | AdmitError::InvalidInput { .. })) => Some(refused(e.to_string())),
        Err(AdmitError::Limit(message)) => {
            let error = crate::machine::limit_error(format!("sub-workflow `{}`: {message}", start.workflow));
            Some(ended(RunStatus::Failed, None, Some(error)))
        }
        Err(e) => {
            let error =
                ToolError::new(format!("sub-workflow `{}`: {e}", start.workflow)).with_code(codes::CHILD_FAILED);
            Some(ended(RunStatus::Failed, None, Some(error)))
        }
    }
}

/// What a finished child's record tells its parent.
fn child_outcome(record: &RunRecord) -> (Option<serde_json::Value>, Option<ToolError>) {
    if record.status == RunStatus::Completed {
        return (record.output.clone(), None);
    }
    let status = record.status.as_str();
    let message = format!("sub-workflow run {} ended {status}: {}", record.run_id, record.errors.join("; "));
    (None, Some(ToolError::new(message).with_code(codes::CHILD_FAILED)))
}

/// Logs an input the machine did not apply, with the log sequence of its entry: at debug
/// level when it is late or repeated (routine), as a warning when no honest participant
/// sends such an input.
pub(crate) fn report_ignored(run_id: uuid::Uuid, seq: Option<u64>, ignored: &crate::machine::Ignored) {
    let (input, reason) = (&ignored.input, &ignored.reason);
    if ignored.unexpected {
        tracing::warn!(%run_id, seq, %input, %reason, "unexpected input ignored");
    } else {
        tracing::debug!(%run_id, seq, %input, %reason, "input ignored");
    }
}

/// A child run ended: its parent's log hears how.
async fn tell_parent(state: &RunState) {
    let Some(parent) = state.run.parent() else { return };
    let record = state.run.record();
    let (output, error) = child_outcome(&record);
    let result = ChildResult {
        step: parent.step.clone(),
        attempt: parent.attempt,
        child_id: record.run_id,
        status: record.status,
        output,
        error,
        spent: record.spent,
    };
    let id = format!("child:{}", record.run_id);
    append_reliably(&state.nats, parent.reply_to.clone(), Entry::Input { input: Input::Child { result } }, id).await;
}

/// The run is over: its record is stored, its parent told, the supervisor told (which
/// lets the log be compacted past it).
async fn end(myself: &ActorRef<RunMsg>, state: &RunState) {
    tell_parent(state).await;
    let _ = state.supervisor.cast(SupervisorMsg::Finished(state.run.id()));
    myself.stop(None);
}

/// Carries out effects in order; returns whether the run finished, and inputs that
/// effects turned into (a dispatch refused becomes that attempt's failure). `seq` is the
/// log sequence of the entry whose input led to them.
async fn carry_out(
    myself: &ActorRef<RunMsg>,
    state: &mut RunState,
    effects: Vec<Effect>,
    seq: Option<u64>,
) -> (bool, Vec<Input>) {
    let mut follow_ups = Vec::new();
    let finished = effects.contains(&Effect::Finished);
    if finished {
        // Store the final record before announcing the end, so whoever hears
        // `run_finished` finds the record.
        if let Err(e) = state.nats.store(&state.run.record()).await {
            tracing::error!(run_id = %state.run.id(), error = %e, "final record not stored");
        }
    }
    // Tasks go out first: a fan-out's last task should not wait behind the events of the
    // ones before it. Everything else keeps its order.
    let (dispatches, others): (Vec<Effect>, Vec<Effect>) =
        effects.into_iter().partition(|e| matches!(e, Effect::Dispatch(_)));
    for effect in dispatches.into_iter().chain(others) {
        match effect {
            Effect::Dispatch(task) if !task.compensation && state.questions.is_ending() => {
                tracing::debug!(run_id = %task.run_id, step_id = %task.step_id, "not dispatched: a cancel of the run is queued");
            }
            Effect::Acquire(_) if state.questions.is_ending() => {}
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
                            usage: None,
                            token: task.token.clone(),
                        },
                    });
                }
            }
            Effect::Schedule { timer, after } => {
                myself.send_after(after, move || RunMsg::Fired(timer));
            }
            Effect::Cancel(cancel) => state.nats.cancel(&cancel).await,
            Effect::StartChild(start) => {
                if let Some(input) = start_child(state, start).await {
                    follow_ups.push(input);
                }
            }
            Effect::CheckPlan(check) => {
                let log = log::subject(state.partition, state.run.id());
                let (admission, nats, run_id) = (state.admission.clone(), state.nats.clone(), state.run.id());
                state.nats.background.spawn(crate::planner::check_and_log(admission, nats, log, run_id, check));
            }
            Effect::CancelChild { child_id, reason } => {
                let subject = log::subject(log::partition_of(child_id, state.nats.partitions), child_id);
                let entry = Entry::Input { input: Input::Cancel { reason, compensate: false } };
                append_reliably(&state.nats, subject, entry, format!("cancel:{child_id}")).await;
            }
            Effect::Emit(event) => {
                state.spans.event(&state.run, &event);
                metrics::event(&state.run, &event);
                state.nats.emit(&event).await;
            }
            Effect::Finished => {
                let (run, trace_id) = (&state.run, state.spans.trace_id().unwrap_or_default());
                tracing::info!(run_id = %run.id(), workflow = %run.workflow(), status = ?run.status(), %trace_id, "run finished");
            }
            Effect::Ignored(ignored) => report_ignored(state.run.id(), seq, &ignored),
            Effect::Acquire(claim) => {
                let log = log::subject(state.partition, state.run.id());
                state.pools.acquire(state.run.id(), &log, &claim).await;
            }
            Effect::Hold(claim) => {
                let log = log::subject(state.partition, state.run.id());
                state.pools.hold(state.run.id(), &log, &claim).await;
            }
            Effect::Release(claim) => state.pools.release(state.run.id(), &claim).await,
        }
    }
    (finished, follow_ups)
}
