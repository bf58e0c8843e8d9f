//! Self-registration with REGISTRATION_TOKEN: a real secondary registers itself, and the
//! endpoint never overwrites what it should not.

use serde_json::json;

use crate::helpers::{NodeProcess, SECONDS, TestPrimary, client, eventually, send};

const TOKEN: &str = "a-registration-token-for-tests";

#[tokio::test]
async fn a_secondary_with_the_token_registers_itself_and_comes_online() {
    let primary = TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", TOKEN)]).await;
    let secondary = NodeProcess::spawn(&[
        ("PRIMARY_NODE_URL".into(), primary.url.clone()),
        ("REGISTRATION_TOKEN".into(), TOKEN.into()),
        ("NODE_NAME".into(), "self-made".into()),
        ("NODE_LABELS".into(), "linux,ssd".into()),
    ])
    .await;
    let info = secondary.node_info().await;
    let id = info["id"].as_str().unwrap().to_owned();
    let node = primary.wait_status(&id, "online", SECONDS).await;
    assert_eq!(node["name"], "self-made");
    assert_eq!(node["labels"], json!(["linux", "ssd"]));
    assert_eq!(node["api_endpoint"], secondary.url);
    // It learned and kept the primary's ID.
    let kept = eventually(SECONDS, "the kept primary ID", || async {
        std::fs::read_to_string(secondary.data_dir.join("primary_node_id")).ok()
    })
    .await;
    assert_eq!(kept.trim(), primary.primary_id());
    assert!(secondary.log().contains("registered with the primary"), "{}", secondary.log());
}

#[tokio::test]
async fn registration_is_idempotent_and_never_overwrites() {
    let primary = TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", TOKEN)]).await;
    let http = client(Some([127, 0, 0, 51]));
    let register = |body: serde_json::Value, token: Option<&str>| {
        let mut req = http.post(format!("{}/api/internal/nodes/register", primary.url)).json(&body);
        if let Some(token) = token {
            req = req.header("X-Registration-Token", token);
        }
        send(req)
    };
    let id = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f";
    let key = "self-registered-key-self-registered-key";
    let body = json!({ "id": id, "name": "reg-1", "api_endpoint": "http://127.0.0.1:9", "api_key": key, "labels": [], "extra": "ignored" });

    let (status, created) = register(body.clone(), Some(TOKEN)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["node"]["status"], "pending");
    let (status, again) = register(body.clone(), Some(TOKEN)).await;
    assert_eq!(status, 200, "same ID and key is an idempotent success: {again}");

    let mut other_key = body.clone();
    other_key["api_key"] = "a-different-key-a-different-key-a-different".into();
    assert_eq!(register(other_key, Some(TOKEN)).await.0, 409);

    let mut same_name = body.clone();
    same_name["id"] = "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e70".into();
    assert_eq!(register(same_name, Some(TOKEN)).await.0, 409);

    let mut primary_id = body.clone();
    primary_id["id"] = primary.primary_id().into();
    primary_id["name"] = "impostor".into();
    assert_eq!(register(primary_id, Some(TOKEN)).await.0, 409);

    let (status, refused) = register(body.clone(), Some("wrong-token-wrong-token")).await;
    assert_eq!(status, 401, "{refused}");
    assert_eq!(register(body.clone(), None).await.0, 401);

    // Still exactly one such node, with its first key.
    let (_, list) = primary.get("/api/nodes?q=reg-1").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(primary.heartbeat(id, key).await.0, 200);
}

#[tokio::test]
async fn without_a_token_configured_self_registration_is_off() {
    let primary = TestPrimary::spawn().await;
    let body = json!({ "id": "0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f", "name": "reg", "api_endpoint": "http://127.0.0.1:9", "api_key": "k".repeat(40) });
    let (status, answer) = send(
        client(None)
            .post(format!("{}/api/internal/nodes/register", primary.url))
            .header("X-Registration-Token", TOKEN)
            .json(&body),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("REGISTRATION_TOKEN"));
}

#[tokio::test]
async fn a_secondary_removed_on_the_primary_registers_again() {
    let primary = TestPrimary::spawn_with(&[("REGISTRATION_TOKEN", TOKEN)]).await;
    let secondary = NodeProcess::spawn(&[
        ("PRIMARY_NODE_URL".into(), primary.url.clone()),
        ("REGISTRATION_TOKEN".into(), TOKEN.into()),
        ("NODE_NAME".into(), "boomerang".into()),
    ])
    .await;
    let id = secondary.node_info().await["id"].as_str().unwrap().to_owned();
    primary.wait_status(&id, "online", SECONDS).await;
    assert_eq!(primary.delete(&format!("/api/nodes/{id}")).await.0, 204);
    // Its next heartbeat is refused, so it registers again and comes back.
    let node = primary.wait_status(&id, "online", SECONDS).await;
    assert_eq!(node["name"], "boomerang");
}
