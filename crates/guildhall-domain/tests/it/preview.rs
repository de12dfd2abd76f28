//! The role-change preview: examples, and a property test against a brute-force
//! before/after evaluation of every member × permission.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use guildhall_domain::catalogue::{Catalogue, permissions as p};
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::membership::{Membership, MembershipOrigin, MembershipStatus};
use guildhall_domain::policy::{InvariantViolation, RoleChange, RoleChangeProblem, preview_role_change};
use guildhall_domain::role::{Role, RoleGrant, RoleSet, builtin};
use guildhall_domain::values::{Permission, RoleKey, RoleName};
use proptest::prelude::*;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn org() -> OrgId {
    OrgId::from_uuid(Uuid::from_u128(1))
}

fn member(user: u128, role: &RoleKey) -> Membership {
    Membership::new(
        org(),
        UserId::from_uuid(Uuid::from_u128(user)),
        role.clone(),
        MembershipOrigin::Invitation,
        None,
        now(),
    )
}

fn custom(key: &str, perms: &[Permission]) -> Role {
    Role {
        key: RoleKey::parse(key).unwrap(),
        name: RoleName::parse(key).unwrap(),
        grant: RoleGrant::Only(perms.iter().cloned().collect()),
        built_in: false,
    }
}

#[test]
fn the_sole_administrator_demoting_themself_is_refused() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let owner = member(1, &builtin::ADMINISTRATOR);
    let change = RoleChange::AssignRole { user: owner.user, role: builtin::MANAGER };
    let preview =
        preview_role_change(&catalogue, &roles, std::slice::from_ref(&owner), &owner, &change, now()).unwrap();
    assert_eq!(preview.violations, vec![InvariantViolation::NoAdministratorLeft]);
    assert_eq!(preview.impacts.len(), 1);
    assert!(preview.impacts[0].lost.contains(&p::MEMBERS_MANAGE));
}

#[test]
fn demoting_one_of_two_administrators_is_allowed_and_shows_what_they_lose() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let owner = member(1, &builtin::ADMINISTRATOR);
    let other = member(2, &builtin::ADMINISTRATOR);
    let change = RoleChange::AssignRole { user: other.user, role: builtin::USER };
    let preview =
        preview_role_change(&catalogue, &roles, &[owner.clone(), other.clone()], &owner, &change, now()).unwrap();
    assert!(preview.is_allowed());
    let impact = &preview.impacts[0];
    assert_eq!((impact.user, &impact.role_after), (other.user, &builtin::USER));
    assert!(impact.gained.is_empty());
    assert!(impact.lost.contains(&p::FINANCIALS_ACCESS) && impact.lost.contains(&p::ROLES_MANAGE));
    assert!(!impact.lost.contains(&p::REPORTS_VIEW));
}

#[test]
fn a_role_manager_cannot_grant_permissions_they_lack() {
    let catalogue = Catalogue::builtin();
    let ops = custom("ops", &[p::ROLES_MANAGE, p::REPORTS_VIEW]);
    let roles = RoleSet::new([ops.clone()]);
    let actor = member(3, &ops.key);
    let admin = member(4, &builtin::ADMINISTRATOR);
    let change = RoleChange::CreateRole {
        key: RoleKey::parse("money").unwrap(),
        name: RoleName::parse("Money").unwrap(),
        permissions: [p::FINANCIALS_ACCESS, p::REPORTS_VIEW].into_iter().collect(),
    };
    let preview = preview_role_change(&catalogue, &roles, &[admin], &actor, &change, now()).unwrap();
    assert_eq!(
        preview.violations,
        vec![InvariantViolation::Escalation { missing: [p::FINANCIALS_ACCESS].into_iter().collect() }]
    );
}

#[test]
fn deleting_a_role_in_use_needs_a_replacement_and_shows_each_members_change() {
    let catalogue = Catalogue::builtin();
    let front = custom("front_desk", &[p::REPORTS_VIEW, p::CAMPAIGNS_ACCESS]);
    let roles = RoleSet::new([front.clone()]);
    let admin = member(1, &builtin::ADMINISTRATOR);
    let desk = member(2, &front.key);
    let members = [admin.clone(), desk.clone()];
    let without = RoleChange::DeleteRole { key: front.key.clone(), replacement: None };
    assert_eq!(
        preview_role_change(&catalogue, &roles, &members, &admin, &without, now()).unwrap_err(),
        RoleChangeProblem::ReplacementRequired { role: front.key.clone(), count: 1 }
    );
    let with = RoleChange::DeleteRole { key: front.key.clone(), replacement: Some(builtin::USER) };
    let preview = preview_role_change(&catalogue, &roles, &members, &admin, &with, now()).unwrap();
    assert!(preview.is_allowed());
    assert_eq!(preview.impacts.len(), 1);
    assert_eq!(preview.impacts[0].lost, [p::CAMPAIGNS_ACCESS].into_iter().collect());
    assert_eq!(preview.impacts[0].gained, [p::PATIENTS_ASSIGN, p::PATIENTS_MESSAGE].into_iter().collect());
    assert!(preview.roles_after.get(&front.key).is_none());
}

#[test]
fn built_in_roles_cannot_be_edited_or_deleted() {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([]);
    let admin = member(1, &builtin::ADMINISTRATOR);
    let edit = RoleChange::EditRole { key: builtin::MANAGER, permissions: BTreeSet::new() };
    assert_eq!(
        preview_role_change(&catalogue, &roles, std::slice::from_ref(&admin), &admin, &edit, now()).unwrap_err(),
        RoleChangeProblem::BuiltInRole(builtin::MANAGER)
    );
}

#[test]
fn stripping_management_from_the_only_administering_custom_role_is_refused() {
    let catalogue = Catalogue::builtin();
    let lead = custom("lead", &[p::MEMBERS_MANAGE, p::ROLES_MANAGE, p::REPORTS_VIEW]);
    let roles = RoleSet::new([lead.clone()]);
    let actor = member(1, &lead.key);
    let change = RoleChange::EditRole { key: lead.key.clone(), permissions: [p::REPORTS_VIEW].into_iter().collect() };
    let preview =
        preview_role_change(&catalogue, &roles, std::slice::from_ref(&actor), &actor, &change, now()).unwrap();
    assert!(preview.violations.contains(&InvariantViolation::NoAdministratorLeft));
}

// ---- property: preview == brute force --------------------------------------------

#[derive(Debug, Clone)]
struct Scenario {
    custom: Vec<BTreeSet<Permission>>,
    members: Vec<(usize, bool, u8)>, // (role index, aide, status: 0 active, 1 suspended, 2 expiring, 3 expired)
    actor: usize,
    change: ChangeSpec,
}

#[derive(Debug, Clone)]
enum ChangeSpec {
    Create(BTreeSet<Permission>),
    Edit(usize, BTreeSet<Permission>),
    Assign(usize, usize),
    Delete(usize, Option<usize>),
}

fn all_permissions() -> Vec<Permission> {
    Catalogue::builtin().all_permissions().into_iter().collect()
}

fn perm_set() -> impl Strategy<Value = BTreeSet<Permission>> {
    proptest::sample::subsequence(all_permissions(), 0..=all_permissions().len()).prop_map(|v| v.into_iter().collect())
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (proptest::collection::vec(perm_set(), 1..4), 1usize..12).prop_flat_map(|(custom, n)| {
        let role_count = 4 + custom.len();
        let members = proptest::collection::vec((0..role_count, any::<bool>(), 0u8..4), n);
        let change = prop_oneof![
            perm_set().prop_map(ChangeSpec::Create),
            (0..custom.len(), perm_set()).prop_map(|(i, s)| ChangeSpec::Edit(i, s)),
            (0..n, 0..role_count).prop_map(|(m, r)| ChangeSpec::Assign(m, r)),
            (0..custom.len(), proptest::option::of(0..role_count)).prop_map(|(i, r)| ChangeSpec::Delete(i, r)),
        ];
        (Just(custom), members, 0..n, change).prop_map(|(custom, members, actor, change)| Scenario {
            custom,
            members,
            actor,
            change,
        })
    })
}

/// Effective permissions computed from first principles, independently of `RolePolicy`.
fn brute_effective(
    catalogue: &Catalogue,
    grants: &BTreeMap<RoleKey, BTreeSet<Permission>>,
    m: &Membership,
    at: DateTime<Utc>,
) -> BTreeSet<Permission> {
    let suspended = matches!(m.status, MembershipStatus::Suspended { .. });
    let expired = m.expires_at.is_some_and(|e| e <= at);
    if suspended || expired {
        return BTreeSet::new();
    }
    let mut perms = grants.get(&m.role).cloned().unwrap_or_default();
    if m.aide {
        perms.retain(|x| *x != p::PATIENTS_ASSIGN && *x != p::PATIENTS_MESSAGE);
    }
    let _ = catalogue;
    perms
}

fn brute_is_admin(
    catalogue: &Catalogue,
    grants: &BTreeMap<RoleKey, BTreeSet<Permission>>,
    m: &Membership,
    at: DateTime<Utc>,
) -> bool {
    let perms = brute_effective(catalogue, grants, m, at);
    m.expires_at.is_none() && perms.contains(&p::MEMBERS_MANAGE) && perms.contains(&p::ROLES_MANAGE)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_preview_equals_a_brute_force_evaluation_of_every_member_and_permission(s in scenario()) {
        let catalogue = Catalogue::builtin();
        let customs: Vec<Role> = s.custom.iter().enumerate().map(|(i, set)| {
            let perms: Vec<Permission> = set.iter().cloned().collect();
            custom(&format!("custom_{i}"), &perms)
        }).collect();
        let roles = RoleSet::new(customs.clone());
        let mut keys: Vec<RoleKey> = Role::builtins().into_iter().map(|r| r.key).collect();
        keys.extend(customs.iter().map(|r| r.key.clone()));
        let members: Vec<Membership> = s.members.iter().enumerate().map(|(i, (role, aide, status))| {
            let mut m = member(i as u128 + 1, &keys[*role]);
            m.aide = *aide;
            match status {
                1 => m.status = MembershipStatus::Suspended { since: now(), by: m.user },
                2 => m.expires_at = Some(now() + Duration::days(3)),
                3 => m.expires_at = Some(now() - Duration::days(3)),
                _ => {}
            }
            m
        }).collect();
        let actor = members[s.actor].clone();
        let change = match &s.change {
            ChangeSpec::Create(set) => RoleChange::CreateRole {
                key: RoleKey::parse("brand_new").unwrap(), name: RoleName::parse("New").unwrap(), permissions: set.clone() },
            ChangeSpec::Edit(i, set) => RoleChange::EditRole { key: customs[*i].key.clone(), permissions: set.clone() },
            ChangeSpec::Assign(m, r) => RoleChange::AssignRole { user: members[*m].user, role: keys[*r].clone() },
            ChangeSpec::Delete(i, r) => RoleChange::DeleteRole { key: customs[*i].key.clone(), replacement: r.map(|r| keys[r].clone()) },
        };

        // Brute force: grants and assignments before and after, from first principles.
        let all = catalogue.all_permissions();
        let mut before: BTreeMap<RoleKey, BTreeSet<Permission>> = BTreeMap::new();
        for role in Role::builtins().into_iter().chain(customs.iter().cloned()) {
            let perms = match role.grant { RoleGrant::All => all.clone(), RoleGrant::Only(set) => set };
            before.insert(role.key, perms);
        }
        let mut after = before.clone();
        let mut assigned: Vec<RoleKey> = members.iter().map(|m| m.role.clone()).collect();
        let held = brute_effective(&catalogue, &before, &actor, now());
        let mut granted = BTreeSet::new();
        let mut target = BTreeSet::new();
        let mut expected_problem = None;
        match &change {
            RoleChange::CreateRole { key, permissions, .. } => {
                after.insert(key.clone(), permissions.clone());
                granted = permissions.clone();
            }
            RoleChange::EditRole { key, permissions } => {
                target = before[key].clone();
                after.insert(key.clone(), permissions.clone());
                granted = permissions.clone();
            }
            RoleChange::AssignRole { user, role } => {
                let idx = members.iter().position(|m| m.user == *user).unwrap();
                target = before[&members[idx].role].clone();
                granted = before[role].clone();
                assigned[idx] = role.clone();
            }
            RoleChange::DeleteRole { key, replacement } => {
                target = before[key].clone();
                let holders: Vec<usize> = (0..members.len()).filter(|i| members[*i].role == *key).collect();
                match replacement {
                    Some(to) if to == key => expected_problem = Some(RoleChangeProblem::ReplacementIsSame),
                    None if !holders.is_empty() => expected_problem = Some(RoleChangeProblem::ReplacementRequired { role: key.clone(), count: holders.len() }),
                    Some(to) => {
                        granted = before[to].clone();
                        for i in holders { assigned[i] = to.clone(); }
                    }
                    None => {}
                }
                after.remove(key);
            }
        }

        let result = preview_role_change(&catalogue, &roles, &members, &actor, &change, now());
        if let Some(problem) = expected_problem {
            prop_assert_eq!(result.unwrap_err(), problem);
            return Ok(());
        }
        let preview = result.unwrap();

        let mut expected_impacts = BTreeMap::new();
        for (i, m) in members.iter().enumerate() {
            let next = Membership { role: assigned[i].clone(), ..m.clone() };
            let was = brute_effective(&catalogue, &before, m, now());
            let will = brute_effective(&catalogue, &after, &next, now());
            if was != will || m.role != next.role {
                let gained: BTreeSet<_> = will.difference(&was).cloned().collect();
                let lost: BTreeSet<_> = was.difference(&will).cloned().collect();
                expected_impacts.insert(m.user, (next.role.clone(), gained, lost));
            }
        }
        let actual: BTreeMap<_, _> = preview.impacts.iter()
            .map(|i| (i.user, (i.role_after.clone(), i.gained.clone(), i.lost.clone()))).collect();
        prop_assert_eq!(actual, expected_impacts);

        let admins_after = members.iter().enumerate()
            .filter(|(i, m)| brute_is_admin(&catalogue, &after, &Membership { role: assigned[*i].clone(), ..(*m).clone() }, now()))
            .count();
        prop_assert_eq!(preview.violations.contains(&InvariantViolation::NoAdministratorLeft), admins_after == 0);
        let escalates = !granted.is_subset(&held);
        let has_escalation = preview.violations.iter().any(|v| matches!(v, InvariantViolation::Escalation { .. }));
        prop_assert_eq!(has_escalation, escalates);
        let outranked = !target.is_subset(&held);
        let has_outranked = preview.violations.iter().any(|v| matches!(v, InvariantViolation::Outranked { .. }));
        prop_assert_eq!(has_outranked, outranked);
    }
}

#[test]
fn problems_name_keys_as_people_typed_them_not_as_rust_values() {
    let problem = RoleChangeProblem::UnknownRole(RoleKey::parse("nurse").unwrap());
    assert_eq!(problem.to_string(), "there is no role \"nurse\" in this organisation");
    let status = guildhall_domain::invitation::InvitationStatus::Accepted;
    assert_eq!(format!("this invitation is {status}"), "this invitation is already accepted");
}
