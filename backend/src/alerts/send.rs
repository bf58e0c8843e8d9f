//! Hands one message (or a summary of several) to a channel, speaking its kind's protocol,
//! and says how it went: delivered, worth another try (network errors, timeouts, 408, 429
//! and 5xx, with the receiver's `Retry-After`), or refused for good (another 4xx, a
//! redirect, which is never followed, or an address `ALERTS_BLOCK_PRIVATE` forbids).
//!
//! HTTP goes through one reqwest client (rustls, no redirects, 10 s in all); email through
//! lettre (STARTTLS, TLS or plain, as the channel says).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use reqwest::header::{HeaderMap, HeaderValue};
use sha2::Sha256;

use crate::alerts::message::{Notification, Summary};
use crate::alerts::model::{ChannelKind, ChannelSecrets, ChannelSettings, EmailTls, MessageState};
use crate::clock::Timestamp;

/// A whole attempt (connect, send, answer) ends after this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a receiver's answer is kept (for the deliveries list and the test button).
const ANSWER_EXCERPT: usize = 300;

/// How an attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        status: Option<u16>,
        answer: String,
    },
    /// Try again later (no sooner than `after` if the receiver said so).
    Retry {
        error: String,
        status: Option<u16>,
        after: Option<Duration>,
    },
    /// Do not try again.
    Refused {
        error: String,
        status: Option<u16>,
    },
}

/// A channel with its secrets open, ready to send to.
#[derive(Clone)]
pub struct Target {
    pub kind: ChannelKind,
    /// The URL to call (a secret one opened).
    pub url: String,
    pub secret: Option<String>,
    pub settings: ChannelSettings,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl Target {
    pub fn new(
        kind: ChannelKind,
        shown_url: &str,
        secrets: ChannelSecrets,
        settings: ChannelSettings,
    ) -> Target {
        Target {
            kind,
            url: secrets.url.unwrap_or_else(|| shown_url.to_owned()),
            secret: secrets.secret,
            settings,
        }
    }
}

/// What goes out: one message, or several as one.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    One(&'a Notification),
    Summary(&'a [Notification]),
}

impl Content<'_> {
    fn title_and_text(&self, now: Timestamp) -> (String, String, Option<&str>) {
        match self {
            Content::One(n) => (n.title.clone(), format!("{}\n{}", n.text, n.url), Some(n.url.as_str())),
            Content::Summary(all) => {
                let s = Summary::of(all, now);
                (s.title, s.text, None)
            }
        }
    }

    fn json(&self, now: Timestamp) -> Vec<u8> {
        match self {
            Content::One(n) => serde_json::to_vec(n),
            Content::Summary(all) => serde_json::to_vec(&Summary::of(all, now)),
        }
        .unwrap_or_default()
    }

    /// Whether the news is bad (a higher priority where the kind has one).
    fn is_bad(&self) -> bool {
        match self {
            Content::One(n) => matches!(n.state, MessageState::Firing | MessageState::Flapping),
            Content::Summary(all) => all.iter().any(|n| n.state == MessageState::Firing),
        }
    }

    fn delivery_id(&self) -> String {
        match self {
            Content::One(n) => n.id.clone(),
            Content::Summary(all) => all.first().map(|n| format!("summary-{}", n.id)).unwrap_or_default(),
        }
    }
}

/// Sends to channels.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    block_private: bool,
}

impl Sender {
    pub fn new(block_private: bool) -> anyhow::Result<Sender> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("Fleetdeck/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(Resolver { block_private }))
            .build()?;
        Ok(Sender { http, block_private })
    }

    /// One attempt; never panics, never hangs past `ATTEMPT_TIMEOUT`.
    pub async fn send(&self, target: &Target, content: Content<'_>, now: Timestamp) -> Outcome {
        let attempt = async {
            if let Some(refusal) = self.refuse_address(target).await {
                return refusal;
            }
            match target.kind {
                ChannelKind::Email => self.email(target, content, now).await,
                _ => self.http(target, content, now).await,
            }
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT + Duration::from_secs(2), attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Retry {
                error: "the receiver did not answer in time".into(),
                status: None,
                after: None,
            },
        }
    }

    /// With `ALERTS_BLOCK_PRIVATE`, a refusal when the channel's host is (or resolves to) a
    /// private address.
    async fn refuse_address(&self, target: &Target) -> Option<Outcome> {
        if !self.block_private {
            return None;
        }
        let url = url::Url::parse(&target.url).ok()?;
        let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                Err(e) => {
                    return Some(Outcome::Retry {
                        error: format!("cannot resolve {host}: {e}"),
                        status: None,
                        after: None,
                    });
                }
            },
        };
        addrs.iter().find(|ip| is_private(**ip)).map(|ip| Outcome::Refused {
            error: format!("{host} is {ip}, a private address, and ALERTS_BLOCK_PRIVATE is on"),
            status: None,
        })
    }

    async fn http(&self, target: &Target, content: Content<'_>, now: Timestamp) -> Outcome {
        let (title, text, link) = content.title_and_text(now);
        let bad = content.is_bad();
        let request = match target.kind {
            ChannelKind::Webhook => {
                let body = content.json(now);
                let mut headers = HeaderMap::new();
                headers.insert("content-type", HeaderValue::from_static("application/json"));
                if let Ok(id) = HeaderValue::from_str(&content.delivery_id()) {
                    headers.insert("x-fleetdeck-delivery", id);
                }
                if let Some(secret) = &target.secret
                    && let Ok(signature) = HeaderValue::from_str(&signature(secret, &body))
                {
                    headers.insert("x-fleetdeck-signature", signature);
                }
                self.http.post(&target.url).headers(headers).body(body)
            }
            ChannelKind::Ntfy => {
                let mut request = self
                    .http
                    .post(&target.url)
                    .header("title", header_text(&title))
                    .header("priority", if bad { "high" } else { "default" })
                    .header("tags", if bad { "warning" } else { "white_check_mark" })
                    .body(text.clone());
                if let Some(link) = link {
                    request = request.header("click", link);
                }
                if let Some(token) = &target.secret {
                    request = request.bearer_auth(token);
                }
                request
            }
            ChannelKind::Gotify => {
                let url = format!("{}/message", target.url.trim_end_matches('/'));
                let mut body = serde_json::json!({
                    "title": title,
                    "message": text,
                    "priority": if bad { 8 } else { 4 },
                });
                if let Some(link) = link {
                    body["extras"] = serde_json::json!({"client::notification": {"click": {"url": link}}});
                }
                self.http
                    .post(url)
                    .header("x-gotify-key", target.secret.clone().unwrap_or_default())
                    .json(&body)
            }
            ChannelKind::Discord => {
                let content = truncate(&format!("**{title}**\n{text}"), 2000);
                let body = serde_json::json!({"content": content, "allowed_mentions": {"parse": []}});
                self.http.post(&target.url).json(&body)
            }
            ChannelKind::Slack => {
                let body = serde_json::json!({"text": format!("*{title}*\n{text}")});
                self.http.post(&target.url).json(&body)
            }
            ChannelKind::Telegram => {
                let url = format!(
                    "{}/bot{}/sendMessage",
                    target.url.trim_end_matches('/'),
                    target.secret.clone().unwrap_or_default()
                );
                let body = serde_json::json!({
                    "chat_id": target.settings.chat_id,
                    "text": truncate(&format!("{title}\n{text}"), 4096),
                    "disable_web_page_preview": true,
                });
                self.http.post(url).json(&body)
            }
            ChannelKind::Email => unreachable!("email is sent over SMTP"),
        };
        match request.send().await {
            Ok(response) => judge(response).await,
            // The error's text can hold the URL, which may be a secret (Slack, Discord,
            // Telegram's carries the bot token): say what failed, not where.
            Err(e) => Outcome::Retry { error: http_error(&e), status: None, after: None },
        }
    }

    async fn email(&self, target: &Target, content: Content<'_>, now: Timestamp) -> Outcome {
        let (title, text, _) = content.title_and_text(now);
        let settings = &target.settings;
        let refused = |error: String| Outcome::Refused { error, status: None };
        let from: Mailbox = match settings.from.as_deref().unwrap_or_default().parse() {
            Ok(m) => m,
            Err(e) => return refused(format!("the sender address is not valid: {e}")),
        };
        let mut message = lettre::Message::builder().from(from).subject(header_text(&title));
        for to in &settings.to {
            match to.parse::<Mailbox>() {
                Ok(m) => message = message.to(m),
                Err(e) => return refused(format!("recipient {to:?} is not valid: {e}")),
            }
        }
        let html = format!(
            "<html><body><h3>{}</h3><pre style=\"font-family:inherit;white-space:pre-wrap\">{}</pre></body></html>",
            html_escape(&title),
            html_escape(&text)
        );
        let email = match message.multipart(MultiPart::alternative_plain_html(text, html)) {
            Ok(email) => email,
            Err(e) => return refused(format!("cannot build the email: {e}")),
        };
        let Ok(url) = url::Url::parse(&target.url) else {
            return refused("the SMTP URL is not valid".into());
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port().unwrap_or(587);
        let builder = match settings.tls.unwrap_or_default() {
            EmailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host),
            EmailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&host),
            EmailTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)),
        };
        let mut builder = match builder {
            Ok(b) => b.port(port).timeout(Some(ATTEMPT_TIMEOUT)),
            Err(e) => return refused(format!("cannot set up TLS for {host}: {e}")),
        };
        if let (Some(user), Some(password)) = (&settings.username, &target.secret) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        match builder.build().send(email).await {
            Ok(response) => Outcome::Delivered {
                status: Some(u16::from(response.code())),
                answer: truncate(&response.message().collect::<Vec<_>>().join(" "), ANSWER_EXCERPT),
            },
            Err(e) if e.is_permanent() => Outcome::Refused {
                error: format!("the mail server refused: {e}"),
                status: e.status().map(u16::from),
            },
            Err(e) => {
                Outcome::Retry { error: format!("SMTP: {e}"), status: e.status().map(u16::from), after: None }
            }
        }
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!("sha256={}", crate::secrets::hex(&digest))
}

/// Sorts a receiver's answer into delivered, retry or refused.
async fn judge(response: reqwest::Response) -> Outcome {
    let status = response.status();
    let retry_after =
        response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let answer = excerpt(response).await;
    let code = status.as_u16();
    let said = |answer: &str| if answer.is_empty() { String::new() } else { format!(": {answer}") };
    if status.is_success() {
        Outcome::Delivered { status: Some(code), answer }
    } else if status.is_redirection() {
        Outcome::Refused {
            error: format!(
                "HTTP {code}: the receiver redirects{}; redirects are not followed, use the final URL",
                location.map(|l| format!(" to {}", truncate(&l, 200))).unwrap_or_default()
            ),
            status: Some(code),
        }
    } else if code == 408 || code == 429 || status.is_server_error() {
        Outcome::Retry {
            error: format!("HTTP {code}{}", said(&answer)),
            status: Some(code),
            after: retry_after,
        }
    } else {
        Outcome::Refused { error: format!("HTTP {code}{}", said(&answer)), status: Some(code) }
    }
}

/// The start of a response body, as text on one line.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < ANSWER_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    truncate(&text.split_whitespace().collect::<Vec<_>>().join(" "), ANSWER_EXCERPT)
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(raw: &str) -> Option<Duration> {
    if let Ok(secs) = raw.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(raw.trim()).ok()?;
    Some(at.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// What went wrong with a request, without its URL.
fn http_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "the receiver did not answer in time"
    } else if e.is_connect() {
        "cannot connect to the receiver"
    } else if e.is_body() || e.is_decode() {
        "the receiver's answer was cut off"
    } else {
        "the request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() { what.to_owned() } else { format!("{what}: {cause}") }
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A header value: one line of printable text.
fn header_text(text: &str) -> String {
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    truncate(&line, 200)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, multicast, broadcast and
/// unique-local addresses: what `ALERTS_BLOCK_PRIVATE` keeps alerts away from.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
                || a == 0
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// Resolves names for the HTTP client, leaving out private addresses when they are
/// blocked, so a name that changes its answer after the check still cannot reach them.
struct Resolver {
    block_private: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let block_private = self.block_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| !(block_private && is_private(a.ip()))).collect();
            if allowed.is_empty() {
                return Err(
                    "the name resolves only to private addresses, which ALERTS_BLOCK_PRIVATE blocks".into()
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn private_addresses_are_told_apart_from_public_ones() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
