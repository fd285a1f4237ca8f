//! The in-process tier: a coordinator and a worker as tasks of the test's own runtime
//! (the libraries' `run(config, client, shutdown)`, as their binaries call it), against a
//! real nats-server. For the actor layer, below whole processes; process tests are for
//! crashes and restarts.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_client::WeftClient;

use crate::nats_server::NatsServer;

/// A coordinator and a demo-tools worker running in this process.
#[derive(Debug)]
pub struct InProcess {
    /// The server.
    pub nats: NatsServer,
    /// Stops both.
    pub shutdown: CancellationToken,
    coordinator: JoinHandle<Result<(), weft_coordinator::CoordinatorError>>,
    worker: JoinHandle<Result<(), weft_worker::WorkerError>>,
}

impl InProcess {
    /// Starts both; returns once the worker's tools are advertised and the API answers.
    pub async fn start() -> InProcess {
        let nats = NatsServer::start();
        let shutdown = CancellationToken::new();
        let client = async_nats::connect(&nats.url).await.expect("the coordinator connects");
        let config = weft_coordinator::Config { pin_timeout: std::time::Duration::from_secs(2), ..Default::default() };
        let coordinator = tokio::spawn(weft_coordinator::run(config, client, shutdown.clone()));
        let config = weft_worker::Config {
            nats_url: nats.url.clone(),
            worker_id: "in-process".into(),
            ..weft_worker::Config::default()
        };
        let mut registry = weft_worker::Registry::with_builtins();
        weft_worker::demo::register(&mut registry).expect("the demo tools register");
        let expected = registry.len();
        let worker = tokio::spawn(weft_worker::run_with_registry(config, registry, shutdown.clone()));
        let this = InProcess { nats, shutdown, coordinator, worker };
        let client = this.client().await;
        crate::wait::until_ok("the in-process services are ready", crate::wait::PATIENCE, || async {
            let tools = client.tools().await.map_err(|e| e.to_string())?;
            client.list(Some(1)).await.map_err(|e| e.to_string())?;
            // Every tool, not the first: a worker advertises them one by one.
            let advertised = tools.iter().filter(|a| a.worker == "in-process").count();
            if advertised == expected { Ok(()) } else { Err(format!("{advertised} of {expected} tools advertised")) }
        })
        .await;
        this
    }

    /// A client of this deployment.
    pub async fn client(&self) -> WeftClient {
        WeftClient::connect(&self.nats.url).await.expect("client connects")
    }

    /// Stops both gracefully; panics if either fails or does not stop within 30 s.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let stopped =
            tokio::time::timeout(crate::wait::PATIENCE, async { (self.coordinator.await, self.worker.await) }).await;
        match stopped {
            Ok((Ok(Ok(())), Ok(Ok(())))) => {}
            other => panic!("the in-process services did not stop cleanly: {other:?}"),
        }
    }
}
