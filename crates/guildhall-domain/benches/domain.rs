//! Criterion microbenchmarks of the domain's hot pure functions (issue 8's targets:
//! `authorize` under 1 µs, `preview_role_change` over an organisation of 10,000 members
//! under 10 ms; `PasswordPolicy::validate` reported). Run by `cargo xtask bench micro`,
//! or `cargo bench -p guildhall-domain --bench domain`.
//!
//! What is measured, exactly:
//! * `authorize/*`: [`RolePolicy::authorize`] as every use case calls it, on a policy built
//!   once over the built-in catalogue and roles plus one custom role: an administrator
//!   anywhere in the organisation; a manager on a patient of one of their facilities (the
//!   scoped path: the role's grant, the aide rule, the access scope and the facility); a
//!   user refused (the denial path).
//! * `preview_role_change/10k/*`: [`preview_role_change`] over 10,000 memberships (2 %
//!   administrators, 30 % holding the custom role being changed, the rest spread over
//!   the built-ins), for editing that custom role, demoting one administrator and deleting
//!   the custom role with a replacement. The use case adds only the repository reads
//!   around it.
//! * `password_policy/*`: [`PasswordPolicy::validate`] of the seed default and NIST
//!   policies on a strong passphrase and on a password breaking several rules at once.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::hint::black_box;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use guildhall_domain::catalogue::{Catalogue, permissions, resource_kinds};
use guildhall_domain::ids::{FacilityId, OrgId, UserId};
use guildhall_domain::membership::{AccessScope, AccessSettings, Membership, MembershipOrigin};
use guildhall_domain::password::{Password, PasswordPolicy};
use guildhall_domain::policy::{RoleChange, preview_role_change};
use guildhall_domain::role::{ResourceRef, Role, RoleGrant, RolePolicy, RoleSet, Scope, builtin};
use guildhall_domain::values::{RoleKey, RoleName};
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn front_desk() -> Role {
    Role {
        key: RoleKey::parse("front_desk").unwrap(),
        name: RoleName::parse("Front desk").unwrap(),
        grant: RoleGrant::Only(BTreeSet::from([permissions::PATIENTS_ASSIGN, permissions::REPORTS_VIEW])),
        built_in: false,
    }
}

fn member(org: OrgId, n: u128, role: RoleKey, facility: FacilityId) -> Membership {
    let mut m = Membership::new(org, UserId::from_uuid(id(n)), role, MembershipOrigin::Invitation, None, now());
    m.facilities = BTreeSet::from([facility]);
    m.access = AccessSettings::new([(resource_kinds::PATIENTS, AccessScope::Facility)]);
    m
}

fn authorize(c: &mut Criterion) {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([front_desk()]);
    let policy = RolePolicy::new(&catalogue, &roles);
    let org = OrgId::from_uuid(id(1));
    let facility = FacilityId::from_uuid(id(2));
    let admin = member(org, 10, builtin::ADMINISTRATOR, facility);
    let manager = member(org, 11, builtin::MANAGER, facility);
    let user = member(org, 12, builtin::USER, facility);
    let anywhere = Scope::Organisation(org);
    let patient = Scope::Resource(ResourceRef {
        org,
        kind: resource_kinds::PATIENTS,
        owner: Some(UserId::from_uuid(id(99))),
        facility: Some(facility),
    });
    assert!(policy.authorize(Some(&admin), &permissions::MEMBERS_MANAGE, &anywhere, now()).is_ok());
    assert!(policy.authorize(Some(&user), &permissions::MEMBERS_MANAGE, &anywhere, now()).is_err());
    let mut group = c.benchmark_group("authorize");
    group.bench_function("administrator, organisation", |b| {
        b.iter(|| policy.authorize(black_box(Some(&admin)), &permissions::MEMBERS_MANAGE, &anywhere, now()));
    });
    group.bench_function("manager, patient of their facility", |b| {
        b.iter(|| policy.authorize(black_box(Some(&manager)), &permissions::PATIENTS_ASSIGN, &patient, now()));
    });
    group.bench_function("user, refused", |b| {
        b.iter(|| policy.authorize(black_box(Some(&user)), &permissions::MEMBERS_MANAGE, &anywhere, now()));
    });
    group.finish();
}

fn preview(c: &mut Criterion) {
    let catalogue = Catalogue::builtin();
    let roles = RoleSet::new([front_desk()]);
    let org = OrgId::from_uuid(id(1));
    let facility = FacilityId::from_uuid(id(2));
    let desk = front_desk().key;
    let members: Vec<Membership> = (0..10_000_u128)
        .map(|n| {
            let role = match n % 100 {
                0..2 => builtin::ADMINISTRATOR,
                2..32 => desk.clone(),
                32..40 => builtin::MANAGER,
                40..55 => builtin::USER_PLUS,
                _ => builtin::USER,
            };
            member(org, 1_000 + n, role, facility)
        })
        .collect();
    let actor = members[0].clone();
    let demoted = members[1].user;
    let changes = [
        (
            "edit a custom role held by 3,000",
            RoleChange::EditRole { key: desk.clone(), permissions: BTreeSet::from([permissions::REPORTS_VIEW]) },
        ),
        ("demote one of 200 administrators", RoleChange::AssignRole { user: demoted, role: builtin::USER }),
        ("delete a custom role held by 3,000", RoleChange::DeleteRole { key: desk, replacement: Some(builtin::USER) }),
    ];
    let mut group = c.benchmark_group("preview_role_change/10k");
    for (name, change) in changes {
        let preview = preview_role_change(&catalogue, &roles, &members, &actor, &change, now()).unwrap();
        assert!(preview.is_allowed(), "{name}: {preview}");
        group.bench_function(name, |b| {
            b.iter(|| preview_role_change(&catalogue, &roles, black_box(&members), &actor, &change, now()));
        });
    }
    group.finish();
}

fn password_policy(c: &mut Criterion) {
    let strong = Password::new("Correct-Horse-battery-9-staple");
    let weak = Password::new("password");
    let mut group = c.benchmark_group("password_policy");
    for (name, policy) in [("seed default", PasswordPolicy::seed_default()), ("NIST", PasswordPolicy::nist_800_63b())] {
        assert!(policy.validate(&strong, Some("ada")).is_ok());
        assert!(policy.validate(&weak, Some("ada")).is_err());
        group
            .bench_function(format!("{name}, strong"), |b| b.iter(|| policy.validate(black_box(&strong), Some("ada"))));
        group.bench_function(format!("{name}, weak"), |b| b.iter(|| policy.validate(black_box(&weak), Some("ada"))));
    }
    group.finish();
}

criterion_group!(benches, authorize, preview, password_policy);
criterion_main!(benches);
