//! The one error type of request paths. Each variant is a kind of answer the API gives;
//! `api::error` turns it into a status code and a `{"error":{"code","message"}}` body.
//! Internal errors carry their detail to the log only.

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    RateLimited(String),
    /// The request's body did not arrive in time.
    #[error("{0}")]
    Timeout(String),
    /// The request names a host this server does not answer to.
    #[error("{0}")]
    Misdirected(String),
    #[error("{0}")]
    Unavailable(String),
    /// Leader-only work on a primary whose term is over (or never began).
    #[error("{0}")]
    NotLeader(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn validation(field: &str, message: impl Into<String>) -> AppError {
        AppError::Validation { field: field.to_owned(), message: message.into() }
    }

    /// The machine-readable code of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "validation_failed",
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Unprocessable(_) => "unprocessable",
            AppError::RateLimited(_) => "rate_limited",
            AppError::Misdirected(_) => "misdirected_request",
            AppError::Timeout(_) => "request_timeout",
            AppError::Unavailable(_) => "unavailable",
            AppError::NotLeader(_) => "not_leader",
            AppError::Internal(_) => "internal",
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> AppError {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            DbError::Query(Error::NotFound) => AppError::NotFound("not found".into()),
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                AppError::Conflict("already exists".into())
            }
            DbError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                AppError::Unavailable("the database is unavailable; try again shortly".into())
            }
            DbError::Query(e) => AppError::Internal(anyhow::Error::new(e).context("database query")),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> AppError {
        AppError::from(DbError::Query(e))
    }
}

pub type AppResult<T> = Result<T, AppError>;
