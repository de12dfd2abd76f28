//! The schema: migrations go up from empty and down to empty, and agree with the entities.

use guildhall_domain::ports::UserRepository;
use migrations::m20261123_000001_schema::TABLES;
use migrations::m20261123_000003_sign_in_failures;

use crate::support::{Fresh, on_both, seed_org};

on_both!(migrations_go_up_and_down_and_agree_with_the_entities);

async fn migrations_go_up_and_down_and_agree_with_the_entities(fresh: Fresh) {
    let store = fresh().await;
    store.check_schema().await.unwrap();
    let tables = store.table_names().await.unwrap();
    for table in TABLES.iter().chain([&m20261123_000003_sign_in_failures::TABLE]) {
        assert!(tables.contains(*table), "{table} missing after up");
    }
    assert_eq!(tables.len(), TABLES.len() + 2, "only the migrations' tables and seaql_migrations: {tables:?}");
    let (founder, _) = seed_org(store.as_ref(), 1).await;

    store.migrate_down().await.unwrap();
    let left: Vec<String> = store.table_names().await.unwrap().into_iter().collect();
    assert_eq!(left, vec!["seaql_migrations".to_owned()]);
    assert!(store.check_schema().await.is_err());

    store.migrate().await.unwrap();
    store.check_schema().await.unwrap();
    assert_eq!(store.user(founder.id).await.unwrap(), None, "up again starts empty");
    // Idempotent: nothing pending.
    store.migrate().await.unwrap();
}
