//! Logging in and out, who am I, API tokens and the audit log.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::api::PathId;
use crate::api::error::Json;
use crate::api::source;
use crate::api::state::AppState;
use crate::api::user_auth::{check_same_origin, credentials};
use crate::api::{Page, page_limit};
use crate::audit::AuditAction;
use crate::audit::AuditFilter;
use crate::auth::{LOGIN_COOKIE, LOGIN_TTL, LoginOutcome, Principal, SESSION_COOKIE};
use crate::error::{AppError, AppResult};

fn cookie<'a>(
    state: &AppState,
    name: &'a str,
    value: String,
    path: &'a str,
    max_age: std::time::Duration,
) -> Cookie<'a> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.auth.secure_cookie)
        .max_age(CookieDuration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX)))
        .finish()
}

fn redirect(to: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Found();
    builder.insert_header((header::LOCATION, to.to_owned()));
    builder
}

/// `GET /auth/github/login`: off to GitHub, with state bound to this browser.
#[utoipa::path(
    get,
    path = "/auth/github/login",
    tag = "access",
    responses((status = 302, description = "To GitHub's authorization page, with a login cookie bound to this browser")),
)]
pub async fn login(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    state.login_limiter.attempt(source(&req))?;
    let (authorize_url, login_state) = state.auth()?.begin_login().await?;
    Ok(redirect(authorize_url.as_str())
        .cookie(cookie(&state, LOGIN_COOKIE, login_state, "/auth", LOGIN_TTL))
        .finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/github/callback`: admits allowed users with a session cookie; sends the
/// rest back to the UI with a reason it can show.
#[utoipa::path(
    get,
    path = "/auth/github/callback",
    tag = "access",
    params(CallbackQuery),
    responses((status = 302, description = "To the UI: with a session cookie if the user is allowed, else to /login with the reason")),
)]
pub async fn callback(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<CallbackQuery>,
) -> AppResult<HttpResponse> {
    let ip = source(&req);
    state.login_limiter.attempt(ip)?;
    let audit = state.audit()?;
    state.auth()?.require_github()?;
    let query = query.into_inner();
    if let Some(error) = query.error {
        audit
            .record("anonymous", AuditAction::LoginRefused, None, ip, Some(format!("GitHub said: {error}")))
            .await;
        return Ok(redirect("/login?error=denied").finish());
    }
    let (Some(code), Some(login_state)) = (query.code, query.state) else {
        return Err(AppError::BadRequest("the callback needs code and state".into()));
    };
    let browser_state = req.cookie(LOGIN_COOKIE).map(|c| c.value().to_owned());
    let outcome = state.auth()?.finish_login(&code, &login_state, browser_state.as_deref()).await;
    let mut clear_login = cookie(&state, LOGIN_COOKIE, String::new(), "/auth", std::time::Duration::ZERO);
    clear_login.make_removal();
    match outcome {
        Ok(LoginOutcome::Admitted { user, session_token }) => {
            audit.record(&format!("github:{}", user.login), AuditAction::Login, None, ip, None).await;
            let session = cookie(&state, SESSION_COOKIE, session_token, "/", state.config.auth.session_ttl);
            Ok(redirect("/").cookie(session).cookie(clear_login).finish())
        }
        Ok(LoginOutcome::Refused { login }) => {
            audit
                .record(
                    &format!("github:{login}"),
                    AuditAction::LoginRefused,
                    None,
                    ip,
                    Some("not on GITHUB_ALLOWED_USERS".into()),
                )
                .await;
            let to = format!(
                "/login?error=not_allowed&login={}",
                url::form_urlencoded::byte_serialize(login.as_bytes()).collect::<String>()
            );
            Ok(redirect(&to).cookie(clear_login).finish())
        }
        Err(e) => {
            audit.record("anonymous", AuditAction::LoginFailed, None, ip, Some(e.to_string())).await;
            Err(e)
        }
    }
}

/// `POST /auth/logout`: revokes the session, whatever its cookie's expiry says.
#[utoipa::path(post, path = "/auth/logout", tag = "access", responses((status = 204, description = "The session is revoked and its cookie removed")))]
pub async fn logout(req: HttpRequest, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let auth = state.auth()?;
    let principal = auth.authenticate(credentials(&req)).await?;
    let Principal::User { session_id: Some(session_id), .. } = &principal else {
        return Err(AppError::BadRequest("there is no session to end".into()));
    };
    // Only a request riding on the session cookie can be forged by another site.
    check_same_origin(&req, auth.config())?;
    auth.logout(session_id).await?;
    state.audit()?.record(&principal.actor(), AuditAction::Logout, None, source(&req), None).await;
    let mut gone = cookie(&state, SESSION_COOKIE, String::new(), "/", std::time::Duration::ZERO);
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// `GET /api/me`: the user, and how authentication is set up (so the UI can say).
#[utoipa::path(get, path = "/api/me", tag = "access", responses((status = 200, body = Me)))]
pub async fn me(state: web::Data<AppState>, principal: Principal) -> AppResult<HttpResponse> {
    let user = match &principal {
        Principal::Anonymous => None,
        other => Some(other),
    };
    Ok(HttpResponse::Ok().json(Me { auth: state.auth()?.mode(), user }))
}

/// Who is asking, and how user authentication is set up (`github`, `cloudflare` or `off`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub(crate) struct Me<'a> {
    #[cfg_attr(test, ts(type = r#""github" | "cloudflare" | "off""#))]
    auth: &'static str,
    user: Option<&'a Principal>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct CreateToken {
    name: String,
    expires_in_days: Option<u32>,
}

#[utoipa::path(
    post,
    path = "/api/tokens",
    tag = "access",
    request_body = CreateToken,
    responses((status = 201, description = "Created; its secret is shown this once", body = crate::auth::IssuedToken)),
)]
pub async fn create_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    Json(body): Json<CreateToken>,
) -> AppResult<HttpResponse> {
    let name = body.name.trim();
    if name.is_empty() {
        return Err(AppError::validation("name", "must not be empty"));
    }
    crate::api::one_line("name", name, 100)?;
    let expires_in = match body.expires_in_days {
        None => None,
        Some(days @ 1..=3650) => Some(std::time::Duration::from_secs(u64::from(days) * 86_400)),
        Some(_) => return Err(AppError::validation("expires_in_days", "must be from 1 to 3650")),
    };
    let actor = principal.actor();
    let issued = state.auth()?.create_token(name, expires_in, &actor).await?;
    state
        .audit()?
        .record(
            &actor,
            AuditAction::TokenCreated,
            Some(&issued.token.id),
            source(&req),
            Some(name.to_owned()),
        )
        .await;
    Ok(HttpResponse::Created().json(issued))
}

#[utoipa::path(get, path = "/api/tokens", tag = "access", responses((status = 200, body = crate::api::List<crate::auth::ApiToken>)))]
pub async fn list_tokens(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(crate::api::List { items: state.auth()?.tokens().await? }))
}

#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "access", params(PathId), responses((status = 204, description = "Revoked (or already gone)")))]
pub async fn revoke_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    if state.auth()?.revoke_token(&id).await? {
        state
            .audit()?
            .record(&principal.actor(), AuditAction::TokenRevoked, Some(&id), source(&req), None)
            .await;
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries by this actor.
    actor: Option<String>,
    /// Entries of this action.
    action: Option<AuditAction>,
    /// Entries about this target (a node's, a token's, a job's ID…).
    target: Option<String>,
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/audit", tag = "access", params(AuditQuery), responses((status = 200, body = Page<crate::audit::AuditEntry>)))]
pub async fn audit(state: web::Data<AppState>, query: web::Query<AuditQuery>) -> AppResult<HttpResponse> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        target: q.target,
        before: q.cursor,
        limit: limit + 1,
    };
    let items = state.audit()?.list(filter).await?;
    Ok(HttpResponse::Ok().json(Page::from_overfetch(items, limit, |e| e.id.clone())))
}
