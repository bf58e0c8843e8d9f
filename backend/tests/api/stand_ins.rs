//! Local stand-ins for services the tests cannot reach, speaking their real protocols:
//! GitHub's OAuth endpoints and `/user` API, a Cloudflare Access signing-key (JWKS)
//! endpoint with an RSA key pair generated here, the alert receivers (webhook, ntfy,
//! Gotify, Discord, Slack, Telegram), an SMTP server (aiosmtpd), and Cloudflare Access in
//! front of a primary (a gate that wants a service token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::traits::PublicKeyParts as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// A running stand-in server; stops when dropped.
pub struct StandIn<S> {
    pub url: String,
    pub state: Arc<Mutex<S>>,
    handle: actix_web::dev::ServerHandle,
}

impl<S> Drop for StandIn<S> {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

fn serve<S: Send + 'static>(state: S, routes: fn(&mut web::ServiceConfig)) -> StandIn<S> {
    let state = Arc::new(Mutex::new(state));
    let data = web::Data::from(state.clone());
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().app_data(data.clone()).configure(routes))
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    StandIn { url, state, handle }
}

/// GitHub as the OAuth flow sees it.
#[derive(Default)]
pub struct GitHubState {
    /// Who "logs in" at the authorize page next.
    pub next_user: String,
    /// code → (PKCE challenge, login, used)
    codes: HashMap<String, (String, String, bool)>,
    /// access token → login
    tokens: HashMap<String, String>,
}

pub fn github() -> StandIn<GitHubState> {
    serve(GitHubState::default(), |cfg| {
        cfg.route("/login/oauth/authorize", web::get().to(authorize))
            .route("/login/oauth/access_token", web::post().to(access_token))
            .route("/user", web::get().to(user));
    })
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    redirect_uri: String,
    state: String,
    code_challenge: String,
    code_challenge_method: String,
}

async fn authorize(state: web::Data<Mutex<GitHubState>>, q: web::Query<AuthorizeQuery>) -> HttpResponse {
    assert_eq!(q.code_challenge_method, "S256", "PKCE with SHA-256");
    let code = uuid::Uuid::new_v4().simple().to_string();
    let mut s = state.lock().unwrap();
    let login = s.next_user.clone();
    s.codes.insert(code.clone(), (q.code_challenge.clone(), login, false));
    let location = format!("{}?code={code}&state={}", q.redirect_uri, q.state);
    HttpResponse::Found().insert_header(("Location", location)).finish()
}

#[derive(Deserialize)]
struct TokenForm {
    code: String,
    code_verifier: String,
}

async fn access_token(state: web::Data<Mutex<GitHubState>>, form: web::Form<TokenForm>) -> HttpResponse {
    let mut s = state.lock().unwrap();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(form.code_verifier.as_bytes()));
    let login = match s.codes.get_mut(&form.code) {
        Some((expected, login, used)) if !*used && *expected == challenge => {
            *used = true;
            login.clone()
        }
        _ => return HttpResponse::BadRequest().json(json!({ "error": "bad_verification_code" })),
    };
    let token = format!("gho_{}", uuid::Uuid::new_v4().simple());
    s.tokens.insert(token.clone(), login);
    HttpResponse::Ok().json(json!({ "access_token": token, "token_type": "bearer", "scope": "read:user" }))
}

async fn user(state: web::Data<Mutex<GitHubState>>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let s = state.lock().unwrap();
    match token.and_then(|t| s.tokens.get(t)) {
        Some(login) => HttpResponse::Ok().json(json!({
            "login": login,
            "name": format!("{login} the tester"),
            "avatar_url": format!("https://avatars.example/{login}.png"),
        })),
        None => HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" })),
    }
}

/// One RSA signing key with its ID.
pub struct SigningKey {
    pub kid: String,
    pub private_der: Vec<u8>,
    jwk: serde_json::Value,
}

impl SigningKey {
    pub fn generate(kid: &str) -> SigningKey {
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let private_der = key.to_pkcs1_der().unwrap().as_bytes().to_vec();
        let jwk = json!({
            "kid": kid,
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        });
        SigningKey { kid: kid.to_owned(), private_der, jwk }
    }

    /// An RS256 JWT over `claims`, with this key's `kid` unless `with_kid` is false.
    pub fn sign(&self, claims: &serde_json::Value, with_kid: bool) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        if with_kid {
            header.kid = Some(self.kid.clone());
        }
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&self.private_der);
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// The keys the Access certs endpoint publishes.
#[derive(Default)]
pub struct JwksState {
    pub published: Vec<serde_json::Value>,
    pub fetches: usize,
}

pub fn access_certs(keys: &[&SigningKey]) -> StandIn<JwksState> {
    let stand_in = serve(JwksState::default(), |cfg| {
        cfg.route("/cdn-cgi/access/certs", web::get().to(certs));
    });
    publish(&stand_in, keys);
    stand_in
}

/// Replaces the published keys (a key rotation).
pub fn publish(stand_in: &StandIn<JwksState>, keys: &[&SigningKey]) {
    stand_in.state.lock().unwrap().published = keys.iter().map(|k| k.jwk.clone()).collect();
}

async fn certs(state: web::Data<Mutex<JwksState>>) -> HttpResponse {
    let mut s = state.lock().unwrap();
    s.fetches += 1;
    HttpResponse::Ok().json(json!({ "keys": s.published }))
}

/// One request an alert receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How an alert receiver answers.
#[derive(Debug, Clone, Default)]
pub enum Answer {
    /// As the real service does: 200 with JSON (Discord: 204).
    #[default]
    Accept,
    /// This status, with a `Retry-After` if given.
    Status(u16, Option<&'static str>),
    /// A redirect elsewhere.
    Redirect,
    /// Never answers.
    Hang,
}

/// Every alert receiver at once (webhook, ntfy, Gotify, Discord, Slack, Telegram: each is
/// an HTTP POST); what each got, by path. It can be stopped and started again on its port.
#[derive(Default)]
pub struct ReceiverState {
    pub received: Vec<Received>,
    pub answer: Answer,
}

pub struct Receiver {
    pub url: String,
    address: std::net::SocketAddr,
    pub state: Arc<Mutex<ReceiverState>>,
    handle: Option<actix_web::dev::ServerHandle>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let mut receiver = Receiver {
            url: String::new(),
            address: "127.0.0.1:0".parse().unwrap(),
            state: Arc::default(),
            handle: None,
        };
        receiver.up();
        receiver
    }

    /// Starts serving (again, on the same port).
    pub fn up(&mut self) {
        let data = web::Data::from(self.state.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new().app_data(data.clone()).default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(self.address)
        .unwrap();
        self.address = server.addrs()[0];
        self.url = format!("http://{}", self.address);
        let server = server.run();
        self.handle = Some(server.handle());
        tokio::spawn(server);
    }

    /// Stops: connections are refused until `up`.
    pub async fn down(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.stop(false).await;
        }
    }

    pub fn answer(&self, answer: Answer) {
        self.state.lock().unwrap().answer = answer;
    }

    /// What arrived at paths starting with `prefix`.
    pub fn at(&self, prefix: &str) -> Vec<Received> {
        self.state.lock().unwrap().received.iter().filter(|r| r.path.starts_with(prefix)).cloned().collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            tokio::spawn(async move { handle.stop(false).await });
        }
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, state: web::Data<Mutex<ReceiverState>>) -> HttpResponse {
    let received = Received {
        path: req.path().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.to_vec(),
    };
    let answer = {
        let mut state = state.lock().unwrap();
        state.received.push(received);
        state.answer.clone()
    };
    match answer {
        Answer::Accept if req.path().starts_with("/discord") => HttpResponse::NoContent().finish(),
        Answer::Accept if req.path().starts_with("/slack") => HttpResponse::Ok().body("ok"),
        Answer::Accept => HttpResponse::Ok().json(json!({"ok": true, "id": 1})),
        Answer::Status(code, retry_after) => {
            let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap());
            if let Some(after) = retry_after {
                response.insert_header(("retry-after", after));
            }
            response.json(json!({"ok": false, "description": "stand-in says no"}))
        }
        Answer::Redirect => {
            HttpResponse::Found().insert_header(("location", "https://elsewhere.example/hook")).finish()
        }
        Answer::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            HttpResponse::Ok().finish()
        }
    }
}

/// A local SMTP server (aiosmtpd from PyPI, installed by `scripts/test-python.sh`) that
/// keeps every message it accepts in a maildir.
pub struct SmtpServer {
    pub port: u16,
    pub maildir: std::path::PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let python = crate::helpers::test_python();
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("mail");
        let port = crate::helpers::free_port();
        let child = std::process::Command::new(python)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        crate::helpers::eventually(std::time::Duration::from_secs(20), "the SMTP stand-in", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(drop)
        })
        .await;
        SmtpServer { port, maildir, child, _dir: dir }
    }

    /// The messages received so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut all = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else { continue };
            for entry in entries.flatten() {
                all.push(std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        all
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Cloudflare Access in front of a primary, as a node meets it with a service-auth policy: a
/// request without the service token (`CF-Access-Client-Id` and `CF-Access-Client-Secret`,
/// both right) is refused with 403; the others go on to the primary as they came.
#[derive(Default)]
pub struct AccessGateState {
    pub upstream: String,
    pub client_id: String,
    pub client_secret: String,
    /// (method, path) of what was let through, and of what was refused.
    pub passed: Vec<(String, String)>,
    pub refused: Vec<(String, String)>,
}

pub fn access_gate(upstream: &str, client_id: &str, client_secret: &str) -> StandIn<AccessGateState> {
    serve(
        AccessGateState {
            upstream: upstream.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            ..AccessGateState::default()
        },
        |cfg| {
            cfg.default_service(web::to(pass_or_refuse));
        },
    )
}

async fn pass_or_refuse(
    state: web::Data<Mutex<AccessGateState>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let header =
        |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let seen = (req.method().to_string(), req.path().to_owned());
    let upstream = {
        let mut s = state.lock().unwrap();
        if header("CF-Access-Client-Id") != s.client_id
            || header("CF-Access-Client-Secret") != s.client_secret
        {
            s.refused.push(seen);
            return HttpResponse::Forbidden().content_type("text/html").body("Forbidden: Cloudflare Access");
        }
        s.passed.push(seen);
        s.upstream.clone()
    };
    let url = format!("{upstream}{}", req.uri().path_and_query().map_or("", |p| p.as_str()));
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut forward = reqwest::Client::new().request(method, url).body(body.to_vec());
    for (name, value) in req.headers() {
        if !["host", "content-length", "connection"].contains(&name.as_str()) {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(answer) = forward.send().await else { return HttpResponse::BadGateway().finish() };
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status().as_u16()).unwrap());
    if let Some(kind) = answer.headers().get("content-type").and_then(|v| v.to_str().ok()) {
        response.content_type(kind.to_owned());
    }
    response.body(answer.bytes().await.unwrap_or_default().to_vec())
}

/// A server that answers every request with the same raw bytes and closes the connection:
/// for answers no well-behaved server gives (a body shorter than its `Content-Length`, a
/// checksum that does not match). Runs until the test process ends.
pub fn raw_server(answer: Vec<u8>) -> String {
    recording_server(answer).0
}

/// [`raw_server`], also keeping the head of every request it got (request line and
/// headers, as sent).
pub fn recording_server(answer: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let recorded = heads.clone();
    std::thread::spawn(move || {
        use std::io::{Read as _, Write as _};
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            recorded.lock().unwrap().push(String::from_utf8_lossy(&request).into_owned());
            let _ = stream.write_all(&answer);
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    (url, heads)
}
