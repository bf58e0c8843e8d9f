//! `fleetdeck ctl` as a person or a script runs it: the built binary, as a process, against
//! a real primary and a real secondary. What is checked is what they see: stdout, stderr
//! and the exit code.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::helpers::{SECONDS, TestPrimary, free_port, parse_env};
use crate::stand_ins;

/// What a finished `ctl` command left.
#[derive(Debug)]
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Finished {
    /// An error as `ctl` must report one: a single line, no panic, a non-zero exit.
    fn assert_one_line_error(&self, code: i32, contains: &str) {
        assert_eq!(self.code, Some(code), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "one line: {self:?}");
        assert!(self.stderr.starts_with("error: ") && self.stderr.contains(contains), "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
    }
}

/// `fleetdeck ctl` for one test: pointed at `url` (unless empty), with nothing of this
/// machine's environment or saved login (its config directory is its own).
struct Ctl {
    url: String,
    home: tempfile::TempDir,
}

impl Ctl {
    fn new(url: &str) -> Ctl {
        Ctl { url: url.to_owned(), home: tempfile::tempdir().unwrap() }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_fleetdeck"));
        command
            .arg("ctl")
            .args(args)
            .env_clear()
            .env("XDG_CONFIG_HOME", self.home.path())
            .env("HOME", self.home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !self.url.is_empty() {
            command.env("FLEETDECK_URL", &self.url);
        }
        command
    }

    /// Runs `ctl args` to the end (within a deadline).
    async fn run(&self, args: &[&str]) -> Finished {
        let output = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("ctl {args:?} did not finish"))
            .unwrap();
        Finished {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    fn saved_login(&self) -> std::path::PathBuf {
        self.home.path().join("fleetdeck/ctl.json")
    }
}

#[tokio::test]
async fn nodes_are_listed_added_shown_checked_and_removed_by_name() {
    let primary = TestPrimary::spawn().await;
    let (id, _secondary) = primary.online_secondary("worker-1").await;
    let ctl = Ctl::new(&primary.url);

    let listed = ctl.run(&["nodes", "--json"]).await;
    assert_eq!(listed.code, Some(0), "{listed:?}");
    let nodes: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    let worker = nodes.iter().find(|n| n["name"] == "worker-1").expect("the secondary is listed");
    assert_eq!((worker["id"].as_str(), worker["status"].as_str()), (Some(id.as_str()), Some("online")));
    assert_eq!(nodes.len(), 2, "and the primary: {nodes:?}");

    let table = ctl.run(&["nodes", "--status", "online"]).await;
    assert_eq!(table.code, Some(0), "{table:?}");
    let header = table.stdout.lines().next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("STATUS"), "{table:?}");
    assert!(table.stdout.lines().any(|l| l.starts_with("worker-1 ") && l.contains("online")), "{table:?}");

    let checked = ctl.run(&["nodes", "check", "worker-1"]).await;
    assert_eq!((checked.code, checked.stdout.as_str()), (Some(0), "worker-1 is online\n"), "{checked:?}");
    let shown = ctl.run(&["nodes", "show", "worker-1"]).await;
    assert_eq!(shown.code, Some(0), "{shown:?}");
    assert!(shown.stdout.lines().any(|l| l.starts_with("id") && l.ends_with(&id)), "{shown:?}");

    ctl.run(&["nodes", "show", "no-such-node"])
        .await
        .assert_one_line_error(1, "no node named \"no-such-node\"");
    let unknown_id = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
    ctl.run(&["nodes", "show", unknown_id])
        .await
        .assert_one_line_error(1, &format!("no node with ID {unknown_id}"));

    // The `.env` alone on stdout, as the API hands it out; a note on stderr.
    let added =
        ctl.run(&["nodes", "add", "web-9", "--endpoint", "http://127.0.0.1:9", "--label", "edge"]).await;
    assert_eq!(added.code, Some(0), "{added:?}");
    let env = parse_env(&added.stdout);
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(var("NODE_NAME").as_deref(), Some("web-9"), "{added:?}");
    assert!(var("NODE_API_KEY").is_some_and(|k| !k.is_empty()), "{added:?}");
    assert!(added.stderr.contains("not shown again"), "{added:?}");
    let web9 = var("NODE_ID").unwrap();
    assert_eq!(primary.node(&web9).await["labels"], serde_json::json!(["edge"]));
    // A bad request shows the API's own message, naming the field.
    ctl.run(&["nodes", "add", "web-10", "--endpoint", "not a url"])
        .await
        .assert_one_line_error(1, "api_endpoint");

    // A new key, in a new `.env`; the old key works a while longer.
    let rotated = ctl.run(&["nodes", "rotate-key", "web-9"]).await;
    assert_eq!(rotated.code, Some(0), "{rotated:?}");
    let new_key = parse_env(&rotated.stdout).into_iter().find(|(k, _)| k == "NODE_API_KEY").map(|(_, v)| v);
    assert!(new_key.is_some() && new_key != var("NODE_API_KEY"), "{rotated:?}");
    assert!(rotated.stderr.contains("the old key works until"), "{rotated:?}");

    let removed = ctl.run(&["nodes", "rm", "web-9"]).await;
    assert_eq!(removed.code, Some(0), "{removed:?}");
    assert_eq!(primary.get(&format!("/api/nodes/{web9}")).await.0, 404);

    let status = ctl.run(&["status"]).await;
    assert_eq!(status.code, Some(0), "{status:?}");
    assert!(status.stdout.contains("2 (2 online)"), "{status:?}");
}

#[tokio::test]
async fn run_streams_a_jobs_output_and_exits_with_its_code() {
    let primary = TestPrimary::spawn().await;
    let (_, _secondary) = primary.online_secondary("runner").await;
    let ctl = Ctl::new(&primary.url);

    let script = "for i in 1 2 3; do echo out $i; echo err $i >&2; sleep 0.2; done";
    let ran = ctl.run(&["run", "--node", "runner", "--", "sh", "-c", script]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(ran.stdout, "out 1\nout 2\nout 3\n");
    assert_eq!(ran.stderr, "err 1\nerr 2\nerr 3\n");

    let failed = ctl.run(&["run", "--node", "runner", "--", "sh", "-c", "echo bye; exit 3"]).await;
    assert_eq!((failed.code, failed.stdout.as_str()), (Some(3), "bye\n"), "{failed:?}");

    let timed_out = ctl.run(&["run", "--node", "runner", "--timeout", "1s", "--", "sleep", "30"]).await;
    assert_eq!(timed_out.code, Some(124), "{timed_out:?}");
    assert!(timed_out.stderr.contains("timed out"), "{timed_out:?}");

    // The job's output, again, from storage.
    let (_, jobs) = primary.get("/api/jobs?limit=3").await;
    let first = jobs["items"][2]["id"].as_str().unwrap();
    let logs = ctl.run(&["jobs", "logs", first]).await;
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("out 1\nout 2\nout 3\n", "err 1\nerr 2\nerr 3\n")
    );
    let listed = ctl.run(&["jobs", "--status", "timed_out", "--json"]).await;
    let listed: Vec<Value> = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["command"], "sleep 30");
}

#[tokio::test]
async fn run_all_prints_every_nodes_output_prefixed_and_fails_unless_every_node_succeeded() {
    let primary = TestPrimary::spawn().await;
    let (alpha, _a) = primary.online_secondary("alpha").await;
    let (bravo, _b) = primary.online_secondary("bravo").await;
    for id in [&alpha, &bravo] {
        let (status, body) =
            primary.put(&format!("/api/nodes/{id}"), serde_json::json!({ "labels": ["web"] })).await;
        assert_eq!(status, 200, "{body}");
    }
    let ctl = Ctl::new(&primary.url);

    // Every node with the label; each line prefixed with its node, stdout and stderr apart.
    let ran = ctl.run(&["run", "--all", "--label", "web", "--", "sh", "-c", "echo hi; echo oops >&2"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let mut lines: Vec<&str> = ran.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["alpha | hi", "bravo | hi"], "{ran:?}");
    assert!(ran.stderr.contains("alpha | oops\n") && ran.stderr.contains("bravo | oops\n"), "{ran:?}");
    assert!(ran.stderr.ends_with("2 of 2 nodes succeeded\n"), "{ran:?}");

    // One failure anywhere is a failure, and says where.
    let failed = ctl.run(&["run", "--all", "--label", "web", "--", "sh", "-c", "exit 3"]).await;
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(failed.stderr.contains("0 of 2 nodes succeeded\n  alpha: failed (exit 3)\n"), "{failed:?}");

    // Every node, the primary included; one that cannot take a job is a failure too.
    primary.add_node("ghost", &format!("http://127.0.0.1:{}", free_port())).await;
    let ran = ctl.run(&["run", "--all", "--", "true"]).await;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("3 of 4 nodes succeeded"), "{ran:?}");
    assert!(ran.stderr.contains("  ghost: skipped: pending when the run started"), "{ran:?}");
    let (_, runs) = primary.get("/api/runs").await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn ctrl_c_cancels_the_job_and_waits_for_it_to_end() {
    let primary = TestPrimary::spawn().await;
    let (_, _secondary) = primary.online_secondary("sleeper").await;
    let ctl = Ctl::new(&primary.url);
    let mut child = ctl
        .command(&["run", "--node", "sleeper", "--", "sh", "-c", "echo started; sleep 30"])
        .spawn()
        .unwrap();
    // Its first line arrives while it runs: the output streams live.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first =
        tokio::time::timeout(SECONDS, stdout.next_line()).await.expect("output while it runs").unwrap();
    assert_eq!(first.as_deref(), Some("started"));

    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let output = tokio::time::timeout(SECONDS, child.wait_with_output()).await.expect("ctl ends").unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("cancelling job"), "{stderr}");
    let (_, jobs) = primary.get("/api/jobs?limit=1").await;
    assert_eq!(jobs["items"][0]["status"], "cancelled", "{jobs}");
}

#[tokio::test]
async fn failures_are_one_clear_line_and_a_non_zero_exit() {
    let nowhere = Ctl::new(&format!("http://127.0.0.1:{}", free_port()));
    nowhere.run(&["nodes"]).await.assert_one_line_error(1, "cannot reach the primary at");
    // `run` keeps the job's exit codes for the job: its own failure is 125.
    nowhere.run(&["run", "--", "true"]).await.assert_one_line_error(125, "cannot reach");
    Ctl::new("").run(&["nodes"]).await.assert_one_line_error(1, "FLEETDECK_URL");
    Ctl::new("fleet.lan").run(&["nodes"]).await.assert_one_line_error(1, "http://");
    let with_password = Ctl::new("http://admin:hunter2@127.0.0.1:9").run(&["nodes"]).await;
    with_password.assert_one_line_error(1, "user name or password");
    assert!(!with_password.stderr.contains("hunter2"), "{with_password:?}");
    // An ID goes into a URL: anything but a UUID is refused before a request is made.
    for args in [&["tokens", "revoke", "../nodes/x"][..], &["jobs", "cancel", "1?x=2"]] {
        let refused = nowhere.run(args).await;
        assert_eq!(refused.code, Some(2), "{refused:?}");
        assert!(refused.stderr.contains("must be a UUID"), "{refused:?}");
    }

    // A primary with user access on: no token, or a wrong one, is refused, saying what to do.
    let github = stand_ins::github();
    let primary = TestPrimary::spawn_with(&[
        ("AUTH_ENABLED", "true"),
        ("JWT_SECRET", "a-jwt-secret-for-tests-that-is-long-enough"),
        ("GITHUB_CLIENT_ID", "test-client"),
        ("GITHUB_CLIENT_SECRET", "test-secret"),
        ("GITHUB_ALLOWED_USERS", "octo-cat"),
        ("GITHUB_AUTH_URL", &format!("{}/login/oauth/authorize", github.url)),
        ("GITHUB_TOKEN_URL", &format!("{}/login/oauth/access_token", github.url)),
        ("GITHUB_API_URL", &github.url),
    ])
    .await;
    let ctl = Ctl::new(&primary.url);
    let refused = ctl.run(&["nodes", "--token", "fdt_not-a-real-token"]).await;
    refused.assert_one_line_error(1, "the token was refused");
    assert!(refused.stderr.contains("run `fleetdeck ctl login` or set FLEETDECK_TOKEN"), "{refused:?}");
    ctl.run(&["status"]).await.assert_one_line_error(1, "the primary wants a token");
}

#[tokio::test]
async fn login_saves_the_url_and_token_for_later_commands() {
    let primary = TestPrimary::spawn().await;
    // An API token (user access is off here, but a token sent is still checked).
    let created = Ctl::new(&primary.url).run(&["tokens", "create", "laptop"]).await;
    assert_eq!(created.code, Some(0), "{created:?}");
    let secret = created.stdout.trim().to_owned();
    assert!(secret.starts_with("fdt_"), "{created:?}");

    let ctl = Ctl::new("");
    let login = ctl.run(&["login", "--url", &primary.url, "--token", &secret]).await;
    assert_eq!(login.code, Some(0), "{login:?}");
    assert!(login.stderr.contains("as API token \"laptop\""), "{login:?}");
    let saved = ctl.saved_login();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // No URL or token given: the saved ones are used.
    let tokens = ctl.run(&["tokens"]).await;
    assert_eq!(tokens.code, Some(0), "{tokens:?}");
    let row = tokens.stdout.lines().find(|l| l.contains("laptop")).expect("the token is listed");
    assert!(row.contains("active"), "{tokens:?}");
    let id = row.split_whitespace().next().unwrap().to_owned();

    let revoked = ctl.run(&["tokens", "revoke", &id]).await;
    assert_eq!(revoked.code, Some(0), "{revoked:?}");
    ctl.run(&["nodes"]).await.assert_one_line_error(1, "the token was refused (this API token was revoked)");
    // A login that does not check out is not saved.
    let bad = ctl.run(&["login", "--url", &primary.url, "--token", "fdt_wrong"]).await;
    bad.assert_one_line_error(1, "the token was refused");
    assert!(std::fs::read_to_string(&saved).unwrap().contains(&secret));

    let completions = ctl.run(&["completions", "bash"]).await;
    assert_eq!(completions.code, Some(0), "{completions:?}");
    assert!(completions.stdout.contains("fleetdeck") && completions.stdout.contains("rotate-key"));
}
