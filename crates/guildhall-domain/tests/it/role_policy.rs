//! The role policy: built-in roles, `authorize`, `explain`, the aide mask and scopes.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use guildhall_domain::catalogue::{Catalogue, permissions as p, resource_kinds};
use guildhall_domain::ids::{FacilityId, OrgId, UserId};
use guildhall_domain::membership::{AccessScope, AccessSettings, Membership, MembershipOrigin, MembershipStatus};
use guildhall_domain::role::{Denial, Reason, ResourceRef, Role, RolePolicy, RoleSet, Scope, builtin};
use guildhall_domain::values::{Permission, RoleKey};
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn org() -> OrgId {
    OrgId::from_uuid(Uuid::from_u128(1))
}

fn member(user: u128, role: RoleKey) -> Membership {
    Membership::new(org(), UserId::from_uuid(Uuid::from_u128(user)), role, MembershipOrigin::Invitation, None, now())
}

fn set(perms: &[Permission]) -> BTreeSet<Permission> {
    perms.iter().cloned().collect()
}

#[test]
fn built_in_roles_match_the_analytics_seed_matrix_exactly() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let policy = RolePolicy::new(&catalogue, &roles);
    let clinical = [p::REPORTS_VIEW, p::PATIENTS_ASSIGN, p::PATIENTS_MESSAGE];
    assert_eq!(policy.role_permissions(&builtin::USER), set(&clinical));
    let mut user_plus = set(&clinical);
    user_plus.insert(p::CAMPAIGNS_ACCESS);
    assert_eq!(policy.role_permissions(&builtin::USER_PLUS), user_plus);
    let mut manager = user_plus.clone();
    manager.extend([p::FINANCIALS_ACCESS, p::REPORTS_DOWNLOAD]);
    assert_eq!(policy.role_permissions(&builtin::MANAGER), manager);
    assert_eq!(policy.role_permissions(&builtin::ADMINISTRATOR), catalogue.all_permissions());
    for role in [builtin::USER, builtin::USER_PLUS, builtin::MANAGER] {
        let perms = policy.role_permissions(&role);
        assert!(!perms.contains(&p::MEMBERS_MANAGE), "{role} must not add or delete users");
        assert!(!perms.contains(&p::ROLES_MANAGE), "{role} must not manage roles");
    }
    assert!(!policy.role_permissions(&builtin::USER).contains(&p::REPORTS_DOWNLOAD));
    assert!(!policy.role_permissions(&builtin::USER_PLUS).contains(&p::FINANCIALS_ACCESS));
}

#[test]
fn built_in_role_names_are_valid_and_keys_unique() {
    let roles = Role::builtins();
    let keys: BTreeSet<_> = roles.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), 4);
    for role in &roles {
        assert!(guildhall_domain::values::RoleName::parse(role.name.as_str()).is_ok());
        assert!(role.built_in);
    }
}

#[test]
fn administrators_hold_permissions_an_embedder_registers_later() {
    let extra = Permission::parse("prescriptions.sign").unwrap();
    let catalogue = Catalogue::builder().permission(extra.clone(), "Sign prescriptions").unwrap().build();
    let roles = RoleSet::new([]);
    let admin = member(2, builtin::ADMINISTRATOR);
    let policy = RolePolicy::new(&catalogue, &roles);
    assert!(policy.authorize(Some(&admin), &extra, &Scope::Organisation(org()), now()).is_ok());
    let explanation = policy.explain(Some(&admin), &extra, now());
    assert!(explanation.allowed);
    assert!(explanation.reasons.contains(&Reason::RoleGrants { role: builtin::ADMINISTRATOR, through_all: true }));
}

#[test]
fn aides_never_hold_patient_assignment_or_messaging_whatever_their_role() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let policy = RolePolicy::new(&catalogue, &roles);
    for role in [builtin::USER, builtin::MANAGER, builtin::ADMINISTRATOR] {
        let mut aide = member(3, role.clone());
        aide.aide = true;
        let perms = policy.effective_permissions(&aide, now());
        assert!(!perms.contains(&p::PATIENTS_ASSIGN), "{role}");
        assert!(!perms.contains(&p::PATIENTS_MESSAGE), "{role}");
        assert!(perms.contains(&p::REPORTS_VIEW), "the mask removes only the aide-forbidden set");
        let denial =
            policy.authorize(Some(&aide), &p::PATIENTS_MESSAGE, &Scope::Organisation(org()), now()).unwrap_err();
        assert_eq!(denial, Denial::Aide { permission: p::PATIENTS_MESSAGE });
        let explanation = policy.explain(Some(&aide), &p::PATIENTS_ASSIGN, now());
        assert!(!explanation.allowed);
        assert_eq!(
            explanation.reasons.last().unwrap().to_string(),
            "denied: member is an aide: patients.assign is never available to aides"
        );
    }
}

#[test]
fn a_member_of_another_organisation_is_treated_as_a_non_member() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let policy = RolePolicy::new(&catalogue, &roles);
    let admin_elsewhere = member(4, builtin::ADMINISTRATOR);
    let other_org = Scope::Organisation(OrgId::from_uuid(Uuid::from_u128(99)));
    assert_eq!(policy.authorize(Some(&admin_elsewhere), &p::REPORTS_VIEW, &other_org, now()), Err(Denial::NotAMember));
    assert_eq!(policy.authorize(None, &p::REPORTS_VIEW, &Scope::Organisation(org()), now()), Err(Denial::NotAMember));
}

#[test]
fn suspended_and_expired_memberships_hold_nothing() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let policy = RolePolicy::new(&catalogue, &roles);
    let scope = Scope::Organisation(org());
    let mut suspended = member(5, builtin::ADMINISTRATOR);
    suspended.status = MembershipStatus::Suspended { since: now(), by: UserId::from_uuid(Uuid::from_u128(6)) };
    assert_eq!(policy.authorize(Some(&suspended), &p::REPORTS_VIEW, &scope, now()), Err(Denial::Suspended));
    assert!(policy.effective_permissions(&suspended, now()).is_empty());
    assert!(!policy.is_administrator(&suspended, now()));

    let mut expiring = member(7, builtin::ADMINISTRATOR);
    let at = now() + Duration::days(1);
    expiring.expires_at = Some(at);
    assert!(policy.authorize(Some(&expiring), &p::REPORTS_VIEW, &scope, now()).is_ok());
    assert!(!policy.is_administrator(&expiring, now()), "an expiring membership never counts as an administrator");
    assert_eq!(policy.authorize(Some(&expiring), &p::REPORTS_VIEW, &scope, at), Err(Denial::Expired(at)));
}

#[test]
fn a_missing_permission_is_denied_naming_the_role_and_permission() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let policy = RolePolicy::new(&catalogue, &roles);
    let user = member(8, builtin::USER);
    let denial = policy.authorize(Some(&user), &p::FINANCIALS_ACCESS, &Scope::Organisation(org()), now()).unwrap_err();
    assert_eq!(denial, Denial::MissingPermission { role: builtin::USER, permission: p::FINANCIALS_ACCESS });
    assert_eq!(denial.to_string(), "your role (user) does not grant financials.access");
}

#[test]
fn access_scopes_limit_which_resources_a_permission_reaches() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let policy = RolePolicy::new(&catalogue, &roles);
    let north = FacilityId::from_uuid(Uuid::from_u128(10));
    let south = FacilityId::from_uuid(Uuid::from_u128(11));
    let mut therapist = member(9, builtin::USER);
    therapist.facilities.insert(north);
    let colleague = UserId::from_uuid(Uuid::from_u128(12));
    let patient = |owner: UserId, facility: FacilityId| {
        Scope::Resource(ResourceRef {
            org: org(),
            kind: resource_kinds::PATIENTS,
            owner: Some(owner),
            facility: Some(facility),
        })
    };
    let check = |m: &Membership, scope: &Scope| policy.authorize(Some(m), &p::PATIENTS_ASSIGN, scope, now());

    assert_eq!(
        check(&therapist, &patient(therapist.user, north)),
        Err(Denial::OutOfScope { kind: resource_kinds::PATIENTS, scope: AccessScope::None })
    );
    therapist.access = AccessSettings::new([(resource_kinds::PATIENTS, AccessScope::Own)]);
    assert!(check(&therapist, &patient(therapist.user, south)).is_ok());
    assert!(check(&therapist, &patient(colleague, north)).is_err());
    therapist.access = AccessSettings::new([(resource_kinds::PATIENTS, AccessScope::Facility)]);
    assert!(check(&therapist, &patient(colleague, north)).is_ok());
    assert!(check(&therapist, &patient(colleague, south)).is_err());
    therapist.access = AccessSettings::new([(resource_kinds::PATIENTS, AccessScope::Organisation)]);
    assert!(check(&therapist, &patient(colleague, south)).is_ok());
}

#[test]
fn administering_roles_are_those_granting_both_member_and_role_management() {
    let catalogue = Catalogue::builtin();
    let half = Role {
        key: RoleKey::parse("people_ops").unwrap(),
        name: guildhall_domain::values::RoleName::parse("People ops").unwrap(),
        grant: guildhall_domain::role::RoleGrant::Only(set(&[p::MEMBERS_MANAGE])),
        built_in: false,
    };
    let full = Role {
        key: RoleKey::parse("deputy").unwrap(),
        grant: guildhall_domain::role::RoleGrant::Only(set(&[p::MEMBERS_MANAGE, p::ROLES_MANAGE])),
        ..half.clone()
    };
    let roles = RoleSet::new([half, full.clone()]);
    let mut keys = roles.administering_roles(&catalogue);
    keys.sort();
    assert_eq!(keys, vec![builtin::ADMINISTRATOR, full.key]);
}
