//! Roles through the use cases: list, create, edit, delete, preview and apply.

use std::collections::BTreeSet;

use guildhall_domain::audit::{AuditAction, AuditTarget, FieldChange};
use guildhall_domain::catalogue::permissions as p;
use guildhall_domain::error::AccessError;
use guildhall_domain::policy::{InvariantViolation, MemberImpact, RoleChange, RoleChangeProblem};
use guildhall_domain::role::{RoleGrant, builtin};
use guildhall_domain::usecases::RoleChangeError;
use guildhall_domain::values::{Permission, RoleKey, RoleName};

use crate::support::Acme;

impl Acme {
    /// Ann creates the custom role `key` through the use case.
    async fn create(&self, key: &str, permissions: &[Permission]) -> RoleKey {
        let names: Vec<String> = permissions.iter().map(ToString::to_string).collect();
        self.roles().create_role(self.ann.id, self.org.id, key, key, &names).await.unwrap().key
    }

    fn stored_role_keys(&self) -> Vec<RoleKey> {
        self.kit.store.snapshot().roles.keys().filter(|(org, _)| *org == self.org.id).map(|(_, k)| k.clone()).collect()
    }
}

fn key(text: &str) -> RoleKey {
    RoleKey::parse(text).unwrap()
}

fn strings(permissions: &[Permission]) -> Vec<String> {
    permissions.iter().map(ToString::to_string).collect()
}

fn set(permissions: &[Permission]) -> BTreeSet<Permission> {
    permissions.iter().cloned().collect()
}

#[tokio::test]
async fn roles_are_listed_built_in_first_then_custom_for_any_member() {
    let acme = Acme::new().await;
    acme.create("front_desk", &[p::REPORTS_VIEW]).await;
    acme.create("analyst", &[p::REPORTS_VIEW, p::REPORTS_DOWNLOAD]).await;
    let bo = acme.member("bo@example.com", builtin::USER).await;

    let listed = acme.roles().list(bo.id, acme.org.id).await.unwrap();

    let keys: Vec<&str> = listed.iter().map(|view| view.role.key.as_str()).collect();
    assert_eq!(&keys[..4], ["user", "user_plus", "manager", "administrator"]);
    let mut custom = keys[4..].to_vec();
    custom.sort_unstable();
    assert_eq!(custom, ["analyst", "front_desk"]);
    assert!(listed[..4].iter().all(|view| view.role.built_in));
    assert!(listed[4..].iter().all(|view| !view.role.built_in));
    let admin = &listed[3];
    assert_eq!(admin.permissions, acme.kit.guildhall.catalogue().all_permissions());
    let outsider = acme.kit.seed_user("out@else.example", true).await.unwrap();
    let err = acme.roles().list(outsider.id, acme.org.id).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test]
async fn creating_a_custom_role_saves_it_and_audits_it() {
    let acme = Acme::new().await;

    let role = acme
        .roles()
        .create_role(
            acme.ann.id,
            acme.org.id,
            "front_desk",
            " Front  desk ",
            &strings(&[p::REPORTS_VIEW, p::CAMPAIGNS_ACCESS]),
        )
        .await
        .unwrap();

    assert_eq!(role.key, key("front_desk"));
    assert_eq!(role.name, RoleName::parse("Front desk").unwrap());
    assert_eq!(role.grant, RoleGrant::Only(set(&[p::REPORTS_VIEW, p::CAMPAIGNS_ACCESS])));
    assert!(!role.built_in);
    assert_eq!(acme.kit.store.snapshot().roles.get(&(acme.org.id, role.key.clone())), Some(&role));
    let audit = acme.kit.store.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].action, audit[0].actor, audit[0].org),
        (AuditAction::RoleCreated, Some(acme.ann.id), Some(acme.org.id))
    );
    assert_eq!(audit[0].target, AuditTarget::Role(role.key));
    assert_eq!(
        audit[0].changes,
        [FieldChange::new("permissions", None::<&str>, Some("campaigns.access, reports.view"))]
    );
}

#[tokio::test]
async fn editing_a_custom_role_replaces_its_permissions_and_name_and_audits_both() {
    let acme = Acme::new().await;
    let front_desk = acme.create("front_desk", &[p::REPORTS_VIEW]).await;
    let bo = acme.member("bo@example.com", front_desk.clone()).await;

    let role = acme
        .roles()
        .edit_role(acme.ann.id, acme.org.id, &front_desk, Some("Reception"), &strings(&[p::CAMPAIGNS_ACCESS]))
        .await
        .unwrap();

    assert_eq!(role.name, RoleName::parse("Reception").unwrap());
    assert_eq!(role.grant, RoleGrant::Only(set(&[p::CAMPAIGNS_ACCESS])));
    assert_eq!(acme.kit.store.snapshot().roles.get(&(acme.org.id, front_desk.clone())), Some(&role));
    assert_eq!(acme.membership(bo.id).unwrap().role, front_desk, "members keep the role, with its new permissions");
    let entry = acme.kit.store.audit().pop().unwrap();
    assert_eq!((entry.action, entry.actor), (AuditAction::RoleEdited, Some(acme.ann.id)));
    assert_eq!(
        entry.changes,
        [
            FieldChange::new("permissions", Some("reports.view"), Some("campaigns.access")),
            FieldChange::new("name", Some("front_desk"), Some("Reception")),
        ]
    );
}

#[tokio::test]
async fn deleting_an_unused_custom_role_removes_it_and_audits_it() {
    let acme = Acme::new().await;
    let front_desk = acme.create("front_desk", &[p::REPORTS_VIEW]).await;

    acme.roles().delete_role(acme.ann.id, acme.org.id, &front_desk, None).await.unwrap();

    assert!(acme.stored_role_keys().is_empty());
    let entry = acme.kit.store.audit().pop().unwrap();
    assert_eq!((entry.action, entry.target), (AuditAction::RoleDeleted, AuditTarget::Role(front_desk)));
    let listed = acme.roles().list(acme.ann.id, acme.org.id).await.unwrap();
    assert_eq!(listed.len(), 4);
}

#[tokio::test]
async fn previewing_a_role_change_saves_nothing_and_shows_who_gains_what() {
    let acme = Acme::new().await;
    let front_desk = acme.create("front_desk", &[p::REPORTS_VIEW]).await;
    let bo = acme.member("bo@example.com", front_desk.clone()).await;
    let before = acme.kit.store.snapshot();
    let commits = acme.kit.store.commit_count();

    let change =
        RoleChange::EditRole { key: front_desk.clone(), permissions: set(&[p::REPORTS_VIEW, p::CAMPAIGNS_ACCESS]) };
    let preview = acme.roles().preview(acme.ann.id, acme.org.id, &change).await.unwrap();

    assert!(preview.is_allowed());
    assert_eq!(
        preview.impacts,
        [MemberImpact {
            user: bo.id,
            role_before: front_desk.clone(),
            role_after: front_desk,
            gained: set(&[p::CAMPAIGNS_ACCESS]),
            lost: BTreeSet::new(),
        }]
    );
    assert_eq!(acme.kit.store.snapshot(), before);
    assert_eq!(acme.kit.store.commit_count(), commits);
}

#[tokio::test]
async fn applying_a_change_that_breaks_an_invariant_is_refused_with_the_same_preview() {
    let acme = Acme::new().await;
    let change = RoleChange::AssignRole { user: acme.ann.id, role: builtin::USER };
    let before = acme.kit.store.snapshot();

    let preview = acme.roles().preview(acme.ann.id, acme.org.id, &change).await.unwrap();
    let err = acme.roles().apply(acme.ann.id, acme.org.id, &change).await.unwrap_err();

    assert_eq!(preview.violations, [InvariantViolation::NoAdministratorLeft]);
    let RoleChangeError::Refused(refused) = &err else { panic!("{err:?}") };
    assert_eq!(**refused, preview);
    assert!(err.to_string().contains("no administrator left"), "{err}");
    assert_eq!(acme.kit.store.snapshot(), before);
}

#[tokio::test]
async fn assigning_a_role_through_apply_saves_it_and_audits_it() {
    let acme = Acme::new().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;

    let preview = acme
        .roles()
        .apply(acme.ann.id, acme.org.id, &RoleChange::AssignRole { user: bo.id, role: builtin::MANAGER })
        .await
        .unwrap();

    assert!(preview.is_allowed());
    assert_eq!(acme.membership(bo.id).unwrap().role, builtin::MANAGER);
    let entry = acme.kit.store.audit().pop().unwrap();
    assert_eq!((entry.action, entry.target), (AuditAction::MemberUpdated, AuditTarget::User(bo.id)));
    assert_eq!(entry.changes, [FieldChange::new("role", Some("user"), Some("manager"))]);
}

#[tokio::test]
async fn deleting_a_role_in_use_needs_a_replacement_and_moves_its_members() {
    let acme = Acme::new().await;
    let front_desk = acme.create("front_desk", &[p::REPORTS_VIEW, p::CAMPAIGNS_ACCESS]).await;
    let bo = acme.member("bo@example.com", front_desk.clone()).await;
    let cy = acme.member("cy@example.com", front_desk.clone()).await;
    let dee = acme.member("dee@example.com", builtin::MANAGER).await;

    let err = acme.roles().delete_role(acme.ann.id, acme.org.id, &front_desk, None).await.unwrap_err();
    let RoleChangeError::Problem(RoleChangeProblem::ReplacementRequired { role, count }) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((role, *count), (&front_desk, 2));
    assert_eq!(acme.stored_role_keys(), std::slice::from_ref(&front_desk));
    let err = acme.roles().delete_role(acme.ann.id, acme.org.id, &front_desk, Some(&front_desk)).await.unwrap_err();
    assert!(matches!(err, RoleChangeError::Problem(RoleChangeProblem::ReplacementIsSame)), "{err:?}");

    let preview = acme.roles().delete_role(acme.ann.id, acme.org.id, &front_desk, Some(&builtin::USER)).await.unwrap();

    assert!(acme.stored_role_keys().is_empty());
    assert_eq!(acme.membership(bo.id).unwrap().role, builtin::USER);
    assert_eq!(acme.membership(cy.id).unwrap().role, builtin::USER);
    assert_eq!(acme.membership(dee.id).unwrap().role, builtin::MANAGER);
    let moved: Vec<_> = preview.impacts.iter().map(|i| i.user).collect();
    assert_eq!(moved.iter().collect::<BTreeSet<_>>(), [bo.id, cy.id].iter().collect());
    for impact in &preview.impacts {
        assert_eq!(impact.gained, set(&[p::PATIENTS_ASSIGN, p::PATIENTS_MESSAGE]));
        assert_eq!(impact.lost, set(&[p::CAMPAIGNS_ACCESS]));
    }
    let entry = acme.kit.store.audit().pop().unwrap();
    assert_eq!(entry.action, AuditAction::RoleDeleted);
    assert!(entry.changes.contains(&FieldChange::new("members_moved_to", None::<&str>, Some("user"))));
}

#[tokio::test]
async fn built_in_roles_cannot_be_edited_or_deleted() {
    let acme = Acme::new().await;
    let before = acme.kit.store.snapshot();

    let err = acme
        .roles()
        .edit_role(acme.ann.id, acme.org.id, &builtin::MANAGER, None, &strings(&[p::REPORTS_VIEW]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RoleChangeError::Problem(RoleChangeProblem::BuiltInRole(k)) if *k == builtin::MANAGER),
        "{err:?}"
    );
    let err = acme.roles().delete_role(acme.ann.id, acme.org.id, &builtin::USER, None).await.unwrap_err();
    assert!(
        matches!(&err, RoleChangeError::Problem(RoleChangeProblem::BuiltInRole(k)) if *k == builtin::USER),
        "{err:?}"
    );
    assert_eq!(acme.kit.store.snapshot(), before);
}

#[tokio::test]
async fn a_role_manager_cannot_create_a_role_granting_what_they_lack() {
    let acme = Acme::new().await;
    let role_admin = acme.create("role_admin", &[p::ROLES_MANAGE, p::MEMBERS_MANAGE, p::REPORTS_VIEW]).await;
    let rolf = acme.member("rolf@acme-physio.example", role_admin).await;
    let before = acme.kit.store.snapshot();

    let err = acme
        .roles()
        .create_role(rolf.id, acme.org.id, "money", "Money", &strings(&[p::REPORTS_VIEW, p::FINANCIALS_ACCESS]))
        .await
        .unwrap_err();

    let RoleChangeError::Refused(preview) = &err else { panic!("{err:?}") };
    assert_eq!(preview.violations, [InvariantViolation::Escalation { missing: set(&[p::FINANCIALS_ACCESS]) }]);
    assert!(err.to_string().contains("financials.access"), "{err}");
    assert_eq!(acme.kit.store.snapshot(), before);
    // Within their own permissions it works.
    acme.roles().create_role(rolf.id, acme.org.id, "viewer", "Viewer", &strings(&[p::REPORTS_VIEW])).await.unwrap();
}

#[tokio::test]
async fn a_role_key_that_exists_already_is_refused() {
    let acme = Acme::new().await;
    acme.create("front_desk", &[p::REPORTS_VIEW]).await;

    for taken in ["front_desk", "manager"] {
        let err = acme
            .roles()
            .create_role(acme.ann.id, acme.org.id, taken, "Again", &strings(&[p::CAMPAIGNS_ACCESS]))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RoleChangeError::Problem(RoleChangeProblem::RoleExists(k)) if k.as_str() == taken),
            "{err:?}"
        );
    }
    let stored = acme.kit.store.snapshot().roles;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored.values().next().unwrap().grant, RoleGrant::Only(set(&[p::REPORTS_VIEW])));
}

#[tokio::test]
async fn managing_roles_needs_the_role_management_permission() {
    let acme = Acme::new().await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;

    let err = acme
        .roles()
        .create_role(mo.id, acme.org.id, "viewer", "Viewer", &strings(&[p::REPORTS_VIEW]))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, RoleChangeError::Access(AccessError::Forbidden { permission, .. }) if *permission == p::ROLES_MANAGE),
        "{err:?}"
    );
    assert!(acme.stored_role_keys().is_empty());
}

#[tokio::test]
async fn invalid_role_input_is_reported_field_by_field() {
    let acme = Acme::new().await;

    let err = acme
        .roles()
        .create_role(acme.ann.id, acme.org.id, "Front Desk", "  ", &["reports.view".to_owned(), "Not Valid".to_owned()])
        .await
        .unwrap_err();

    let RoleChangeError::Invalid(invalid) = &err else { panic!("{err:?}") };
    let fields: Vec<_> = invalid.0.iter().map(|problem| problem.field()).collect();
    assert_eq!(fields, ["role", "role_name", "permissions"]);
    let err = acme
        .roles()
        .create_role(acme.ann.id, acme.org.id, "viewer", "Viewer", &["no.such".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(err, RoleChangeError::Problem(RoleChangeProblem::UnknownPermission(_))), "{err:?}");
    assert!(acme.stored_role_keys().is_empty());
}

#[tokio::test]
async fn the_default_role_for_joiners_cannot_be_deleted_until_another_is_chosen() {
    let acme = Acme::new().await;
    let trainee = acme.create("trainee", &[p::REPORTS_VIEW]).await;
    let update =
        guildhall_domain::usecases::OrganisationUpdate { default_role: Some(trainee.clone()), ..Default::default() };
    acme.kit.guildhall.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap();
    let before = acme.kit.store.snapshot();

    let preview = acme
        .roles()
        .preview(acme.ann.id, acme.org.id, &RoleChange::DeleteRole { key: trainee.clone(), replacement: None })
        .await;
    assert!(
        matches!(&preview, Err(RoleChangeError::Problem(RoleChangeProblem::DefaultRole(k))) if *k == trainee),
        "{preview:?}"
    );
    let err = acme.roles().delete_role(acme.ann.id, acme.org.id, &trainee, None).await.unwrap_err();
    assert!(matches!(&err, RoleChangeError::Problem(RoleChangeProblem::DefaultRole(k)) if *k == trainee), "{err:?}");
    assert!(err.to_string().contains("default role"), "{err}");
    assert_eq!(acme.kit.store.snapshot(), before);
}
