//! Organisations: creation, settings, facilities, capabilities, runs and the audit log.

// Fixture helpers outside `#[test]` functions unwrap too; a failing fixture is a failing test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use guildhall_domain::audit::{AuditAction, AuditTarget, FieldChange};
use guildhall_domain::catalogue::{CapabilityDef, CapabilityKind, Catalogue, permissions as p, topics};
use guildhall_domain::error::AccessError;
use guildhall_domain::ids::{FacilityId, OrgId, UserId};
use guildhall_domain::membership::{MembershipOrigin, MembershipStatus};
use guildhall_domain::org::{JoinPolicy, RunOutcome};
use guildhall_domain::password::PasswordPolicy;
use guildhall_domain::policy::InvariantViolation;
use guildhall_domain::ports::{Change, ChangeSet, Clock, Precondition, UnitOfWork};
use guildhall_domain::query::PageRequest;
use guildhall_domain::role::{Denial, builtin};
use guildhall_domain::testing::TestKit;
use guildhall_domain::usecases::{
    CreateOrganisationError, ManageFacilityError, OrgRef, OrganisationCreation, OrganisationUpdate, RecordRunError,
    RunReport, SetCapabilityError, Settings, UpdateOrganisationError, ViewOrganisationError,
};
use guildhall_domain::user::{User, UserStatus};
use guildhall_domain::values::{CapabilityKey, EmailDomain, OrgName, RoleKey};
use uuid::Uuid;

use crate::support::{Acme, fields};

fn patient_tasks() -> CapabilityKey {
    CapabilityKey::parse("patient_tasks").unwrap()
}

fn automated_recall() -> CapabilityKey {
    CapabilityKey::parse("automated_recall").unwrap()
}

/// The GP-practice seed's services: patient tasks on by default, automated recall off.
fn practice_catalogue() -> Catalogue {
    let def = |key, kind, enabled_by_default, description: &str| CapabilityDef {
        key,
        kind,
        enabled_by_default,
        description: description.to_owned(),
    };
    Catalogue::builder()
        .capability(def(patient_tasks(), CapabilityKind::Service, true, "Patients see their tasks in the portal"))
        .unwrap()
        .capability(def(automated_recall(), CapabilityKind::Automation, false, "Recall patients automatically"))
        .unwrap()
        .build()
}

impl Acme {
    /// Acme on the GP-practice seed's catalogue.
    async fn with_practice_catalogue() -> Self {
        Self::with_kit(TestKit::with_catalogue(practice_catalogue())).await
    }

    fn audit_actions(&self) -> Vec<AuditAction> {
        self.kit.store.audit().iter().map(|entry| entry.action).collect()
    }
}

fn recall_run(kit: &TestKit) -> RunReport {
    let finished_at = kit.clock.now();
    RunReport {
        capability: automated_recall(),
        started_at: finished_at - Duration::minutes(12),
        finished_at,
        outcome: RunOutcome::Succeeded,
        counts: BTreeMap::from([("patients_contacted".to_owned(), 120), ("bookings".to_owned(), 31)]),
    }
}

// ---- creating ------------------------------------------------------------------------

#[tokio::test]
async fn creating_an_organisation_needs_a_verified_email() {
    let kit = TestKit::new();
    let jo = kit.seed_user("jo@example.com", false).await.unwrap();

    let err = kit.guildhall.organisations().create(jo.id, "jo-clinic", "Jo's Clinic").await.unwrap_err();

    assert!(matches!(err, CreateOrganisationError::EmailNotVerified), "{err:?}");
    assert!(err.to_string().contains("verify your email address"), "{err}");
    assert!(kit.store.organisations().is_empty());
    assert!(kit.store.audit().is_empty());
}

#[tokio::test]
async fn the_founder_of_a_new_organisation_is_its_only_administrator() {
    let kit = TestKit::new();
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();

    let org = kit.guildhall.organisations().create(jo.id, " Jo-Clinic ", "  Jo's   Clinic ").await.unwrap();

    assert_eq!(org.slug.as_str(), "jo-clinic");
    assert_eq!(org.name.as_str(), "Jo's Clinic");
    assert_eq!(org.version, 0);
    assert_eq!(org.created_by, jo.id);
    assert_eq!(org.settings, Default::default());
    assert_eq!(kit.store.organisations(), vec![org.clone()]);
    let members = kit.store.memberships(org.id);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].user, jo.id);
    assert_eq!(members[0].role, builtin::ADMINISTRATOR);
    assert_eq!(members[0].origin, MembershipOrigin::Founder);
    assert_eq!(members[0].added_by, None);
    let audit = kit.store.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, AuditAction::OrgCreated);
    assert_eq!(audit[0].actor, Some(jo.id));
    assert_eq!(audit[0].org, Some(org.id));
    assert_eq!(audit[0].target, AuditTarget::Organisation(org.id));
    assert_eq!(audit[0].at, kit.clock.now());
    assert_eq!(
        audit[0].changes,
        vec![
            FieldChange::new("slug", None::<&str>, Some("jo-clinic")),
            FieldChange::new("name", None::<&str>, Some("Jo's Clinic")),
        ]
    );
}

#[tokio::test]
async fn creating_an_organisation_with_a_taken_slug_is_refused_ignoring_case() {
    let acme = Acme::with_practice_catalogue().await;
    let jo = acme.kit.seed_user("jo@example.com", true).await.unwrap();

    let err = acme.organisations().create(jo.id, "ACME-Physio", "Another Acme").await.unwrap_err();

    let CreateOrganisationError::SlugTaken(slug) = &err else { panic!("{err:?}") };
    assert_eq!(slug.as_str(), "acme-physio");
    assert!(err.to_string().contains("choose another"), "{err}");
    assert_eq!(acme.kit.store.organisations().len(), 1);
    assert!(acme.kit.store.memberships(acme.org.id).iter().all(|m| m.user != jo.id));
}

#[tokio::test]
async fn creating_an_organisation_lists_every_invalid_field() {
    let kit = TestKit::new();
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();

    let err = kit.guildhall.organisations().create(jo.id, "api", "   ").await.unwrap_err();

    let CreateOrganisationError::Invalid(invalid) = &err else { panic!("{err:?}") };
    assert_eq!(fields(invalid), ["slug", "name"]);
    assert!(err.to_string().contains("reserved"), "{err}");
}

#[tokio::test]
async fn a_disabled_account_cannot_create_an_organisation() {
    let kit = TestKit::new();
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();
    let disabled = User { status: UserStatus::Disabled { since: kit.clock.now() }, ..jo.clone() };
    let mut changes = ChangeSet::new();
    changes.push(Change::UpdateUser(disabled));
    kit.store.commit(changes).await.unwrap();

    let err = kit.guildhall.organisations().create(jo.id, "jo-clinic", "Jo's Clinic").await.unwrap_err();

    assert!(matches!(err, CreateOrganisationError::AccountUnavailable), "{err:?}");
    assert!(kit.store.organisations().is_empty());
}

#[tokio::test]
async fn where_only_operators_may_create_organisations_everyone_else_is_refused_before_anything_is_read() {
    let kit = TestKit::with_settings(Settings {
        organisation_creation: OrganisationCreation::OperatorsOnly,
        ..Settings::default()
    });
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();
    let unknown = UserId::from_uuid(Uuid::from_u128(0xdead));
    let organisations = kit.guildhall.organisations();

    let refused = organisations.create(jo.id, "jo-clinic", "Jo's Clinic").await.unwrap_err();
    let invalid = organisations.create(jo.id, "api", " ").await.unwrap_err();
    let nobody = organisations.create(unknown, "jo-clinic", "Jo's Clinic").await.unwrap_err();

    for err in [&refused, &invalid, &nobody] {
        assert!(matches!(err, CreateOrganisationError::OperatorsOnly), "{err:?}");
    }
    assert!(refused.to_string().contains("ask one to create it for you"), "{refused}");
    assert!(kit.store.organisations().is_empty());
    assert!(kit.store.audit().is_empty());
}

#[tokio::test]
async fn anyone_may_create_an_organisation_by_default() {
    assert_eq!(Settings::default().organisation_creation, OrganisationCreation::Anyone);
    let kit =
        TestKit::with_settings(Settings { organisation_creation: OrganisationCreation::Anyone, ..Settings::default() });
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();

    kit.guildhall.organisations().create(jo.id, "jo-clinic", "Jo's Clinic").await.unwrap();

    assert_eq!(kit.store.organisations().len(), 1);
}

// ---- access ------------------------------------------------------------------------

#[tokio::test]
async fn a_non_member_gets_not_found_exactly_like_a_missing_organisation() {
    let acme = Acme::with_practice_catalogue().await;
    let outsider = acme.kit.seed_user("eve@elsewhere.example", true).await.unwrap();
    let orgs = acme.organisations();
    let missing = OrgId::from_uuid(Uuid::from_u128(0xdead));

    for org in [acme.org.id, missing] {
        let get = orgs.get(outsider.id, org).await.unwrap_err();
        let update = orgs.update(outsider.id, org, OrganisationUpdate::default()).await.unwrap_err();
        let audit = orgs.audit_log(outsider.id, org, PageRequest::first(10)).await.unwrap_err();
        let undelivered = orgs.undelivered(outsider.id, org, PageRequest::first(10)).await.unwrap_err();
        assert!(matches!(undelivered, ViewOrganisationError::Access(AccessError::NotFound)), "{undelivered:?}");
        let facility = orgs.create_facility(outsider.id, org, "North Clinic").await.unwrap_err();
        assert!(matches!(get, ViewOrganisationError::Access(AccessError::NotFound)), "{get:?}");
        assert!(matches!(update, UpdateOrganisationError::Access(AccessError::NotFound)), "{update:?}");
        assert!(matches!(audit, ViewOrganisationError::Access(AccessError::NotFound)), "{audit:?}");
        assert!(matches!(facility, ManageFacilityError::Access(AccessError::NotFound)), "{facility:?}");
        assert_eq!(get.to_string(), "organisation not found");
    }
}

#[tokio::test]
async fn resolving_an_organisation_by_id_or_slug_checks_no_membership() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();

    assert_eq!(orgs.resolve(&OrgRef::Id(acme.org.id)).await.unwrap(), Some(acme.org.id));
    assert_eq!(orgs.resolve(&OrgRef::parse("acme-physio").unwrap()).await.unwrap(), Some(acme.org.id));
    assert_eq!(orgs.resolve(&OrgRef::parse("nobody-here").unwrap()).await.unwrap(), None);
    assert_eq!(orgs.resolve(&OrgRef::Id(OrgId::from_uuid(Uuid::from_u128(7)))).await.unwrap(), None);
}

#[tokio::test]
async fn a_member_without_the_permission_is_forbidden_and_told_which_one() {
    let acme = Acme::with_practice_catalogue().await;
    let bob = acme.member("bob.lee@acme-physio.example", builtin::MANAGER).await;
    let orgs = acme.organisations();

    let update = OrganisationUpdate { name: Some("Bob's Physio".into()), ..Default::default() };
    let err = orgs.update(bob.id, acme.org.id, update).await.unwrap_err();
    let UpdateOrganisationError::Access(AccessError::Forbidden { permission, .. }) = &err else { panic!("{err:?}") };
    assert_eq!(*permission, p::ORG_SETTINGS);
    assert!(err.to_string().contains("org.settings"), "{err}");

    let err = orgs.audit_log(bob.id, acme.org.id, PageRequest::first(10)).await.unwrap_err();
    assert!(err.to_string().contains("audit.view"), "{err}");
    let err = orgs.undelivered(bob.id, acme.org.id, PageRequest::first(10)).await.unwrap_err();
    assert!(err.to_string().contains("org.settings"), "{err}");
    let err = orgs.runs(bob.id, acme.org.id, PageRequest::first(10)).await.unwrap_err();
    assert!(err.to_string().contains("runs.record"), "{err}");
    let err = orgs.set_capability(bob.id, acme.org.id, &patient_tasks(), false).await.unwrap_err();
    assert!(matches!(err, SetCapabilityError::Access(AccessError::Forbidden { .. })), "{err:?}");

    // Any member may read the organisation itself.
    let view = orgs.get(bob.id, acme.org.id).await.unwrap();
    assert_eq!(view.organisation.id, acme.org.id);
    assert_eq!(acme.stored_org().name.as_str(), "Acme Physio");
}

#[tokio::test]
async fn a_suspended_member_cannot_even_read_the_organisation() {
    let acme = Acme::with_practice_catalogue().await;
    let bob = acme.member("bob.lee@acme-physio.example", builtin::USER).await;
    let mut membership = acme.kit.store.memberships(acme.org.id).into_iter().find(|m| m.user == bob.id).unwrap();
    membership.status = MembershipStatus::Suspended { since: acme.kit.clock.now(), by: acme.ann.id };
    let mut changes = ChangeSet::new();
    changes.push(Change::UpdateMembership(membership));
    acme.kit.store.commit(changes).await.unwrap();

    let err = acme.organisations().get(bob.id, acme.org.id).await.unwrap_err();

    assert!(matches!(err, ViewOrganisationError::Access(AccessError::Inactive(Denial::Suspended))), "{err:?}");
    assert!(err.to_string().contains("suspended"), "{err}");
}

// ---- settings ----------------------------------------------------------------------

#[tokio::test]
async fn updating_settings_reports_every_problem_at_once_and_changes_nothing() {
    let acme = Acme::with_practice_catalogue().await;
    let eleven: Vec<String> = (0..11).map(|i| format!("inbox{i}@acme-physio.example")).collect();
    let update = OrganisationUpdate {
        name: Some("   ".into()),
        slug: Some("a".into()),
        join_policy: Some(JoinPolicy::VerifiedDomains { domains: BTreeSet::new(), auto_approve: true }),
        default_role: Some(RoleKey::parse("receptionist").unwrap()),
        invitation_lifetime_seconds: Some(60),
        password_policy: None,
        routing: Some(vec![
            ("newsletters".into(), vec!["news@acme-physio.example".into()]),
            (topics::FAILED_MESSAGING.to_string(), vec!["not an address".into()]),
            (topics::BOOKING_REQUESTS.to_string(), eleven),
        ]),
    };

    let err = acme.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap_err();

    let UpdateOrganisationError::Invalid(invalid) = &err else { panic!("{err:?}") };
    let mut reported = fields(invalid);
    reported.sort_unstable();
    assert_eq!(
        reported,
        ["default_role", "invitation_lifetime_seconds", "join_policy", "name", "routing", "routing", "routing", "slug"]
    );
    let message = err.to_string();
    for expected in ["newsletters", "not an address", "at most 10", "receptionist", "1 hour and 30 days", "domain"] {
        assert!(message.contains(expected), "{expected:?} missing from {message}");
    }
    assert_eq!(acme.stored_org(), acme.org);
    assert!(acme.kit.store.audit().is_empty());
}

#[tokio::test]
async fn every_settings_change_is_audited_with_before_and_after_and_bumps_the_version() {
    let acme = Acme::with_practice_catalogue().await;
    let domains = BTreeSet::from([EmailDomain::parse("acme-physio.example").unwrap()]);
    let update = OrganisationUpdate {
        name: Some("Acme Physio Leeds".into()),
        join_policy: Some(JoinPolicy::VerifiedDomains { domains, auto_approve: false }),
        invitation_lifetime_seconds: Some(2 * 86_400),
        password_policy: Some(PasswordPolicy::nist_800_63b()),
        routing: Some(vec![(
            "failed_messaging".into(),
            vec!["Practice@Acme-Physio.example".into(), "practice@acme-physio.example".into()],
        )]),
        ..Default::default()
    };

    let org = acme.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap();

    assert_eq!(org.version, 1);
    assert_eq!(acme.stored_org(), org);
    assert_eq!(org.name.as_str(), "Acme Physio Leeds");
    assert_eq!(org.settings.invitation_lifetime.seconds(), 2 * 86_400);
    let routed = org.settings.routing.addresses(&topics::FAILED_MESSAGING);
    assert_eq!(routed.len(), 1, "addresses differing only in case are one address");
    let audit = acme.kit.store.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, AuditAction::OrgSettingsChanged);
    assert_eq!(audit[0].actor, Some(acme.ann.id));
    let changed: Vec<&str> = audit[0].changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(changed, ["name", "join_policy", "invitation_lifetime_seconds", "password_policy", "routing"]);
    assert_eq!(audit[0].changes[0], FieldChange::new("name", Some("Acme Physio"), Some("Acme Physio Leeds")));
    assert_eq!(audit[0].changes[2], FieldChange::new("invitation_lifetime_seconds", Some("604800"), Some("172800")));
    let policy = &audit[0].changes[3];
    assert!(policy.after.as_deref().unwrap().contains("at least 15 characters"), "{policy:?}");
    assert_eq!(audit[0].changes[4].before.as_deref(), Some("none"));

    let renamed = OrganisationUpdate { slug: Some("acme-leeds".into()), ..Default::default() };
    let org = acme.organisations().update(acme.ann.id, acme.org.id, renamed).await.unwrap();
    assert_eq!(org.version, 2);
    assert_eq!(org.slug.as_str(), "acme-leeds");
}

#[tokio::test]
async fn an_update_that_changes_nothing_records_nothing() {
    let acme = Acme::with_practice_catalogue().await;
    let same = OrganisationUpdate {
        name: Some("Acme Physio".into()),
        default_role: Some(builtin::USER),
        ..Default::default()
    };

    let org = acme.organisations().update(acme.ann.id, acme.org.id, same).await.unwrap();

    assert_eq!(org, acme.org);
    assert_eq!(acme.stored_org().version, 0);
    assert!(acme.kit.store.audit().is_empty());
}

#[tokio::test]
async fn renaming_to_a_slug_another_organisation_has_is_refused() {
    let acme = Acme::with_practice_catalogue().await;
    let other = acme.kit.seed_user("zed@example.com", true).await.unwrap();
    acme.kit.seed_org("bolt-clinic", other.id).await.unwrap();

    let update = OrganisationUpdate { slug: Some("Bolt-Clinic".into()), ..Default::default() };
    let err = acme.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap_err();

    let UpdateOrganisationError::SlugTaken(slug) = &err else { panic!("{err:?}") };
    assert_eq!(slug.as_str(), "bolt-clinic");
    assert_eq!(acme.stored_org(), acme.org);
}

#[tokio::test]
async fn a_settings_manager_cannot_make_joiners_administrators() {
    let acme = Acme::with_practice_catalogue().await;
    // Who may join, and as what, is member management: settings alone do not reach it.
    let settings_only = acme.custom_role("settings_only", &[p::ORG_SETTINGS, p::REPORTS_VIEW]).await;
    let sam = acme.member("sam@acme-physio.example", settings_only).await;
    let to_reader_role = OrganisationUpdate { default_role: Some(builtin::USER_PLUS), ..Default::default() };
    let err = acme.organisations().update(sam.id, acme.org.id, to_reader_role).await.unwrap_err();
    assert!(
        matches!(&err, UpdateOrganisationError::Access(AccessError::Forbidden { permission, .. }) if *permission == p::MEMBERS_MANAGE),
        "{err:?}"
    );
    let keeper_role = acme.custom_role("settings_keeper", &[p::ORG_SETTINGS, p::MEMBERS_MANAGE, p::REPORTS_VIEW]).await;
    let reader_role = acme.custom_role("reader", &[p::REPORTS_VIEW]).await;
    let kim = acme.member("kim@acme-physio.example", keeper_role).await;
    let orgs = acme.organisations();

    let to_admin = OrganisationUpdate { default_role: Some(builtin::ADMINISTRATOR), ..Default::default() };
    let err = orgs.update(kim.id, acme.org.id, to_admin.clone()).await.unwrap_err();
    let UpdateOrganisationError::Escalation { role, violation: InvariantViolation::Escalation { missing } } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*role, builtin::ADMINISTRATOR);
    assert!(missing.contains(&p::ROLES_MANAGE), "{missing:?}");
    assert!(!missing.contains(&p::ORG_SETTINGS) && !missing.contains(&p::MEMBERS_MANAGE));
    assert!(err.to_string().contains("roles.manage"), "{err}");
    assert_eq!(acme.stored_org(), acme.org);

    // A role within Kim's own permissions is fine.
    let to_reader = OrganisationUpdate { default_role: Some(reader_role.clone()), ..Default::default() };
    let org = orgs.update(kim.id, acme.org.id, to_reader).await.unwrap();
    assert_eq!(org.settings.default_role, reader_role);

    // An administrator holds everything, so joiners may become administrators.
    let org = orgs.update(acme.ann.id, acme.org.id, to_admin).await.unwrap();
    assert_eq!(org.settings.default_role, builtin::ADMINISTRATOR);
}

#[tokio::test]
async fn a_settings_manager_cannot_admit_people_at_once_with_a_role_beyond_their_own() {
    let acme = Acme::with_practice_catalogue().await;
    let keeper_role = acme.custom_role("settings_keeper", &[p::ORG_SETTINGS, p::MEMBERS_MANAGE]).await;
    let kim = acme.member("kim@acme-physio.example", keeper_role).await;
    let orgs = acme.organisations();
    let to_manager = OrganisationUpdate { default_role: Some(builtin::MANAGER), ..Default::default() };
    orgs.update(acme.ann.id, acme.org.id, to_manager).await.unwrap();

    let domains = BTreeSet::from([EmailDomain::parse("acme-physio.example").unwrap()]);
    let by_request = JoinPolicy::VerifiedDomains { domains: domains.clone(), auto_approve: false };
    let at_once = JoinPolicy::VerifiedDomains { domains, auto_approve: true };

    let err = orgs
        .update(kim.id, acme.org.id, OrganisationUpdate { join_policy: Some(at_once), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateOrganisationError::Escalation { .. }), "{err:?}");

    // When an administrator decides each request, the default role is only a suggestion.
    let org = orgs
        .update(kim.id, acme.org.id, OrganisationUpdate { join_policy: Some(by_request), ..Default::default() })
        .await
        .unwrap();
    assert!(matches!(org.settings.join_policy, JoinPolicy::VerifiedDomains { auto_approve: false, .. }));
}

#[tokio::test]
async fn a_change_decided_on_a_stale_version_is_decided_again_on_fresh_data() {
    let acme = Acme::with_practice_catalogue().await;
    let mut renamed = acme.org.clone();
    renamed.name = OrgName::parse("Acme Physio Group").unwrap();
    let mut concurrent = ChangeSet::new();
    concurrent
        .require(Precondition::OrgVersion { org: acme.org.id, version: 0 })
        .push(Change::UpdateOrganisation(renamed));
    acme.kit.store.land_before_next_commit(concurrent);

    let attempts = acme.kit.store.commit_attempts();

    let update = OrganisationUpdate { invitation_lifetime_seconds: Some(86_400), ..Default::default() };
    let org = acme.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap();

    assert_eq!(acme.kit.store.commit_attempts(), attempts + 2, "the first attempt conflicted");
    assert_eq!(org.version, 2);
    assert_eq!(org.name.as_str(), "Acme Physio Group", "the concurrent rename survives");
    assert_eq!(org.settings.invitation_lifetime.seconds(), 86_400);
    assert_eq!(acme.stored_org(), org);
    let audit = acme.kit.store.audit();
    assert_eq!(audit.len(), 1);
    let changed: Vec<&str> = audit[0].changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(changed, ["invitation_lifetime_seconds"], "the audit entry describes only this change");
}

#[tokio::test]
async fn a_change_by_someone_suspended_meanwhile_is_refused_when_decided_again() {
    let acme = Acme::with_practice_catalogue().await;
    let keeper_role = acme.custom_role("settings_keeper", &[p::ORG_SETTINGS]).await;
    let kim = acme.member("kim@acme-physio.example", keeper_role).await;
    let mut suspended = acme.kit.store.memberships(acme.org.id).into_iter().find(|m| m.user == kim.id).unwrap();
    suspended.status = MembershipStatus::Suspended { since: acme.kit.clock.now(), by: acme.ann.id };
    let mut concurrent = ChangeSet::new();
    concurrent
        .require(Precondition::OrgVersion { org: acme.org.id, version: 0 })
        .push(Change::UpdateMembership(suspended));
    acme.kit.store.land_before_next_commit(concurrent);

    let update = OrganisationUpdate { name: Some("Kim's Physio".into()), ..Default::default() };
    let err = acme.organisations().update(kim.id, acme.org.id, update).await.unwrap_err();

    let UpdateOrganisationError::Access(AccessError::Inactive(denial)) = &err else { panic!("{err:?}") };
    assert_eq!(*denial, Denial::Suspended);
    assert_eq!(acme.stored_org().name.as_str(), "Acme Physio");
}

// ---- facilities --------------------------------------------------------------------

#[tokio::test]
async fn facility_names_are_unique_ignoring_case() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();
    let north = orgs.create_facility(acme.ann.id, acme.org.id, "North Clinic").await.unwrap();
    let south = orgs.create_facility(acme.ann.id, acme.org.id, "South Clinic").await.unwrap();

    let err = orgs.create_facility(acme.ann.id, acme.org.id, "  north   CLINIC ").await.unwrap_err();
    let ManageFacilityError::NameTaken(name) = &err else { panic!("{err:?}") };
    assert_eq!(name.as_str(), "North Clinic");
    assert!(err.to_string().contains("choose another name"), "{err}");

    let err = orgs.rename_facility(acme.ann.id, acme.org.id, south.id, "NORTH clinic").await.unwrap_err();
    assert!(matches!(err, ManageFacilityError::NameTaken(_)), "{err:?}");

    // A facility may change the case of its own name.
    let renamed = orgs.rename_facility(acme.ann.id, acme.org.id, north.id, "North clinic").await.unwrap();
    assert_eq!(renamed.name.as_str(), "North clinic");

    let names: Vec<String> =
        orgs.facilities(acme.ann.id, acme.org.id).await.unwrap().iter().map(|f| f.name.to_string()).collect();
    assert_eq!(names, ["North clinic", "South Clinic"]);
    assert_eq!(
        acme.audit_actions(),
        [AuditAction::FacilityCreated, AuditAction::FacilityCreated, AuditAction::FacilityRenamed]
    );
    let rename = acme.kit.store.audit().pop().unwrap();
    assert_eq!(rename.target, AuditTarget::Facility(north.id));
    assert_eq!(rename.changes, vec![FieldChange::new("name", Some("North Clinic"), Some("North clinic"))]);
}

#[tokio::test]
async fn a_blank_facility_name_is_refused() {
    let acme = Acme::with_practice_catalogue().await;
    let err = acme.organisations().create_facility(acme.ann.id, acme.org.id, " \t ").await.unwrap_err();
    let ManageFacilityError::Invalid(invalid) = &err else { panic!("{err:?}") };
    assert_eq!(fields(invalid), ["facility_name"]);
}

#[tokio::test]
async fn deleting_a_facility_removes_it_from_its_members() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();
    let bob = acme.member("bob.lee@acme-physio.example", builtin::USER).await;
    let north = orgs.create_facility(acme.ann.id, acme.org.id, "North Clinic").await.unwrap();
    let mut membership = acme.kit.store.memberships(acme.org.id).into_iter().find(|m| m.user == bob.id).unwrap();
    membership.facilities.insert(north.id);
    let mut changes = ChangeSet::new();
    changes.push(Change::UpdateMembership(membership));
    acme.kit.store.commit(changes).await.unwrap();

    let deleted = orgs.delete_facility(acme.ann.id, acme.org.id, north.id).await.unwrap();

    assert_eq!(deleted, north);
    assert!(orgs.facilities(bob.id, acme.org.id).await.unwrap().is_empty());
    let membership = acme.kit.store.memberships(acme.org.id).into_iter().find(|m| m.user == bob.id).unwrap();
    assert!(membership.facilities.is_empty());
    let entry = acme.kit.store.audit().pop().unwrap();
    assert_eq!(entry.action, AuditAction::FacilityDeleted);
    assert_eq!(entry.changes, vec![FieldChange::new("name", Some("North Clinic"), None::<&str>)]);

    let err = orgs.delete_facility(acme.ann.id, acme.org.id, north.id).await.unwrap_err();
    assert!(matches!(err, ManageFacilityError::NotFound), "{err:?}");
    let unknown = FacilityId::from_uuid(Uuid::from_u128(99));
    let err = orgs.rename_facility(acme.ann.id, acme.org.id, unknown, "West").await.unwrap_err();
    assert!(matches!(err, ManageFacilityError::NotFound), "{err:?}");
}

// ---- capabilities ------------------------------------------------------------------

#[tokio::test]
async fn a_capability_follows_the_catalogue_default_until_switched_and_again_once_switched_back() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();
    let states = |states: Vec<guildhall_domain::usecases::CapabilityState>| {
        states.into_iter().map(|s| (s.def.key.to_string(), s.enabled)).collect::<Vec<_>>()
    };

    let defaults = states(orgs.capabilities(acme.ann.id, acme.org.id).await.unwrap());
    assert_eq!(defaults, [("automated_recall".to_owned(), false), ("patient_tasks".to_owned(), true)]);

    let off = orgs.set_capability(acme.ann.id, acme.org.id, &patient_tasks(), false).await.unwrap();
    assert!(!off.enabled);
    assert_eq!(acme.stored_org().settings.capabilities, BTreeMap::from([(patient_tasks(), false)]));
    let view = orgs.get(acme.ann.id, acme.org.id).await.unwrap();
    assert_eq!(
        states(view.capabilities),
        [("automated_recall".to_owned(), false), ("patient_tasks".to_owned(), false)]
    );

    orgs.set_capability(acme.ann.id, acme.org.id, &patient_tasks(), true).await.unwrap();
    assert!(acme.stored_org().settings.capabilities.is_empty(), "back to the default, no override is kept");
    assert_eq!(acme.stored_org().version, 2);

    let toggles: Vec<_> =
        acme.kit.store.audit().into_iter().filter(|e| e.action == AuditAction::CapabilityToggled).collect();
    assert_eq!(toggles.len(), 2);
    assert_eq!(toggles[0].target, AuditTarget::Capability(patient_tasks()));
    assert_eq!(toggles[0].changes, vec![FieldChange::new("enabled", Some("true"), Some("false"))]);
    assert_eq!(toggles[1].changes, vec![FieldChange::new("enabled", Some("false"), Some("true"))]);

    // Setting the state it already has records nothing.
    orgs.set_capability(acme.ann.id, acme.org.id, &patient_tasks(), true).await.unwrap();
    assert_eq!(acme.kit.store.audit().len(), 2);
}

#[tokio::test]
async fn switching_an_undeclared_capability_is_refused() {
    let acme = Acme::with_practice_catalogue().await;
    let unknown = CapabilityKey::parse("teleportation").unwrap();
    let err = acme.organisations().set_capability(acme.ann.id, acme.org.id, &unknown, true).await.unwrap_err();
    assert!(matches!(err, SetCapabilityError::UnknownCapability(ref key) if *key == unknown), "{err:?}");
    assert!(err.to_string().contains("teleportation"), "{err}");
}

// ---- runs ----------------------------------------------------------------------------

#[tokio::test]
async fn runs_are_refused_while_the_capability_is_switched_off() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();

    let err = orgs.record_run(acme.ann.id, acme.org.id, recall_run(&acme.kit)).await.unwrap_err();
    assert!(matches!(err, RecordRunError::CapabilityDisabled(ref key) if *key == automated_recall()), "{err:?}");
    assert!(err.to_string().contains("switch it on"), "{err}");
    assert!(orgs.runs(acme.ann.id, acme.org.id, PageRequest::first(10)).await.unwrap().items.is_empty());

    orgs.set_capability(acme.ann.id, acme.org.id, &automated_recall(), true).await.unwrap();
    let run = orgs.record_run(acme.ann.id, acme.org.id, recall_run(&acme.kit)).await.unwrap();

    assert_eq!(run.recorded_by, acme.ann.id);
    assert_eq!(run.counts["patients_contacted"], 120);
    let page = orgs.runs(acme.ann.id, acme.org.id, PageRequest::first(10)).await.unwrap();
    assert_eq!(page.items, vec![run.clone()]);
    let entry = acme.kit.store.audit().pop().unwrap();
    assert_eq!(entry.action, AuditAction::RunRecorded);
    assert_eq!(entry.target, AuditTarget::Run(run.id));
    assert_eq!(acme.stored_org().version, 1, "recording a run is not a settings change");
}

#[tokio::test]
async fn an_undeclared_capability_cannot_report_runs() {
    let acme = Acme::with_practice_catalogue().await;
    let mut report = recall_run(&acme.kit);
    report.capability = CapabilityKey::parse("teleportation").unwrap();
    let err = acme.organisations().record_run(acme.ann.id, acme.org.id, report).await.unwrap_err();
    assert!(matches!(err, RecordRunError::UnknownCapability(_)), "{err:?}");
}

#[tokio::test]
async fn a_run_report_lists_every_problem_at_once() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();
    orgs.set_capability(acme.ann.id, acme.org.id, &automated_recall(), true).await.unwrap();
    let mut report = recall_run(&acme.kit);
    report.finished_at = report.started_at - Duration::seconds(1);
    report.outcome = RunOutcome::Failed { detail: "  ".into() };
    report.counts = (0..50).map(|i| (format!("count_{i}"), 1)).collect();
    report.counts.insert(String::new(), 1);
    report.counts.insert("x".repeat(65), 1);

    let err = orgs.record_run(acme.ann.id, acme.org.id, report).await.unwrap_err();

    let RecordRunError::Invalid(invalid) = &err else { panic!("{err:?}") };
    assert_eq!(fields(invalid), ["finished_at", "counts", "counts", "counts", "detail"]);
    assert!(err.to_string().contains("at most 50"), "{err}");
}

#[tokio::test]
async fn recording_runs_needs_the_runs_permission() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();
    orgs.set_capability(acme.ann.id, acme.org.id, &automated_recall(), true).await.unwrap();
    let manager = acme.member("max@acme-physio.example", builtin::MANAGER).await;
    let robot_role = acme.custom_role("recall_robot", &[p::RUNS_RECORD]).await;
    let robot = acme.member("robot@acme-physio.example", robot_role).await;

    let err = orgs.record_run(manager.id, acme.org.id, recall_run(&acme.kit)).await.unwrap_err();
    let RecordRunError::Access(AccessError::Forbidden { permission, .. }) = &err else { panic!("{err:?}") };
    assert_eq!(*permission, p::RUNS_RECORD);

    let run = orgs.record_run(robot.id, acme.org.id, recall_run(&acme.kit)).await.unwrap();
    assert_eq!(run.recorded_by, robot.id);
}

// ---- the audit log -------------------------------------------------------------------

#[tokio::test]
async fn the_audit_log_lists_newest_first_in_pages_of_at_least_one() {
    let acme = Acme::with_practice_catalogue().await;
    let orgs = acme.organisations();
    orgs.create_facility(acme.ann.id, acme.org.id, "North Clinic").await.unwrap();
    acme.kit.clock.advance(Duration::minutes(1));
    orgs.set_capability(acme.ann.id, acme.org.id, &automated_recall(), true).await.unwrap();

    let first = orgs.audit_log(acme.ann.id, acme.org.id, PageRequest::first(0)).await.unwrap();
    assert_eq!(first.items.len(), 1, "a limit of 0 is read as 1");
    assert_eq!(first.items[0].action, AuditAction::CapabilityToggled);
    let next = PageRequest { limit: 10_000, after: first.next.clone() };
    let second = orgs.audit_log(acme.ann.id, acme.org.id, next).await.unwrap();
    assert_eq!(second.items.iter().map(|e| e.action).collect::<Vec<_>>(), [AuditAction::FacilityCreated]);
    assert_eq!(second.next, None);
}

#[tokio::test]
async fn the_audit_log_of_one_organisation_never_shows_anothers_entries() {
    let acme = Acme::with_practice_catalogue().await;
    let zed = acme.kit.seed_user("zed@example.com", true).await.unwrap();
    let bolt = acme.organisations().create(zed.id, "bolt-clinic", "Bolt Clinic").await.unwrap();
    acme.organisations().create_facility(zed.id, bolt.id, "Annex").await.unwrap();

    let page = acme.organisations().audit_log(acme.ann.id, acme.org.id, PageRequest::first(50)).await.unwrap();

    assert!(page.items.is_empty(), "{:?}", page.items);
}
