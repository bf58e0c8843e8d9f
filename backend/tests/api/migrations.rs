//! Both migration folders hold the same migrations, and each runs up → down → up.

use std::collections::BTreeSet;
use std::path::Path;

use crate::helpers::TestDb;

fn migration_names(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(backend);
    std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn both_backends_have_the_same_migrations_each_with_up_and_down() {
    let sqlite = migration_names("sqlite");
    let postgres = migration_names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
    for backend in ["sqlite", "postgres"] {
        for name in &sqlite {
            for file in ["up.sql", "down.sql"] {
                let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../migrations")
                    .join(backend)
                    .join(name)
                    .join(file);
                assert!(path.is_file(), "{} missing", path.display());
            }
        }
    }
}

#[test]
fn migrations_run_up_down_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(dir.path());
    let url = fleetdeck::db::DatabaseUrl::parse(&db.url).unwrap();
    let mut conn = fleetdeck::db::connect_once(&url).unwrap();
    fleetdeck::db::run_migrations(&mut conn).unwrap();
    assert!(fleetdeck::db::migrations_applied(&mut conn));
    fleetdeck::db::redo_all_migrations(&mut conn).unwrap();
    assert!(fleetdeck::db::migrations_applied(&mut conn));
    // The schema the code expects is there: every table answers a query.
    use diesel::prelude::*;
    use fleetdeck::db::schema::{
        change_log, cluster, leader_lease, node_stats, node_status_history, nodes, primaries,
    };
    assert_eq!(nodes::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    assert_eq!(node_status_history::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    assert_eq!(node_stats::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    assert_eq!(cluster::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    assert_eq!(primaries::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    assert_eq!(change_log::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    {
        use fleetdeck::db::schema::{
            alert_channels, alert_deliveries, alert_messages, alert_rule_channels, alert_rules, alert_states,
        };
        assert_eq!(alert_channels::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        assert_eq!(alert_rules::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        assert_eq!(alert_rule_channels::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        assert_eq!(alert_states::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        assert_eq!(alert_messages::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        assert_eq!(alert_deliveries::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
        use fleetdeck::db::schema::join_tokens;
        assert_eq!(join_tokens::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
    }
    // The lease's one row is there from the start, held by nobody.
    let lease = leader_lease::table
        .select((leader_lease::holder, leader_lease::epoch))
        .first::<(Option<String>, i64)>(&mut conn)
        .unwrap();
    assert_eq!(lease, (None, 0));
    let _ = db.is_postgres();
}
