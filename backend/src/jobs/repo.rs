//! Job queries. Every state change is a conditional update from the expected state and
//! attempt: it applies exactly once, or not at all.

use diesel::prelude::*;

use crate::clock::Timestamp;
use crate::db::schema::{job_logs, jobs, run_nodes, runs};
use crate::db::{DbConnection, byte_length, label_patterns, like_escape, lower};
use crate::jobs::model::{Job, JobState, LogChunk, NewJob, Placement};
use crate::nodes::Labels;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    pub id: String,
    pub name: Option<String>,
    pub command: String,
    pub env: String,
    pub working_dir: Option<String>,
    pub timeout_sec: i64,
    pub node_id: Option<String>,
    pub labels: String,
    pub status: String,
    pub attempt: i32,
    pub assigned_node_id: Option<String>,
    pub queue_reason: Option<String>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub submitted_by: String,
    pub created_at: i64,
    pub dispatched_at: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub log_bytes: i64,
    pub run_id: Option<String>,
}

impl JobRow {
    /// A new job, queued (`timeout_sec` already settled), part of run `run_id` if any.
    pub fn queued(
        new: &NewJob,
        timeout_sec: u64,
        run_id: Option<&str>,
        submitted_by: &str,
        now: Timestamp,
    ) -> JobRow {
        let (node_id, labels) = match &new.placement {
            Placement::Node(id) => (Some(id.to_string()), String::new()),
            Placement::Labels(labels) => (None, labels.to_list()),
        };
        JobRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: new.name.clone(),
            command: new.command.clone(),
            env: serde_json::to_string(&new.env).unwrap_or_else(|_| "{}".into()),
            working_dir: new.working_dir.clone(),
            timeout_sec: i64::try_from(timeout_sec).unwrap_or(i64::MAX),
            node_id,
            labels,
            status: JobState::Queued.as_str().to_owned(),
            attempt: 0,
            assigned_node_id: None,
            queue_reason: Some("waiting for the router".into()),
            exit_code: None,
            error: None,
            cancel_requested: false,
            submitted_by: submitted_by.to_owned(),
            created_at: now.millis(),
            dispatched_at: None,
            started_at: None,
            finished_at: None,
            log_bytes: 0,
            run_id: run_id.map(str::to_owned),
        }
    }

    pub fn state(&self) -> JobState {
        JobState::parse(&self.status).unwrap_or(JobState::Failed)
    }

    pub fn attempt(&self) -> u32 {
        u32::try_from(self.attempt).unwrap_or(0)
    }

    pub fn to_job(&self) -> Job {
        Job {
            id: self.id.clone(),
            name: self.name.clone(),
            command: self.command.clone(),
            env: serde_json::from_str(&self.env).unwrap_or_default(),
            working_dir: self.working_dir.clone(),
            timeout_sec: u64::try_from(self.timeout_sec).unwrap_or(0),
            node_id: self.node_id.clone(),
            labels: Labels::from_db(&self.labels),
            status: self.state(),
            attempt: self.attempt(),
            assigned_node_id: self.assigned_node_id.clone(),
            queue_reason: self.queue_reason.clone(),
            exit_code: self.exit_code,
            error: self.error.clone(),
            cancel_requested: self.cancel_requested,
            submitted_by: self.submitted_by.clone(),
            created_at: Timestamp(self.created_at),
            dispatched_at: self.dispatched_at.map(Timestamp),
            started_at: self.started_at.map(Timestamp),
            finished_at: self.finished_at.map(Timestamp),
            log_bytes: u64::try_from(self.log_bytes).unwrap_or(0),
            run_id: self.run_id.clone(),
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &JobRow) -> QueryResult<()> {
    diesel::insert_into(jobs::table).values(row).execute(conn).map(drop)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<JobRow>> {
    jobs::table.find(id).select(JobRow::as_select()).first(conn).optional()
}

/// Filters and keyset pagination (newest first) of the job list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobState>,
    pub node: Option<String>,
    pub label: Option<String>,
    pub text: Option<String>,
    pub before: Option<String>,
    pub limit: i64,
}

pub fn list(conn: &mut DbConnection, f: &JobFilter) -> QueryResult<Vec<JobRow>> {
    let mut query = jobs::table.select(JobRow::as_select()).order(jobs::id.desc()).into_boxed();
    if let Some(status) = f.status {
        query = query.filter(jobs::status.eq(status.as_str()));
    }
    if let Some(node) = &f.node {
        query = query.filter(jobs::assigned_node_id.eq(node.clone()).or(jobs::node_id.eq(node.clone())));
    }
    if let Some(label) = &f.label {
        let [first, last, middle] = label_patterns(label);
        query = query.filter(
            jobs::labels
                .eq(label.clone())
                .or(jobs::labels.like(first).escape('\\'))
                .or(jobs::labels.like(last).escape('\\'))
                .or(jobs::labels.like(middle).escape('\\')),
        );
    }
    if let Some(text) = &f.text {
        let pattern = format!("%{}%", like_escape(&text.to_lowercase()));
        query = query.filter(
            lower(jobs::command).like(pattern.clone()).escape('\\').or(lower(diesel::dsl::sql::<
                diesel::sql_types::Text,
            >(
                "COALESCE(name, '')"
            ))
            .like(pattern)
            .escape('\\')),
        );
    }
    if let Some(before) = &f.before {
        query = query.filter(jobs::id.lt(before.clone()));
    }
    query.limit(f.limit).load(conn)
}

/// The oldest queued jobs, for the router.
pub fn queued(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<JobRow>> {
    jobs::table
        .filter(jobs::status.eq(JobState::Queued.as_str()))
        .order(jobs::created_at.asc())
        .select(JobRow::as_select())
        .limit(limit)
        .load(conn)
}

/// Jobs that failed, timed out or were lost at `since` or later (for alerts), oldest first.
pub fn failed_since(conn: &mut DbConnection, since: Timestamp, limit: i64) -> QueryResult<Vec<JobRow>> {
    let failed = [JobState::Failed, JobState::TimedOut, JobState::Lost].map(JobState::as_str);
    jobs::table
        .filter(jobs::finished_at.ge(since.0))
        .filter(jobs::status.eq_any(failed))
        .order(jobs::finished_at.asc())
        .select(JobRow::as_select())
        .limit(limit)
        .load(conn)
}

/// Jobs given to a node and not finished.
pub fn active(conn: &mut DbConnection) -> QueryResult<Vec<JobRow>> {
    jobs::table
        .filter(jobs::status.eq_any(JobState::ACTIVE.map(JobState::as_str)))
        .select(JobRow::as_select())
        .load(conn)
}

/// How many jobs are kept in each state (states with none left out).
pub fn count_by_state(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    jobs::table.group_by(jobs::status).select((jobs::status, diesel::dsl::count_star())).load(conn)
}

/// How many jobs each node has been given and not finished.
pub fn active_counts(conn: &mut DbConnection) -> QueryResult<Vec<(String, i64)>> {
    jobs::table
        .filter(jobs::status.eq_any(JobState::ACTIVE.map(JobState::as_str)))
        .filter(jobs::assigned_node_id.is_not_null())
        .group_by(jobs::assigned_node_id)
        .select((jobs::assigned_node_id.assume_not_null(), diesel::dsl::count_star()))
        .load(conn)
}

/// queued → dispatched to `node`, with the next attempt. `true` if it applied.
pub fn mark_dispatched(
    conn: &mut DbConnection,
    id: &str,
    attempt: u32,
    node: &str,
    now: Timestamp,
) -> QueryResult<bool> {
    let previous = i32::try_from(attempt).unwrap_or(i32::MAX) - 1;
    let n = diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::status.eq(JobState::Queued.as_str()))
            .filter(jobs::attempt.eq(previous)),
    )
    .set((
        jobs::status.eq(JobState::Dispatched.as_str()),
        jobs::attempt.eq(previous + 1),
        jobs::assigned_node_id.eq(Some(node)),
        jobs::dispatched_at.eq(Some(now.0)),
        jobs::queue_reason.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// dispatched → queued again after a failed dispatch.
pub fn requeue(conn: &mut DbConnection, id: &str, attempt: u32, reason: &str) -> QueryResult<bool> {
    let n = diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::status.eq(JobState::Dispatched.as_str()))
            .filter(jobs::attempt.eq(i32::try_from(attempt).unwrap_or(i32::MAX))),
    )
    .set((
        jobs::status.eq(JobState::Queued.as_str()),
        jobs::assigned_node_id.eq(None::<String>),
        jobs::dispatched_at.eq(None::<i64>),
        jobs::queue_reason.eq(Some(reason)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn set_queue_reason(conn: &mut DbConnection, id: &str, reason: &str) -> QueryResult<usize> {
    diesel::update(jobs::table.find(id).filter(jobs::status.eq(JobState::Queued.as_str())))
        .set(jobs::queue_reason.eq(Some(reason)))
        .execute(conn)
}

/// A state change of a job given to `node` at `attempt`: applies only from one of `from`.
#[derive(Debug, Clone)]
pub struct Transition {
    pub id: String,
    pub attempt: u32,
    pub node: String,
    pub from: &'static [JobState],
    pub to: JobState,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub at: Timestamp,
}

pub fn transition(conn: &mut DbConnection, t: &Transition) -> QueryResult<bool> {
    let target = jobs::table
        .find(&t.id)
        .filter(jobs::status.eq_any(t.from.iter().map(|s| s.as_str())))
        .filter(jobs::attempt.eq(i32::try_from(t.attempt).unwrap_or(i32::MAX)))
        .filter(jobs::assigned_node_id.eq(&t.node));
    let n = if t.to == JobState::Running {
        diesel::update(target)
            .set((jobs::status.eq(t.to.as_str()), jobs::started_at.eq(Some(t.at.0))))
            .execute(conn)?
    } else {
        diesel::update(target)
            .set((
                jobs::status.eq(t.to.as_str()),
                jobs::exit_code.eq(t.exit_code),
                jobs::error.eq(t.error.clone()),
                jobs::finished_at.eq(Some(t.at.0)),
            ))
            .execute(conn)?
    };
    Ok(n == 1)
}

/// queued → cancelled (never dispatched).
/// Queued jobs asked for one node: (job, node).
pub fn queued_for_nodes(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    jobs::table
        .filter(jobs::status.eq(JobState::Queued.as_str()))
        .filter(jobs::node_id.is_not_null())
        .select((jobs::id, jobs::node_id.assume_not_null()))
        .load(conn)
}

/// Cancels a job still queued, saying `why`; `false` if it is not queued (any more).
pub fn cancel_queued(conn: &mut DbConnection, id: &str, at: Timestamp, why: &str) -> QueryResult<bool> {
    let n = diesel::update(jobs::table.find(id).filter(jobs::status.eq(JobState::Queued.as_str())))
        .set((
            jobs::status.eq(JobState::Cancelled.as_str()),
            jobs::cancel_requested.eq(true),
            jobs::error.eq(Some(why)),
            jobs::finished_at.eq(Some(at.0)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn request_cancel(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
    diesel::update(jobs::table.find(id)).set(jobs::cancel_requested.eq(true)).execute(conn)
}

/// Stores a chunk once; a repeat of the same (job, seq) is a no-op. `true` if stored now.
pub fn insert_chunk(
    conn: &mut DbConnection,
    job_id: &str,
    seq: u64,
    stream: &str,
    data: &[u8],
    at: Timestamp,
) -> QueryResult<bool> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    let exists: bool = diesel::select(diesel::dsl::exists(
        job_logs::table.filter(job_logs::job_id.eq(job_id)).filter(job_logs::seq.eq(seq)),
    ))
    .get_result(conn)?;
    if exists {
        return Ok(false);
    }
    diesel::insert_into(job_logs::table)
        .values((
            job_logs::job_id.eq(job_id),
            job_logs::seq.eq(seq),
            job_logs::stream.eq(stream),
            job_logs::data.eq(data),
            job_logs::at.eq(at.0),
        ))
        .execute(conn)?;
    let len = i64::try_from(data.len()).unwrap_or(i64::MAX);
    diesel::update(jobs::table.find(job_id)).set(jobs::log_bytes.eq(jobs::log_bytes + len)).execute(conn)?;
    Ok(true)
}

/// Chunks after `after` (all with `None`), in order, at most `limit`.
pub fn chunks(
    conn: &mut DbConnection,
    job_id: &str,
    after: Option<u64>,
    limit: i64,
) -> QueryResult<Vec<LogChunk>> {
    let mut query = job_logs::table
        .filter(job_logs::job_id.eq(job_id))
        .order(job_logs::seq.asc())
        .select((job_logs::seq, job_logs::stream, job_logs::data, job_logs::at))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(job_logs::seq.gt(i64::try_from(after).unwrap_or(i64::MAX)));
    }
    let rows: Vec<(i64, String, Vec<u8>, i64)> = query.limit(limit).load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(seq, stream, data, at)| LogChunk {
            seq: u64::try_from(seq).unwrap_or(0),
            stream: if stream == "stderr" { "stderr" } else { "stdout" },
            text: String::from_utf8_lossy(&data).into_owned(),
            at: Timestamp(at),
            data,
        })
        .collect())
}

/// Chunks after `after`, in order: as many as fit in `max_bytes` of data, at least one, at
/// most 1000 (output is stored in chunks of at most 512 KiB).
pub fn chunk_page(
    conn: &mut DbConnection,
    job_id: &str,
    after: Option<u64>,
    max_bytes: u64,
) -> QueryResult<Vec<LogChunk>> {
    let mut query = job_logs::table
        .filter(job_logs::job_id.eq(job_id))
        .order(job_logs::seq.asc())
        .select(byte_length(job_logs::data))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(job_logs::seq.gt(i64::try_from(after).unwrap_or(i64::MAX)));
    }
    let sizes: Vec<i32> = query.limit(1000).load(conn)?;
    let mut total = 0;
    let fitting = sizes
        .iter()
        .take_while(|size| {
            total += u64::try_from(**size).unwrap_or(0);
            total <= max_bytes
        })
        .count()
        .max(1);
    if sizes.is_empty() {
        return Ok(Vec::new());
    }
    chunks(conn, job_id, after, i64::try_from(fitting).unwrap_or(1))
}

type Waiting =
    diesel::dsl::And<diesel::dsl::IsNull<run_nodes::job_id>, diesel::dsl::IsNull<run_nodes::skipped>>;

/// A node of a fleet-wide run still waiting its turn: neither started nor skipped.
pub fn waiting() -> Waiting {
    run_nodes::job_id.is_null().and(run_nodes::skipped.is_null())
}

/// Removes finished jobs (and their logs) older than `before`. A fleet-wide run goes as a
/// whole, once every one of its jobs finished before `before` and no node waits its turn:
/// never a run half gone.
pub fn prune(conn: &mut DbConnection, before: Timestamp) -> QueryResult<usize> {
    use diesel::dsl::{exists, not};
    let old = jobs::table
        .filter(jobs::finished_at.lt(before.0).and(jobs::run_id.is_null()))
        .select(jobs::id)
        .load::<String>(conn)?;
    let recent_or_unfinished = jobs::finished_at.is_null().or(jobs::finished_at.ge(before.0));
    let old_runs = runs::table
        .filter(runs::created_at.lt(before.0))
        .filter(not(exists(
            jobs::table.filter(jobs::run_id.eq(runs::id.nullable()).and(recent_or_unfinished)),
        )))
        .filter(not(exists(run_nodes::table.filter(run_nodes::run_id.eq(runs::id).and(waiting())))))
        .select(runs::id)
        .load::<String>(conn)?;
    let mut removed = old.len();
    for chunk in old_runs.chunks(500) {
        let run_jobs: Vec<String> =
            jobs::table.filter(jobs::run_id.eq_any(chunk)).select(jobs::id).load(conn)?;
        removed += run_jobs.len();
        delete_jobs(conn, &run_jobs)?;
        diesel::delete(run_nodes::table.filter(run_nodes::run_id.eq_any(chunk))).execute(conn)?;
        diesel::delete(runs::table.filter(runs::id.eq_any(chunk))).execute(conn)?;
    }
    delete_jobs(conn, &old)?;
    Ok(removed)
}

fn delete_jobs(conn: &mut DbConnection, ids: &[String]) -> QueryResult<()> {
    for chunk in ids.chunks(500) {
        diesel::delete(job_logs::table.filter(job_logs::job_id.eq_any(chunk))).execute(conn)?;
        diesel::delete(jobs::table.filter(jobs::id.eq_any(chunk))).execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The job state rules, on a real database: each change applies only from the states and
    //! attempt it names, so a late, duplicate or foreign report never moves a job.

    use super::*;
    use crate::db::DatabaseUrl;
    use crate::db::Db;

    fn queued_job(id: &str) -> JobRow {
        JobRow {
            id: id.into(),
            name: None,
            command: "true".into(),
            env: "{}".into(),
            working_dir: None,
            timeout_sec: 60,
            node_id: None,
            labels: String::new(),
            status: JobState::Queued.as_str().into(),
            attempt: 0,
            assigned_node_id: None,
            queue_reason: None,
            exit_code: None,
            error: None,
            cancel_requested: false,
            submitted_by: "test".into(),
            created_at: 1,
            dispatched_at: None,
            started_at: None,
            finished_at: None,
            log_bytes: 0,
            run_id: None,
        }
    }

    fn report(attempt: u32, node: &str, from: &'static [JobState], to: JobState) -> Transition {
        Transition {
            id: "j".into(),
            attempt,
            node: node.into(),
            from,
            to,
            exit_code: None,
            error: None,
            at: Timestamp(2),
        }
    }

    const ACTIVE: &[JobState] = &[JobState::Dispatched, JobState::Running];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[expect(clippy::vec_init_then_push, reason = "one step of the story per line, each commented")]
    async fn state_changes_apply_only_from_their_state_attempt_and_node() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&DatabaseUrl::Sqlite(dir.path().join("t.db"))).unwrap();
        let states = db
            .write(|c| {
                insert(c, &queued_job("j"))?;
                let state = |c: &mut DbConnection| find(c, "j").map(|r| r.map(|r| (r.state(), r.attempt())));
                let mut seen = Vec::new();
                // A dispatch names the next attempt; a second one for the same attempt fails.
                seen.push((mark_dispatched(c, "j", 1, "a", Timestamp(1))?, state(c)?));
                seen.push((mark_dispatched(c, "j", 1, "b", Timestamp(1))?, state(c)?));
                // A failed dispatch of attempt 1 puts it back; the next dispatch is attempt 2.
                seen.push((requeue(c, "j", 1, "node a refused")?, state(c)?));
                seen.push((requeue(c, "j", 1, "again")?, state(c)?));
                seen.push((mark_dispatched(c, "j", 2, "b", Timestamp(1))?, state(c)?));
                // Reports from the old attempt, or from another node, change nothing.
                seen.push((
                    transition(c, &report(1, "b", &[JobState::Dispatched], JobState::Running))?,
                    state(c)?,
                ));
                seen.push((
                    transition(c, &report(2, "a", &[JobState::Dispatched], JobState::Running))?,
                    state(c)?,
                ));
                // The right one does; a duplicate is stale.
                seen.push((
                    transition(c, &report(2, "b", &[JobState::Dispatched], JobState::Running))?,
                    state(c)?,
                ));
                seen.push((
                    transition(c, &report(2, "b", &[JobState::Dispatched], JobState::Running))?,
                    state(c)?,
                ));
                // The end applies once; a late "running" never moves it back, nor a second end.
                seen.push((transition(c, &report(2, "b", ACTIVE, JobState::Succeeded))?, state(c)?));
                seen.push((
                    transition(c, &report(2, "b", &[JobState::Dispatched], JobState::Running))?,
                    state(c)?,
                ));
                seen.push((transition(c, &report(2, "b", ACTIVE, JobState::Failed))?, state(c)?));
                // Only a queued job is cancelled on the spot.
                seen.push((cancel_queued(c, "j", Timestamp(3), "cancelled before it ran")?, state(c)?));
                Ok(seen)
            })
            .await
            .unwrap();
        use JobState::{Dispatched, Queued, Running, Succeeded};
        let expected = [
            (true, Dispatched, 1),
            (false, Dispatched, 1),
            (true, Queued, 1),
            (false, Queued, 1),
            (true, Dispatched, 2),
            (false, Dispatched, 2),
            (false, Dispatched, 2),
            (true, Running, 2),
            (false, Running, 2),
            (true, Succeeded, 2),
            (false, Succeeded, 2),
            (false, Succeeded, 2),
            (false, Succeeded, 2),
        ];
        let got: Vec<(bool, JobState, u32)> =
            states.into_iter().map(|(applied, row)| (applied, row.unwrap().0, row.unwrap().1)).collect();
        assert_eq!(got, expected);
    }
}
