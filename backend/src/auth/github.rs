//! GitHub OAuth (authorization code + PKCE + state) through the `oauth2` crate, and the
//! `GET /user` call that tells who logged in. The HTTP client follows no redirects.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, TokenUrl,
};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use url::Url;

use crate::config::GitHubConfig;

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Who GitHub says logged in.
#[derive(Debug, Clone, Deserialize)]
pub struct GitHubUser {
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

/// A login about to start: where to send the browser, and what to remember.
pub struct LoginStart {
    pub authorize_url: Url,
    pub state: String,
    pub pkce_verifier: String,
}

/// The GitHub side of logging in.
pub struct GitHub {
    config: GitHubConfig,
    client: Client,
    http: reqwest::Client,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub").field("client_id", &self.config.client_id).finish_non_exhaustive()
    }
}

impl GitHub {
    pub fn new(config: GitHubConfig, callback: &Url, http: reqwest::Client) -> anyhow::Result<GitHub> {
        let client = BasicClient::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(config.client_secret.expose_secret().to_owned()))
            .set_auth_uri(AuthUrl::from_url(config.auth_url.clone()))
            .set_token_uri(TokenUrl::from_url(config.token_url.clone()))
            .set_redirect_uri(RedirectUrl::from_url(callback.clone()));
        Ok(GitHub { config, client, http })
    }

    /// Whether `login` is on the allow-list (case-insensitive; an empty list admits nobody).
    pub fn allows(&self, login: &str) -> bool {
        let login = login.to_lowercase();
        self.config.allowed_users.contains(&login)
    }

    pub fn start(&self) -> LoginStart {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (authorize_url, state) = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("read:user".into()))
            .set_pkce_challenge(challenge)
            .url();
        LoginStart { authorize_url, state: state.secret().clone(), pkce_verifier: verifier.secret().clone() }
    }

    /// Exchanges the code (with the PKCE verifier) and fetches the user.
    pub async fn finish(&self, code: &str, pkce_verifier: String) -> Result<GitHubUser, String> {
        let token = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| format!("GitHub refused the login code: {e}"))?;
        let url = format!("{}/user", self.config.api_url.as_str().trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .bearer_auth(token.access_token().secret())
            .header("Accept", "application/vnd.github+json")
            .send()
            .await
            .map_err(|e| format!("cannot reach GitHub's API: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GitHub's API answered HTTP {}", response.status().as_u16()));
        }
        response.json().await.map_err(|e| format!("unreadable GitHub user: {e}"))
    }
}
