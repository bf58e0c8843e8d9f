//! The one HTTP client `ctl` talks to a primary with: where it is, the token, the headers a
//! script sends, and every way a request can fail turned into one [`CtlError`] whose text
//! is the line a person reads.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::user_auth::REQUESTED_WITH_HEADER;

/// A request that takes longer than this (a node check waits for its probe) is given up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Items asked for per page when a command lists everything.
const PAGE: &str = "1000";

/// Why a command failed, worded for the one line `ctl` prints.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("no primary to talk to: pass --url, set FLEETDECK_URL or run `fleetdeck ctl login`")]
    NoUrl,
    #[error("{url:?} is not a primary's URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the primary at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// A 401: the token is wrong, or there is none and the primary wants one.
    #[error("{} ({message}) — run `fleetdeck ctl login` or set FLEETDECK_TOKEN", if *.sent_token { "the token was refused" } else { "the primary wants a token" })]
    Refused { sent_token: bool, message: String },
    /// Any other error answer: the API's own message (with the status when the server
    /// failed).
    #[error("{}", api_message(*.status, message))]
    Api { status: StatusCode, message: String },
    /// An error answer that is not the API's JSON: something else answered.
    #[error("HTTP {0}, and not from Fleetdeck's API: is this a primary's URL?")]
    NotTheApi(StatusCode),
    #[error("no node named {0:?}")]
    UnknownNode(String),
    /// Something on this side: the saved login, the terminal, an unexpected answer.
    #[error("{0}")]
    Local(String),
}

fn api_message(status: StatusCode, message: &str) -> String {
    if status.is_server_error() {
        format!("the primary answered HTTP {status}: {message}")
    } else {
        message.to_owned()
    }
}

impl CtlError {
    /// The error an API answer with `status` and `body` stands for.
    pub fn from_answer(status: StatusCode, body: &[u8], sent_token: bool) -> CtlError {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
        let Some(message) = message else { return CtlError::NotTheApi(status) };
        if status == StatusCode::UNAUTHORIZED {
            CtlError::Refused { sent_token, message }
        } else {
            CtlError::Api { status, message }
        }
    }
}

/// The innermost cause of an error: for a failed connection, the useful part ("Connection
/// refused (os error 111)") sits at the bottom of reqwest's chain.
pub fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A primary's API, as one user (or script) reaches it.
pub struct Client {
    http: reqwest::Client,
    /// `http(s)://host[:port][/prefix]`, no trailing slash.
    base: String,
    token: Option<SecretString>,
}

impl Client {
    pub fn new(url: &str, token: Option<SecretString>) -> Result<Client, CtlError> {
        let base = base_url(url)?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(format!("fleetdeck-ctl/{}", crate::VERSION))
            .build()
            .map_err(|e| CtlError::Local(format!("cannot set up HTTP: {}", root_cause(&e))))?;
        Ok(Client { http, base, token })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// "Cannot reach the primary at (this URL)", and why.
    pub fn unreachable(&self, reason: String) -> CtlError {
        CtlError::Unreachable { url: self.base.clone(), reason }
    }

    /// Headers every request carries: the token, and `X-Requested-With`, which tells the
    /// primary this is a script, not a page on another site (`api::user_auth`).
    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(REQUESTED_WITH_HEADER, "fleetdeck-ctl".to_owned())];
        if let Some(token) = &self.token {
            headers.push(("Authorization", format!("Bearer {}", token.expose_secret())));
        }
        headers
    }

    /// Sends a request to `path` (under the base URL) and decodes the JSON answer;
    /// `T = ()` for an answer with no body.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, CtlError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).query(query);
        for (name, value) in self.headers() {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| {
            self.unreachable(if e.is_timeout() { "no answer in time".to_owned() } else { root_cause(&e) })
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(CtlError::from_answer(status, &bytes, self.token.is_some()));
        }
        let bytes = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
        serde_json::from_slice(bytes).map_err(|e| {
            CtlError::Local(format!("the primary's answer to {path} is not what this client expects: {e}"))
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, CtlError> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: Option<&Value>) -> Result<T, CtlError> {
        self.send(Method::POST, path, &[], body).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), CtlError> {
        self.send(Method::DELETE, path, &[], None).await
    }

    /// Every item of a paged list (`{"items", "next_cursor"}`), following the cursor.
    pub async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, CtlError> {
        #[derive(serde::Deserialize)]
        struct Page<T> {
            items: Vec<T>,
            next_cursor: Option<String>,
        }
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q: Vec<(&str, &str)> = query.to_vec();
            q.push(("limit", PAGE));
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let page: Page<T> = self.get(path, &q).await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    /// A WebSocket request for `path`, with this client's headers.
    pub fn websocket_request(
        &self,
        path_and_query: &str,
    ) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, CtlError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let url = format!("{}{path_and_query}", self.base);
        let url = match url.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}"),
            Some((_, rest)) => format!("ws://{rest}"),
            None => url,
        };
        let mut request = url.into_client_request().map_err(|e| CtlError::Local(e.to_string()))?;
        for (name, value) in self.headers() {
            let value =
                value.parse().map_err(|_| CtlError::Local(format!("{name} cannot be sent as given")))?;
            request.headers_mut().insert(name, value);
        }
        Ok(request)
    }

    pub fn sends_token(&self) -> bool {
        self.token.is_some()
    }
}

/// `url` checked and without its trailing slash: `http(s)://host[:port][/prefix]`.
pub fn base_url(url: &str) -> Result<String, CtlError> {
    let bad = |reason: &str| CtlError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
    let scheme = url.trim().split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(bad("it must start with http:// or https://"));
    }
    let parsed = url::Url::parse(url.trim()).map_err(|e| bad(crate::urls::problem(e)))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("it must not have a query or a fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Said without the URL: it holds a password.
        return Err(CtlError::BadUrl {
            url: format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or_default()),
            reason: "it must not hold a user name or password (give an API token with --token)".into(),
        });
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_primary_url_is_checked_and_loses_its_trailing_slash() {
        assert_eq!(base_url("http://fleet.lan:8080/").unwrap(), "http://fleet.lan:8080");
        let with_password = base_url("https://admin:hunter2@fleet.lan").unwrap_err().to_string();
        assert!(with_password.contains("user name or password") && !with_password.contains("hunter2"));
        assert_eq!(base_url("https://example.com/fleetdeck/").unwrap(), "https://example.com/fleetdeck");
        for bad in ["fleet.lan", "ftp://fleet.lan", "http://fleet.lan/?a=b", ""] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_error_answer_says_the_apis_own_message() {
        let body = br#"{"error":{"code":"not_found","message":"no job with ID x"}}"#;
        let e = CtlError::from_answer(StatusCode::NOT_FOUND, body, false);
        assert_eq!(e.to_string(), "no job with ID x");
        let e = CtlError::from_answer(
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"message":"unknown API token"}}"#,
            true,
        );
        assert_eq!(
            e.to_string(),
            "the token was refused (unknown API token) — run `fleetdeck ctl login` or set FLEETDECK_TOKEN"
        );
        let e = CtlError::from_answer(StatusCode::BAD_GATEWAY, b"<html>", true);
        assert_eq!(
            e.to_string(),
            "HTTP 502 Bad Gateway, and not from Fleetdeck's API: is this a primary's URL?"
        );
        let body = br#"{"error":{"code":"internal","message":"something went wrong"}}"#;
        let e = CtlError::from_answer(StatusCode::INTERNAL_SERVER_ERROR, body, true);
        assert_eq!(
            e.to_string(),
            "the primary answered HTTP 500 Internal Server Error: something went wrong"
        );
    }
}
