//! Joining a machine with one command (SPEC §15): join tokens, the install script the primary
//! serves with its own URL in it, and the Fleetdeck binary it downloads from the primary.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::api::PathId;
use crate::api::error::Json;
use crate::api::source;
use crate::api::state::AppState;
use crate::audit::AuditAction;
use crate::auth::Principal;
use crate::error::{AppError, AppResult};
use crate::nodes::registry::{IssuedJoinToken, JoinToken, NewJoinToken};
use crate::nodes::{Labels, NodeName};

/// The install script; `@FLEETDECK_URL@` and `@FLEETDECK_VERSION@` are filled in when served.
const INSTALL_SCRIPT: &str = include_str!("install.sh");
/// The header that carries a download's SHA-256 (lowercase hex).
pub const CHECKSUM_HEADER: &str = "X-Checksum-Sha256";

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS), ts(optional_fields))]
pub struct CreateJoinToken {
    /// The joining node's name (else the machine's `NODE_NAME` or host name).
    name: Option<String>,
    /// Labels the joining node gets (else those it reports).
    labels: Option<Vec<String>>,
    /// Seconds until the token expires: 60 to 2592000 (30 days); default 3600.
    #[schema(minimum = 60, maximum = 2_592_000)]
    #[cfg_attr(test, ts(type = "number", optional))]
    expires_in: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/api/nodes/join-tokens",
    operation_id = "create_join_token",
    tag = "nodes",
    request_body = CreateJoinToken,
    responses((status = 201, description = "Created; the token and the command are shown this once", body = IssuedJoinToken)),
)]
pub async fn create(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    Json(body): Json<CreateJoinToken>,
) -> AppResult<HttpResponse> {
    let min = crate::nodes::registry::MIN_JOIN_TTL.as_secs();
    let max = crate::nodes::registry::MAX_JOIN_TTL.as_secs();
    let new = NewJoinToken {
        name: body
            .name
            .as_deref()
            .map(|n| NodeName::parse(n).map_err(|e| AppError::validation("name", e)))
            .transpose()?,
        labels: Labels::parse(&body.labels.unwrap_or_default())
            .map_err(|e| AppError::validation("labels", e))?,
        expires_in: match body.expires_in {
            None => None,
            Some(s) if (min..=max).contains(&s) => Some(Duration::from_secs(s)),
            Some(_) => {
                return Err(AppError::validation(
                    "expires_in",
                    format!("must be from {min} to {max} seconds"),
                ));
            }
        },
    };
    let actor = principal.actor();
    let issued = state.registry()?.create_join_token(new, &actor, state.config.auth.public_url()).await?;
    let details = issued.join_token.name.as_ref().map(|n| format!("for {n}"));
    state
        .audit()?
        .record(&actor, AuditAction::JoinTokenCreated, Some(&issued.join_token.id), source(&req), details)
        .await;
    Ok(HttpResponse::Created().json(issued))
}

#[utoipa::path(
    get,
    path = "/api/nodes/join-tokens",
    operation_id = "list_join_tokens",
    tag = "nodes",
    responses((status = 200, description = "Newest first; used and expired ones for a week after they expire", body = crate::api::List<JoinToken>)),
)]
pub async fn list(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(crate::api::List { items: state.registry()?.join_tokens().await? }))
}

#[utoipa::path(
    delete,
    path = "/api/nodes/join-tokens/{id}",
    operation_id = "revoke_join_token",
    tag = "nodes",
    params(PathId),
    responses((status = 204, description = "Revoked: nobody can join with it any more")),
)]
pub async fn revoke(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    PathId(id): PathId,
) -> AppResult<HttpResponse> {
    let revoked = state.registry()?.revoke_join_token(&id).await?;
    state
        .audit()?
        .record(&principal.actor(), AuditAction::JoinTokenRevoked, Some(&revoked.id), source(&req), None)
        .await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /install.sh`: installs Fleetdeck on a machine and joins it to this primary.
#[utoipa::path(
    get,
    path = "/install.sh",
    operation_id = "install_script",
    tag = "nodes",
    responses((status = 200, description = "A POSIX `sh` script with this primary's URL in it; `sh -s -- --help` lists its options", content_type = "text/x-shellscript")),
)]
pub async fn install_script(state: web::Data<AppState>) -> HttpResponse {
    let script = INSTALL_SCRIPT
        .replace("@FLEETDECK_URL@", &shell_safe(state.config.auth.public_url()))
        .replace("@FLEETDECK_VERSION@", crate::VERSION);
    HttpResponse::Ok().content_type("text/x-shellscript; charset=utf-8").body(script)
}

/// A URL to put inside single quotes in a shell script: anything unusual goes.
fn shell_safe(url: &str) -> String {
    url.chars().filter(|c| c.is_ascii_alphanumeric() || ":/.-_[]".contains(*c)).collect()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// Operating system as Rust names it (`linux`); default this primary's.
    #[param(pattern = "^[a-z0-9_]{1,32}$")]
    os: Option<String>,
    /// Architecture as Rust names it (`x86_64`, `aarch64`, `arm`…); default this primary's.
    #[param(pattern = "^[a-z0-9_]{1,32}$")]
    arch: Option<String>,
}

/// `GET /api/download/fleetdeck`: a Fleetdeck binary, with its SHA-256 in `X-Checksum-Sha256`.
/// `DATA_DIR/downloads/fleetdeck-<os>-<arch>` when that file exists (builds for other
/// machines, or another build for this one), else for this primary's own platform the
/// running binary itself.
#[utoipa::path(
    get,
    path = "/api/download/fleetdeck",
    operation_id = "download_binary",
    tag = "nodes",
    params(DownloadQuery),
    responses(
        (status = 200, description = "The binary", content_type = "application/octet-stream", body = Vec<u8>,
            headers(("X-Checksum-Sha256" = String, description = "The binary's SHA-256, lowercase hex"))),
        (status = 404, description = "No binary for that platform here: the message says how to provide one", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn download(
    state: web::Data<AppState>,
    query: web::Query<DownloadQuery>,
) -> AppResult<HttpResponse> {
    let platform_part = |field: &'static str, value: Option<&str>, default: &'static str| {
        let value = value.unwrap_or(default);
        let ok = (1..=32).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(value.to_owned())
        } else {
            Err(AppError::validation(field, "must be 1 to 32 of a-z, 0-9, _"))
        }
    };
    let os = platform_part("os", query.os.as_deref(), std::env::consts::OS)?;
    let arch = platform_part("arch", query.arch.as_deref(), std::env::consts::ARCH)?;
    let provided = state.config.data_dir.join("downloads").join(format!("fleetdeck-{os}-{arch}"));
    let path = if provided.is_file() {
        provided
    } else if os == std::env::consts::OS && arch == std::env::consts::ARCH {
        running_binary()
    } else {
        return Err(AppError::NotFound(format!(
            "this primary has no Fleetdeck binary for {os}/{arch} (it runs {}/{}): build Fleetdeck for \
             {arch} and put it at DATA_DIR/downloads/fleetdeck-{os}-{arch} on the primary, or give the \
             install script that build with --binary PATH",
            std::env::consts::OS,
            std::env::consts::ARCH
        )));
    };
    let (file, len, checksum) = web::block(move || open_with_checksum(&path))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("reading the binary to serve")))?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((CHECKSUM_HEADER, checksum))
        .insert_header(("Content-Disposition", "attachment; filename=\"fleetdeck\""))
        .body(actix_web::body::SizedStream::new(len, stream)))
}

/// The binary this process runs (on Linux the very file, even if replaced on disk since).
fn running_binary() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() { proc_exe } else { std::env::current_exe().unwrap_or(proc_exe) }
}

/// Opens `path`, with its length and SHA-256: computed once per file version (size and
/// modification time) and kept, as hashing a large binary takes a while.
fn open_with_checksum(path: &Path) -> std::io::Result<(std::fs::File, u64, String)> {
    /// A file version: its path, size and modification time.
    type Version = (PathBuf, u64, SystemTime);
    static CHECKSUMS: Mutex<Option<HashMap<Version, String>>> = Mutex::new(None);
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let key = (path.to_owned(), meta.len(), meta.modified()?);
    let known = CHECKSUMS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&key).cloned());
    let checksum = match known {
        Some(checksum) => checksum,
        None => {
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            file.rewind()?;
            let checksum = crate::secrets::hex(&hasher.finalize());
            let mut cache = CHECKSUMS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.get_or_insert_with(HashMap::new).insert(key, checksum.clone());
            checksum
        }
    };
    Ok((file, meta.len(), checksum))
}
