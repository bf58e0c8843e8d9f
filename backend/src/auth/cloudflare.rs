//! Cloudflare Access: every user request carries a `Cf-Access-Jwt-Assertion` signed with
//! one of the team's keys (RS256). Keys are fetched from the team's certs URL, cached by
//! `kid`, and fetched again when an unknown `kid` shows up (at most once a second).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::clock::{SharedClock, Timestamp};
use crate::config::CloudflareConfig;

pub const ASSERTION_HEADER: &str = "Cf-Access-Jwt-Assertion";
const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    kid: String,
    kty: String,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AccessClaims {
    email: Option<String>,
    /// Service tokens carry their client ID here instead of an email.
    common_name: Option<String>,
}

/// Verifies Access assertions for one team and application audience.
pub struct AccessVerifier {
    config: CloudflareConfig,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    clock: SharedClock,
    last_fetch: tokio::sync::Mutex<Option<Timestamp>>,
}

impl std::fmt::Debug for AccessVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessVerifier")
            .field("team_domain", &self.config.team_domain)
            .finish_non_exhaustive()
    }
}

impl AccessVerifier {
    pub fn new(config: CloudflareConfig, http: reqwest::Client, clock: SharedClock) -> AccessVerifier {
        AccessVerifier {
            config,
            http,
            keys: RwLock::default(),
            clock,
            last_fetch: tokio::sync::Mutex::default(),
        }
    }

    /// The user (email, or a service token's name) of a valid assertion; why not otherwise.
    pub async fn verify(&self, assertion: &str) -> Result<String, String> {
        let header =
            jsonwebtoken::decode_header(assertion).map_err(|e| format!("malformed Access assertion: {e}"))?;
        if header.alg != Algorithm::RS256 {
            return Err(format!("Access assertion signed with {:?}, expected RS256", header.alg));
        }
        let kid = header.kid.ok_or("Access assertion has no key ID (kid)")?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(&kid).ok_or_else(|| format!("Access assertion signed by unknown key {kid}"))?
            }
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.config.audience]);
        validation.set_issuer(&[format!("https://{}", self.config.team_domain)]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 5;
        let claims = jsonwebtoken::decode::<AccessClaims>(assertion, &key, &validation)
            .map_err(|e| format!("invalid Access assertion: {e}"))?
            .claims;
        claims.email.or(claims.common_name).ok_or_else(|| "Access assertion names no user".to_owned())
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(kid).cloned()
    }

    async fn refresh(&self) -> Result<(), String> {
        let mut last = self.last_fetch.lock().await;
        let now = self.clock.now();
        // (A clock set back does not hold the next fetch off.)
        if last.is_some_and(|t| t <= now && now < t.plus(MIN_REFRESH_GAP)) {
            return Ok(());
        }
        *last = Some(now);
        let response = self
            .http
            .get(self.config.certs_url.clone())
            .send()
            .await
            .map_err(|e| format!("cannot fetch the Access signing keys: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the Access certs URL answered HTTP {}", response.status().as_u16()));
        }
        let jwks: Jwks = response.json().await.map_err(|e| format!("unreadable Access signing keys: {e}"))?;
        let keys: HashMap<String, DecodingKey> = jwks
            .keys
            .into_iter()
            .filter(|k| k.kty == "RSA")
            .filter_map(|k| {
                Some((k.kid, DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?))
            })
            .collect();
        tracing::info!(keys = keys.len(), "Cloudflare Access signing keys fetched");
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        Ok(())
    }
}
