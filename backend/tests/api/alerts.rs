//! Alerts end to end (SPEC §14), against local receivers speaking each kind's protocol (one
//! HTTP stand-in for webhook, ntfy, Gotify, Discord, Slack and Telegram; aiosmtpd for
//! email): one down and one back message per channel for a killed and restarted secondary;
//! a receiver that was down gets its message after it is back, across a primary restart;
//! flapping summarised; thresholds and failed jobs; retries, refusals and summaries; secrets
//! never shown or logged; and every bad input refused with the field named.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, eventually, free_port};
use crate::stand_ins::{Answer, Receiver, SmtpServer};

const WEBHOOK_KEY: &str = "webhook-signing-key-0123456789";
const NTFY_TOKEN: &str = "tk_ntfy-access-token-abcdef";
const GOTIFY_TOKEN: &str = "gotify-app-token-A1b2C3";
const BOT_TOKEN: &str = "123456:telegram-bot-token-XYZ";
const DISCORD_PATH: &str = "/discord/api/webhooks/1/discord-url-secret";
const SLACK_PATH: &str = "/slack/services/T000/B000/slack-url-secret";

/// Every secret the channels of `every_kind` hold.
fn secrets() -> [&'static str; 6] {
    [WEBHOOK_KEY, NTFY_TOKEN, GOTIFY_TOKEN, BOT_TOKEN, "discord-url-secret", "slack-url-secret"]
}

async fn create(primary: &TestPrimary, path: &str, body: Value) -> String {
    let (status, created) = primary.post(path, body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// A webhook channel to the receiver's `/webhook`; its ID.
async fn webhook(primary: &TestPrimary, receiver: &Receiver, name: &str) -> String {
    let url = format!("{}/webhook", receiver.url);
    create(primary, "/api/alerts/channels", json!({"name": name, "kind": "webhook", "url": url})).await
}

/// One rule per `(name, event)`, to `channel`.
async fn rules(primary: &TestPrimary, channel: &str, rules: &[(&str, &str)]) {
    for (name, event) in rules {
        create(primary, "/api/alerts/rules", json!({"name": name, "event": event, "channels": [channel]}))
            .await;
    }
}

/// One channel of every kind, all to the stand-ins; their IDs.
async fn every_kind(primary: &TestPrimary, receiver: &Receiver, smtp: Option<&SmtpServer>) -> Vec<String> {
    let url = &receiver.url;
    let mut channels = vec![
        json!({"name": "hook", "kind": "webhook", "url": format!("{url}/webhook"), "secret": WEBHOOK_KEY}),
        json!({"name": "phone", "kind": "ntfy", "url": format!("{url}/ntfy/fleet"), "secret": NTFY_TOKEN}),
        json!({"name": "gotify", "kind": "gotify", "url": format!("{url}/gotify"), "secret": GOTIFY_TOKEN}),
        json!({"name": "discord", "kind": "discord", "url": format!("{url}{DISCORD_PATH}")}),
        json!({"name": "slack", "kind": "slack", "url": format!("{url}{SLACK_PATH}")}),
        json!({"name": "telegram", "kind": "telegram", "url": format!("{url}/telegram"), "secret": BOT_TOKEN, "chat_id": "-10042"}),
    ];
    if let Some(smtp) = smtp {
        channels.push(json!({
            "name": "mail", "kind": "email", "url": format!("smtp://127.0.0.1:{}", smtp.port), "tls": "none",
            "from": "Fleetdeck <fleet@example.com>", "to": ["ops@example.com", "oncall@example.com"],
        }));
    }
    let mut ids = Vec::new();
    for channel in channels {
        ids.push(create(primary, "/api/alerts/channels", channel).await);
    }
    ids
}

async fn deliveries(primary: &TestPrimary) -> Vec<Value> {
    let (status, page) = primary.get("/api/alerts/deliveries?limit=1000").await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// Waits until `n` deliveries are delivered; returns all deliveries.
async fn delivered(primary: &TestPrimary, n: usize) -> Vec<Value> {
    eventually(SECONDS, &format!("{n} delivered alerts"), || async {
        let all = deliveries(primary).await;
        (all.iter().filter(|d| d["status"] == "delivered").count() >= n).then_some(all)
    })
    .await
}

fn hmac_hex(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_killed_and_restarted_secondary_gives_one_down_and_one_back_message_on_every_channel() {
    let primary = TestPrimary::spawn().await;
    let receiver = Receiver::start();
    let smtp = SmtpServer::start().await;
    let channels = every_kind(&primary, &receiver, Some(&smtp)).await;
    for (name, event) in [("down", "node_offline"), ("back", "node_online")] {
        create(&primary, "/api/alerts/rules", json!({"name": name, "event": event, "channels": channels}))
            .await;
    }
    let (id, mut secondary) = primary.online_secondary("db-01").await;

    secondary.kill();
    primary.wait_status(&id, "offline", SECONDS).await;
    delivered(&primary, 7).await;
    secondary.restart().await;
    primary.wait_status(&id, "online", SECONDS).await;
    let all = delivered(&primary, 14).await;
    // Nothing more comes, however long one waits.
    primary.sweeps_pass(5).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(deliveries(&primary).await.len(), 14, "{all:#?}");

    // The webhook: the documented body, signed.
    let hooks = receiver.at("/webhook");
    assert_eq!(hooks.len(), 2);
    for hook in &hooks {
        let signature = hook.header("x-fleetdeck-signature").unwrap();
        assert_eq!(signature, format!("sha256={}", hmac_hex(WEBHOOK_KEY, &hook.body)));
        assert_eq!(hook.header("content-type"), Some("application/json"));
    }
    let (down, back) = (hooks[0].json(), hooks[1].json());
    assert_eq!((down["event"].as_str(), down["state"].as_str()), (Some("node_offline"), Some("firing")));
    assert_eq!((back["event"].as_str(), back["state"].as_str()), (Some("node_online"), Some("resolved")));
    assert_eq!(down["node"]["name"], "db-01");
    assert_eq!(down["node"]["status"], "offline");
    assert_eq!(down["node"]["previous_status"], "online");
    assert_eq!(back["node"]["status"], "online");
    assert_eq!(down["rule"]["name"], "down");
    assert!(down["url"].as_str().unwrap().ends_with(&format!("/nodes/{id}")), "{down}");
    assert!(down["text"].as_str().unwrap().contains("db-01 is offline"), "{down}");
    assert!(back["text"].as_str().unwrap().contains("back online"), "{back}");
    assert_eq!(hooks[0].header("x-fleetdeck-delivery"), down["id"].as_str());

    // ntfy: the message as the body, the title, priority and tags as headers, the token.
    let ntfy = receiver.at("/ntfy/fleet");
    assert_eq!(ntfy.len(), 2);
    assert_eq!(ntfy[0].header("title"), Some("db-01 is offline"));
    assert_eq!(ntfy[0].header("priority"), Some("high"));
    assert_eq!(ntfy[0].header("tags"), Some("warning"));
    assert_eq!(ntfy[1].header("priority"), Some("default"));
    assert_eq!(ntfy[0].header("authorization"), Some(format!("Bearer {NTFY_TOKEN}").as_str()));
    assert!(ntfy[0].text().contains("db-01 is offline"));

    // Gotify: POST /message with the app token.
    let gotify = receiver.at("/gotify");
    assert_eq!(gotify.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/gotify/message"; 2]);
    assert_eq!(gotify[0].header("x-gotify-key"), Some(GOTIFY_TOKEN));
    assert_eq!(gotify[0].json()["title"], "db-01 is offline");
    assert_eq!(gotify[0].json()["priority"], 8);

    // Discord and Slack: their webhook JSON.
    let discord = receiver.at("/discord");
    assert_eq!(discord.len(), 2);
    assert!(discord[0].json()["content"].as_str().unwrap().contains("db-01 is offline"));
    assert_eq!(discord[0].json()["allowed_mentions"]["parse"], json!([]));
    let slack = receiver.at("/slack");
    assert_eq!(slack.len(), 2);
    assert!(slack[1].json()["text"].as_str().unwrap().contains("db-01 is back online"));

    // Telegram: the Bot API's sendMessage with the chat.
    let telegram = receiver.at("/telegram");
    assert_eq!(telegram.len(), 2);
    assert_eq!(telegram[0].path, format!("/telegram/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(telegram[0].json()["chat_id"], "-10042");

    // Email: two messages, plain text and HTML, to both recipients.
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "{mails:#?}");
    let mail = mails.iter().find(|m| m.contains("Subject: db-01 is offline")).expect("the down mail");
    assert!(
        mail.contains("multipart/alternative") && mail.contains("text/html") && mail.contains("text/plain")
    );
    assert!(mail.contains("ops@example.com") && mail.contains("oncall@example.com"));

    // Every channel shows how its last delivery went.
    let (_, listed) = primary.get("/api/alerts/channels").await;
    for channel in listed["items"].as_array().unwrap() {
        assert_eq!(channel["last_delivery"]["status"], "delivered", "{channel}");
    }

    // The node's page lists what fired for it.
    let (_, fired) = primary.get(&format!("/api/nodes/{id}/alerts")).await;
    let fired = fired["items"].as_array().unwrap();
    assert_eq!(fired.len(), 2, "{fired:#?}");
    assert_eq!(fired[0]["event"], "node_online");
    assert_eq!(fired[0]["delivered"], 7);
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_alert_once_it_is_back_even_across_a_primary_restart() {
    let mut primary = TestPrimary::spawn().await;
    let mut receiver = Receiver::start();
    let channel = webhook(&primary, &receiver, "hook").await;
    rules(&primary, &channel, &[("new", "node_registered")]).await;
    receiver.down().await;
    primary.add_node("newcomer", "http://127.0.0.1:9").await;
    let failed_once = eventually(SECONDS, "a failed attempt", || async {
        let all = deliveries(&primary).await;
        all.first().filter(|d| d["attempts"] == 1).cloned()
    })
    .await;
    assert_eq!(failed_once["status"], "pending");
    assert!(failed_once["last_error"].as_str().unwrap().contains("cannot connect"), "{failed_once}");
    assert!(failed_once["next_try_at"].is_string());
    assert_eq!(failed_once["event"], "node_registered");

    primary.restart().await;
    receiver.up();
    // The retry is due a few seconds later on the primary's clock.
    primary.clock.advance(Duration::from_secs(60));
    let all = delivered(&primary, 1).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["attempts"], 2);
    let hooks = receiver.at("/webhook");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["node"]["name"], "newcomer");
    assert!(hooks[0].header("x-fleetdeck-signature").is_none(), "no secret, no signature");
}

#[tokio::test]
async fn a_flapping_node_is_summarised_not_repeated() {
    let primary = TestPrimary::spawn().await;
    let receiver = Receiver::start();
    let channel = webhook(&primary, &receiver, "hook").await;
    rules(&primary, &channel, &[("down", "node_offline"), ("back", "node_online")]).await;
    let (id, secondary) = primary.online_secondary("flappy").await;
    for _ in 0..4 {
        secondary.pause();
        primary.wait_status(&id, "offline", SECONDS).await;
        // Long enough for the rules (evaluated every second) to see it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        secondary.resume();
        primary.wait_status(&id, "online", SECONDS).await;
    }
    // One down and one back, then quiet while it flaps.
    delivered(&primary, 2).await;
    primary.sweeps_pass(3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.at("/webhook").len(), 2);
    // Once it has been steady for the flap window: one message that says so.
    primary.clock.advance(Duration::from_secs(11 * 60));
    delivered(&primary, 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hooks = receiver.at("/webhook");
    assert_eq!(hooks.len(), 3);
    let summary = hooks[2].json();
    assert_eq!(summary["state"], "flapping");
    let text = summary["text"].as_str().unwrap();
    assert!(text.contains("flappy went down 3 times") && text.contains("back online now"), "{text}");
}

#[tokio::test]
async fn a_threshold_rule_fires_once_and_recovers_once_and_a_failed_job_alerts_once() {
    // The node sends heartbeats from the test; no probes mark it offline meanwhile.
    let primary = TestPrimary::spawn_with(&[("HEALTH_CHECK_INTERVAL", "1h")]).await;
    let receiver = Receiver::start();
    let channel = webhook(&primary, &receiver, "hook").await;
    create(
        &primary,
        "/api/alerts/rules",
        json!({"name": "hot", "event": "cpu_above", "threshold": 90, "for": "1m", "channels": [channel]}),
    )
    .await;
    let added = primary.add_node("busy", "http://127.0.0.1:9").await;
    let (id, key) = (added["node"]["id"].as_str().unwrap(), added["api_key"].as_str().unwrap());
    let beat = |cpu: f64| {
        let body = json!({
            "version": "test", "labels": [], "max_jobs": 0, "running_jobs": [], "uptime_secs": 1,
            "stats": {
                "hostname": "busy", "os": "linux", "kernel": "6", "version": "test", "uptime_secs": 1,
                "cpu_count": 4, "cpu_usage_percent": cpu, "load_average": {"one": 1.0, "five": 1.0, "fifteen": 1.0},
                "memory": {"total_bytes": 100, "used_bytes": 10, "available_bytes": 90}, "disks": [],
                "collected_at": null,
            },
        });
        let request = primary
            .http
            .post(format!("{}/api/internal/nodes/{id}/heartbeat", primary.url))
            .header("X-Node-ID", id)
            .header("X-Node-API-Key", key)
            .json(&body);
        async move {
            let (status, answer) = crate::helpers::send(request).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    // Above the threshold, but not yet for a minute: nothing.
    beat(97.0).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(deliveries(&primary).await.is_empty());
    primary.clock.advance(Duration::from_secs(61));
    beat(97.0).await;
    let all = delivered(&primary, 1).await;
    assert!(
        all[0]["text"].as_str().unwrap().contains("CPU on busy is at 97.0%, above 90.0% for 1m"),
        "{all:#?}"
    );
    // Still hot: nothing more. Cooler: one recovery.
    beat(98.0).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(deliveries(&primary).await.len(), 1);
    beat(20.0).await;
    delivered(&primary, 2).await;
    let hooks = receiver.at("/webhook");
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        (hooks[0].json()["value"].clone(), hooks[0].json()["threshold"].clone()),
        (json!(97.0), json!(90.0))
    );
    assert_eq!(hooks[1].json()["state"], "resolved");

    // A job that fails on the primary: one message, linking to the job.
    rules(&primary, &channel, &[("jobs", "job_failed")]).await;
    let (status, job) = primary.post("/api/jobs", json!({"command": "exit 3", "name": "nightly"})).await;
    assert_eq!(status, 201, "{job}");
    let job_id = job["id"].as_str().unwrap();
    delivered(&primary, 3).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hooks = receiver.at("/webhook");
    assert_eq!(hooks.len(), 3);
    let failed = hooks[2].json();
    assert_eq!(failed["event"], "job_failed");
    assert_eq!(failed["job"]["id"], job_id);
    assert_eq!(failed["job"]["exit_code"], 3);
    assert!(
        failed["text"].as_str().unwrap().contains("nightly on primary failed with exit code 3"),
        "{failed}"
    );
    assert!(failed["url"].as_str().unwrap().ends_with(&format!("/jobs/{job_id}")));
}

#[tokio::test]
async fn receivers_that_refuse_fail_redirect_hang_or_answer_garbage_are_recorded_never_stuck() {
    let primary = TestPrimary::spawn().await;
    let receiver = Receiver::start();
    let hook =
        |path: &str| json!({"name": path, "kind": "webhook", "url": format!("{}/{path}", receiver.url)});
    let channel = create(&primary, "/api/alerts/channels", hook("refusing")).await;
    // Longer than a send's own 10 s limit, which the hanging receiver runs into.
    let patient = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let test = |id: String| {
        let (primary, patient) = (&primary, &patient);
        async move {
            let request = patient.post(format!("{}/api/alerts/channels/{id}/test", primary.url));
            let (status, result) = crate::helpers::send(request).await;
            assert_eq!(status, 200, "{result}");
            result
        }
    };
    // The test button says what the receiver answered.
    let ok = test(channel.clone()).await;
    assert_eq!((ok["ok"].clone(), ok["status"].clone()), (json!(true), json!(200)));
    assert_eq!(receiver.at("/refusing")[0].json()["state"], "test");
    receiver.answer(Answer::Status(404, None));
    let refused = test(channel.clone()).await;
    assert_eq!((refused["ok"].clone(), refused["status"].clone()), (json!(false), json!(404)));
    assert!(refused["detail"].as_str().unwrap().contains("stand-in says no"), "{refused}");
    receiver.answer(Answer::Redirect);
    let redirected = test(channel.clone()).await;
    assert!(redirected["detail"].as_str().unwrap().contains("redirects are not followed"), "{redirected}");
    receiver.answer(Answer::Hang);
    let hung = test(channel.clone()).await;
    assert!(hung["detail"].as_str().unwrap().contains("did not answer in time"), "{hung}");
    receiver.answer(Answer::Accept);
    // Garbage: something that is not HTTP at all.
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage_url = format!("http://{}/hook", garbage.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        while let Ok((mut socket, _)) = garbage.accept().await {
            let _ = socket.write_all(b"\x00\x01 this is not HTTP\r\n\r\n").await;
        }
    });
    let junk = create(
        &primary,
        "/api/alerts/channels",
        json!({"name": "junk", "kind": "webhook", "url": garbage_url}),
    )
    .await;
    let answer = test(junk).await;
    assert_eq!(answer["ok"], false, "{answer}");

    // Through the outbox: a 404 is final, a 503 retried later, a 429 after its Retry-After.
    rules(&primary, &channel, &[("new", "node_registered")]).await;
    let outcome = |answer: Answer, name: &'static str| {
        let (primary, receiver) = (&primary, &receiver);
        async move {
            receiver.answer(answer);
            primary.add_node(name, "http://127.0.0.1:9").await;
            eventually(SECONDS, "an attempt", || async {
                deliveries(primary)
                    .await
                    .into_iter()
                    .find(|d| d["node"]["name"] == name && d["attempts"] == 1)
            })
            .await
        }
    };
    let gone = outcome(Answer::Status(410, None), "gone").await;
    assert_eq!(gone["status"], "failed");
    assert!(gone["next_try_at"].is_null());
    assert!(gone["last_error"].as_str().unwrap().starts_with("HTTP 410"), "{gone}");
    let busy = outcome(Answer::Status(503, None), "busy").await;
    assert_eq!(busy["status"], "pending");
    assert!(busy["last_error"].as_str().unwrap().starts_with("HTTP 503"));
    let limited = outcome(Answer::Status(429, Some("120")), "limited").await;
    assert_eq!(limited["status"], "pending");
    let (at, next) = (limited["last_attempt_at"].as_str().unwrap(), limited["next_try_at"].as_str().unwrap());
    let wait = humantime::parse_rfc3339(next)
        .unwrap()
        .duration_since(humantime::parse_rfc3339(at).unwrap())
        .unwrap();
    assert_eq!(wait, Duration::from_secs(120), "Retry-After is honoured");
    // The queue moves on: a later alert is delivered while those wait.
    receiver.answer(Answer::Accept);
    primary.add_node("fine", "http://127.0.0.1:9").await;
    eventually(SECONDS, "the later alert", || async {
        deliveries(&primary)
            .await
            .into_iter()
            .find(|d| d["node"]["name"] == "fine" && d["status"] == "delivered")
    })
    .await;
    // And the waiting ones go out when due.
    primary.clock.advance(Duration::from_secs(180));
    eventually(SECONDS, "the retried alerts", || async {
        let all = deliveries(&primary).await;
        (all.iter().filter(|d| d["status"] == "delivered").count() == 3).then_some(())
    })
    .await;
    // Every attempt through the outbox is counted for Prometheus by kind and outcome (the
    // test button's sends are not deliveries).
    let (_, text) = crate::metrics::scrape(&primary.url, None).await;
    for (outcome, n) in [("delivered", 3.0), ("pending", 2.0), ("failed", 1.0)] {
        let series = format!("fleetdeck_alert_deliveries_total{{kind=\"webhook\",outcome=\"{outcome}\"}}");
        assert_eq!(crate::metrics::sample(&text, &series), Some(n), "{series} in:\n{text}");
    }
}

#[tokio::test]
async fn with_alerts_block_private_a_private_receiver_is_refused_and_recorded() {
    let primary = TestPrimary::spawn_with(&[("ALERTS_BLOCK_PRIVATE", "true")]).await;
    let receiver = Receiver::start();
    let channel = webhook(&primary, &receiver, "lan").await;
    let (_, result) = primary.post(&format!("/api/alerts/channels/{channel}/test"), Value::Null).await;
    assert_eq!(result["ok"], false);
    assert!(result["detail"].as_str().unwrap().contains("ALERTS_BLOCK_PRIVATE"), "{result}");
    rules(&primary, &channel, &[("new", "node_registered")]).await;
    primary.add_node("n1", "http://127.0.0.1:9").await;
    let refused = eventually(SECONDS, "the refused attempt", || async {
        deliveries(&primary).await.into_iter().find(|d| d["status"] == "failed")
    })
    .await;
    assert!(refused["last_error"].as_str().unwrap().contains("private address"), "{refused}");
    assert!(receiver.at("/").is_empty());
}

#[tokio::test]
async fn many_waiting_messages_go_as_one_summary_when_the_channel_asks() {
    let primary = TestPrimary::spawn().await;
    let mut receiver = Receiver::start();
    let channel = create(
        &primary,
        "/api/alerts/channels",
        json!({"name": "digest", "kind": "webhook", "url": format!("{}/webhook", receiver.url), "summary_over": 2}),
    )
    .await;
    rules(&primary, &channel, &[("new", "node_registered")]).await;
    receiver.down().await;
    for i in 0..5 {
        primary.add_node(&format!("n{i}"), "http://127.0.0.1:9").await;
    }
    eventually(SECONDS, "five failed attempts", || async {
        let all = deliveries(&primary).await;
        (all.len() == 5 && all.iter().all(|d| d["attempts"].as_u64() >= Some(1))).then_some(())
    })
    .await;
    receiver.up();
    primary.clock.advance(Duration::from_secs(300));
    delivered(&primary, 5).await;
    let hooks = receiver.at("/webhook");
    assert_eq!(hooks.len(), 1, "one summary");
    let summary = hooks[0].json();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["count"], 5);
    assert_eq!(summary["alerts"].as_array().unwrap().len(), 5);
    assert_eq!(summary["title"], "5 Fleetdeck alerts");
}

#[tokio::test]
async fn channels_and_rules_are_kept_edited_and_removed_with_secrets_never_shown_and_every_change_audited() {
    let primary = TestPrimary::spawn().await;
    let receiver = Receiver::start();
    let ids = every_kind(&primary, &receiver, None).await;
    let (_, list) = primary.get("/api/alerts/channels").await;
    let shown = list.to_string();
    for secret in secrets() {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    let by_name = |name: &str| items.iter().find(|c| c["name"] == name).unwrap().clone();
    assert_eq!(by_name("hook")["has_secret"], true);
    assert_eq!(by_name("slack")["url"], "http://127.0.0.1/…");
    assert_eq!(by_name("telegram")["chat_id"], "-10042");

    // An edit keeps what it leaves out (the secret too); "" removes the secret.
    let hook = &ids[0];
    let (status, edited) =
        primary.put(&format!("/api/alerts/channels/{hook}"), json!({"name": "hook-renamed"})).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!((edited["name"].clone(), edited["has_secret"].clone()), (json!("hook-renamed"), json!(true)));
    let (_, edited) = primary.put(&format!("/api/alerts/channels/{hook}"), json!({"secret": ""})).await;
    assert_eq!(edited["has_secret"], false);
    let (status, conflict) =
        primary.put(&format!("/api/alerts/channels/{hook}"), json!({"name": "SLACK"})).await;
    assert_eq!(status, 409, "{conflict}");

    let (status, rule) = primary
        .post(
            "/api/alerts/rules",
            json!({"name": "disks", "event": "disk_above", "threshold": 85.5, "for": "10m", "labels": ["db"], "channels": [ids[1], ids[2]]}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!((rule["for"].clone(), rule["threshold"].clone()), (json!("10m"), json!(85.5)));
    let rule_id = rule["id"].as_str().unwrap();
    let (_, muted) = primary
        .put(&format!("/api/alerts/rules/{rule_id}"), json!({"muted_until": "2099-01-01T00:00:00Z"}))
        .await;
    assert_eq!(muted["muted_until"], "2099-01-01T00:00:00.000Z");
    assert_eq!(muted["for"], "10m", "kept");
    let (_, unmuted) =
        primary.put(&format!("/api/alerts/rules/{rule_id}"), json!({"muted_until": null})).await;
    assert!(unmuted["muted_until"].is_null());
    // Removing a channel takes it out of the rules that named it.
    assert_eq!(primary.delete(&format!("/api/alerts/channels/{}", ids[1])).await.0, 204);
    let (_, rule) = primary.get(&format!("/api/alerts/rules/{rule_id}")).await;
    assert_eq!(rule["channels"], json!([ids[2]]));
    assert_eq!(primary.delete(&format!("/api/alerts/rules/{rule_id}")).await.0, 204);
    assert_eq!(primary.get(&format!("/api/alerts/rules/{rule_id}")).await.0, 404);

    let (_, audit) = primary.get("/api/audit?limit=100").await;
    let actions: Vec<&str> =
        audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in [
        "alert_channel_added",
        "alert_channel_updated",
        "alert_channel_removed",
        "alert_rule_added",
        "alert_rule_updated",
        "alert_rule_removed",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

#[tokio::test]
async fn secrets_never_reach_the_log_or_an_answer_even_when_deliveries_fail() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::helpers::TestDb::new(dir.path());
    let mut process = NodeProcess::spawn(
        &[("NODE_IS_PRIMARY", "true"), ("DATABASE_URL", db.url.as_str())]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .await;
    let receiver = Receiver::start();
    receiver.answer(Answer::Status(500, None));
    let http = crate::helpers::client(None);
    let url = process.url.clone();
    let mut answers = String::new();
    for channel in [
        json!({"name": "hook", "kind": "webhook", "url": format!("{}/webhook", receiver.url), "secret": WEBHOOK_KEY}),
        json!({"name": "telegram", "kind": "telegram", "url": format!("{}/telegram", receiver.url), "secret": BOT_TOKEN, "chat_id": "1"}),
        json!({"name": "slack", "kind": "slack", "url": format!("{}{SLACK_PATH}", receiver.url)}),
        // Nobody listens here: connection errors name no URL either.
        json!({"name": "nowhere", "kind": "slack", "url": format!("http://127.0.0.1:{}{SLACK_PATH}", free_port())}),
    ] {
        let (status, created) =
            crate::helpers::send(http.post(format!("{url}/api/alerts/channels")).json(&channel)).await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap();
        let (_, tested) =
            crate::helpers::send(http.post(format!("{url}/api/alerts/channels/{id}/test"))).await;
        answers.push_str(&tested.to_string());
        let rule = json!({"name": format!("r-{id}"), "event": "node_registered", "channels": [id]});
        let (status, _) =
            crate::helpers::send(http.post(format!("{url}/api/alerts/rules")).json(&rule)).await;
        assert_eq!(status, 201);
    }
    let node = json!({"name": "n1", "api_endpoint": "http://127.0.0.1:9"});
    crate::helpers::send(http.post(format!("{url}/api/nodes")).json(&node)).await;
    let all = eventually(SECONDS, "failed attempts", || async {
        let (_, page) = crate::helpers::send(http.get(format!("{url}/api/alerts/deliveries"))).await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 4 && items.iter().all(|d| d["attempts"].as_u64() >= Some(1))).then_some(page)
    })
    .await;
    answers.push_str(&all.to_string());
    let (_, channels) = crate::helpers::send(http.get(format!("{url}/api/alerts/channels"))).await;
    answers.push_str(&channels.to_string());
    process.terminate();
    let log = process.log();
    assert!(log.contains("alert not delivered"), "the failures are logged");
    for secret in [WEBHOOK_KEY, BOT_TOKEN, "slack-url-secret"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!answers.contains(secret), "{secret} in an answer: {answers}");
    }
}

#[tokio::test]
async fn bad_channels_and_rules_are_refused_naming_the_field_and_nothing_is_created() {
    let primary = TestPrimary::spawn().await;
    let good = create(
        &primary,
        "/api/alerts/channels",
        json!({"name": "ok", "kind": "webhook", "url": "https://hooks.example.com/x"}),
    )
    .await;
    let bad_channels = [
        (json!({"name": "x", "kind": "pager", "url": "https://a.example"}), "kind"),
        (json!({"name": "x", "kind": "webhook", "url": "file:///etc/passwd"}), "url"),
        (json!({"name": "x", "kind": "webhook", "url": "gopher://a.example/1"}), "url"),
        (json!({"name": "x", "kind": "webhook", "url": "http://[::1"}), "url"),
        (json!({"name": "x", "kind": "webhook", "url": "not a url"}), "url"),
        (json!({"name": "x", "kind": "webhook", "url": "https://user:pw@a.example/"}), "url"),
        (json!({"name": "x", "kind": "webhook"}), "url"),
        (json!({"name": "", "kind": "webhook", "url": "https://a.example"}), "name"),
        (json!({"name": "  ", "kind": "webhook", "url": "https://a.example"}), "name"),
        (json!({"kind": "webhook", "url": "https://a.example"}), "name"),
        (json!({"name": "x", "url": "https://a.example"}), "kind"),
        (json!({"name": "x", "kind": "gotify", "url": "https://a.example"}), "secret"),
        (json!({"name": "x", "kind": "telegram", "secret": "t"}), "chat_id"),
        (json!({"name": "x", "kind": "email", "url": "smtp://m.example", "to": ["a@example.com"]}), "from"),
        (
            json!({"name": "x", "kind": "email", "url": "smtp://m.example", "from": "f@example.com", "to": ["nope"]}),
            "to",
        ),
        (
            json!({"name": "x", "kind": "email", "url": "https://m.example", "from": "f@example.com", "to": ["a@example.com"]}),
            "url",
        ),
        (json!({"name": "x", "kind": "webhook", "url": "https://a.example", "chat_id": "1"}), "chat_id"),
        (
            json!({"name": "x", "kind": "webhook", "url": "https://a.example", "summary_over": 0}),
            "summary_over",
        ),
        (json!({"name": "x", "kind": "webhook", "url": "https://a.example", "colour": "red"}), "colour"),
    ];
    for (body, field) in bad_channels {
        let (status, answer) = primary.post("/api/alerts/channels", body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body} → {message} (should name {field})");
    }
    let (_, list) = primary.get("/api/alerts/channels").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "nothing created");

    let missing = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
    let bad_rules = [
        (json!({"name": "r", "event": "node_exploded", "channels": [good]}), "event"),
        (json!({"name": "r", "event": "node_offline", "channels": [missing]}), "channels"),
        (json!({"name": "r", "event": "node_offline", "channels": ["nope"]}), "channels"),
        (json!({"name": "r", "event": "node_offline", "channels": []}), "channels"),
        (json!({"name": "r", "event": "cpu_above", "threshold": 101, "channels": [good]}), "threshold"),
        (json!({"name": "r", "event": "cpu_above", "threshold": -1, "channels": [good]}), "threshold"),
        (json!({"name": "r", "event": "cpu_above", "channels": [good]}), "threshold"),
        (json!({"name": "r", "event": "node_offline", "threshold": 50, "channels": [good]}), "threshold"),
        (json!({"name": "r", "event": "node_offline", "for": "soon", "channels": [good]}), "for"),
        (json!({"name": "r", "event": "node_offline", "for": "2d", "channels": [good]}), "for"),
        (json!({"name": "r", "event": "job_failed", "for": "5m", "channels": [good]}), "for"),
        (json!({"name": "", "event": "node_offline", "channels": [good]}), "name"),
        (
            json!({"name": "r", "event": "node_offline", "labels": ["no spaces"], "channels": [good]}),
            "labels",
        ),
        (json!({"name": "r", "event": "node_offline", "nodes": [missing], "channels": [good]}), "nodes"),
        (
            json!({"name": "r", "event": "node_offline", "muted_until": "tomorrow", "channels": [good]}),
            "muted_until",
        ),
    ];
    for (body, field) in bad_rules {
        let (status, answer) = primary.post("/api/alerts/rules", body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body} → {message} (should name {field})");
    }
    let (_, rules) = primary.get("/api/alerts/rules").await;
    assert!(rules["items"].as_array().unwrap().is_empty(), "nothing created");
    let (status, _) = primary.get("/api/alerts/deliveries?status=lost").await;
    assert_eq!(status, 400);
    let (status, _) = primary.get(&format!("/api/alerts/channels/{missing}")).await;
    assert_eq!(status, 404);
}
