//! Session tokens: HS256 JWTs with an explicit validation (algorithm, issuer, audience,
//! expiry all required). The token only names a session row; revocation lives there.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

const ISSUER: &str = "fleetdeck";
const AUDIENCE: &str = "fleetdeck-ui";

#[derive(Debug, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The user's login.
    pub sub: String,
    /// The session row's ID.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// Signs and checks session tokens.
pub struct SessionTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionTokens([REDACTED])")
    }
}

impl SessionTokens {
    pub fn new(secret: &SecretString) -> SessionTokens {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        SessionTokens {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
        }
    }

    pub fn issue(
        &self,
        login: &str,
        session_id: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<String, String> {
        let claims = SessionClaims {
            sub: login.to_owned(),
            sid: session_id.to_owned(),
            iat: now.millis() / 1000,
            exp: now.plus(ttl).millis() / 1000,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// The claims of a valid token; why not otherwise.
    pub fn verify(&self, token: &str) -> Result<SessionClaims, String> {
        jsonwebtoken::decode::<SessionClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| format!("invalid session: {e}"))
    }
}
