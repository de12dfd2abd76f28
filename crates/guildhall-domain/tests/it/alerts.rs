//! Member alerts: who receives a lead, intake or NPS alert.

use std::collections::BTreeSet;

use guildhall_domain::catalogue::alerts;
use guildhall_domain::role::builtin;
use guildhall_domain::testing::TestKit;
use guildhall_domain::usecases::{MemberQueryError, MemberUpdate};
use guildhall_domain::values::AlertKind;

#[tokio::test]
async fn facility_alerts_reach_opted_in_active_members_of_that_facility_and_organisation_wide_staff() {
    let kit = TestKit::new();
    let g = &kit.guildhall;
    let admin = kit.seed_user("admin@example.com", true).await.unwrap();
    let org = kit.seed_org("acme-physio", admin.id).await.unwrap();
    let north = g.organisations().create_facility(admin.id, org.id, "North").await.unwrap();
    let south = g.organisations().create_facility(admin.id, org.id, "South").await.unwrap();
    let mut people = Vec::new();
    for (name, facilities, alert, suspend) in [
        ("north", vec![north.id], true, false),
        ("everywhere", vec![], true, false),
        ("south", vec![south.id], true, false),
        ("quiet", vec![north.id], false, false),
        ("suspended", vec![north.id], true, true),
    ] {
        let user = kit.seed_user(&format!("{name}@example.com"), true).await.unwrap();
        kit.seed_member(org.id, user.id, builtin::USER).await.unwrap();
        let update = MemberUpdate {
            facilities: Some(facilities.into_iter().collect()),
            alerts: Some(if alert { [alerts::NEW_LEADS].into_iter().collect() } else { BTreeSet::new() }),
            ..MemberUpdate::default()
        };
        g.members().update_member(admin.id, org.id, user.id, &update).await.unwrap();
        if suspend {
            g.members().suspend(admin.id, org.id, user.id).await.unwrap();
        }
        people.push(user);
    }

    let emails = |recipients: Vec<guildhall_domain::usecases::AlertRecipient>| {
        recipients.into_iter().map(|r| r.email.to_string()).collect::<Vec<_>>()
    };
    let at_north = g.members().alert_recipients(org.id, &alerts::NEW_LEADS, Some(north.id)).await.unwrap();
    assert_eq!(emails(at_north), ["everywhere@example.com", "north@example.com"]);
    let anywhere = g.members().alert_recipients(org.id, &alerts::NEW_LEADS, None).await.unwrap();
    assert_eq!(emails(anywhere), ["everywhere@example.com", "north@example.com", "south@example.com"]);
    let nobody = g.members().alert_recipients(org.id, &alerts::NPS_LOW, None).await.unwrap();
    assert!(nobody.is_empty());
    let unknown = AlertKind::parse("fax_received").unwrap();
    let err = g.members().alert_recipients(org.id, &unknown, None).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Invalid(_)), "{err:?}");
}
