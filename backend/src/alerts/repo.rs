//! Queries for channels, rules, rule states, messages and the delivery outbox.

use diesel::prelude::*;

use crate::alerts::model::DeliveryStatus;
use crate::clock::Timestamp;
use crate::db::DbConnection;
use crate::db::schema::{
    alert_channels, alert_deliveries, alert_messages, alert_rule_channels, alert_rules, alert_states,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = alert_channels, treat_none_as_null = true)]
pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub url: String,
    pub settings: String,
    pub sealed: Vec<u8>,
    pub summary_over: Option<i32>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = alert_rules, treat_none_as_null = true)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    pub event: String,
    pub labels: String,
    pub nodes: String,
    pub threshold: Option<f64>,
    pub for_secs: i64,
    pub muted_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = alert_states, treat_none_as_null = true)]
pub struct StateRow {
    pub rule_id: String,
    pub subject: String,
    pub phase: String,
    pub since: i64,
    pub flapping_since: Option<i64>,
    pub flips: i32,
    pub holds: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alert_messages)]
pub struct MessageRow {
    pub id: String,
    pub rule_id: Option<String>,
    pub rule_name: String,
    pub event: String,
    pub state: String,
    pub node_id: Option<String>,
    pub node_name: Option<String>,
    pub job_id: Option<String>,
    pub text: String,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alert_deliveries)]
pub struct DeliveryRow {
    pub id: String,
    pub message_id: String,
    pub channel_id: String,
    pub status: String,
    pub attempts: i32,
    pub next_try_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

// Channels

pub fn insert_channel(conn: &mut DbConnection, row: &ChannelRow) -> QueryResult<()> {
    diesel::insert_into(alert_channels::table).values(row).execute(conn).map(drop)
}

pub fn update_channel(conn: &mut DbConnection, row: &ChannelRow) -> QueryResult<usize> {
    diesel::update(alert_channels::table.find(&row.id)).set(row).execute(conn)
}

pub fn delete_channel(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(alert_channels::table.find(id)).execute(conn)
}

pub fn find_channel(conn: &mut DbConnection, id: &str) -> QueryResult<Option<ChannelRow>> {
    alert_channels::table.find(id).select(ChannelRow::as_select()).first(conn).optional()
}

pub fn channels(conn: &mut DbConnection) -> QueryResult<Vec<ChannelRow>> {
    alert_channels::table.select(ChannelRow::as_select()).order(alert_channels::name).load(conn)
}

/// Which of `ids` are channels.
pub fn existing_channels(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<String>> {
    alert_channels::table.filter(alert_channels::id.eq_any(ids)).select(alert_channels::id).load(conn)
}

/// A channel's newest tried delivery: `channel, status, at, error`.
pub type LastDeliveryRow = (String, String, i64, Option<String>);

/// Each of `channels`' newest delivery that was tried (one indexed query per channel:
/// channels are few, deliveries many).
pub fn last_deliveries(conn: &mut DbConnection, channels: &[String]) -> QueryResult<Vec<LastDeliveryRow>> {
    let mut latest = Vec::new();
    for channel in channels {
        let row: Option<(String, Option<i64>, Option<String>)> = alert_deliveries::table
            .filter(alert_deliveries::channel_id.eq(channel))
            .filter(alert_deliveries::last_attempt_at.is_not_null())
            .order(alert_deliveries::last_attempt_at.desc())
            .select((
                alert_deliveries::status,
                alert_deliveries::last_attempt_at,
                alert_deliveries::last_error,
            ))
            .first(conn)
            .optional()?;
        if let Some((status, at, error)) = row {
            latest.push((channel.clone(), status, at.unwrap_or_default(), error));
        }
    }
    Ok(latest)
}

// Rules

pub fn insert_rule(conn: &mut DbConnection, row: &RuleRow, channels: &[String]) -> QueryResult<()> {
    diesel::insert_into(alert_rules::table).values(row).execute(conn)?;
    set_rule_channels(conn, &row.id, channels)
}

pub fn update_rule(conn: &mut DbConnection, row: &RuleRow, channels: &[String]) -> QueryResult<usize> {
    let n = diesel::update(alert_rules::table.find(&row.id)).set(row).execute(conn)?;
    if n > 0 {
        set_rule_channels(conn, &row.id, channels)?;
    }
    Ok(n)
}

fn set_rule_channels(conn: &mut DbConnection, rule: &str, channels: &[String]) -> QueryResult<()> {
    diesel::delete(alert_rule_channels::table.filter(alert_rule_channels::rule_id.eq(rule))).execute(conn)?;
    for channel in channels {
        diesel::insert_into(alert_rule_channels::table)
            .values((alert_rule_channels::rule_id.eq(rule), alert_rule_channels::channel_id.eq(channel)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn delete_rule(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::delete(alert_rules::table.find(id)).execute(conn)
}

pub fn find_rule(conn: &mut DbConnection, id: &str) -> QueryResult<Option<(RuleRow, Vec<String>)>> {
    let Some(row) = alert_rules::table.find(id).select(RuleRow::as_select()).first(conn).optional()? else {
        return Ok(None);
    };
    let channels = alert_rule_channels::table
        .filter(alert_rule_channels::rule_id.eq(id))
        .select(alert_rule_channels::channel_id)
        .order(alert_rule_channels::channel_id)
        .load(conn)?;
    Ok(Some((row, channels)))
}

/// Every rule with its channels' IDs.
pub fn rules(conn: &mut DbConnection) -> QueryResult<Vec<(RuleRow, Vec<String>)>> {
    let rows: Vec<RuleRow> =
        alert_rules::table.select(RuleRow::as_select()).order(alert_rules::name).load(conn)?;
    let links: Vec<(String, String)> = alert_rule_channels::table
        .select((alert_rule_channels::rule_id, alert_rule_channels::channel_id))
        .order((alert_rule_channels::rule_id, alert_rule_channels::channel_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let channels = links.iter().filter(|(rule, _)| *rule == r.id).map(|(_, c)| c.clone()).collect();
            (r, channels)
        })
        .collect())
}

// States

pub fn states(conn: &mut DbConnection) -> QueryResult<Vec<StateRow>> {
    alert_states::table.select(StateRow::as_select()).load(conn)
}

pub fn save_state(conn: &mut DbConnection, row: &StateRow) -> QueryResult<()> {
    let updated =
        diesel::update(alert_states::table.find((&row.rule_id, &row.subject))).set(row).execute(conn)?;
    if updated == 0 {
        diesel::insert_into(alert_states::table).values(row).execute(conn)?;
    }
    Ok(())
}

pub fn delete_state(conn: &mut DbConnection, rule: &str, subject: &str) -> QueryResult<usize> {
    diesel::delete(alert_states::table.find((rule, subject))).execute(conn)
}

/// Forgets one-off marks older than `before` (past the look-back, they cannot recur).
pub fn prune_sent(conn: &mut DbConnection, before: Timestamp) -> QueryResult<usize> {
    diesel::delete(
        alert_states::table.filter(alert_states::phase.eq("sent")).filter(alert_states::since.lt(before.0)),
    )
    .execute(conn)
}

// Messages and deliveries

pub fn insert_message(
    conn: &mut DbConnection,
    message: &MessageRow,
    deliveries: &[DeliveryRow],
) -> QueryResult<()> {
    diesel::insert_into(alert_messages::table).values(message).execute(conn)?;
    for delivery in deliveries {
        diesel::insert_into(alert_deliveries::table).values(delivery).execute(conn)?;
    }
    Ok(())
}

/// A delivery with its message and its channel.
pub type DeliveryParts = (DeliveryRow, MessageRow, ChannelRow);

/// The pending deliveries due at `now` (oldest first), put out of reach until
/// `claimed_until` so that no other attempt starts while this one runs.
pub fn claim_due(
    conn: &mut DbConnection,
    now: Timestamp,
    claimed_until: Timestamp,
    limit: i64,
) -> QueryResult<Vec<DeliveryParts>> {
    let due: Vec<DeliveryParts> = alert_deliveries::table
        .inner_join(alert_messages::table)
        .inner_join(alert_channels::table)
        .filter(alert_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
        .filter(alert_deliveries::next_try_at.le(now.0))
        .order((alert_deliveries::next_try_at, alert_deliveries::id))
        .limit(limit)
        .select((DeliveryRow::as_select(), MessageRow::as_select(), ChannelRow::as_select()))
        .load(conn)?;
    let ids: Vec<&str> = due.iter().map(|d| d.0.id.as_str()).collect();
    for chunk in ids.chunks(500) {
        diesel::update(alert_deliveries::table.filter(alert_deliveries::id.eq_any(chunk)))
            .set(alert_deliveries::next_try_at.eq(claimed_until.0))
            .execute(conn)?;
    }
    Ok(due)
}

/// An attempt's result.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub id: String,
    pub status: DeliveryStatus,
    pub next_try_at: Option<i64>,
    pub error: Option<String>,
    pub at: i64,
}

pub fn record_attempt(conn: &mut DbConnection, a: &Attempted) -> QueryResult<usize> {
    let delivered_at = (a.status == DeliveryStatus::Delivered).then_some(a.at);
    diesel::update(alert_deliveries::table.find(&a.id))
        .set((
            alert_deliveries::status.eq(a.status.as_str()),
            alert_deliveries::attempts.eq(alert_deliveries::attempts + 1),
            alert_deliveries::next_try_at.eq(a.next_try_at),
            alert_deliveries::last_attempt_at.eq(Some(a.at)),
            alert_deliveries::last_error.eq(&a.error),
            alert_deliveries::delivered_at.eq(delivered_at),
        ))
        .execute(conn)
}

/// Filters and keyset pagination (newest first) of deliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub channel: Option<String>,
    pub status: Option<String>,
    pub node: Option<String>,
    pub before: Option<String>,
    pub limit: i64,
}

pub fn deliveries(conn: &mut DbConnection, f: &DeliveryFilter) -> QueryResult<Vec<DeliveryParts>> {
    let mut q = alert_deliveries::table
        .inner_join(alert_messages::table)
        .inner_join(alert_channels::table)
        .select((DeliveryRow::as_select(), MessageRow::as_select(), ChannelRow::as_select()))
        .order(alert_deliveries::id.desc())
        .limit(f.limit)
        .into_boxed();
    if let Some(channel) = &f.channel {
        q = q.filter(alert_deliveries::channel_id.eq(channel.clone()));
    }
    if let Some(status) = &f.status {
        q = q.filter(alert_deliveries::status.eq(status.clone()));
    }
    if let Some(node) = &f.node {
        q = q.filter(alert_messages::node_id.eq(node.clone()));
    }
    if let Some(before) = &f.before {
        q = q.filter(alert_deliveries::id.lt(before.clone()));
    }
    q.load(conn)
}

/// A node's messages, newest first, with their deliveries' statuses.
pub fn node_messages(
    conn: &mut DbConnection,
    node: &str,
    limit: i64,
) -> QueryResult<Vec<(MessageRow, Vec<String>)>> {
    let messages: Vec<MessageRow> = alert_messages::table
        .filter(alert_messages::node_id.eq(node))
        .order(alert_messages::created_at.desc())
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)?;
    let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
    let statuses: Vec<(String, String)> = alert_deliveries::table
        .filter(alert_deliveries::message_id.eq_any(&ids))
        .select((alert_deliveries::message_id, alert_deliveries::status))
        .load(conn)?;
    Ok(messages
        .into_iter()
        .map(|m| {
            let of: Vec<String> =
                statuses.iter().filter(|(id, _)| *id == m.id).map(|(_, s)| s.clone()).collect();
            (m, of)
        })
        .collect())
}

/// Removes messages (and their deliveries) older than `before` that have nothing pending.
pub fn prune_messages(conn: &mut DbConnection, before: Timestamp) -> QueryResult<usize> {
    let pending = alert_deliveries::table
        .filter(alert_deliveries::status.eq(DeliveryStatus::Pending.as_str()))
        .select(alert_deliveries::message_id);
    let old: Vec<String> = alert_messages::table
        .filter(alert_messages::created_at.lt(before.0))
        .filter(diesel::dsl::not(alert_messages::id.eq_any(pending)))
        .select(alert_messages::id)
        .load(conn)?;
    for chunk in old.chunks(500) {
        diesel::delete(alert_deliveries::table.filter(alert_deliveries::message_id.eq_any(chunk)))
            .execute(conn)?;
        diesel::delete(alert_messages::table.filter(alert_messages::id.eq_any(chunk))).execute(conn)?;
    }
    Ok(old.len())
}
