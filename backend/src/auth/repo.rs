//! Queries for sessions, logins in progress and API tokens.

use diesel::prelude::*;

use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{api_tokens, oauth_logins, sessions};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

pub fn insert_session(conn: &mut DbConnection, row: &SessionRow) -> QueryResult<()> {
    diesel::insert_into(sessions::table).values(row).execute(conn).map(drop)
}

/// A session that is neither revoked nor expired.
pub fn live_session(conn: &mut DbConnection, id: &str, now: Timestamp) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now.0))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

pub fn revoke_session(conn: &mut DbConnection, id: &str, now: Timestamp) -> QueryResult<usize> {
    diesel::update(sessions::table.find(id).filter(sessions::revoked_at.is_null()))
        .set(sessions::revoked_at.eq(Some(now.0)))
        .execute(conn)
}

/// Removes sessions and pending logins that can no longer be used.
pub fn prune(conn: &mut DbConnection, now: Timestamp, login_ttl_ms: i64) -> QueryResult<usize> {
    let a = diesel::delete(sessions::table.filter(sessions::expires_at.lt(now.0))).execute(conn)?;
    let b = diesel::delete(oauth_logins::table.filter(oauth_logins::created_at.lt(now.0 - login_ttl_ms)))
        .execute(conn)?;
    Ok(a + b)
}

pub fn insert_login(
    conn: &mut DbConnection,
    state_hash: &[u8],
    verifier: &str,
    now: Timestamp,
) -> QueryResult<()> {
    diesel::insert_into(oauth_logins::table)
        .values((
            oauth_logins::state_hash.eq(state_hash),
            oauth_logins::pkce_verifier.eq(verifier),
            oauth_logins::created_at.eq(now.0),
        ))
        .execute(conn)
        .map(drop)
}

/// Takes a login in progress out, so its state can never be used twice. Returns its PKCE
/// verifier and when it started.
pub fn take_login(conn: &mut DbConnection, state_hash: &[u8]) -> QueryResult<Option<(String, i64)>> {
    let row: Option<(String, i64)> = oauth_logins::table
        .find(state_hash)
        .select((oauth_logins::pkce_verifier, oauth_logins::created_at))
        .first(conn)
        .optional()?;
    if row.is_some() {
        diesel::delete(oauth_logins::table.find(state_hash)).execute(conn)?;
    }
    Ok(row)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_tokens)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub fn insert_token(conn: &mut DbConnection, row: &TokenRow) -> QueryResult<()> {
    diesel::insert_into(api_tokens::table).values(row).execute(conn).map(drop)
}

pub fn tokens(conn: &mut DbConnection) -> QueryResult<Vec<TokenRow>> {
    api_tokens::table.select(TokenRow::as_select()).order(api_tokens::id.desc()).load(conn)
}

pub fn token_by_hash(conn: &mut DbConnection, hash: &[u8]) -> QueryResult<Option<TokenRow>> {
    api_tokens::table
        .filter(api_tokens::token_hash.eq(hash))
        .select(TokenRow::as_select())
        .first(conn)
        .optional()
}

pub fn touch_token(conn: &mut DbConnection, id: &str, now: Timestamp) -> QueryResult<usize> {
    diesel::update(api_tokens::table.find(id)).set(api_tokens::last_used_at.eq(Some(now.0))).execute(conn)
}

pub fn revoke_token(conn: &mut DbConnection, id: &str, now: Timestamp) -> QueryResult<usize> {
    diesel::update(api_tokens::table.find(id).filter(api_tokens::revoked_at.is_null()))
        .set(api_tokens::revoked_at.eq(Some(now.0)))
        .execute(conn)
}

pub fn token_exists(conn: &mut DbConnection, id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(api_tokens::table.find(id))).get_result(conn)
}
