//! Outbound nodes: a secondary the primary cannot reach (no listening port at all, and an
//! advertised endpoint nothing listens on) keeps a socket open to the primary, and everything
//! the primary does to a node goes over it: probes, jobs with output, cancels. Paused, it
//! goes offline like any node; the primary restarted (its socket dropped mid-job), it is
//! back within seconds and the job's output and result still arrive, once.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest as _};

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, eventually, parse_env};
use crate::stand_ins::recording_server;

/// A node added on the primary with an endpoint nothing listens on, started outbound.
async fn outbound_node(primary: &TestPrimary, name: &str) -> (String, String, NodeProcess) {
    let added = primary.add_node(name, "http://127.0.0.1:1").await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    let key = added["api_key"].as_str().unwrap().to_owned();
    let node = NodeProcess::spawn_outbound(&parse_env(added["env"].as_str().unwrap())).await;
    (id, key, node)
}

async fn job(primary: &TestPrimary, id: &str) -> Value {
    primary.get(&format!("/api/jobs/{id}")).await.1
}

async fn wait_job(primary: &TestPrimary, id: &str, status: &str) -> Value {
    eventually(SECONDS, &format!("job {id} {status}"), || async {
        let job = job(primary, id).await;
        (job["status"] == status).then_some(job)
    })
    .await
}

async fn output(primary: &TestPrimary, id: &str) -> String {
    let response = primary.http.get(format!("{}/api/jobs/{id}/logs/raw", primary.url)).send().await.unwrap();
    response.text().await.unwrap()
}

#[tokio::test]
async fn an_outbound_node_nothing_can_reach_is_probed_runs_and_cancels_jobs_goes_offline_and_comes_back() {
    let mut primary = TestPrimary::spawn().await;
    let (id, _key, node) = outbound_node(&primary, "behind-nat").await;
    assert!(node.url.is_empty(), "no listening port");
    eventually(SECONDS, "the node online, known as outbound", || async {
        let node = primary.node(&id).await;
        (node["status"] == "online" && node["connect"] == "outbound").then_some(())
    })
    .await;

    // Probed over its socket: "check now" and the checker's sweeps succeed.
    let (status, checked) = primary.post(&format!("/api/nodes/{id}/check"), Value::Null).await;
    assert_eq!(status, 200);
    assert!(checked["error"].is_null(), "{checked}");
    primary.sweeps_pass(3).await;
    let node_now = primary.node(&id).await;
    assert_eq!(
        (node_now["status"].as_str(), node_now["consecutive_failures"].as_u64()),
        (Some("online"), Some(0))
    );

    // A job runs there, with its output.
    let (_, submitted) = primary
        .post("/api/jobs", json!({ "command": "echo hello from behind the NAT", "node_id": id }))
        .await;
    let done = wait_job(&primary, submitted["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["exit_code"], 0);
    assert_eq!(output(&primary, submitted["id"].as_str().unwrap()).await, "hello from behind the NAT\n");

    // A cancel reaches it over the socket too.
    let (_, long) = primary.post("/api/jobs", json!({ "command": "sleep 60", "node_id": id })).await;
    let long_id = long["id"].as_str().unwrap();
    wait_job(&primary, long_id, "running").await;
    assert_eq!(primary.post(&format!("/api/jobs/{long_id}/cancel"), Value::Null).await.0, 202);
    wait_job(&primary, long_id, "cancelled").await;

    // Paused (its socket silent, its heartbeats stopped): offline by the usual table; back
    // when it resumes.
    node.pause();
    primary.wait_status(&id, "offline", SECONDS).await;
    node.resume();
    primary.wait_status(&id, "online", SECONDS).await;

    // The primary restarted while a job runs: the socket drops, the node reconnects within
    // seconds, and the job's output and result arrive, from its one run.
    let (_, running) =
        primary.post("/api/jobs", json!({ "command": "sleep 2; echo survived", "node_id": id })).await;
    let running_id = running["id"].as_str().unwrap().to_owned();
    wait_job(&primary, &running_id, "running").await;
    primary.restart().await;
    let finished = wait_job(&primary, &running_id, "succeeded").await;
    assert_eq!(finished["attempt"], 1, "not dispatched again: {finished}");
    assert_eq!(output(&primary, &running_id).await, "survived\n");
    eventually(SECONDS, "the node's socket back on the restarted primary", || async {
        let registry = primary.app().state().registry().unwrap().clone();
        registry.tunnels().holds(&fleetdeck::nodes::NodeId::parse(&id).unwrap()).then_some(())
    })
    .await;
    let (_, checked) = primary.post(&format!("/api/nodes/{id}/check"), Value::Null).await;
    assert!(checked["error"].is_null(), "{checked}");
    assert!(node.log().contains("reconnecting"), "{}", node.log());
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the socket as `as_id` with `key` for the path of `path_id`: the socket, or the
/// HTTP status of the refusal.
async fn open_socket(primary: &TestPrimary, path_id: &str, as_id: &str, key: &str) -> Result<Socket, u16> {
    let url = format!("{}/api/internal/nodes/{path_id}/connect", primary.url.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("X-Node-ID", as_id.parse().unwrap());
    request.headers_mut().insert("X-Node-API-Key", key.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_socket_with_a_bad_key_or_another_nodes_credentials_is_refused_at_the_upgrade() {
    let primary = TestPrimary::spawn().await;
    let first = primary.add_node("first", "http://127.0.0.1:1").await;
    let second = primary.add_node("second", "http://127.0.0.1:1").await;
    let (first_id, first_key) = (first["node"]["id"].as_str().unwrap(), first["api_key"].as_str().unwrap());
    let second_id = second["node"]["id"].as_str().unwrap();
    let wrong_key = "a-key-nobody-has-a-key-nobody-has-a-key-nobody";
    let refused = |outcome: Result<Socket, u16>| outcome.err();
    assert_eq!(refused(open_socket(&primary, first_id, first_id, wrong_key).await), Some(401), "a bad key");
    assert_eq!(
        refused(open_socket(&primary, first_id, second_id, first_key).await),
        Some(401),
        "another node's ID"
    );
    assert_eq!(
        refused(open_socket(&primary, second_id, first_id, first_key).await),
        Some(403),
        "for another node"
    );
    let primary_id = primary.primary_id();
    assert_eq!(refused(open_socket(&primary, &primary_id, &primary_id, wrong_key).await), Some(401));
    let registry = primary.app().state().registry().unwrap().clone();
    assert_eq!(registry.tunnels().count(), 0, "nothing opened by a refused upgrade");
    let _socket = open_socket(&primary, first_id, first_id, first_key).await.expect("its own credentials");
    assert_eq!(registry.tunnels().count(), 1);
    // The node removed on the primary: its open socket goes too (its key is checked at
    // every ping, every 15 s).
    assert_eq!(primary.delete(&format!("/api/nodes/{first_id}")).await.0, 204);
    eventually(SECONDS, "the removed node's socket closed", || async {
        (registry.tunnels().count() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_socket_upgrade_carries_the_access_service_token() {
    // A stand-in for Cloudflare Access that refuses everything, recording what came.
    let (gate, heads) = recording_server(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec());
    let id = "0190f6c2-8f5a-7c1e-9a43-00000000abcd";
    let _node = NodeProcess::spawn(&[
        ("NODE_CONNECT".into(), "outbound".into()),
        ("NODE_ID".into(), id.into()),
        ("PRIMARY_NODE_URL".into(), gate),
        ("PRIMARY_NODE_ID".into(), "0190f6c2-8f5a-7c1e-9a43-00000000dcba".into()),
        ("CF_ACCESS_CLIENT_ID".into(), "access-client.id".into()),
        ("CF_ACCESS_CLIENT_SECRET".into(), "access-client-secret-value".into()),
    ])
    .await;
    let upgrade = eventually(SECONDS, "the socket's upgrade request", || async {
        let heads = heads.lock().unwrap();
        heads.iter().find(|h| h.starts_with(&format!("GET /api/internal/nodes/{id}/connect "))).cloned()
    })
    .await
    .to_ascii_lowercase();
    for header in [
        "upgrade: websocket",
        "cf-access-client-id: access-client.id",
        "cf-access-client-secret: access-client-secret-value",
    ] {
        assert!(upgrade.contains(header), "{header} in\n{upgrade}");
    }
}

/// A host of its own for a node: a network namespace joined to this one by a veth pair
/// (10.213.N.0/30, this side .1, the node's .2). Removed, with the pair, when dropped.
struct Netns {
    name: String,
    host_ip: String,
    node_ip: String,
}

impl Netns {
    /// `None` (with the reason) where namespaces cannot be made: not root, no `ip`.
    fn create() -> Result<Netns, String> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = (std::process::id() + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) % 250 + 1;
        let name = format!("fdtest{n}");
        let (host_veth, node_veth) = (format!("fdh{n}"), format!("fdn{n}"));
        let net =
            Netns { name: name.clone(), host_ip: format!("10.213.{n}.1"), node_ip: format!("10.213.{n}.2") };
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = std::process::Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
            }
        };
        // A namespace left by an earlier run that was killed goes first.
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let (host_cidr, node_cidr) = (format!("{}/30", net.host_ip), format!("{}/30", net.node_ip));
        let steps: [&[&str]; 7] = [
            &["link", "add", &host_veth, "type", "veth", "peer", "name", &node_veth],
            &["link", "set", &node_veth, "netns", &name],
            &["addr", "add", &host_cidr, "dev", &host_veth],
            &["link", "set", &host_veth, "up"],
            &["-n", &name, "addr", "add", &node_cidr, "dev", &node_veth],
            &["-n", &name, "link", "set", &node_veth, "up"],
            &["-n", &name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(step)?; // On failure `net` is dropped: the namespace goes.
        }
        Ok(net)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the pair.
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[tokio::test]
async fn an_outbound_node_on_a_host_of_its_own_that_only_dials_out_joins_and_runs_jobs() {
    let net = match Netns::create() {
        Ok(net) => net,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("cannot make a network namespace in CI: {why}")
        }
        Err(why) => return eprintln!("skipped: cannot make a network namespace here ({why})"),
    };
    // The primary listens on its side of the link only.
    let address = format!("{}:0", net.host_ip);
    let primary = TestPrimary::spawn_with(&[("SERVER_ADDRESS", &address)]).await;
    let advertised = format!("http://{}:8080", net.node_ip);
    let added = primary.add_node("own-host", &advertised).await;
    let id = added["node"]["id"].as_str().unwrap().to_owned();
    let node = NodeProcess::spawn_outbound_in(&net.name, &parse_env(added["env"].as_str().unwrap())).await;
    eventually(SECONDS, "the node online, outbound", || async {
        let n = primary.node(&id).await;
        (n["status"] == "online" && n["connect"] == "outbound").then_some(())
    })
    .await;
    // Nothing answers where it says it is; the primary reaches it all the same.
    let direct = reqwest::Client::new()
        .get(format!("{advertised}/api/health"))
        .timeout(std::time::Duration::from_secs(2));
    assert!(direct.send().await.is_err(), "the node has no port");
    let (_, job) =
        primary.post("/api/jobs", json!({ "command": "echo from its own host", "node_id": id })).await;
    let done = wait_job(&primary, job["id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(done["exit_code"], 0, "{}", node.log());
    assert_eq!(output(&primary, job["id"].as_str().unwrap()).await, "from its own host\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_outbound_nodes_behind_one_address_all_connect_and_their_address_is_not_locked_out() {
    use fleetdeck::nodes::registry::NewNode;
    use fleetdeck::nodes::{Labels, NodeName, NodeUrl};
    use futures_util::StreamExt as _;

    // More nodes behind one NAT address than the primary's cap of connections per address.
    const NODES: usize = 300;
    let primary = TestPrimary::spawn().await;
    let registry = primary.app().state().registry().unwrap().clone();
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let key = fleetdeck::secrets::random_token(32);
        let issued = registry
            .create(NewNode {
                id: None,
                name: NodeName::parse(&format!("nat-{i:03}")).unwrap(),
                api_endpoint: NodeUrl::parse("http://127.0.0.1:1").unwrap(),
                api_key: Some(fleetdeck::secrets::ApiKey::parse(&key).unwrap()),
                labels: Labels::default(),
            })
            .await
            .unwrap();
        nodes.push((issued.node.id.to_string(), key));
    }
    let behind_nat = std::net::Ipv4Addr::new(127, 0, 0, 72);
    let address: std::net::SocketAddr = primary.url.trim_start_matches("http://").parse().unwrap();
    let mut sockets = Vec::new();
    for (id, key) in &nodes {
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.bind(std::net::SocketAddr::new(behind_nat.into(), 0)).unwrap();
        let stream = tcp.connect(address).await.unwrap();
        let mut request =
            format!("ws://{address}/api/internal/nodes/{id}/connect").into_client_request().unwrap();
        request.headers_mut().insert("X-Node-ID", id.parse().unwrap());
        request.headers_mut().insert("X-Node-API-Key", key.parse().unwrap());
        let (mut socket, _) =
            tokio_tungstenite::client_async(request, stream).await.expect("the upgrade is accepted");
        assert!(matches!(socket.next().await, Some(Ok(tungstenite::Message::Text(_)))), "the hello");
        sockets.push(socket);
    }
    assert_eq!(registry.tunnels().count(), NODES);
    // Their open sockets do not count against the address: its plain requests still pass.
    let (status, _) = crate::helpers::send(
        crate::helpers::client(Some([127, 0, 0, 72])).get(format!("{}/api/health", primary.url)),
    )
    .await;
    assert_eq!(status, 200);
}
