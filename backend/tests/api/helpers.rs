//! Spawning primaries and secondaries, and waiting for things to happen.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;
use fleetdeck::clock::ManualClock;
use fleetdeck::{App, Config};
use serde_json::{Value, json};

/// Polls `f` every 50 ms until it returns `Some`, failing the test after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port free right now on 127.0.0.1 (for servers that must keep their port across restarts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A database for one test: a temp-file SQLite one, or a throw-away PostgreSQL database
/// when `TEST_DATABASE_URL` is set.
pub struct TestDb {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDb {
    pub fn new(dir: &Path) -> TestDb {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
            Some(admin) => {
                // Without TLS unless the URL asks for it: a pool thread still closing a TLS
                // connection when the test process exits races OpenSSL's exit-time cleanup in
                // libpq, which ended a run with SIGSEGV after every test had passed.
                let mut admin = url::Url::parse(&admin).expect("TEST_DATABASE_URL is a URL");
                if !admin.query_pairs().any(|(k, _)| k == "sslmode") {
                    admin.query_pairs_mut().append_pair("sslmode", "disable");
                }
                let name = format!("fleetdeck_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn =
                    diesel::PgConnection::establish(admin.as_str()).expect("connect to TEST_DATABASE_URL");
                conn.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
                let mut url = admin.clone();
                url.set_path(&format!("/{name}"));
                TestDb { url: url.to_string(), postgres: Some((admin.to_string(), name)) }
            }
            None => {
                TestDb { url: format!("sqlite://{}", dir.join("fleetdeck.db").display()), postgres: None }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The PostgreSQL server's admin URL and this test's database name.
    pub fn postgres(&self) -> Option<(&str, &str)> {
        self.postgres.as_ref().map(|(admin, name)| (admin.as_str(), name.as_str()))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.postgres
            && let Ok(mut conn) = diesel::PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// A primary running in this process, with a clock the test moves.
pub struct TestPrimary {
    app: Option<App>,
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    vars: HashMap<String, String>,
    _dir: tempfile::TempDir,
    _db: TestDb,
}

/// Settings a test may change; the rest are fast test defaults.
pub fn primary_vars(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = vec![
        ("SERVER_ADDRESS", "127.0.0.1:0"),
        ("NODE_NAME", "primary"),
        ("LOG_JSON", "false"),
        ("HEALTH_CHECK_INTERVAL", "200ms"),
        ("HEALTH_CHECK_TIMEOUT", "500ms"),
        ("JOB_KILL_GRACE", "1s"),
        ("JOB_DRAIN_TIMEOUT", "1s"),
        ("JOB_LOST_AFTER", "2s"),
    ];
    vars.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    vars.iter().chain(extra).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

impl TestPrimary {
    pub async fn spawn() -> TestPrimary {
        TestPrimary::spawn_with(&[]).await
    }

    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestPrimary {
        if std::env::var_os("TEST_LOG").is_some() {
            fleetdeck::telemetry::init(false, true);
        }
        let dir = tempfile::tempdir().unwrap();
        let db = TestDb::new(dir.path());
        let mut vars: HashMap<String, String> = primary_vars(extra).into_iter().collect();
        vars.insert("DATA_DIR".into(), dir.path().display().to_string());
        vars.insert("DATABASE_URL".into(), db.url.clone());
        let clock = ManualClock::starting_now();
        let mut primary = TestPrimary {
            app: None,
            url: String::new(),
            clock,
            http: client(None),
            vars,
            _dir: dir,
            _db: db,
        };
        primary.start().await;
        primary
    }

    async fn start(&mut self) {
        self.try_start().await.expect("primary starts");
    }

    /// Starts the primary, returning why it refused to.
    pub async fn try_start(&mut self) -> anyhow::Result<()> {
        let vars = self.vars.clone();
        let config = Config::from_lookup(|name| vars.get(name).cloned()).expect("test config");
        let app = App::build_with_clock(config, self.clock.clone()).await?;
        let address = app.address().expect("a primary listens");
        self.url = format!("http://{address}");
        // Later starts keep the port, so secondaries keep finding the primary.
        self.vars.insert("SERVER_ADDRESS".into(), address.to_string());
        self.app = Some(app);
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().expect("primary running")
    }

    /// Restarts with some settings changed.
    pub async fn restart_with(&mut self, changes: &[(&str, &str)]) {
        for (k, v) in changes {
            self.vars.insert((*k).to_owned(), (*v).to_owned());
        }
        self.restart().await;
    }

    /// Stops (gracefully) and starts again on the same port, data directory and database.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    /// Waits until the health checker has finished `n` more sweeps.
    pub async fn sweeps_pass(&self, n: u64) {
        let checker = self.app().state().checker().expect("a primary").clone();
        let target = checker.sweeps() + n;
        eventually(Duration::from_secs(10), "health sweeps", || async {
            (checker.sweeps() >= target).then_some(())
        })
        .await;
    }

    /// One of the primary's settings.
    pub fn var(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_default()
    }

    pub fn primary_id(&self) -> String {
        self.app().state().identity.id.to_string()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.http.get(format!("{}{path}", self.url))).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.http.post(format!("{}{path}", self.url)).json(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.http.put(format!("{}{path}", self.url)).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        send(self.http.delete(format!("{}{path}", self.url))).await
    }

    /// Adds a node through the API; returns the whole answer (node, api_key, env).
    pub async fn add_node(&self, name: &str, endpoint: &str) -> Value {
        let (status, body) = self.post("/api/nodes", json!({ "name": name, "api_endpoint": endpoint })).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn node(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/nodes/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the node has `status`.
    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        eventually(timeout, &format!("node {id} to be {status}"), || async {
            let (_, node) = self.get(&format!("/api/nodes/{id}")).await;
            (node["status"] == status).then_some(node)
        })
        .await
    }

    /// Adds a node and starts it as a real secondary process; waits until it is online.
    pub async fn online_secondary(&self, name: &str) -> (String, NodeProcess) {
        let added = self.add_node(name, &format!("http://127.0.0.1:{}", free_port())).await;
        let id = added["node"]["id"].as_str().unwrap().to_owned();
        let secondary = NodeProcess::spawn(&parse_env(added["env"].as_str().unwrap())).await;
        self.wait_status(&id, "online", SECONDS).await;
        (id, secondary)
    }

    /// Sends a heartbeat as node `id` with `key`, from this test's default client.
    pub async fn heartbeat(&self, id: &str, key: &str) -> (u16, Value) {
        heartbeat_from(&self.http, &self.url, id, id, key).await
    }
}

/// A heartbeat for `path_id` authenticated as `id` with `key`.
pub async fn heartbeat_from(
    http: &reqwest::Client,
    url: &str,
    path_id: &str,
    id: &str,
    key: &str,
) -> (u16, Value) {
    let body =
        json!({ "version": "test", "labels": ["test"], "max_jobs": 2, "running_jobs": [], "uptime_secs": 1 });
    send(
        http.post(format!("{url}/api/internal/nodes/{path_id}/heartbeat"))
            .header("X-Node-ID", id)
            .header("X-Node-API-Key", key)
            .json(&body),
    )
    .await
}

/// An HTTP client, optionally sending from a given loopback address (rate limits are per
/// source address, so tests that fail on purpose use their own).
pub fn client(local: Option<[u8; 4]>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(ip) = local {
        builder = builder.local_address(std::net::IpAddr::from(ip));
    }
    builder.build().unwrap()
}

pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A node running as a real `fleetdeck` process: a secondary, unless its variables say
/// `NODE_IS_PRIMARY=true`.
pub struct NodeProcess {
    child: Option<Child>,
    /// The program and arguments before the binary's own (`ip netns exec NAME …`), then it.
    command: Vec<std::ffi::OsString>,
    pub url: String,
    pub data_dir: PathBuf,
    vars: Vec<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl NodeProcess {
    /// Starts a node with `vars` (e.g. the `.env` the primary handed out) on a fresh port of
    /// its own, with fast heartbeats.
    pub async fn spawn(vars: &[(String, String)]) -> NodeProcess {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let mut all = node_defaults(&data_dir);
        if !vars.iter().any(|(k, _)| k == "SERVER_ADDRESS") {
            let port = free_port();
            all.push(("SERVER_ADDRESS".into(), format!("127.0.0.1:{port}")));
            all.push(("NODE_API_ENDPOINT".into(), format!("http://127.0.0.1:{port}")));
        }
        all.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
        all.extend(vars.iter().cloned());
        let command = vec![env!("CARGO_BIN_EXE_fleetdeck").into()];
        let mut secondary =
            NodeProcess { child: None, command, url: String::new(), data_dir, vars: all, _dir: Some(dir) };
        secondary.start().await;
        secondary
    }

    /// Starts an outbound node (`NODE_CONNECT=outbound`) with `vars`, without a listening
    /// port: nothing can reach it, it dials its primary. Ready once it logs that it is
    /// connected.
    pub async fn spawn_outbound(vars: &[(String, String)]) -> NodeProcess {
        NodeProcess::outbound(Vec::new(), vars).await
    }

    /// [`spawn_outbound`](NodeProcess::spawn_outbound) inside network namespace `netns`.
    pub async fn spawn_outbound_in(netns: &str, vars: &[(String, String)]) -> NodeProcess {
        NodeProcess::outbound(vec!["ip".into(), "netns".into(), "exec".into(), netns.into()], vars).await
    }

    async fn outbound(mut command: Vec<std::ffi::OsString>, vars: &[(String, String)]) -> NodeProcess {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_path_buf();
        let mut all = node_defaults(&data_dir);
        all.push(("NODE_CONNECT".into(), "outbound".into()));
        all.extend(vars.iter().filter(|(k, _)| k != "SERVER_ADDRESS" && k != "NODE_API_ENDPOINT").cloned());
        command.push(env!("CARGO_BIN_EXE_fleetdeck").into());
        let mut node =
            NodeProcess { child: None, command, url: String::new(), data_dir, vars: all, _dir: Some(dir) };
        node.start().await;
        node
    }

    /// Starts a node the install script installed: `binary` with its configuration file
    /// (`ENV_FILE`), fast heartbeats added. Ready when it answers, or, without a port, when
    /// it is connected outbound.
    pub async fn spawn_installed(binary: &Path, env_file: &Path) -> NodeProcess {
        let config = parse_env(&std::fs::read_to_string(env_file).unwrap());
        let setting = |name: &str| config.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut vars = vec![
            ("ENV_FILE".into(), env_file.display().to_string()),
            ("HEARTBEAT_INTERVAL".into(), "500ms".into()),
            ("LOG_JSON".into(), "false".into()),
        ];
        vars.extend(setting("SERVER_ADDRESS").map(|address| ("SERVER_ADDRESS".to_owned(), address)));
        let data_dir = PathBuf::from(setting("DATA_DIR").unwrap());
        let mut node = NodeProcess {
            child: None,
            command: vec![binary.into()],
            url: String::new(),
            data_dir,
            vars,
            _dir: None,
        };
        node.start().await;
        node
    }

    async fn start(&mut self) {
        let address = self.vars.iter().find(|(k, _)| k == "SERVER_ADDRESS").map(|(_, v)| v.clone());
        self.url = address.map(|a| format!("http://{a}")).unwrap_or_default();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("node.log"))
            .unwrap();
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .env_clear()
            .env("ENV_FILE", self.data_dir.join("no.env"))
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the fleetdeck binary");
        self.child = Some(child);
        let http = client(None);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let log_before = self.log().len();
        loop {
            // Without a port, ready is connected to the primary (this start's log line).
            let ready = if self.url.is_empty() {
                self.log()
                    .get(log_before..)
                    .is_some_and(|l| l.contains("connected to the primary (outbound)"))
            } else {
                let health = http.get(format!("{}/api/health", self.url)).send().await;
                health.is_ok_and(|r| r.status().is_success())
            };
            if ready {
                return;
            }
            // One that exited, or never answers, says why in its log.
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || std::time::Instant::now() > deadline {
                panic!("the node did not start ({exited:?}):\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("node.log")).unwrap_or_default()
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    /// The process's resident memory now (`VmRSS`), in bytes.
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
        kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for it to exit (a graceful stop).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child.id().to_string(), "-TERM");
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the port stays open but nothing answers.
    pub fn pause(&self) {
        signal(&self.pid(), "-STOP");
    }

    pub fn resume(&self) {
        signal(&self.pid(), "-CONT");
    }

    /// Starts again with the same data directory, port and settings.
    pub async fn restart(&mut self) {
        self.kill();
        self.start().await;
    }

    pub async fn node_info(&self) -> Value {
        send(client(None).get(format!("{}/api/node/info", self.url))).await.1
    }
}

/// What every test secondary runs with: fast heartbeats and stops, readable logs.
fn node_defaults(data_dir: &Path) -> Vec<(String, String)> {
    [
        ("NODE_IS_PRIMARY", "false"),
        ("HEARTBEAT_INTERVAL", "500ms"),
        ("LOG_JSON", "false"),
        ("APP_ENV", "development"),
        ("JOB_KILL_GRACE", "1s"),
        ("JOB_DRAIN_TIMEOUT", "1s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("DATA_DIR".to_owned(), data_dir.display().to_string())])
    .collect()
}

fn signal(pid: &str, sig: &str) {
    let status = Command::new("kill").args([sig, pid]).status().unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // A paused process cannot die; one that exited already needs nothing (so no
        // assertion here: a panic in a drop would leave the other processes running).
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
        }
        self.kill();
    }
}

/// Parses a `.env` block into variables.
pub fn parse_env(env: &str) -> Vec<(String, String)> {
    env.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The short test timeout for things that should happen "within seconds".
pub const SECONDS: Duration = Duration::from_secs(20);

/// The Python of the tests' virtualenv (`scripts/test-python.sh`: aiosmtpd, schemathesis,
/// openapi-spec-validator): `FLEETDECK_TEST_PYTHON`, else the one under `target/`.
pub fn test_python() -> PathBuf {
    let python = std::env::var_os("FLEETDECK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-python/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run scripts/test-python.sh (make test does), or set FLEETDECK_TEST_PYTHON",
        python.display()
    );
    python
}
