//! The coordinators' API over NATS request/reply: submit, status, list, cancel, pause,
//! resume, signal, deploy, pools and set_pool (the verbs of `ApiRequest`).
//!
//! Requests are served by every coordinator in the queue group; each is handled in its
//! own task so a slow one never holds the others. A malformed request gets a
//! `bad_request` answer naming the subject and the parse error.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ractor::ActorRef;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;
use weft_lang::definition::WorkflowDef;
use weft_lang::validate::{Code, Problem};
use weft_protocol::subjects;
use weft_protocol::wire::{
    ApiError, ApiErrorCode, ApiReply, ApiRequest, IndexEntry, RunRecord, RunStatus, RunSummary, Submit,
};

use crate::admission::{Admission, AdmitError, Request};
use crate::log::{self, Entry};
use crate::machine::Input;
use crate::nats::Nats;
use crate::pools::Pools;
use crate::supervisor::{Found, SupervisorMsg};

/// How long an API handler waits on an actor.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Most runs one list answers.
const MAX_LIST: usize = 1000;

/// How long a status request waits for the coordinator owning the run.
const QUERY_TIMEOUT: Duration = Duration::from_millis(1000);

/// Shared by the request handlers.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    nats: Arc<Nats>,
    supervisor: ActorRef<SupervisorMsg>,
    admission: Arc<Admission>,
    pools: Arc<Pools>,
    partitions: u32,
}

impl Api {
    /// An API over `supervisor`, admitting runs through `admission`.
    pub(crate) fn new(
        nats: Arc<Nats>,
        supervisor: ActorRef<SupervisorMsg>,
        admission: Arc<Admission>,
        pools: Arc<Pools>,
    ) -> Api {
        let partitions = nats.partitions;
        Api { nats, supervisor, admission, pools, partitions }
    }

    /// Answers `weft.query.<run>` for the runs this coordinator owns; others stay silent.
    pub(crate) async fn answer_queries(self, shutdown: CancellationToken) -> Result<(), async_nats::SubscribeError> {
        let mut queries = self.nats.client.subscribe(subjects::QUERY_ALL.to_owned()).await?;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = queries.next() => message,
            };
            let Some(message) = message else { return Ok(()) };
            let (Some(reply), Some(run_id)) = (message.reply.clone(), log::run_of(&message.subject)) else { continue };
            let api = self.clone();
            api.nats.background.clone().spawn(async move {
                if let Ok(Some(found)) = api.lookup(run_id).await
                    && let Some(record) = found.record(CALL_TIMEOUT).await
                {
                    let _ = api.nats.client.publish(reply, api.nats.record_json(&record)).await;
                }
            });
        }
    }

    /// Serves requests until `shutdown`.
    pub(crate) async fn serve(self, shutdown: CancellationToken) -> Result<(), async_nats::SubscribeError> {
        let mut requests =
            self.nats.client.queue_subscribe(subjects::API_ALL.to_owned(), subjects::API_QUEUE.to_owned()).await?;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = requests.next() => {
                    let Some(message) = message else { return Ok(()) };
                    let api = self.clone();
                    self.nats.background.spawn(async move { api.answer(message).await });
                }
            }
        }
    }

    async fn answer(&self, message: async_nats::Message) {
        let Some(reply_to) = message.reply.clone() else {
            tracing::warn!(subject = %message.subject, "API request without a reply subject; ignored");
            return;
        };
        // The request's span continues the client's trace (context in the headers).
        let verb = message.subject.rsplit('.').next().unwrap_or("api").to_owned();
        let span = tracing::info_span!("api",
            otel.name = format!("weft.api {verb}"),
            otel.kind = "server",
            messaging.system = "nats",
            messaging.destination.name = %message.subject,
            weft.workflow = tracing::field::Empty,
            weft.run_id = tracing::field::Empty);
        let _ = span.set_parent(weft_protocol::trace::extract(message.headers.as_ref()));
        let reply = async {
            match read_request(&message.payload) {
                Ok(request) => self.handle(request).await,
                Err(e) => ApiReply::Error(ApiError::new(
                    ApiErrorCode::BadRequest,
                    format!("cannot read the request on {}: {e}", message.subject),
                )),
            }
        }
        .instrument(span.clone())
        .await;
        if let ApiReply::Error(e) = &reply {
            weft_protocol::trace::fail(&span, e.message.as_str());
        }
        let encode = |reply: &ApiReply| serde_json::to_vec(reply).expect("answers are plain data and serialise");
        let mut payload = encode(&reply);
        let limit = self.nats.client.server_info().max_payload;
        // A live run's record is not abridged as a stored one is, and may not fit.
        if payload.len() > limit
            && let ApiReply::Run(record) = reply
        {
            payload = encode(&ApiReply::Run(Box::new(self.nats.fit(*record))));
        }
        if payload.len() > limit {
            let e = ApiError::new(
                ApiErrorCode::Internal,
                format!("the answer is {} bytes, more than the server's max_payload of {limit}", payload.len()),
            );
            payload = encode(&ApiReply::Error(e));
        }
        if let Err(e) = self.nats.client.publish(reply_to, payload.into()).await {
            tracing::warn!(error = %e, "API reply not sent");
        }
    }

    async fn handle(&self, request: ApiRequest) -> ApiReply {
        let result = match request {
            ApiRequest::Submit(submit) => self
                .submit(*submit)
                .await
                .map(|admitted| ApiReply::Accepted { run_id: admitted.run_id, existing: admitted.existing }),
            ApiRequest::Status { run_id } => self.status(run_id).await.map(|r| ApiReply::Run(Box::new(r))),
            ApiRequest::List { limit } => self.list(limit.unwrap_or(50)).await.map(ApiReply::Runs),
            ApiRequest::Cancel { run_id, reason, compensate } => {
                self.cancel(run_id, reason, compensate).await.map(|()| ApiReply::Ok)
            }
            ApiRequest::Pools => self.pools.list().await.map(ApiReply::Pools).map_err(unavailable),
            ApiRequest::SetPool { name, capacity } => self.set_pool(&name, capacity).await.map(|()| ApiReply::Ok),
            ApiRequest::Deploy { definition } => self.deploy(*definition).await.map(|()| ApiReply::Ok),
            ApiRequest::Redrive { run_id, definition } => {
                self.redrive(run_id, definition.map(|d| *d)).await.map(|()| ApiReply::Ok)
            }
            ApiRequest::Rerun { run_id, from, new_run_id, input, definition } => self
                .rerun(run_id, &from, new_run_id, input, definition.map(|d| *d))
                .await
                .map(|admitted| ApiReply::Accepted { run_id: admitted.run_id, existing: admitted.existing }),
            ApiRequest::Pause { run_id } => self.command(run_id, Input::Pause, "pause").await.map(|()| ApiReply::Ok),
            ApiRequest::Resume { run_id, add_tokens, add_cost } => {
                self.command(run_id, Input::Resume { add_tokens, add_cost }, "resume").await.map(|()| ApiReply::Ok)
            }
            ApiRequest::Signal { run_id, name, data } => {
                self.command(run_id, Input::Signal { name, data }, "signal").await.map(|()| ApiReply::Ok)
            }
        };
        result.unwrap_or_else(ApiReply::Error)
    }

    /// A request for a run that no other run starts (a submit's, a redrive's, a rerun's),
    /// its spans joining the current span's trace.
    fn root_request(
        &self,
        run_id: Uuid,
        definition: WorkflowDef,
        input: serde_json::Value,
        seed: Option<crate::machine::Seed>,
    ) -> Request {
        Request {
            run_id,
            definition,
            input,
            trace: weft_protocol::trace::traceparent(&tracing::Span::current()),
            parent: None,
            limits: self.admission.run_limits(),
            tools: Vec::new(),
            prices: crate::config::Prices::new(),
            seed: seed.map(Box::new),
        }
    }

    async fn submit(&self, submit: Submit) -> Result<crate::admission::Admitted, ApiError> {
        let run_id = submit.run_id.unwrap_or_else(Uuid::now_v7);
        let span = tracing::Span::current();
        span.record("weft.workflow", submit.definition.name.as_str());
        span.record("weft.run_id", tracing::field::display(run_id));
        let request = self.root_request(run_id, submit.definition, submit.input, None);
        self.admission.submit(request).await.map_err(api_error)
    }

    async fn deploy(&self, definition: WorkflowDef) -> Result<(), ApiError> {
        let name = definition.name.clone();
        self.admission.plan(&definition).await.map_err(api_error)?;
        let key = weft_protocol::subjects::definition_key(&name, definition.version);
        let payload = serde_json::to_vec(&definition).expect("a definition is plain data and serialises");
        let store = &self.nats.infra.definitions;
        match store.create(&key, payload.clone().into()).await {
            Ok(_) => Ok(()),
            Err(_) => match store.get(&key).await {
                // The same content again: fine (deploys are repeatable).
                Ok(Some(existing)) if serde_json::from_slice::<WorkflowDef>(&existing).ok() == Some(definition) => {
                    Ok(())
                }
                Ok(Some(_)) => Err(ApiError::new(
                    ApiErrorCode::Conflict,
                    format!(
                        "version {} of `{name}` is registered with other content; give this one a new version",
                        key.rsplit('.').next().unwrap_or("?")
                    ),
                )),
                _ => Err(ApiError::new(ApiErrorCode::Internal, format!("cannot register `{key}`"))),
            },
        }
    }

    async fn lookup(&self, run_id: Uuid) -> Result<Option<Found<Box<RunRecord>>>, ApiError> {
        match self.supervisor.call(|reply| SupervisorMsg::Lookup(run_id, reply), Some(CALL_TIMEOUT)).await {
            Ok(ractor::rpc::CallResult::Success(found)) => Ok(found),
            other => Err(ApiError::new(ApiErrorCode::Internal, format!("supervisor unavailable: {other:?}"))),
        }
    }

    async fn status(&self, run_id: Uuid) -> Result<RunRecord, ApiError> {
        if let Some(found) = self.lookup(run_id).await?
            && let Some(record) = found.record(CALL_TIMEOUT).await
        {
            return Ok(record);
        }
        let stored = self.nats.stored(run_id).await?.ok_or_else(|| not_found(run_id))?;
        if stored.status.is_terminal() {
            return Ok(stored);
        }
        // Running on another coordinator: ask its owner, else show what is stored.
        let asked = self.nats.client.request(subjects::query(run_id), bytes::Bytes::new());
        match tokio::time::timeout(QUERY_TIMEOUT, asked).await {
            Ok(Ok(reply)) => Ok(serde_json::from_slice(&reply.payload).unwrap_or(stored)),
            _ => Ok(stored),
        }
    }

    /// The newest `limit` runs, newest first: read from the end of the index of runs (one
    /// entry per run, in creation order), so a listing costs `limit` index reads and
    /// `limit` record reads however many runs are kept. A run this coordinator holds is
    /// listed as it is now; another is listed as its record says.
    async fn list(&self, limit: usize) -> Result<Vec<RunSummary>, ApiError> {
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(ApiError::new(
                ApiErrorCode::BadRequest,
                format!("a list's limit is 1 to {MAX_LIST}, not {limit}"),
            ));
        }
        let entries = self.newest(limit).await?;
        let ids: Vec<Uuid> = entries.iter().map(|e| e.run_id).collect();
        let mut live = match self.supervisor.call(|reply| SupervisorMsg::Listed(ids, reply), Some(CALL_TIMEOUT)).await {
            Ok(ractor::rpc::CallResult::Success(found)) => {
                found.into_iter().collect::<std::collections::HashMap<_, _>>()
            }
            _ => Default::default(),
        };
        let mut runs = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(found) = live.remove(&entry.run_id)
                && let Some(summary) = found.summary(CALL_TIMEOUT).await
            {
                runs.push(summary);
                continue;
            }
            match self.nats.stored(entry.run_id).await {
                Ok(Some(record)) => runs.push(record.summary()),
                Ok(None) => {} // its record expired, or it was never accepted
                Err(e) => tracing::warn!(run_id = %entry.run_id, error = %e, "a run left out of the list"),
            }
        }
        Ok(runs)
    }

    /// The last `limit` entries of the index of runs, newest first.
    async fn newest(&self, limit: usize) -> Result<Vec<IndexEntry>, ApiError> {
        let unavailable = |e: String| ApiError::new(ApiErrorCode::Unavailable, format!("the index of runs: {e}"));
        let mut stream =
            self.nats.js.get_stream(subjects::INDEX_STREAM).await.map_err(|e| unavailable(e.to_string()))?;
        let state = stream.info().await.map_err(|e| unavailable(e.to_string()))?.state.clone();
        let mut entries = Vec::with_capacity(limit);
        let mut seq = state.last_sequence;
        while entries.len() < limit && seq >= state.first_sequence.max(1) {
            match stream.get_raw_message(seq).await {
                Ok(message) => match serde_json::from_slice::<IndexEntry>(&message.payload) {
                    Ok(entry) => entries.push(entry),
                    Err(e) => tracing::warn!(seq, error = %e, "an unreadable entry of the index of runs skipped"),
                },
                // Removed (by age, or by an operator) while the list was read.
                Err(e) => tracing::debug!(seq, error = %e, "an entry of the index of runs is gone"),
            }
            seq -= 1;
        }
        Ok(entries)
    }

    async fn set_pool(&self, name: &str, capacity: u32) -> Result<(), ApiError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            let message = format!("a pool's name is letters, digits, `_` and `-`, not {name:?}");
            return Err(ApiError::new(ApiErrorCode::BadRequest, message));
        }
        self.pools.set_capacity(name, capacity).await.map_err(unavailable)
    }

    async fn cancel(&self, run_id: Uuid, reason: Option<String>, compensate: bool) -> Result<(), ApiError> {
        let reason = reason.unwrap_or_else(|| "cancelled by request".to_owned());
        self.command(run_id, Input::Cancel { reason, compensate }, "cancel").await
    }

    /// Carries a run that failed, timed out or was cancelled on from where it stopped (see
    /// `machine::redrive`): its record says `running` again (compare-and-set, so one of
    /// two redrives at once wins), then its creation with the seed is logged.
    async fn redrive(&self, run_id: Uuid, definition: Option<WorkflowDef>) -> Result<(), ApiError> {
        let span = tracing::Span::current();
        span.record("weft.run_id", tracing::field::display(run_id));
        let (record, revision) = self.nats.stored_at(run_id).await?.ok_or_else(|| not_found(run_id))?;
        redrivable(&record)?;
        let definition = self.definition_of(&record, definition).await?;
        let events = self.nats.last_event(run_id).await?;
        let seed = crate::machine::Seed::of(&record, events);
        let mut running = record.clone();
        running.status = RunStatus::Running;
        (running.finished_ms, running.output) = (None, None);
        running.errors.clear();
        if !self.nats.store_over(&running, revision).await? {
            return Err(ApiError::new(ApiErrorCode::Conflict, format!("run {run_id} changed meanwhile: look again")));
        }
        let request = self.root_request(run_id, definition, record.input.clone(), Some(seed));
        // One redrive per ending: the same ending redriven twice is one entry.
        let id = format!("redrive:{run_id}:{}", record.finished_ms.unwrap_or_default());
        if let Err(e) = self.admission.redrive(request, &id).await {
            // Not logged: the record says what it said, so the run can be redriven again.
            if let Err(undo) = self.nats.store(&record).await {
                tracing::warn!(%run_id, error = %undo, "the record of a run not redriven stays `running`");
            }
            return Err(api_error(e));
        }
        Ok(())
    }

    /// Starts a new run of an ended run's workflow from top-level step `from`: `from` and
    /// the top-level steps that wait for it run, the completed steps of the others (and of
    /// their bodies) are carried over with their outputs. Its record names the run it reruns.
    async fn rerun(
        &self,
        run_id: Uuid,
        from: &str,
        new_run_id: Option<Uuid>,
        input: Option<serde_json::Value>,
        definition: Option<WorkflowDef>,
    ) -> Result<crate::admission::Admitted, ApiError> {
        let record = self.nats.stored(run_id).await?.ok_or_else(|| not_found(run_id))?;
        let refuse =
            |why: String| ApiError::new(ApiErrorCode::Conflict, format!("run {run_id} cannot be rerun: {why}"));
        if !record.status.is_terminal() {
            return Err(refuse(format!("it is {}; rerun it once it has ended", record.status.as_str())));
        }
        if let Some(what) = &record.abridged {
            return Err(refuse(format!("its record was stored abridged ({what}): the outputs it needs are not kept")));
        }
        let definition = self.definition_of(&record, definition).await?;
        let plan = self.admission.plan(&definition).await.map_err(api_error)?;
        let Some(again) = plan.downstream(from) else {
            let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
            return Err(ApiError::new(
                ApiErrorCode::Invalid,
                format!("`{from}` is not a top-level step of `{}`; those are: {}", plan.name, ids.join(", ")),
            ));
        };
        let seed = crate::machine::Seed::rerun(&record, from, &again, weft_protocol::wire::now_ms());
        let new_run_id = new_run_id.unwrap_or_else(Uuid::now_v7);
        let span = tracing::Span::current();
        span.record("weft.workflow", definition.name.as_str());
        span.record("weft.run_id", tracing::field::display(new_run_id));
        let request =
            self.root_request(new_run_id, definition, input.unwrap_or_else(|| record.input.clone()), Some(seed));
        self.admission.submit(request).await.map_err(api_error)
    }

    /// The definition `record`'s run was submitted with: the registered one of its name and
    /// version, or `given`, whichever has the run's fingerprint with its input.
    async fn definition_of(&self, record: &RunRecord, given: Option<WorkflowDef>) -> Result<WorkflowDef, ApiError> {
        let run_id = record.run_id;
        let Some(fingerprint) = record.fingerprint.as_deref() else {
            return Err(ApiError::new(
                ApiErrorCode::Conflict,
                format!("run {run_id} was submitted before runs kept what they were submitted with: rerun it"),
            ));
        };
        let matches = |d: &WorkflowDef| weft_protocol::wire::fingerprint(d, &record.input) == fingerprint;
        if let Some(given) = given {
            return if matches(&given) {
                Ok(given)
            } else {
                Err(ApiError::new(
                    ApiErrorCode::Invalid,
                    format!("that is not the definition run {run_id} was submitted with (or its input differs)"),
                ))
            };
        }
        let key = weft_protocol::subjects::definition_key(&record.workflow, record.version);
        let registered = match self.nats.infra.definitions.get(&key).await {
            Ok(bytes) => bytes.and_then(|b| serde_json::from_slice::<WorkflowDef>(&b).ok()),
            Err(e) => return Err(ApiError::new(ApiErrorCode::Unavailable, format!("cannot read {key}: {e}"))),
        };
        registered.filter(matches).ok_or_else(|| {
            ApiError::new(
                ApiErrorCode::Invalid,
                format!(
                    "run {run_id} was submitted inline (`{}` version {} is not registered with its content): \
                     give its definition (weft redrive {run_id} FILE)",
                    record.workflow, record.version
                ),
            )
        })
    }

    /// Logs a command for a run that has not ended; its owner applies it.
    async fn command(&self, run_id: Uuid, input: Input, verb: &str) -> Result<(), ApiError> {
        let record = self.status(run_id).await?;
        if record.status.is_terminal() {
            return Err(ApiError::new(
                ApiErrorCode::Conflict,
                format!("run {run_id} already ended ({})", record.status.as_str()),
            ));
        }
        refuse_what_would_not_apply(&record, &input)?;
        let partition = log::partition_of(run_id, self.partitions);
        let id = format!("{verb}:{run_id}:{}", Uuid::now_v7());
        log::append(&self.nats.js, log::subject(partition, run_id), &Entry::Input { input }, &id)
            .await
            // JetStream out of reach (a restart, an election): the client may try again.
            .map_err(|e| ApiError::new(ApiErrorCode::Unavailable, format!("the {verb} could not be stored: {e}")))
    }
}

/// Whether a run can be redriven, or why not.
fn redrivable(record: &RunRecord) -> Result<(), ApiError> {
    let run_id = record.run_id;
    let refuse =
        |why: String| Err(ApiError::new(ApiErrorCode::Conflict, format!("run {run_id} cannot be redriven: {why}")));
    if !matches!(record.status, RunStatus::Failed | RunStatus::TimedOut | RunStatus::Cancelled) {
        return refuse(format!(
            "it is {}; only a failed, timed-out or cancelled run carries on from where it stopped",
            record.status.as_str()
        ));
    }
    if let Some(parent) = &record.parent {
        return refuse(format!("it is a child run: redrive its parent, run {}", parent.run_id));
    }
    if let Some(what) = &record.abridged {
        return refuse(format!("its record was stored abridged ({what}): the outputs it needs are not kept"));
    }
    if record.steps.values().any(|s| s.compensation.is_some()) {
        return refuse("its saga undid completed steps, which would not be done again: submit it anew".to_owned());
    }
    Ok(())
}

/// A command the run would ignore is refused here, saying why: a pause of a paused run,
/// a resume of one that is not, a signal no `signal` step waits for, a second signal of a
/// name before its step took the first, data that breaks the signal's schema.
fn refuse_what_would_not_apply(record: &RunRecord, input: &Input) -> Result<(), ApiError> {
    let run_id = record.run_id;
    let conflict = |message: String| Err(ApiError::new(ApiErrorCode::Conflict, message));
    match input {
        Input::Pause if record.status == RunStatus::Paused => conflict(format!("run {run_id} is paused already")),
        Input::Pause | Input::Resume { .. } if record.status == RunStatus::Compensating => {
            conflict(format!("run {run_id} is compensating: it cannot be paused or resumed until the saga ends"))
        }
        Input::Resume { add_tokens: None, add_cost: None }
            if !matches!(record.status, RunStatus::Paused | RunStatus::BudgetExceeded) =>
        {
            conflict(format!("run {run_id} is not paused (it is {})", record.status.as_str()))
        }
        Input::Signal { name, data } => check_signal(record, name, data),
        _ => Ok(()),
    }
}

fn check_signal(record: &RunRecord, name: &str, data: &serde_json::Value) -> Result<(), ApiError> {
    let run_id = record.run_id;
    if name.trim().is_empty() {
        return Err(ApiError::new(ApiErrorCode::BadRequest, "a signal needs a name".to_owned()));
    }
    let Some(signal) = record.signals.get(name) else {
        let names: Vec<String> = record.signals.keys().map(|n| format!("`{n}`")).collect();
        let waits = if names.is_empty() {
            "it has no `signal` step".to_owned()
        } else {
            format!("it waits for {}", names.join(", "))
        };
        return Err(ApiError::new(
            ApiErrorCode::Invalid,
            format!("run {run_id} waits for no signal `{name}`: {waits}"),
        ));
    };
    if signal.held {
        return Err(ApiError::new(
            ApiErrorCode::Conflict,
            format!(
                "a signal `{name}` was sent to run {run_id} already and is held for its step; a second would not be used"
            ),
        ));
    }
    let Some(schema) = &signal.schema else { return Ok(()) };
    let Ok(validator) = jsonschema::validator_for(schema) else { return Ok(()) };
    let problems: Vec<Problem> = validator
        .iter_errors(data)
        .map(|e| Problem {
            path: format!("data{}", e.instance_path().as_str().replace('/', ".")),
            step: None,
            code: Code::InvalidValue,
            message: e.to_string(),
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let message = format!("the data of signal `{name}` does not fit its schema: {}", list.join("; "));
    Err(ApiError { code: ApiErrorCode::Invalid, message, problems })
}

/// How a submit sent by `WeftClient` or the CLI begins (serde puts the tag first).
const SUBMIT_PREFIX: &[u8] = br#"{"verb":"submit","#;

/// A request. A submit carries a whole definition: read in one pass rather than buffered
/// whole for its tag, when it begins the usual way; any other form takes the general path.
fn read_request(payload: &[u8]) -> Result<ApiRequest, serde_json::Error> {
    if payload.starts_with(SUBMIT_PREFIX)
        && let Ok(submit) = serde_json::from_slice::<Submit>(payload)
    {
        return Ok(ApiRequest::Submit(Box::new(submit)));
    }
    serde_json::from_slice(payload)
}

/// JetStream could not be reached for a request.
fn unavailable(e: crate::nats::NatsError) -> ApiError {
    ApiError::new(ApiErrorCode::Unavailable, e.to_string())
}

/// How a refused admission is answered.
fn api_error(e: AdmitError) -> ApiError {
    let message = e.to_string();
    match e {
        AdmitError::Invalid { problems, .. } | AdmitError::InvalidInput { problems, .. } => {
            ApiError { code: ApiErrorCode::Invalid, message, problems }
        }
        AdmitError::Taken { .. } => ApiError::new(ApiErrorCode::Conflict, message),
        AdmitError::Unavailable(_) => ApiError::new(ApiErrorCode::Unavailable, message),
        AdmitError::Limit(_) => ApiError::new(ApiErrorCode::Invalid, message),
    }
}

fn not_found(run_id: Uuid) -> ApiError {
    ApiError::new(ApiErrorCode::NotFound, format!("no run {run_id} (not found)"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_submit_reads_the_same_by_its_prefix_or_in_any_key_order() {
        let definition: WorkflowDef =
            serde_json::from_value(json!({"name": "w", "steps": [{"id": "a", "tool": "echo"}]})).expect("def");
        let submit = Submit { run_id: Some(Uuid::now_v7()), definition, input: json!({"x": 1}) };
        let request = ApiRequest::Submit(Box::new(submit.clone()));
        let written = serde_json::to_vec(&request).expect("json");
        assert!(written.starts_with(SUBMIT_PREFIX), "{}", String::from_utf8_lossy(&written));
        let reordered = serde_json::to_vec(&json!({"input": {"x": 1}, "definition": submit.definition,
            "run_id": submit.run_id, "verb": "submit"}))
        .expect("json");
        for bytes in [written, reordered] {
            assert_eq!(read_request(&bytes).expect("a request"), request);
        }
        // Not a submit after all: the general path answers, and says why.
        let error = read_request(br#"{"verb":"submit","input":1}"#).expect_err("no definition");
        assert!(error.to_string().contains("definition"), "{error}");
        let status = read_request(br#"{"verb":"status","run_id":"0193c8a0-0000-7000-8000-000000000000"}"#);
        assert!(matches!(status, Ok(ApiRequest::Status { .. })));
    }
}
