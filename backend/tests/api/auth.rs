//! User access: GitHub login through a local stand-in (the real redirect flow), sessions
//! and their revocation, same-origin checks, API tokens, Cloudflare Access assertions, and
//! the audit log.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestPrimary, client, heartbeat_from, send};
use crate::stand_ins::{self, GitHubState, SigningKey, StandIn};

const JWT_SECRET: &str = "a-jwt-secret-for-tests-that-is-long-enough";

async fn github_primary(allowed: &str) -> (TestPrimary, StandIn<GitHubState>) {
    github_primary_with(allowed, &[]).await
}

async fn github_primary_with(allowed: &str, extra: &[(&str, &str)]) -> (TestPrimary, StandIn<GitHubState>) {
    let github = stand_ins::github();
    let auth_url = format!("{}/login/oauth/authorize", github.url);
    let token_url = format!("{}/login/oauth/access_token", github.url);
    let mut vars = vec![
        ("AUTH_ENABLED", "true"),
        ("JWT_SECRET", JWT_SECRET),
        ("GITHUB_CLIENT_ID", "test-client"),
        ("GITHUB_CLIENT_SECRET", "test-secret"),
        ("GITHUB_ALLOWED_USERS", allowed),
        ("GITHUB_AUTH_URL", &auth_url),
        ("GITHUB_TOKEN_URL", &token_url),
        ("GITHUB_API_URL", &github.url),
    ];
    vars.extend_from_slice(extra);
    let primary = TestPrimary::spawn_with(&vars).await;
    (primary, github)
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The value of cookie `name` set by `response`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (pair, _) = v.split_once(';').unwrap_or((v, ""));
        let (k, value) = pair.split_once('=')?;
        (k == name && !value.is_empty()).then(|| value.to_owned())
    })
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A login begun at the primary and sent through GitHub: the callback URL and the
/// browser's login cookie.
async fn start_login(primary: &TestPrimary, github: &StandIn<GitHubState>, user: &str) -> (String, String) {
    github.state.lock().unwrap().next_user = user.to_owned();
    let http = no_redirects();
    let start = http.get(format!("{}/auth/github/login", primary.url)).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let login_cookie = set_cookie(&start, "fd_login").expect("login cookie");
    let authorize = location(&start);
    assert!(authorize.starts_with(&github.url), "{authorize}");
    assert!(authorize.contains("code_challenge="), "PKCE: {authorize}");
    let back = http.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), 302);
    (location(&back), login_cookie)
}

/// The full login of `user`: the session cookie, or the callback's answer.
async fn login(
    primary: &TestPrimary,
    github: &StandIn<GitHubState>,
    user: &str,
) -> Result<String, reqwest::Response> {
    let (callback, login_cookie) = start_login(primary, github, user).await;
    let done = no_redirects()
        .get(&callback)
        .header("Cookie", format!("fd_login={login_cookie}"))
        .send()
        .await
        .unwrap();
    match set_cookie(&done, "fd_session") {
        Some(session) if done.status() == 302 && location(&done) == "/" => Ok(session),
        _ => Err(done),
    }
}

async fn get_as(primary: &TestPrimary, path: &str, cookie: &str) -> (u16, Value) {
    send(client(None).get(format!("{}{path}", primary.url)).header("Cookie", format!("fd_session={cookie}")))
        .await
}

async fn audit_actions(primary: &TestPrimary, cookie: &str) -> Vec<(String, String)> {
    let (_, audit) = get_as(primary, "/api/audit", cookie).await;
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap().to_owned(), e["action"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn an_allowed_user_logs_in_reaches_the_api_and_logging_out_revokes_the_session() {
    let (primary, github) = github_primary("Octo-Cat, someone-else").await;
    assert_eq!(primary.get("/api/nodes").await.0, 401, "nothing without logging in");
    assert_eq!(primary.get("/api/health").await.0, 200, "health stays public");

    let session = login(&primary, &github, "octo-cat").await.expect("admitted");
    let (status, nodes) = get_as(&primary, "/api/nodes", &session).await;
    assert_eq!(status, 200, "{nodes}");
    let (_, me) = get_as(&primary, "/api/me", &session).await;
    assert_eq!(me["auth"], "github");
    assert_eq!(me["user"]["login"], "octo-cat");
    assert_eq!(me["user"]["name"], "octo-cat the tester");
    assert!(me["user"]["avatar_url"].as_str().unwrap().ends_with("octo-cat.png"));

    // A state-changing request with the cookie needs our own origin.
    let add = |origin: Option<&str>, name: &str| {
        let mut req = client(None)
            .post(format!("{}/api/nodes", primary.url))
            .header("Cookie", format!("fd_session={session}"))
            .json(&json!({ "name": name, "api_endpoint": "http://127.0.0.1:9" }));
        if let Some(origin) = origin {
            req = req.header("Origin", origin);
        }
        send(req)
    };
    let (status, body) = add(Some("https://evil.example"), "evil").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(add(None, "formless").await.0, 403);
    let (status, added) = add(Some(&primary.url), "from-the-ui").await;
    assert_eq!(status, 201, "{added}");

    let logout = client(None)
        .post(format!("{}/auth/logout", primary.url))
        .header("Cookie", format!("fd_session={session}"))
        .header("Origin", &primary.url);
    assert_eq!(send(logout).await.0, 204);
    let (status, body) = get_as(&primary, "/api/nodes", &session).await;
    assert_eq!(status, 401, "a revoked session is refused although its JWT has not expired: {body}");

    let other = login(&primary, &github, "SOMEONE-ELSE").await.expect("case-insensitive allow-list");
    let actions = audit_actions(&primary, &other).await;
    for expected in [
        ("github:octo-cat", "login"),
        ("github:octo-cat", "node_added"),
        ("github:octo-cat", "logout"),
        ("github:SOMEONE-ELSE", "login"),
    ] {
        assert!(
            actions.iter().any(|(a, b)| (a.as_str(), b.as_str()) == expected),
            "{expected:?} not in {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_user_not_on_the_allow_list_is_sent_back_with_a_reason() {
    let (primary, github) = github_primary("octo-cat").await;
    let refused = login(&primary, &github, "mallory").await.expect_err("refused");
    assert_eq!(refused.status(), 302);
    assert_eq!(location(&refused), "/login?error=not_allowed&login=mallory");
    assert!(set_cookie(&refused, "fd_session").is_none());

    // Nobody at all with an empty list.
    let (empty, github2) = github_primary("").await;
    assert!(login(&empty, &github2, "octo-cat").await.is_err());

    let session = login(&primary, &github, "octo-cat").await.unwrap();
    let actions = audit_actions(&primary, &session).await;
    assert!(actions.contains(&("github:mallory".into(), "login_refused".into())), "{actions:?}");
}

#[tokio::test]
async fn forged_missing_reused_or_stale_login_states_are_refused() {
    let (primary, github) = github_primary("octo-cat").await;
    let callback_with = |url: String, cookie: Option<String>| {
        let mut req = no_redirects().get(url);
        if let Some(cookie) = cookie {
            req = req.header("Cookie", format!("fd_login={cookie}"));
        }
        send(req)
    };

    // No cookie binding the state to this browser.
    let (callback, _) = start_login(&primary, &github, "octo-cat").await;
    let (status, body) = callback_with(callback, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");

    // A cookie for another login.
    let (callback, _) = start_login(&primary, &github, "octo-cat").await;
    let (_, other_cookie) = start_login(&primary, &github, "octo-cat").await;
    assert_eq!(callback_with(callback, Some(other_cookie)).await.0, 403);

    // A state the primary never issued (cookie and query agree, but forged).
    let (callback, _) = start_login(&primary, &github, "octo-cat").await;
    let forged = callback.split("state=").next().unwrap().to_owned() + "state=forged";
    assert_eq!(callback_with(forged, Some("forged".into())).await.0, 403);

    // A state (and code) used twice.
    let (callback, cookie) = start_login(&primary, &github, "octo-cat").await;
    let first =
        no_redirects().get(&callback).header("Cookie", format!("fd_login={cookie}")).send().await.unwrap();
    assert_eq!(first.status(), 302);
    assert_eq!(callback_with(callback, Some(cookie)).await.0, 403, "state reused");

    // A code GitHub already redeemed, under a fresh state.
    let (callback, cookie) = start_login(&primary, &github, "octo-cat").await;
    let code = callback.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let (callback2, cookie2) = start_login(&primary, &github, "octo-cat").await;
    assert_eq!(
        no_redirects()
            .get(&callback)
            .header("Cookie", format!("fd_login={cookie}"))
            .send()
            .await
            .unwrap()
            .status(),
        302
    );
    let state2 = callback2.split("state=").nth(1).unwrap().to_owned();
    let reused_code = format!("{}/auth/github/callback?code={code}&state={state2}", primary.url);
    let (status, body) = callback_with(reused_code, Some(cookie2)).await;
    assert_eq!(status, 401, "code reused: {body}");

    // A login left too long.
    let (callback, cookie) = start_login(&primary, &github, "octo-cat").await;
    primary.clock.advance(Duration::from_secs(11 * 60));
    assert_eq!(callback_with(callback, Some(cookie)).await.0, 403, "stale state");

    // A callback without code or state.
    assert_eq!(callback_with(format!("{}/auth/github/callback", primary.url), None).await.0, 400);
}

fn session_claims(sid: &str, exp_offset: i64) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    json!({ "sub": "octo-cat", "sid": sid, "iat": now, "exp": now + exp_offset, "iss": "fleetdeck", "aud": "fleetdeck-ui" })
}

#[tokio::test]
async fn forged_expired_and_confused_session_tokens_are_refused() {
    let (primary, github) = github_primary("octo-cat").await;
    let session = login(&primary, &github, "octo-cat").await.unwrap();
    let sid = jsonwebtoken::dangerous::insecure_decode::<Value>(&session).unwrap().claims["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let hs = |secret: &str, claims: &Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let unsigned = {
        let b64 = |v: &Value| {
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string())
        };
        format!("{}.{}.", b64(&json!({ "alg": "none", "typ": "JWT" })), b64(&session_claims(&sid, 600)))
    };
    let rsa = SigningKey::generate("confused");
    let cases = [
        ("signed with another key", hs("another-secret-another-secret-another", &session_claims(&sid, 600))),
        ("alg none", unsigned),
        ("RS256 instead of HS256", rsa.sign(&session_claims(&sid, 600), true)),
        ("expired", hs(JWT_SECRET, &session_claims(&sid, -600))),
        ("unknown session", hs(JWT_SECRET, &session_claims("0190f6c2-8f5a-7c1e-9a43-1d2b3c4d5e6f", 600))),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, token) in cases {
        let (status, body) = get_as(&primary, "/api/nodes", &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }
    // The genuine token works, until the session's own lifetime is over.
    assert_eq!(get_as(&primary, "/api/nodes", &session).await.0, 200);
    assert_eq!(get_as(&primary, "/api/nodes", &hs(JWT_SECRET, &session_claims(&sid, 600))).await.0, 200);
    primary.clock.advance(Duration::from_secs(13 * 3600));
    assert_eq!(get_as(&primary, "/api/nodes", &session).await.0, 401, "session expired");
}

#[tokio::test]
async fn api_tokens_are_created_once_used_listed_revoked_and_expire() {
    let (primary, github) = github_primary("octo-cat").await;
    let session = login(&primary, &github, "octo-cat").await.unwrap();
    let create = |body: Value| {
        send(
            client(None)
                .post(format!("{}/api/tokens", primary.url))
                .header("Cookie", format!("fd_session={session}"))
                .header("Origin", &primary.url)
                .json(&body),
        )
    };
    let (status, created) = create(json!({ "name": "ci" })).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["token"]["id"].as_str().unwrap().to_owned();
    let bearer = |token: &str, path: &str| {
        send(
            client(None)
                .get(format!("{}{path}", primary.url))
                .header("Authorization", format!("Bearer {token}")),
        )
    };
    assert_eq!(bearer(&secret, "/api/nodes").await.0, 200);
    // A token has no session to end: logging out with one says so (400), whatever headers.
    let (status, body) = send(
        client(None)
            .post(format!("{}/auth/logout", primary.url))
            .header("Authorization", format!("Bearer {secret}")),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no session"), "{body}");
    // Scripts need no Origin: a bearer token is not ambient like a cookie.
    let (status, body) = send(
        client(None)
            .post(format!("{}/api/nodes", primary.url))
            .header("Authorization", format!("Bearer {secret}"))
            .json(&json!({ "name": "scripted", "api_endpoint": "http://127.0.0.1:9" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    let (_, list) = get_as(&primary, "/api/tokens", &session).await;
    assert!(!list.to_string().contains(&secret), "the secret is shown once");
    assert_eq!(list["items"][0]["name"], "ci");
    assert!(list["items"][0]["last_used_at"].is_string());

    let revoke = send(
        client(None)
            .delete(format!("{}/api/tokens/{id}", primary.url))
            .header("Authorization", format!("Bearer {secret}")),
    )
    .await;
    assert_eq!(revoke.0, 204);
    let (status, body) = bearer(&secret, "/api/nodes").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"));

    let (status, _) = create(json!({ "name": "", "expires_in_days": 1 })).await;
    assert_eq!(status, 400);
    assert_eq!(create(json!({ "name": "x", "expires_in_days": 0 })).await.0, 400);
    assert_eq!(create(json!({ "name": "x", "scope": "all" })).await.0, 400);
    let (_, short) = create(json!({ "name": "short-lived", "expires_in_days": 1 })).await;
    let short_secret = short["secret"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&short_secret, "/api/nodes").await.0, 200);
    primary.clock.advance(Duration::from_secs(2 * 86_400));
    let (status, body) = bearer(&short_secret, "/api/nodes").await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"));

    for bad in ["fdt_not-a-real-token", "malformed", ""] {
        assert_eq!(bearer(bad, "/api/nodes").await.0, 401, "{bad:?}");
    }

    let session = login(&primary, &github, "octo-cat").await.unwrap();
    let actions = audit_actions(&primary, &session).await;
    assert!(actions.contains(&("github:octo-cat".into(), "token_created".into())), "{actions:?}");
    assert!(
        actions.iter().any(|(actor, action)| actor.starts_with("token:ci") && action == "token_revoked"),
        "{actions:?}"
    );
    assert!(
        actions.iter().any(|(actor, action)| actor.starts_with("token:ci") && action == "node_added"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn with_user_access_on_a_scrape_needs_the_metrics_token_or_an_api_token() {
    const METRICS_TOKEN: &str = "a-metrics-token-for-tests";
    let (primary, github) = github_primary_with("octo-cat", &[("METRICS_TOKEN", METRICS_TOKEN)]).await;
    // The API's description is public, like its health.
    let (status, document) = send(client(None).get(format!("{}/api/openapi.json", primary.url))).await;
    assert_eq!((status, &document["openapi"]), (200, &json!("3.1.0")));
    let (status, body) = crate::metrics::scrape(&primary.url, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("fleetdeck_"), "{body}");
    for wrong in ["a-metrics-token-for-test", "fd_not-a-real-token"] {
        assert_eq!(crate::metrics::scrape(&primary.url, Some(wrong)).await.0, 401, "{wrong}");
    }
    let (status, body) = crate::metrics::scrape(&primary.url, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("fleetdeck_leader 1"), "{body}");

    let session = login(&primary, &github, "octo-cat").await.unwrap();
    let (status, created) = send(
        client(None)
            .post(format!("{}/api/tokens", primary.url))
            .header("Cookie", format!("fd_session={session}"))
            .header("Origin", &primary.url)
            .json(&json!({ "name": "prometheus" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, body) = crate::metrics::scrape(&primary.url, created["secret"].as_str()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn node_endpoints_keep_working_and_user_credentials_never_open_them() {
    let (primary, github) = github_primary("octo-cat").await;
    let session = login(&primary, &github, "octo-cat").await.unwrap();
    let (status, added) = send(
        client(None)
            .post(format!("{}/api/nodes", primary.url))
            .header("Cookie", format!("fd_session={session}"))
            .header("Origin", &primary.url)
            .json(&json!({ "name": "worker", "api_endpoint": "http://127.0.0.1:9" })),
    )
    .await;
    assert_eq!(status, 201);
    let (id, key) = (added["node"]["id"].as_str().unwrap(), added["api_key"].as_str().unwrap());
    let http = client(Some([127, 0, 0, 71]));
    assert_eq!(heartbeat_from(&http, &primary.url, id, id, key).await.0, 200);

    let internal = format!("{}/api/internal/nodes/{id}/heartbeat", primary.url);
    let body = json!({ "version": "x", "max_jobs": 1 });
    let (status, _) =
        send(http.post(&internal).header("Cookie", format!("fd_session={session}")).json(&body)).await;
    assert_eq!(status, 401, "a session is not a node credential");
    assert_eq!(
        send(
            http.get(format!("{}/api/internal/system/stats", primary.url))
                .header("Cookie", format!("fd_session={session}"))
        )
        .await
        .0,
        401
    );
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_source() {
    let (primary, _github) = github_primary("octo-cat").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from([127, 0, 0, 72]))
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..35 {
        statuses.push(
            http.get(format!("{}/auth/github/login", primary.url)).send().await.unwrap().status().as_u16(),
        );
    }
    assert!(statuses[..30].iter().all(|s| *s == 302), "{statuses:?}");
    assert!(statuses[30..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn with_auth_off_the_api_says_so() {
    let primary = TestPrimary::spawn().await;
    let (status, me) = primary.get("/api/me").await;
    assert_eq!(status, 200);
    assert_eq!(me, json!({ "auth": "off", "user": null }));
    assert_eq!(primary.get("/auth/github/login").await.0, 404);
    // An API token is still checked when one is presented.
    let (status, _) = send(
        client(None).get(format!("{}/api/nodes", primary.url)).header("Authorization", "Bearer fdt_nope"),
    )
    .await;
    assert_eq!(status, 401);
}

const TEAM: &str = "fleet-team.cloudflareaccess.com";
const AUD: &str = "fleetdeck-app-audience";

async fn access_primary(certs: &StandIn<stand_ins::JwksState>) -> TestPrimary {
    let certs_url = format!("{}/cdn-cgi/access/certs", certs.url);
    TestPrimary::spawn_with(&[
        ("CF_ACCESS_TEAM_DOMAIN", TEAM),
        ("CF_ACCESS_AUD", AUD),
        ("CF_ACCESS_CERTS_URL", &certs_url),
    ])
    .await
}

fn access_claims(aud: &str, iss: &str, exp_offset: i64) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    json!({ "aud": [aud], "iss": iss, "email": "ops@example.com", "iat": now, "exp": now + exp_offset, "sub": "user-1" })
}

async fn with_assertion(primary: &TestPrimary, path: &str, assertion: &str) -> (u16, Value) {
    send(client(None).get(format!("{}{path}", primary.url)).header("Cf-Access-Jwt-Assertion", assertion))
        .await
}

#[tokio::test]
async fn cloudflare_access_assertions_are_verified_against_the_team_keys() {
    let key = SigningKey::generate("kid-1");
    let stranger = SigningKey::generate("kid-stranger");
    let certs = stand_ins::access_certs(&[&key]);
    let primary = access_primary(&certs).await;
    let iss = format!("https://{TEAM}");

    let good = key.sign(&access_claims(AUD, &iss, 300), true);
    let (status, me) = with_assertion(&primary, "/api/me", &good).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["auth"], "cloudflare");
    assert_eq!(me["user"]["login"], "ops@example.com");
    assert_eq!(with_assertion(&primary, "/api/nodes", &good).await.0, 200);

    assert_eq!(primary.get("/api/nodes").await.0, 401, "no assertion");
    let cases = [
        ("wrong audience", key.sign(&access_claims("another-app", &iss, 300), true)),
        ("wrong issuer", key.sign(&access_claims(AUD, "https://evil.cloudflareaccess.com", 300), true)),
        ("expired", key.sign(&access_claims(AUD, &iss, -300), true)),
        ("no kid", key.sign(&access_claims(AUD, &iss, 300), false)),
        ("unknown key", stranger.sign(&access_claims(AUD, &iss, 300), true)),
        (
            "HS256 with the public key as secret",
            jsonwebtoken::encode(
                &jsonwebtoken::Header { kid: Some("kid-1".into()), ..jsonwebtoken::Header::default() },
                &access_claims(AUD, &iss, 300),
                &jsonwebtoken::EncodingKey::from_secret(b"public-key-material"),
            )
            .unwrap(),
        ),
    ];
    for (what, assertion) in cases {
        let (status, body) = with_assertion(&primary, "/api/nodes", &assertion).await;
        assert_eq!(status, 401, "{what}: {body}");
    }
    // The health check stays public, and node endpoints need no assertion.
    assert_eq!(primary.get("/api/health").await.0, 200);
}

#[tokio::test]
async fn a_new_cloudflare_signing_key_is_picked_up_on_first_sight() {
    let old = SigningKey::generate("kid-old");
    let certs = stand_ins::access_certs(&[&old]);
    let primary = access_primary(&certs).await;
    let iss = format!("https://{TEAM}");
    assert_eq!(
        with_assertion(&primary, "/api/nodes", &old.sign(&access_claims(AUD, &iss, 300), true)).await.0,
        200
    );
    let fetches = certs.state.lock().unwrap().fetches;

    let new = SigningKey::generate("kid-new");
    stand_ins::publish(&certs, &[&old, &new]);
    // Unknown kids trigger at most one fetch a second (of the primary's clock).
    primary.clock.advance(Duration::from_secs(1));
    let (status, body) =
        with_assertion(&primary, "/api/nodes", &new.sign(&access_claims(AUD, &iss, 300), true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(certs.state.lock().unwrap().fetches, fetches + 1, "fetched again for the unknown kid");
    // Known keys come from the cache.
    assert_eq!(
        with_assertion(&primary, "/api/nodes", &old.sign(&access_claims(AUD, &iss, 300), true)).await.0,
        200
    );
    assert_eq!(certs.state.lock().unwrap().fetches, fetches + 1);
}

#[tokio::test]
async fn taking_a_user_off_the_allow_list_ends_their_sessions() {
    let (mut primary, github) = github_primary("octo-cat").await;
    let session = login(&primary, &github, "octo-cat").await.unwrap();
    assert_eq!(get_as(&primary, "/api/nodes", &session).await.0, 200);
    primary.restart_with(&[("GITHUB_ALLOWED_USERS", "someone-else")]).await;
    let (status, body) = get_as(&primary, "/api/nodes", &session).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no longer allowed"));
}

#[tokio::test]
async fn with_auth_off_a_cross_site_page_cannot_act_but_scripts_can() {
    let primary = TestPrimary::spawn().await;
    let node = json!({ "name": "via-browser", "api_endpoint": "http://127.0.0.1:9" });
    let (status, body) = send(
        client(None)
            .post(format!("{}/api/nodes", primary.url))
            .header("Origin", "https://evil.example")
            .json(&node),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = primary.post("/api/nodes", node).await;
    assert_eq!(status, 201, "a script sends no Origin");
    // The bearer scheme is case-insensitive.
    let (status, _) = send(
        client(None).get(format!("{}/api/nodes", primary.url)).header("Authorization", "bearer fdt_nope"),
    )
    .await;
    assert_eq!(status, 401);
}

/// Every answer carries a request ID to quote, refusals by a middleware included.
#[tokio::test]
async fn every_answer_carries_a_request_id_refusals_included() {
    let (primary, _github) = github_primary("octo-cat").await;
    let http = client(None);
    let requests = [
        (http.get(format!("{}/api/nodes", primary.url)), 401),
        (http.get(format!("{}/api/nodes", primary.url)).header("Host", "elsewhere.example"), 421),
        (http.get(format!("{}/api/health", primary.url)), 200),
        (http.post(format!("{}/api/health", primary.url)), 405),
    ];
    for (request, status) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
        assert!(id.is_some_and(|id| id.len() == 32), "{status}: {:?}", response.headers());
    }
}
