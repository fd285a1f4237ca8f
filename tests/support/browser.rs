//! A real headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by deploy/setup.sh): load pages, find elements by CSS,
//! read what they show (text, attributes, computed style), click and type, and keep
//! screenshots as test artifacts under `target/test-artifacts/ui/`.
//!
//! The W3C WebDriver protocol is a few JSON requests, so they are made here with reqwest
//! rather than through a WebDriver crate.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::process::Proc;

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A program: `VAR`, else the first of `names` on the `PATH`.
fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(var) {
        return PathBuf::from(path);
    }
    let paths: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    names
        .iter()
        .flat_map(|name| paths.iter().map(move |dir| dir.join(name)))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{} is not installed: run deploy/setup.sh (it installs Debian's chromium and chromium-driver), or set {var}", names[0]))
}

/// Where screenshots go.
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/ui");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// A browser session: chromedriver and the Chromium it started.
#[derive(Debug)]
pub struct Browser {
    _driver: Proc,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of 1280x1000.
    pub async fn start() -> Browser {
        let driver_bin = program("CHROMEDRIVER", &["chromedriver"]);
        let chromium = program("CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
        let port = crate::wait::free_port();
        let profile = tempfile::tempdir().expect("profile dir");
        let port_arg = format!("--port={port}");
        let driver = Proc::start("chromedriver", &driver_bin, &[&port_arg], &[], profile.path())
            .unwrap_or_else(|e| panic!("{e:#}: run deploy/setup.sh (it installs chromium-driver)"));
        crate::wait::listening(port).unwrap_or_else(|e| panic!("chromedriver does not listen: {e}\n{}", driver.logs()));
        weft_worker::tls::install_provider();
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().join("chromium").display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let answer = request(&http, reqwest::Method::POST, &format!("{base}/session"), Some(capabilities)).await;
        let session = answer["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {answer}")).to_owned();
        Browser { _driver: driver, http, session: format!("{base}/session/{session}"), _profile: profile }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        request(&self.http, method, &format!("{}{path}", self.session), body).await
    }

    /// Loads `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// Every element matching `css`, now.
    pub async fn all(&self, css: &str) -> Vec<Element<'_>> {
        let found =
            self.call(reqwest::Method::POST, "/elements", Some(json!({"using": "css selector", "value": css}))).await;
        found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str())
                    .map(|id| Element { browser: self, id: id.to_owned() })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to `within` for one (a state the page
    /// may reach by itself: a live update).
    pub async fn find(&self, css: &str, within: Duration) -> Element<'_> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("missing-{}", sanitize(css))).await;
                panic!("no element `{css}` within {within:?} (screenshot {})", shot.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page; returns its value.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// Saves a PNG of the window as `<name>.png` among the artifacts; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or("")).unwrap_or_default();
        let path = artifacts().join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("screenshot written");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; chromedriver itself is killed with its Proc.
        let session = self.session.clone();
        let http = self.http.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(tokio::time::timeout(Duration::from_secs(5), http.delete(session).send()));
            }
        })
        .join();
    }
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    async fn call(&self, method: reqwest::Method, what: &str, body: Option<Value>) -> Value {
        self.browser.call(method, &format!("/element/{}/{what}", self.id), body).await
    }

    /// Its rendered text.
    pub async fn text(&self) -> String {
        self.call(reqwest::Method::GET, "text", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// An attribute's value, if it has it.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        self.call(reqwest::Method::GET, &format!("attribute/{name}"), None).await.as_str().map(str::to_owned)
    }

    /// A CSS property's computed value (`rgb(220, 38, 38)`).
    pub async fn css(&self, property: &str) -> String {
        self.call(reqwest::Method::GET, &format!("css/{property}"), None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks it.
    pub async fn click(&self) {
        self.call(reqwest::Method::POST, "click", Some(json!({}))).await;
    }

    /// Types `text` into it.
    pub async fn type_text(&self, text: &str) {
        self.call(reqwest::Method::POST, "value", Some(json!({"text": text}))).await;
    }
}

/// One WebDriver request; its `value`. A WebDriver error fails the test with its message.
async fn request(http: &reqwest::Client, method: reqwest::Method, url: &str, body: Option<Value>) -> Value {
    let mut request = http.request(method, url).timeout(Duration::from_secs(60));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer: Value = match request.send().await {
        Ok(response) => response.json().await.unwrap_or_else(|e| panic!("WebDriver answer of {url} unreadable: {e}")),
        Err(e) => panic!("WebDriver request {url} failed: {e}"),
    };
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        panic!("WebDriver {url}: {error}: {}", value["message"].as_str().unwrap_or(""));
    }
    value
}

fn sanitize(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(60).collect()
}

/// Whether a computed colour (`rgb(r, g, b)` or `rgba(...)`) is red: red well above green
/// and blue.
pub fn is_red(colour: &str) -> bool {
    let digits: Vec<f64> = colour
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    matches!(digits.as_slice(), [r, g, b, ..] if *r > g + 60.0 && *r > b + 60.0)
}
