//! `weft-client`, the Rust client of Weft: submit, watch and inspect runs over NATS, list
//! tools; [`timeline`] shows a run's attempts to people.
//!
//! ```no_run
//! # async fn demo() -> Result<(), weft_client::ClientError> {
//! use weft_client::WeftClient;
//! use weft_lang::definition::WorkflowDef;
//!
//! let client = WeftClient::connect("nats://127.0.0.1:4222").await?;
//! let def = WorkflowDef::load("examples/chain_notify.json".as_ref()).expect("a workflow file");
//! let record = client.run(&def, serde_json::json!({"user_id": "123"})).await?;
//! println!("{:?} {}", record.status, record.output.unwrap_or_default());
//! # Ok(())
//! # }
//! ```

pub mod timeline;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::{Stream, StreamExt};
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use weft_lang::definition::WorkflowDef;
use weft_protocol::retry::{Policy, Stopped, retry};
use weft_protocol::wire::{
    Advertisement, ApiError, ApiErrorCode, ApiReply, ApiRequest, Delta, Event, EventKind, PoolView, RunRecord,
    RunSummary, Submit,
};
use weft_protocol::{definitions, nats_url, subjects};

/// What can go wrong talking to Weft.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// NATS is not reachable.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// No coordinator answers.
    #[error("no coordinator answers on {subject}: is weft-coordinator running against this NATS server?")]
    NoCoordinator {
        /// The API subject.
        subject: String,
    },
    /// No answer came within the client's timeout.
    #[error("no answer on {subject} within {after:?}")]
    TimedOut {
        /// The API subject.
        subject: String,
        /// The timeout.
        after: Duration,
    },
    /// The NATS server refused what this connection's user may not do.
    #[error("NATS refused: {message}")]
    Denied {
        /// The server's words (`Permissions Violation for Publish to "weft.api.submit"`).
        message: String,
    },
    /// A request failed in transport.
    #[error("request to {subject} failed: {message}")]
    Request {
        /// The API subject.
        subject: String,
        /// Why.
        message: String,
    },
    /// The coordinator refused.
    #[error("{0}")]
    Api(ApiError),
    /// An answer could not be read.
    #[error("unreadable answer from {subject}: {message}")]
    Decode {
        /// Where it came from.
        subject: String,
        /// Why.
        message: String,
    },
    /// JetStream failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// What is stored is not what Weft writes.
    #[error("{key} is corrupt: {message}")]
    Corrupt {
        /// Bucket and key.
        key: String,
        /// Why it cannot be read.
        message: String,
    },
}

/// The UUID v5 namespace of runs named by a business key (see [`WeftClient::keyed_id`]).
const KEY_NAMESPACE: Uuid = Uuid::from_u128(0x5765_6674_2d6b_6579_2d72_756e_7321_0001);

/// The most runs one business key starts (a bound on the walk of its generations).
const MAX_GENERATIONS: u32 = 10_000;

/// Whether a business key whose run has ended may start another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reuse {
    /// No: a submit with the key returns its run, ended or not (the default).
    #[default]
    Refuse,
    /// Yes: once the key's latest run has ended, a submit starts a new one (its id the
    /// key's next generation); while it runs, a submit returns it.
    AllowIfEnded,
}

/// A connection to a Weft deployment.
#[derive(Debug, Clone)]
pub struct WeftClient {
    nats: async_nats::Client,
    js: jetstream::Context,
    options: ClientOptions,
    /// The last permission violation the server reported on this connection.
    denied: Arc<Mutex<Option<String>>>,
}

/// How a client behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long connecting, and each API call, may take; a call rides out an absent
    /// coordinator or an unavailable JetStream for this long too (default 30 s).
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions { timeout: Duration::from_secs(30) }
    }
}

/// API verbs that only read, so asking again is harmless.
const READS: [&str; 3] = ["status", "list", "pools"];

/// How long one try of a read waits for its answer before asking again.
const READ_ATTEMPT: Duration = Duration::from_secs(5);

/// How often [`WeftClient::wait`] asks for the record while no end was heard.
const WAIT_RECHECK: Duration = Duration::from_secs(5);

/// Asking again while no coordinator answers at all (one restarting) or a coordinator
/// answers `unavailable` (JetStream electing a leader): nothing was done then, so it is
/// safe; 50 ms doubling to 1 s, for as long as the client's timeout.
const RIDE_OUT: Policy = Policy::new(Duration::from_millis(50), Duration::from_secs(1));

impl WeftClient {
    /// Connects (fails at once if NATS is not there). `url` may carry credentials and
    /// list several servers: see [`nats_url`].
    pub async fn connect(url: &str) -> Result<WeftClient, ClientError> {
        WeftClient::connect_with(url, ClientOptions::default()).await
    }

    /// Connects with `options`.
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<WeftClient, ClientError> {
        let denied: Arc<Mutex<Option<String>>> = Arc::default();
        let noted = denied.clone();
        let connect = async_nats::ConnectOptions::new()
            .name("weft-client")
            .custom_inbox_prefix(weft_protocol::subjects::INBOX_CLIENT)
            .request_timeout(Some(options.timeout))
            .connection_timeout(options.timeout)
            .event_callback(move |event| {
                let noted = noted.clone();
                async move {
                    if let async_nats::Event::ServerError(async_nats::ServerError::Other(message)) = event
                        && message.to_lowercase().contains("permissions violation")
                    {
                        *noted.lock().unwrap_or_else(PoisonError::into_inner) = Some(message);
                    }
                }
            });
        let nats = nats_url::with_credentials(connect, url)
            .connect(nats_url::servers(url))
            .await
            .map_err(|source| ClientError::Connect { url: nats_url::redact(url), source })?;
        let mut client = WeftClient::from_nats(nats);
        client.options = options;
        client.denied = denied;
        Ok(client)
    }

    /// Wraps an existing connection.
    pub fn from_nats(nats: async_nats::Client) -> WeftClient {
        let js = jetstream::new(nats.clone());
        WeftClient { nats, js, options: ClientOptions::default(), denied: Arc::default() }
    }

    /// The underlying NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    async fn call(&self, verb: &str, request: &ApiRequest) -> Result<ApiReply, ClientError> {
        let subject = subjects::api(verb);
        let payload = serde_json::to_vec(request)
            .map_err(|e| ClientError::Request { subject: subject.clone(), message: e.to_string() })?;
        // The request starts the run's trace, or continues the caller's (the current span).
        let span = tracing::info_span!("weft.client",
            otel.name = format!("weft {verb}"),
            otel.kind = "client",
            messaging.system = "nats",
            messaging.destination.name = %subject);
        let mut headers = async_nats::HeaderMap::new();
        weft_protocol::trace::inject(&span, &mut headers);
        let payload = bytes::Bytes::from(payload);
        // A read asked of a coordinator that has just died (its subscription not yet gone
        // from the server) is never answered: it is asked again after a short wait, where a
        // command, which may have been carried out, waits its whole timeout.
        let read = READS.contains(&verb);
        let wait = if read { READ_ATTEMPT.min(self.options.timeout) } else { self.options.timeout };
        let ask = || async {
            let request =
                async_nats::Request::new().payload(payload.clone()).headers(headers.clone()).timeout(Some(wait));
            let reply = self.nats.send_request(subject.clone(), request).await;
            let reply = reply.map_err(|e| match e.kind() {
                async_nats::client::RequestErrorKind::NoResponders => {
                    ClientError::NoCoordinator { subject: subject.clone() }
                }
                // A request the server refused to deliver is never answered: say why.
                async_nats::client::RequestErrorKind::TimedOut => match self.take_denial() {
                    Some(message) => ClientError::Denied { message },
                    None => ClientError::TimedOut { subject: subject.clone(), after: wait },
                },
                _ => ClientError::Request { subject: subject.clone(), message: e.to_string() },
            })?;
            let reply: ApiReply = serde_json::from_slice(&reply.payload)
                .map_err(|e| ClientError::Decode { subject: subject.clone(), message: e.to_string() })?;
            match reply {
                ApiReply::Error(e) => Err(ClientError::Api(e)),
                other => Ok(other),
            }
        };
        let ride_out = RIDE_OUT.for_at_most(self.options.timeout);
        let again = |e: &ClientError| e.is_transient() || (read && matches!(e, ClientError::TimedOut { .. }));
        retry(&ride_out, None, again, ask).await.map_err(|stopped| match stopped {
            Stopped::Failed(e) | Stopped::GaveUp(e) => e,
            Stopped::ShutDown => ClientError::Request { subject: subject.clone(), message: "stopped".to_owned() },
        })
    }

    /// A permission violation the server reported since the last look, if any.
    fn take_denial(&self) -> Option<String> {
        self.denied.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn unexpected(verb: &str, reply: &ApiReply) -> ClientError {
        ClientError::Decode { subject: subjects::api(verb), message: format!("unexpected answer {reply:?}") }
    }

    /// Submits a run; returns its id once it is accepted (persisted).
    pub async fn submit(&self, definition: &WorkflowDef, input: Value) -> Result<Uuid, ClientError> {
        self.submit_with_id(Uuid::now_v7(), definition, input).await
    }

    /// Submits with a chosen id. An id names one run: submitting it again with the same
    /// definition and input returns the same run (a retry after a lost answer is harmless);
    /// with another definition or input it is refused (`conflict`, naming the run).
    pub async fn submit_with_id(
        &self,
        run_id: Uuid,
        definition: &WorkflowDef,
        input: Value,
    ) -> Result<Uuid, ClientError> {
        Ok(self.submit_request(run_id, definition, input).instrument(run_span(run_id, definition)).await?.0)
    }

    /// The id of `workflow`'s run for business key `key` (an order number, a message id):
    /// the same key names the same run, whoever submits it. Its later runs, once one has
    /// ended and [`Reuse::AllowIfEnded`] started another, are [`keyed_id_at`](Self::keyed_id_at).
    pub fn keyed_id(workflow: &str, key: &str) -> Uuid {
        Uuid::new_v5(&KEY_NAMESPACE, format!("{workflow}\n{key}").as_bytes())
    }

    /// The id of the `generation`th run for a business key (0: [`keyed_id`](Self::keyed_id)).
    pub fn keyed_id_at(workflow: &str, key: &str, generation: u32) -> Uuid {
        match generation {
            0 => WeftClient::keyed_id(workflow, key),
            n => Uuid::new_v5(&KEY_NAMESPACE, format!("{workflow}\n{key}\n#{n}").as_bytes()),
        }
    }

    /// Submits `definition`'s run for business key `key` once: a second submit with the same
    /// key, definition and input (a retry after a lost answer, a message delivered twice)
    /// makes no second run and returns the first one's id; with another definition or input
    /// it is refused. Returns the id and whether this call created the run.
    pub async fn submit_keyed(
        &self,
        definition: &WorkflowDef,
        input: Value,
        key: &str,
    ) -> Result<(Uuid, bool), ClientError> {
        self.submit_keyed_with(definition, input, key, Reuse::Refuse).await
    }

    /// [`submit_keyed`](Self::submit_keyed), choosing whether a key whose run has ended may
    /// start a new run. The key's runs are found by walking its generations (one status
    /// read each), so a key reused often costs a read per earlier run; a key is remembered
    /// while its runs' records are kept (the coordinators' retention).
    pub async fn submit_keyed_with(
        &self,
        definition: &WorkflowDef,
        input: Value,
        key: &str,
        reuse: Reuse,
    ) -> Result<(Uuid, bool), ClientError> {
        let workflow = definition.name.as_str();
        let (mut generation, mut ended) = (0, false);
        loop {
            match self.status(WeftClient::keyed_id_at(workflow, key, generation)).await {
                Ok(record) if record.status.is_terminal() && generation < MAX_GENERATIONS => {
                    ended = true;
                    generation += 1;
                }
                Ok(_) => {
                    ended = false;
                    break;
                }
                Err(e) if e.is_not_found() => {
                    // None at this generation: the key's latest run is the one before.
                    generation = generation.saturating_sub(1);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if ended && reuse == Reuse::AllowIfEnded {
            generation += 1;
        }
        let run_id = WeftClient::keyed_id_at(workflow, key, generation);
        let (run_id, existing) =
            self.submit_request(run_id, definition, input).instrument(run_span(run_id, definition)).await?;
        Ok((run_id, !existing))
    }

    async fn submit_request(
        &self,
        run_id: Uuid,
        definition: &WorkflowDef,
        input: Value,
    ) -> Result<(Uuid, bool), ClientError> {
        let request =
            ApiRequest::Submit(Box::new(Submit { run_id: Some(run_id), definition: definition.clone(), input }));
        match self.call("submit", &request).await? {
            ApiReply::Accepted { run_id, existing } => Ok((run_id, existing)),
            other => Err(Self::unexpected("submit", &other)),
        }
    }

    /// A run's record.
    pub async fn status(&self, run_id: Uuid) -> Result<RunRecord, ClientError> {
        match self.call("status", &ApiRequest::Status { run_id }).await? {
            ApiReply::Run(record) => Ok(*record),
            other => Err(Self::unexpected("status", &other)),
        }
    }

    /// Recent runs, newest first.
    pub async fn list(&self, limit: Option<usize>) -> Result<Vec<RunSummary>, ClientError> {
        match self.call("list", &ApiRequest::List { limit }).await? {
            ApiReply::Runs(runs) => Ok(runs),
            other => Err(Self::unexpected("list", &other)),
        }
    }

    /// Cancels a run.
    pub async fn cancel(&self, run_id: Uuid, reason: Option<String>) -> Result<(), ClientError> {
        self.command("cancel", ApiRequest::Cancel { run_id, reason, compensate: false }).await
    }

    /// Cancels a run after undoing what it completed: its compensations run (in reverse
    /// order of completion), then it ends `cancelled` (or `compensation_failed`).
    pub async fn cancel_and_compensate(&self, run_id: Uuid, reason: Option<String>) -> Result<(), ClientError> {
        self.command("cancel", ApiRequest::Cancel { run_id, reason, compensate: true }).await
    }

    /// Carries a failed, timed-out or cancelled run on from where it stopped: its completed
    /// steps keep their outputs, the others run again (new attempt numbers, the same
    /// idempotency keys). `definition` is needed for a run submitted inline: the one it was
    /// submitted with. Returns once the redrive is logged; the run's record says `running`.
    pub async fn redrive(&self, run_id: Uuid, definition: Option<&WorkflowDef>) -> Result<(), ClientError> {
        let definition = definition.map(|d| Box::new(d.clone()));
        self.command("redrive", ApiRequest::Redrive { run_id, definition }).await
    }

    /// Starts run `new_run_id` of an ended run's workflow from its top-level step `from`:
    /// `from` and the steps that wait for it run, the others' completed outputs are carried
    /// over (with `input`, the new run's input, or the old one's). `definition` is needed
    /// for a run submitted inline. Returns once the new run is accepted (a repeat with the
    /// same id, old run and input is the same new run).
    pub async fn rerun(
        &self,
        run_id: Uuid,
        from: &str,
        new_run_id: Uuid,
        input: Option<Value>,
        definition: Option<&WorkflowDef>,
    ) -> Result<Uuid, ClientError> {
        let definition = definition.map(|d| Box::new(d.clone()));
        let request =
            ApiRequest::Rerun { run_id, from: from.to_owned(), new_run_id: Some(new_run_id), input, definition };
        match self.call("rerun", &request).await? {
            ApiReply::Accepted { run_id, .. } => Ok(run_id),
            other => Err(Self::unexpected("rerun", &other)),
        }
    }

    /// Validates `definition` against the live tools and registers it under its name and
    /// version; registering the same content again is fine, different content under an
    /// existing version is refused.
    pub async fn deploy(&self, definition: &WorkflowDef) -> Result<(), ClientError> {
        self.command("deploy", ApiRequest::Deploy { definition: Box::new(definition.clone()) }).await
    }

    /// Registered definitions: (name, version), sorted.
    pub async fn definitions(&self) -> Result<Vec<(String, u32)>, ClientError> {
        definitions::list(&self.definitions_bucket().await?).await.map_err(definition_error)
    }

    /// A registered definition; the latest version if `version` is `None`.
    pub async fn definition(&self, name: &str, version: Option<u32>) -> Result<WorkflowDef, ClientError> {
        definitions::load(&self.definitions_bucket().await?, name, version).await.map_err(definition_error)
    }

    async fn definitions_bucket(&self) -> Result<async_nats::jetstream::kv::Store, ClientError> {
        self.js
            .get_key_value(subjects::DEFINITIONS_BUCKET)
            .await
            .map_err(|e| ClientError::JetStream(format!("definitions bucket: {e} (has a coordinator started?)")))
    }

    /// Every resource pool: capacity, the step attempts holding units, those waiting.
    pub async fn pools(&self) -> Result<Vec<PoolView>, ClientError> {
        match self.call("pools", &ApiRequest::Pools).await? {
            ApiReply::Pools(pools) => Ok(pools),
            other => Err(Self::unexpected("pools", &other)),
        }
    }

    /// Sets a resource pool's capacity (creating the pool); waiting steps get the new units.
    pub async fn set_pool(&self, name: &str, capacity: u32) -> Result<(), ClientError> {
        self.command("set_pool", ApiRequest::SetPool { name: name.to_owned(), capacity }).await
    }

    /// Pauses a run: running steps finish, nothing new starts.
    pub async fn pause(&self, run_id: Uuid) -> Result<(), ClientError> {
        self.command("pause", ApiRequest::Pause { run_id }).await
    }

    /// Resumes a paused run.
    pub async fn resume(&self, run_id: Uuid) -> Result<(), ClientError> {
        self.resume_with(run_id, None, None).await
    }

    /// Resumes a run paused or out of budget, adding `tokens` and `cost` to its budget.
    pub async fn resume_with(&self, run_id: Uuid, tokens: Option<u64>, cost: Option<f64>) -> Result<(), ClientError> {
        self.command("resume", ApiRequest::Resume { run_id, add_tokens: tokens, add_cost: cost }).await
    }

    /// Sends `data` to the run's `signal` steps waiting for `name` (kept until one waits).
    pub async fn signal(&self, run_id: Uuid, name: &str, data: Value) -> Result<(), ClientError> {
        self.command("signal", ApiRequest::Signal { run_id, name: name.to_owned(), data }).await
    }

    async fn command(&self, verb: &str, request: ApiRequest) -> Result<(), ClientError> {
        match self.call(verb, &request).await? {
            ApiReply::Ok => Ok(()),
            other => Err(Self::unexpected(verb, &other)),
        }
    }

    /// A run's lifecycle events from its start, live, ending after `run_finished`.
    pub async fn watch(
        &self,
        run_id: Uuid,
    ) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        let stream = self
            .js
            .get_stream(subjects::EVENTS_STREAM)
            .await
            .map_err(|e| ClientError::JetStream(format!("events stream: {e}")))?;
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subjects::events(run_id),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| ClientError::JetStream(format!("events consumer: {e}")))?;
        let messages = consumer.messages().await.map_err(|e| ClientError::JetStream(format!("events: {e}")))?;
        // An event that cannot be read is skipped with a warning: one bad message on a
        // run's subject must not end the watch of everything after it.
        let events = messages.filter_map(|m| async move {
            let m = match m {
                Ok(m) => m,
                Err(e) => return Some(Err(ClientError::JetStream(e.to_string()))),
            };
            match serde_json::from_slice::<Event>(&m.payload) {
                Ok(event) => Some(Ok(event)),
                Err(e) => {
                    tracing::warn!(subject = %m.subject, error = %e, "an unreadable event skipped");
                    None
                }
            }
        });
        // End right after the run's last event, without waiting for another message.
        Ok(futures::stream::unfold((Box::pin(events), false), |(mut events, done)| async move {
            if done {
                return None;
            }
            let event = events.next().await?;
            let finished = matches!(&event, Ok(Event { kind: EventKind::RunFinished { .. }, .. }));
            Some((event, (events, finished)))
        }))
    }

    /// The text `llm` steps with `stream: true` write for run `run_id`, live from now on
    /// (core NATS: what was written before the call is not replayed; the step's result
    /// holds the whole answer). Pieces that cannot be read are skipped.
    pub async fn deltas(&self, run_id: Uuid) -> Result<impl Stream<Item = Delta> + use<>, ClientError> {
        let subscription = self
            .nats
            .subscribe(subjects::deltas(run_id))
            .await
            .map_err(|e| ClientError::Request { subject: subjects::deltas(run_id), message: e.to_string() })?;
        Ok(subscription.filter_map(|m| async move { serde_json::from_slice::<Delta>(&m.payload).ok() }))
    }

    /// Submits a run, waits for it to end, and returns its final record.
    pub async fn run(&self, definition: &WorkflowDef, input: Value) -> Result<RunRecord, ClientError> {
        let run_id = Uuid::now_v7();
        // Listening before submitting: the end cannot come before the subscription.
        let ends = self.ends(run_id).await?;
        // One root span for the run as this client saw it: from the submit to its end.
        async {
            self.submit_request(run_id, definition, input).await?;
            self.wait_on(run_id, ends, false).await
        }
        .instrument(run_span(run_id, definition))
        .await
    }

    /// Waits for a run to end; returns its final record.
    pub async fn wait(&self, run_id: Uuid) -> Result<RunRecord, ClientError> {
        let ends = self.ends(run_id).await?;
        self.wait_on(run_id, ends, true).await
    }

    /// A plain subscription to a run's events: unlike [`watch`](Self::watch) it creates
    /// nothing on the server, so waiting for many runs at once costs JetStream nothing.
    async fn ends(&self, run_id: Uuid) -> Result<async_nats::Subscriber, ClientError> {
        let subject = subjects::events(run_id);
        self.nats.subscribe(subject.clone()).await.map_err(|e| ClientError::Request { subject, message: e.to_string() })
    }

    /// Waits for `run_finished` on `events`, asking for the record now and then as well
    /// (core NATS may drop a message if this client falls behind); returns the final record.
    async fn wait_on(
        &self,
        run_id: Uuid,
        mut events: async_nats::Subscriber,
        mut look_first: bool,
    ) -> Result<RunRecord, ClientError> {
        let mut first_look = look_first;
        loop {
            if look_first {
                match self.status(run_id).await {
                    Ok(record) if record.status.is_terminal() => return Ok(record),
                    Ok(_) => {}
                    // The first look says whether the run exists at all; later ones only
                    // back the events up, so a passing failure (a coordinator taking over,
                    // a slow answer) is waited out rather than ending the wait.
                    Err(e) if first_look || e.is_not_found() => return Err(e),
                    Err(e) => tracing::debug!(%run_id, error = %e, "run record not read; waiting on"),
                }
                first_look = false;
            }
            look_first = true;
            let recheck = tokio::time::sleep(WAIT_RECHECK);
            tokio::pin!(recheck);
            loop {
                let message = tokio::select! {
                    _ = &mut recheck => break,
                    message = events.next() => message,
                };
                let Some(message) = message else { break };
                if let Ok(Event { kind: EventKind::RunFinished { .. }, .. }) = serde_json::from_slice(&message.payload)
                {
                    // The coordinator stores the final record before it announces the end.
                    return self.status(run_id).await;
                }
            }
        }
    }

    /// Tools advertised by live workers, one entry per tool and worker.
    pub async fn tools(&self) -> Result<Vec<Advertisement>, ClientError> {
        let kv = self
            .js
            .get_key_value(subjects::TOOLS_BUCKET)
            .await
            .map_err(|e| ClientError::JetStream(format!("tools bucket: {e} (has a worker started?)")))?;
        let mut keys = kv.keys().await.map_err(|e| ClientError::JetStream(e.to_string()))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| ClientError::JetStream(e.to_string()))?;
            if let Ok(Some(bytes)) = kv.get(&key).await
                && let Ok(ad) = serde_json::from_slice::<Advertisement>(&bytes)
            {
                out.push(ad);
            }
        }
        out.sort_by(|a, b| (&a.spec.name, &a.worker).cmp(&(&b.spec.name, &b.worker)));
        Ok(out)
    }
}

/// The root of a run's trace when this client starts it (or a child of the caller's span):
/// `run <workflow>`, naming the run and its workflow.
fn run_span(run_id: Uuid, definition: &WorkflowDef) -> tracing::Span {
    tracing::info_span!("weft.run",
        otel.name = format!("run {}", definition.name),
        otel.kind = "client",
        weft.run_id = %run_id,
        weft.workflow = %definition.name)
}

impl From<ApiError> for ClientError {
    fn from(e: ApiError) -> ClientError {
        ClientError::Api(e)
    }
}

impl ClientError {
    /// Whether the same request may succeed in a moment with nothing done meanwhile: no
    /// coordinator answered, or one said JetStream is unavailable for now.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::NoCoordinator { .. } | ClientError::Api(ApiError { code: ApiErrorCode::Unavailable, .. })
        )
    }

    /// Whether the coordinator said the run does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api(ApiError { code: ApiErrorCode::NotFound, .. }))
    }
}

fn definition_error(e: definitions::DefinitionError) -> ClientError {
    match e {
        definitions::DefinitionError::NotFound(message) => {
            ClientError::Api(ApiError::new(ApiErrorCode::NotFound, message))
        }
        definitions::DefinitionError::Store(message) => ClientError::JetStream(message),
        definitions::DefinitionError::Decode { key, message } => {
            ClientError::Corrupt { key: format!("{}/{key}", subjects::DEFINITIONS_BUCKET), message }
        }
    }
}
