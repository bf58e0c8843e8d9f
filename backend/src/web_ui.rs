//! What the primary serves outside `/api`: the web UI. Until the React app in `frontend/`
//! lands, a placeholder page at `/`; any other path is a JSON 404.

use actix_web::{HttpResponse, web};

const PLACEHOLDER: &str = include_str!("../../frontend/placeholder.html");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index));
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .body(PLACEHOLDER)
}
