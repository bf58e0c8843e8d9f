//! What the primary serves outside `/api` and `/auth`: the web UI (`frontend/`), built by
//! Vite and embedded in the binary at compile time (see `build.rs`; without Node the binary
//! embeds a placeholder page instead).
//!
//! - Hashed assets (`/assets/…`) never change under their name: cached for a year, immutable.
//! - `index.html` and other top-level files are revalidated every time (`no-cache`), so a new
//!   binary's UI is picked up at once.
//! - Any other `GET` path is a route of the single-page app and answers `index.html`; never
//!   a path under `/api` or `/auth`, nor a missing asset, which keep their JSON 404.
//! - Compression (gzip/brotli) is the app-wide `Compress` middleware's job.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::Embed;

use crate::error::AppError;

#[derive(Embed)]
#[folder = "$FLEETDECK_UI_DIR"]
struct Assets;

/// Whether this binary carries the real UI (`false`: the placeholder page).
pub const UI_BUILT: bool = matches!(env!("FLEETDECK_UI_BUILT").as_bytes(), b"true");

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";
/// The UI loads only its own scripts and styles and talks only to its own origin; GitHub
/// avatars are the one outside resource.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: https:; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; \
     form-action 'self'";

/// Registers the catch-all UI route. It matches every path, so it must come after every
/// other service (`api::routes` registers it last).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/{path:.*}")
            .route(web::get().to(serve))
            .route(web::head().to(serve))
            .default_service(web::to(crate::api::error::not_found)),
    );
}

async fn serve(req: HttpRequest) -> Result<HttpResponse, AppError> {
    let path = req.path().trim_start_matches('/');
    let not_found = || AppError::NotFound(format!("no such endpoint: {} {}", req.method(), req.path()));
    if ["api", "auth"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/"))) {
        return Err(not_found());
    }
    if !path.is_empty()
        && path != "index.html"
        && let Some(file) = Assets::get(path)
    {
        let cache = if path.starts_with("assets/") { IMMUTABLE } else { REVALIDATE };
        return Ok(respond(&req, &file, cache));
    }
    // A missing file under /assets/ (or with an asset's extension) is a stale or mistyped
    // link, not a page: answering HTML there would hide the mistake.
    if path.starts_with("assets/") || has_asset_extension(path) {
        return Err(not_found());
    }
    let index = Assets::get("index.html").ok_or_else(not_found)?;
    let mut response = respond(&req, &index, REVALIDATE);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    Ok(response)
}

fn has_asset_extension(path: &str) -> bool {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(
        ext.as_deref(),
        Some(
            "js" | "mjs"
                | "css"
                | "map"
                | "png"
                | "svg"
                | "ico"
                | "woff"
                | "woff2"
                | "json"
                | "txt"
                | "webmanifest"
        )
    )
}

fn respond(req: &HttpRequest, file: &rust_embed::EmbeddedFile, cache: &'static str) -> HttpResponse {
    let etag = format!("\"{}\"", crate::secrets::hex(&file.metadata.sha256_hash()[..16]));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut builder = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    builder
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
    if fresh {
        return builder.finish();
    }
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime == "application/javascript" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    builder.insert_header((header::CONTENT_TYPE, content_type));
    if req.method() == actix_web::http::Method::HEAD {
        return builder.finish();
    }
    let body = match &file.data {
        std::borrow::Cow::Borrowed(bytes) => web::Bytes::from_static(bytes),
        std::borrow::Cow::Owned(bytes) => web::Bytes::from(bytes.clone()),
    };
    builder.body(body)
}
