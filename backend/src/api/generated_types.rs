//! The web UI's API types (`frontend/src/api/generated/`) are generated from the DTOs the
//! API serializes (ts-rs derives, test builds only), never written by hand. This test
//! regenerates them and fails when the committed files differ, so a DTO change cannot
//! silently break the UI. To update the files after changing a DTO:
//!
//! ```sh
//! UPDATE_API_TYPES=1 cargo test -p fleetdeck --lib generated_types
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ts_rs::TS;

use crate::api::auth::{CreateToken, Me};
use crate::api::node_stats::StatsHistory;
use crate::api::nodes::{CheckResult, CreateNode, IssuedKeyResponse, UpdateNode};
use crate::api::system::NodeStats;
use crate::audit::AuditEntry;
use crate::auth::{ApiToken, IssuedToken};
use crate::events::Event;
use crate::jobs::model::{Job, JobState, LogChunk};
use crate::nodes::{Node, StatusChange};

/// Every type the UI reads or sends; their dependencies come along.
fn export_all(dir: &Path) -> Result<(), ts_rs::ExportError> {
    crate::api::Page::<Node>::export_all_to(dir)?;
    Node::export_all_to(dir)?;
    StatusChange::export_all_to(dir)?;
    CreateNode::export_all_to(dir)?;
    UpdateNode::export_all_to(dir)?;
    IssuedKeyResponse::export_all_to(dir)?;
    CheckResult::export_all_to(dir)?;
    NodeStats::export_all_to(dir)?;
    StatsHistory::export_all_to(dir)?;
    Me::export_all_to(dir)?;
    CreateToken::export_all_to(dir)?;
    ApiToken::export_all_to(dir)?;
    IssuedToken::export_all_to(dir)?;
    AuditEntry::export_all_to(dir)?;
    crate::audit::AuditAction::export_all_to(dir)?;
    Event::export_all_to(dir)?;
    crate::api::Page::<Job>::export_all_to(dir)?;
    Job::export_all_to(dir)?;
    JobState::export_all_to(dir)?;
    LogChunk::export_all_to(dir)?;
    crate::api::error::ErrorBody::export_all_to(dir)?;
    crate::api::jobs::SubmitJob::export_all_to(dir)?;
    crate::api::jobs::LogPage::export_all_to(dir)?;
    crate::api::jobs::LogMessage::export_all_to(dir)?;
    crate::api::Page::<crate::jobs::runs::Run>::export_all_to(dir)?;
    crate::jobs::runs::RunDetail::export_all_to(dir)?;
    crate::jobs::runs::OutputGroup::export_all_to(dir)?;
    crate::api::runs::SubmitRun::export_all_to(dir)?;
    crate::api::List::<ApiToken>::export_all_to(dir)?;
    crate::api::joining::CreateJoinToken::export_all_to(dir)?;
    crate::nodes::registry::IssuedJoinToken::export_all_to(dir)?;
    crate::api::List::<crate::nodes::registry::JoinToken>::export_all_to(dir)?;
    crate::api::system::HealthReport::export_all_to(dir)?;
    crate::api::system::Readiness::export_all_to(dir)?;
    crate::cluster::ClusterView::export_all_to(dir)?;
    {
        use crate::alerts::message::Notification;
        use crate::alerts::model::{
            AlertEvent, Channel, ChannelInput, ChannelKind, Delivery, FiredAlert, Rule, RuleInput, TestResult,
        };
        crate::api::List::<Channel>::export_all_to(dir)?;
        crate::api::List::<Rule>::export_all_to(dir)?;
        crate::api::Page::<Delivery>::export_all_to(dir)?;
        crate::api::List::<FiredAlert>::export_all_to(dir)?;
        ChannelInput::export_all_to(dir)?;
        RuleInput::export_all_to(dir)?;
        ChannelKind::export_all_to(dir)?;
        AlertEvent::export_all_to(dir)?;
        TestResult::export_all_to(dir)?;
        Notification::export_all_to(dir)?;
    }
    Ok(())
}

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend/src/api/generated")
}

/// File name → content of the `.ts` files in `dir`.
fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ts"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            (name, text)
        })
        .collect()
}

/// `index.ts`: one import path for all of them.
fn index(files: &BTreeMap<String, String>) -> String {
    let mut out = String::from(
        "// Generated with the types beside it (backend/src/api/generated_types.rs). Do not edit.\n",
    );
    for name in files.keys() {
        let stem = name.trim_end_matches(".ts");
        out.push_str(&format!("export type * from \"./{stem}\";\n"));
    }
    out
}

#[test]
fn generated_api_types_match_the_committed_ones() {
    let fresh = tempfile::tempdir().unwrap();
    export_all(fresh.path()).unwrap();
    let mut generated = read_dir(fresh.path());
    let index = index(&generated);
    generated.insert("index.ts".into(), index);

    let committed_dir = committed_dir();
    if std::env::var_os("UPDATE_API_TYPES").is_some() {
        let _ = std::fs::remove_dir_all(&committed_dir);
        std::fs::create_dir_all(&committed_dir).unwrap();
        for (name, text) in &generated {
            std::fs::write(committed_dir.join(name), text).unwrap();
        }
        return;
    }
    let committed = read_dir(&committed_dir);
    let differing: std::collections::BTreeSet<&String> = generated
        .keys()
        .chain(committed.keys())
        .filter(|name| generated.get(*name) != committed.get(*name))
        .collect();
    assert!(
        differing.is_empty(),
        "frontend/src/api/generated/ is out of date ({differing:?} differ). Regenerate it with \
         `UPDATE_API_TYPES=1 cargo test -p fleetdeck --lib generated_types` and commit the result."
    );
}
