//! User access (SPEC §9): who is behind a user request, and the ways to become someone —
//! a GitHub login (a session JWT in a cookie, revocable), a Cloudflare Access assertion,
//! or an API token. With none configured the primary trusts its network.
//!
//! Node authentication (`/api/internal/*`) is separate and lives in `api::node_auth`.

mod cloudflare;
mod github;
mod jwt;
mod repo;

use std::time::Duration;

use serde::Serialize;

use crate::clock::{SharedClock, Timestamp};
use crate::config::AuthConfig;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::secrets::{KeyHash, random_token};

pub use cloudflare::ASSERTION_HEADER;
pub use github::GitHubUser;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fd_session";
/// Binds a login in progress to the browser that started it.
pub const LOGIN_COOKIE: &str = "fd_login";
/// How long a login may take between leaving for GitHub and coming back.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
const TOKEN_PREFIX: &str = "fdt_";

/// Who made a request.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum Principal {
    /// A person: logged in with GitHub (with a session) or vouched for by Cloudflare Access.
    User {
        login: String,
        name: Option<String>,
        avatar_url: Option<String>,
        provider: &'static str,
        #[serde(skip)]
        session_id: Option<String>,
    },
    /// A script with an API token.
    Token { id: String, name: String },
    /// Authentication is off: the network is trusted.
    Anonymous,
}

impl Principal {
    /// How the audit log names this principal.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { login, provider, .. } => format!("{provider}:{login}"),
            Principal::Token { name, id } => format!("token:{name} ({id})"),
            Principal::Anonymous => "anonymous".into(),
        }
    }

    /// Whether the request rode on the session cookie (and so needs a same-origin check).
    pub fn by_cookie(&self) -> bool {
        matches!(self, Principal::User { session_id: Some(_), .. })
    }
}

/// What a request presented.
#[derive(Debug, Default)]
pub struct Credentials {
    pub bearer: Option<String>,
    pub session: Option<String>,
    pub access_assertion: Option<String>,
}

/// A new API token: its secret is shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct IssuedToken {
    pub token: ApiToken,
    pub secret: String,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub created_by: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl From<repo::TokenRow> for ApiToken {
    fn from(r: repo::TokenRow) -> ApiToken {
        ApiToken {
            id: r.id,
            name: r.name,
            created_by: r.created_by,
            created_at: Timestamp(r.created_at),
            expires_at: r.expires_at.map(Timestamp),
            last_used_at: r.last_used_at.map(Timestamp),
            revoked_at: r.revoked_at.map(Timestamp),
        }
    }
}

/// How a finished GitHub login turned out.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A session, and the cookie value carrying it.
    Admitted { user: GitHubUser, session_token: String },
    /// Not on the allow-list.
    Refused { login: String },
}

/// Everything user access needs, built once.
#[derive(Debug)]
pub struct AuthService {
    config: AuthConfig,
    db: Db,
    clock: SharedClock,
    sessions: Option<jwt::SessionTokens>,
    github: Option<github::GitHub>,
    access: Option<cloudflare::AccessVerifier>,
}

impl AuthService {
    pub fn new(config: AuthConfig, db: Db, clock: SharedClock) -> anyhow::Result<AuthService> {
        let http = crate::protocol::http_client(Duration::from_secs(10)).build()?;
        let callback = config.base_url.join("/auth/github/callback")?;
        let github =
            config.github.clone().map(|g| github::GitHub::new(g, &callback, http.clone())).transpose()?;
        let sessions = config.github.as_ref().map(|g| jwt::SessionTokens::new(&g.jwt_secret));
        let access =
            config.cloudflare.clone().map(|c| cloudflare::AccessVerifier::new(c, http, clock.clone()));
        Ok(AuthService { config, db, clock, sessions, github, access })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// `"github"`, `"cloudflare"`, or `"off"`.
    pub fn mode(&self) -> &'static str {
        if self.github.is_some() {
            "github"
        } else if self.access.is_some() {
            "cloudflare"
        } else {
            "off"
        }
    }

    /// Who presented `creds`, or why they are refused.
    pub async fn authenticate(&self, creds: Credentials) -> AppResult<Principal> {
        let access_user = match &self.access {
            Some(verifier) => {
                let assertion = creds.access_assertion.ok_or_else(|| {
                    AppError::Unauthorized(format!(
                        "missing {ASSERTION_HEADER}: sign in through Cloudflare Access"
                    ))
                })?;
                Some(verifier.verify(&assertion).await.map_err(AppError::Unauthorized)?)
            }
            None => None,
        };
        if let Some(bearer) = creds.bearer {
            return self.token_principal(&bearer).await;
        }
        if let Some(sessions) = &self.sessions {
            let cookie = creds.session.ok_or_else(|| AppError::Unauthorized("log in first".into()))?;
            return self.session_principal(sessions, &cookie).await;
        }
        Ok(match access_user {
            Some(email) => Principal::User {
                login: email,
                name: None,
                avatar_url: None,
                provider: "cloudflare",
                session_id: None,
            },
            None => Principal::Anonymous,
        })
    }

    async fn session_principal(&self, sessions: &jwt::SessionTokens, token: &str) -> AppResult<Principal> {
        let claims = sessions.verify(token).map_err(AppError::Unauthorized)?;
        let now = self.clock.now();
        let sid = claims.sid.clone();
        let row = self.db.run(move |conn| repo::live_session(conn, &sid, now)).await?;
        let row = row.ok_or_else(|| AppError::Unauthorized("the session has ended; log in again".into()))?;
        if row.login != claims.sub {
            return Err(AppError::Unauthorized("invalid session".into()));
        }
        // Taking someone off the allow-list ends their sessions too.
        if self.github.as_ref().is_some_and(|g| !g.allows(&row.login)) {
            return Err(AppError::Unauthorized(format!("{} is no longer allowed in", row.login)));
        }
        Ok(Principal::User {
            login: row.login,
            name: row.name,
            avatar_url: row.avatar_url,
            provider: "github",
            session_id: Some(row.id),
        })
    }

    async fn token_principal(&self, bearer: &str) -> AppResult<Principal> {
        if !bearer.starts_with(TOKEN_PREFIX) || bearer.len() > 200 {
            return Err(AppError::Unauthorized("malformed API token".into()));
        }
        let hash = KeyHash::of(bearer).as_bytes().to_vec();
        let now = self.clock.now();
        let row = self.db.run(move |conn| repo::token_by_hash(conn, &hash)).await?;
        let row = row.ok_or_else(|| AppError::Unauthorized("unknown API token".into()))?;
        if row.revoked_at.is_some() {
            return Err(AppError::Unauthorized("this API token was revoked".into()));
        }
        if row.expires_at.is_some_and(|e| now.millis() >= e) {
            return Err(AppError::Unauthorized("this API token has expired".into()));
        }
        let id = row.id.clone();
        // Best effort: when a token was last used is information, not a guarantee.
        if let Err(e) = self.db.run(move |conn| repo::touch_token(conn, &id, now)).await {
            tracing::warn!(error = %e, "recording API token use failed");
        }
        Ok(Principal::Token { id: row.id, name: row.name })
    }

    /// Fails unless GitHub login is enabled.
    pub fn require_github(&self) -> AppResult<()> {
        self.github().map(drop)
    }

    fn github(&self) -> AppResult<&github::GitHub> {
        self.github
            .as_ref()
            .ok_or_else(|| AppError::NotFound("GitHub login is not enabled (AUTH_ENABLED=false)".into()))
    }

    /// Starts a GitHub login: remembers its state and PKCE verifier, and returns where to
    /// send the browser and the state to bind to it.
    pub async fn begin_login(&self) -> AppResult<(url::Url, String)> {
        let start = self.github()?.start();
        let hash = KeyHash::of(&start.state).as_bytes().to_vec();
        let now = self.clock.now();
        let verifier = start.pkce_verifier;
        let ttl = i64::try_from(LOGIN_TTL.as_millis()).unwrap_or(i64::MAX);
        self.db
            .write(move |conn| {
                repo::prune(conn, now, ttl)?;
                repo::insert_login(conn, &hash, &verifier, now)
            })
            .await?;
        Ok((start.authorize_url, start.state))
    }

    /// Finishes a GitHub login. `state` must match the browser's cookie and a login in
    /// progress, which it consumes, so no state or code works twice.
    pub async fn finish_login(
        &self,
        code: &str,
        state: &str,
        browser_state: Option<&str>,
    ) -> AppResult<LoginOutcome> {
        let github = self.github()?;
        let Some(browser_state) = browser_state else {
            return Err(AppError::Forbidden("this login was not started in this browser".into()));
        };
        if !crate::secrets::secrets_equal(browser_state, state) {
            return Err(AppError::Forbidden("the login state does not match this browser's".into()));
        }
        let hash = KeyHash::of(state).as_bytes().to_vec();
        let taken = self.db.write(move |conn| repo::take_login(conn, &hash)).await?;
        let Some((verifier, started)) = taken else {
            return Err(AppError::Forbidden("unknown or already used login state; start again".into()));
        };
        if self.clock.now().since(Timestamp(started)) > LOGIN_TTL {
            return Err(AppError::Forbidden("the login took too long; start again".into()));
        }
        let user = github.finish(code, verifier).await.map_err(AppError::Unauthorized)?;
        if !github.allows(&user.login) {
            return Ok(LoginOutcome::Refused { login: user.login });
        }
        let now = self.clock.now();
        let ttl = self.config.session_ttl;
        let row = repo::SessionRow {
            id: uuid::Uuid::now_v7().to_string(),
            login: user.login.clone(),
            name: user.name.clone(),
            avatar_url: user.avatar_url.clone(),
            created_at: now.millis(),
            expires_at: now.plus(ttl).millis(),
            revoked_at: None,
        };
        let sessions =
            self.sessions.as_ref().ok_or_else(|| AppError::Internal(anyhow::anyhow!("no session keys")))?;
        let session_token = sessions
            .issue(&row.login, &row.id, now, ttl)
            .map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
        self.db.write(move |conn| repo::insert_session(conn, &row)).await?;
        Ok(LoginOutcome::Admitted { user, session_token })
    }

    /// Ends a session for good.
    pub async fn logout(&self, session_id: &str) -> AppResult<()> {
        let id = session_id.to_owned();
        let now = self.clock.now();
        self.db.write(move |conn| repo::revoke_session(conn, &id, now)).await?;
        Ok(())
    }

    pub async fn create_token(
        &self,
        name: &str,
        expires_in: Option<Duration>,
        created_by: &str,
    ) -> AppResult<IssuedToken> {
        let secret = format!("{TOKEN_PREFIX}{}", random_token(32));
        let now = self.clock.now();
        let row = repo::TokenRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_owned(),
            token_hash: KeyHash::of(&secret).as_bytes().to_vec(),
            created_by: created_by.to_owned(),
            created_at: now.millis(),
            expires_at: expires_in.map(|d| now.plus(d).millis()),
            last_used_at: None,
            revoked_at: None,
        };
        let stored = row.clone();
        self.db.write(move |conn| repo::insert_token(conn, &stored)).await?;
        Ok(IssuedToken { token: row.into(), secret })
    }

    pub async fn tokens(&self) -> AppResult<Vec<ApiToken>> {
        let rows = self.db.run(repo::tokens).await?;
        Ok(rows.into_iter().map(ApiToken::from).collect())
    }

    /// Revokes a token; `false` if it was already revoked.
    pub async fn revoke_token(&self, id: &str) -> AppResult<bool> {
        let id = id.to_owned();
        let now = self.clock.now();
        let (exists, revoked) = self
            .db
            .write(move |conn| Ok((repo::token_exists(conn, &id)?, repo::revoke_token(conn, &id, now)?)))
            .await?;
        if !exists {
            return Err(AppError::NotFound("no such API token".into()));
        }
        Ok(revoked == 1)
    }
}
