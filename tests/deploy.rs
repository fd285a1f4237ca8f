//! The deployment's NATS configuration (`deploy/nats/`) as a real nats-server enforces it:
//! each user may do nothing outside its role, and the cluster config forms a three-node
//! JetStream cluster whose streams take three replicas, keep them when coordinators start,
//! and run workflows with two coordinators. (That each role may do all it *needs* is
//! checked by deploy/check.sh, which runs the launcher on the same config and fails on any
//! permission violation.)

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::mpsc;
use weft_client::WeftClient;
use weft_lang::definition::WorkflowDef;
use weft_protocol::topology::{self, Retention};
use weft_protocol::wire::{RunRecord, RunStatus};
use weft_tests::cluster::{Proc, spawn};
use weft_tests::nats_server::binary;
use weft_tests::repo_root;

const PASSWORDS: [(&str, &str); 5] = [
    ("WEFT_COORDINATOR_PASSWORD", "coordinator-secret"),
    ("WEFT_WORKER_PASSWORD", "worker-secret"),
    ("WEFT_CLIENT_PASSWORD", "client-secret"),
    ("WEFT_ADMIN_PASSWORD", "admin-secret"),
    ("WEFT_ROUTE_PASSWORD", "route-secret"),
];

fn password(user: &str) -> &'static str {
    let key = format!("WEFT_{}_PASSWORD", user.to_uppercase());
    PASSWORDS.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).expect("a known user")
}

/// A port for a cluster route. Routes are the one port picked before a server starts
/// (every node must know the others' route ports in its config), so it is bound and
/// released here; client and monitoring ports are chosen by the servers themselves.
fn route_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A nats-server on one of deploy/nats/'s configs, stopped (by pid) when dropped.
struct Server {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _store: tempfile::TempDir,
}

impl Server {
    fn start(config: &str, env: &[(&str, String)], args: &[String]) -> Server {
        let store = tempfile::tempdir().expect("store dir");
        let log = store.path().join("nats.log");
        let ports_dir = store.path().join("ports");
        let mut command = Command::new(binary());
        command
            .arg("-c")
            .arg(repo_root().join("deploy/nats").join(config))
            .args(["-a", "127.0.0.1"])
            .args(weft_tests::ports::chosen_by_server(&ports_dir))
            .args(args)
            .env("WEFT_NATS_STORE_DIR", store.path())
            .envs(PASSWORDS)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
            .stderr(Stdio::null());
        let child = command.spawn().expect("nats-server starts (deploy/setup.sh installs it)");
        let pid = child.id();
        let mut server = Server { child: Some(child), port: 0, log, _store: store };
        match weft_tests::ports::read(&ports_dir, pid) {
            Ok(ports) => server.port = ports.client,
            Err(e) => panic!("{e}:\n{}", server.logs()),
        }
        server
    }

    fn url(&self, user: &str) -> String {
        format!("nats://{user}:{}@127.0.0.1:{}", password(user), self.port)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection as `user`, with the errors the server sends it.
struct Conn {
    nats: async_nats::Client,
    js: jetstream::Context,
    errors: mpsc::UnboundedReceiver<String>,
}

async fn connect(port: u16, user: &str) -> Conn {
    let (tx, errors) = mpsc::unbounded_channel();
    // Each role's replies arrive under its own prefix, as the binaries connect.
    let inbox = match user {
        "coordinator" => weft_protocol::subjects::INBOX_COORDINATOR,
        "worker" => weft_protocol::subjects::INBOX_WORKER,
        "client" => weft_protocol::subjects::INBOX_CLIENT,
        _ => "_INBOX",
    };
    let nats = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(inbox)
        .user_and_password(user.into(), password(user).into())
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
    let js = jetstream::new(nats.clone());
    Conn { nats, js, errors }
}

impl Conn {
    /// Asserts the server refuses to let this user publish to `subject`.
    async fn cannot_publish(&mut self, user: &str, subject: &str) {
        self.nats.publish(subject.to_owned(), "{}".into()).await.expect("publish is sent");
        self.nats.flush().await.expect("flush");
        self.refused(user, &format!("Publish to \"{subject}\"")).await;
    }

    /// Asserts the server refuses to let this user subscribe to `subject`.
    async fn cannot_subscribe(&mut self, user: &str, subject: &str) {
        let _sub = self.nats.subscribe(subject.to_owned()).await.expect("subscribe is sent");
        self.nats.flush().await.expect("flush");
        self.refused(user, &format!("Subscription to \"{subject}\"")).await;
    }

    async fn refused(&mut self, user: &str, what: &str) {
        let wanted = format!("Permissions Violation for {what}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.errors.recv()).await {
                Ok(Some(e)) if e.contains(&wanted) => return,
                Ok(Some(_)) => continue,
                _ => panic!("{user} was allowed: {what}"),
            }
        }
    }

    /// Asserts the server reported no error to this user.
    fn no_errors(&mut self, user: &str) {
        if let Ok(e) = self.errors.try_recv() {
            panic!("{user} was refused something it needs: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_is_confined_to_its_role() {
    let server = Server::start("nats.conf", &[], &[]);

    // No password, a wrong one, or a user of another role's password: refused.
    let anonymous = format!("nats://127.0.0.1:{}", server.port);
    assert!(async_nats::connect(&anonymous).await.is_err(), "connected without credentials");
    let wrong = format!("nats://worker:{}@127.0.0.1:{}", password("client"), server.port);
    assert!(WeftClient::connect(&wrong).await.is_err(), "connected with another user's password");
    // The command line says what to do about it, once, with exit code 4.
    let cli = |url: &str| {
        let out = std::process::Command::new(weft_tests::bin("weft"))
            .args(["list", "--timeout", "2s", "--nats", url])
            .output()
            .expect("weft runs");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = cli(&wrong);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("authorization violation") && stderr.contains("hint: wrong or no credentials?"),
        "{stderr}"
    );
    assert!(!stderr.contains(password("client")), "a password in the output: {stderr}");
    // A user refused what it asks (a worker calling the API): named as such, not a hang.
    let (code, stderr) = cli(&format!("nats://worker:{}@127.0.0.1:{}", password("worker"), server.port));
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("NATS refused: Permissions Violation") && stderr.contains("weft.api.list"), "{stderr}");
    assert!(stderr.contains("hint: this NATS user may not do that"), "{stderr}");

    // The coordinator creates the streams and buckets; a worker finds them (and would
    // not be allowed to create them).
    let mut coordinator = connect(server.port, "coordinator").await;
    topology::ensure(&coordinator.js, &Retention::default()).await.expect("the coordinator sets JetStream up");
    let mut worker = connect(server.port, "worker").await;
    topology::ensure(&worker.js, &Retention::default()).await.expect("a worker finds the streams");
    coordinator.no_errors("coordinator");
    worker.no_errors("worker");

    // A worker serves tools: it cannot submit or steer runs, pose as a coordinator (ticks),
    // forge tasks, events or run records, listen to the API or to all tasks, or
    // administer JetStream.
    for subject in [
        "weft.api.submit",
        "weft.in.0.tick",
        // A run's log takes only results from a worker, on their own subject.
        "weft.in.0.01a20964-4898-727b-9c8b-bb6b2d79d300",
        "weft.task.get_user",
        "weft.events.0",
        "weft.cancel.0",
        "$KV.weft_runs.0",
        "$JS.API.STREAM.DELETE.WEFT_TASKS",
        "$JS.API.STREAM.CREATE.STOLEN",
        "$JS.API.DIRECT.GET.KV_weft_runs",
        "$JS.API.CONSUMER.CREATE.WEFT_EVENTS",
    ] {
        worker.cannot_publish("worker", subject).await;
    }
    // Nor read another role's replies (a client's API answers, a coordinator's reads).
    for subject in ["weft.api.>", "weft.task.>", ">", "_INBOX.>", "_INBOX_client.>", "_INBOX_coordinator.>"] {
        worker.cannot_subscribe("worker", subject).await;
    }

    // A client uses the API: it cannot take or forge tasks, run inputs (results), events,
    // cancels or tool advertisements, read run records behind the API, or administer
    // JetStream.
    let mut client = connect(server.port, "client").await;
    for subject in [
        "weft.task.get_user",
        "weft.in.0.01a20964-4898-727b-9c8b-bb6b2d79d300",
        "weft.events.0",
        "weft.cancel.0",
        "$KV.weft_tools.get_user.w1",
        "$JS.API.CONSUMER.CREATE.WEFT_TASKS.tool-get_user.weft.task.get_user",
        "$JS.API.CONSUMER.MSG.NEXT.WEFT_TASKS.tool-get_user",
        "$JS.API.DIRECT.GET.KV_weft_runs",
        "$JS.API.STREAM.DELETE.WEFT_EVENTS",
    ] {
        client.cannot_publish("client", subject).await;
    }
    for subject in ["weft.>", "weft.api.submit", "_INBOX.>", "_INBOX_worker.>", "_INBOX_coordinator.>"] {
        client.cannot_subscribe("client", subject).await;
    }
    // It may listen to runs' events (`WeftClient::run` and `wait` do), which the coordinator
    // publishes.
    // A flush only writes the subscription out; the server may still read the
    // coordinator's publish (another connection) first. So publish until one is heard.
    let mut events = client.nats.subscribe("weft.events.0".to_owned()).await.expect("subscribe is sent");
    client.nats.flush().await.expect("flush");
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            coordinator.nats.publish("weft.events.0", "{}".into()).await.expect("publish is sent");
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
                return;
            }
        }
    })
    .await;
    assert!(heard.is_ok(), "the client did not hear a run's event");
    client.no_errors("client");

    // The coordinator does not pose as a worker.
    coordinator.cannot_publish("coordinator", "$KV.weft_tools.get_user.w1").await;
    coordinator.cannot_subscribe("coordinator", "weft.task.>").await;
    for subject in ["_INBOX.>", "_INBOX_worker.>", "_INBOX_client.>"] {
        coordinator.cannot_subscribe("coordinator", subject).await;
    }
}

/// Three nodes on cluster.conf, on loopback ports.
fn start_cluster() -> Vec<Server> {
    let cluster_ports: Vec<u16> = (0..3).map(|_| route_port()).collect();
    let routes: Vec<(String, String)> = cluster_ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (format!("WEFT_NATS_ROUTE_{}", i + 1), format!("nats-route://route:{}@127.0.0.1:{p}", password("route")))
        })
        .collect();
    (0..3)
        .map(|i| {
            let mut env: Vec<(&str, String)> = routes.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
            env.push(("WEFT_NATS_NAME", format!("nats-{}", i + 1)));
            Server::start("cluster.conf", &env, &["--cluster".into(), format!("nats://127.0.0.1:{}", cluster_ports[i])])
        })
        .collect()
}

/// Waits until `f` succeeds, for at most a minute.
async fn eventually<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Three NATS nodes, two coordinators and a worker, set up as compose.cluster.yaml does.
struct ClusterRun {
    nodes: Vec<Server>,
    coordinators: Vec<Proc>,
    worker: Proc,
    client_url: String,
    client: WeftClient,
    names: Vec<String>,
    _dir: tempfile::TempDir,
}

impl ClusterRun {
    /// Once the nodes are healthy (JetStream has a leader), a coordinator creates the
    /// streams and buckets with one replica; `replicate` raises every stream of the account
    /// to three, as the admin user; then the second coordinator and a worker start.
    async fn start() -> ClusterRun {
        let nodes = start_cluster();
        let urls = |user: &str| {
            let rest: Vec<String> = nodes[1..].iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect();
            format!("{},{}", nodes[0].url(user), rest.join(","))
        };
        let dir = tempfile::tempdir().expect("log dir");
        let coordinator_url = urls("coordinator");
        let client_url = urls("client");
        let admin = connect(nodes[0].port, "admin").await;
        eventually("JetStream is up on the cluster", || admin.js.query_account()).await;
        let coordinator =
            |name: &str| spawn(name, "weft-coordinator", &[], &[("NATS_URL", coordinator_url.as_str())], dir.path());
        let mut coordinators = vec![coordinator("coordinator")];
        let client = eventually("a client connects", || WeftClient::connect(&client_url)).await;
        eventually("the coordinator answers", || async {
            client.list(Some(1)).await.map_err(|e| format!("{e}\n{}", coordinators[0].logs()))
        })
        .await;
        let names: Vec<String> =
            admin.js.stream_names().collect::<Vec<_>>().await.into_iter().map(|n| n.expect("name")).collect();
        assert!(names.len() >= 5, "Weft's streams and buckets: {names:?}");
        for name in &names {
            let mut config = admin.js.get_stream(name).await.expect("stream").cached_info().config.clone();
            config.num_replicas = 3;
            admin.js.update_stream(config).await.unwrap_or_else(|e| panic!("{name} takes three replicas: {e}"));
        }
        coordinators.push(coordinator("coordinator-2"));
        let worker_env = [("NATS_URL", urls("worker")), ("WEFT_DEMO_TOOLS", "true".into())];
        let worker_env: Vec<(&str, &str)> = worker_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let worker = spawn("worker", "weft-worker", &["--id", "w1"], &worker_env, dir.path());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !coordinators[1].logs().contains("coordinator ready") {
            assert!(Instant::now() < deadline, "coordinator-2 did not start:\n{}", coordinators[1].logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ClusterRun { nodes, coordinators, worker, client_url, client, names, _dir: dir }
    }

    /// Submits chain_notify once and waits 20 s at most for its end.
    async fn run(&self, client: &WeftClient) -> Result<RunRecord, String> {
        let chain = WorkflowDef::load(&repo_root().join("examples/chain_notify.json")).expect("example");
        let run_id = client.submit(&chain, json!({"user_id": "123"})).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(20), client.wait(run_id)).await {
            Ok(record) => record.map_err(|e| e.to_string()),
            Err(_) => Err(format!("run {run_id} did not end\n{}", self.logs())),
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for p in self.coordinators.iter().chain([&self.worker]) {
            out.push_str(&format!("--- {}\n{}\n", p.name, p.logs()));
        }
        out
    }

    /// Asserts that every stream has three replicas, a leader and `followers` followers
    /// caught up, as seen from node `node`.
    async fn assert_three_replicas(&self, node: usize, followers: usize) {
        let admin = connect(self.nodes[node].port, "admin").await;
        for name in &self.names {
            eventually(&format!("{name} has three replicas"), || async {
                let mut stream = admin.js.get_stream(name).await.map_err(|e| e.to_string())?;
                let info = stream.info().await.map_err(|e| e.to_string())?;
                let cluster = info.cluster.clone().unwrap_or_default();
                let current = cluster.replicas.iter().filter(|r| r.current).count();
                match (info.config.num_replicas, current, cluster.leader.is_some()) {
                    (3, n, true) if n == followers => Ok(()),
                    (r, n, _) => Err(format!("{r} replicas, {n} current followers: {cluster:?}")),
                }
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_keeps_three_replicas_and_runs_workflows() {
    let cluster = ClusterRun::start().await;
    // Still three after the second coordinator started: setting up JetStream (retention
    // of run records included) keeps the replicas an operator chose.
    cluster.assert_three_replicas(0, 2).await;
    let record = eventually("chain_notify runs on the cluster", || cluster.run(&cluster.client)).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");

    // Every durable consumer, including those created before the streams were raised,
    // follows its stream to three replicas.
    let admin = connect(cluster.nodes[0].port, "admin").await;
    for name in &cluster.names {
        eventually(&format!("the consumers of {name} have three replicas"), || async {
            let stream = admin.js.get_stream(name).await.map_err(|e| e.to_string())?;
            let mut consumers = stream.consumers();
            while let Some(consumer) = consumers.next().await {
                let consumer = consumer.map_err(|e| e.to_string())?;
                let replicas = consumer.cluster.as_ref().map(|c| c.replicas.len() + 1).unwrap_or(1);
                if consumer.config.durable_name.is_some() && replicas != 3 {
                    return Err(format!("{}: {replicas} replicas ({:?})", consumer.name, consumer.cluster));
                }
            }
            Ok(())
        })
        .await;
    }
    for node in &cluster.nodes {
        assert!(!node.logs().contains("Violation"), "{}", node.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails about one run in two: after a NATS node dies, the partition pulls re-sent \
            while the streams elect leaders are lost and, with no idle heartbeat, never \
            noticed, so the coordinator lets every partition go and nothing takes them back; \
            heartbeats fix the detection; not landed yet (see BENCHMARKS.md problem 9)"]
async fn runs_go_on_with_a_nats_node_down() {
    let mut cluster = ClusterRun::start().await;
    let record = eventually("chain_notify runs on the cluster", || cluster.run(&cluster.client)).await;
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}");

    // Once every replica has caught up, the node every process first connected to goes
    // down; streams elect new leaders.
    cluster.assert_three_replicas(0, 2).await;
    cluster.nodes[0].stop();
    cluster.assert_three_replicas(1, 1).await;
    let client = eventually("a client connects to the rest", || WeftClient::connect(&cluster.client_url)).await;
    let record = cluster.run(&client).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record.status, RunStatus::Completed, "{record:#?}\n{}", cluster.logs());
}
