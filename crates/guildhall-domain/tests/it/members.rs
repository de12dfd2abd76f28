//! Members: administrator-created accounts, linking, edits, suspension, removal, leaving,
//! search and permission checks.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use guildhall_domain::audit::{AuditAction, AuditTarget, FieldChange};
use guildhall_domain::catalogue::{alerts, permissions as p, resource_kinds};
use guildhall_domain::error::AccessError;
use guildhall_domain::ids::{FacilityId, SessionId, UserId};
use guildhall_domain::invitation::InvitationState;
use guildhall_domain::membership::{AccessScope, AccessSettings, MemberState, MembershipOrigin, MembershipStatus};
use guildhall_domain::notification::Notification;
use guildhall_domain::org::{Facility, Organisation};
use guildhall_domain::password::{CharacterClass, Password, PasswordPolicy};
use guildhall_domain::policy::InvariantViolation;
use guildhall_domain::ports::{Change, ChangeSet, Clock, PasswordHasher, UnitOfWork};
use guildhall_domain::role::{Denial, Reason, ResourceRef, Role, RoleGrant, Scope, builtin};
use guildhall_domain::token::{Secret, Session, Token};
use guildhall_domain::usecases::{
    CreateMemberError, CreateMemberOutcome, LinkMemberError, ListRolesError, MemberQueryError, MemberSearch,
    MemberSettings, MemberStatusError, MemberUpdate, NewMember, OrganisationUpdate, UpdateMemberError,
    ViewOrganisationError,
};
use guildhall_domain::user::User;
use guildhall_domain::values::{Position, RoleKey, RoleName};
use uuid::Uuid;

use crate::support::{Acme, address, deputy_permissions, fields};

/// Acme once Ann has opened its two facilities: every test here starts from it.
struct Clinics {
    acme: Acme,
    north: Facility,
    south: Facility,
}

impl Clinics {
    async fn open() -> Self {
        let acme = Acme::new().await;
        let organisations = acme.organisations();
        let north = organisations.create_facility(acme.ann.id, acme.org.id, "North Clinic").await.unwrap();
        let south = organisations.create_facility(acme.ann.id, acme.org.id, "South Clinic").await.unwrap();
        Self { acme, north, south }
    }
}

impl Acme {
    fn user(&self, id: UserId) -> User {
        self.kit.store.users().into_iter().find(|u| u.id == id).unwrap()
    }

    /// A live session of `user`, as signing in would create it.
    async fn session(&self, user: UserId, n: u8) -> Session {
        let now = self.kit.clock.now();
        let session = Session {
            id: SessionId::from_uuid(Uuid::from_u128(0x5e55_0000 + u128::from(n))),
            user,
            token_hash: Token::from_secret(&Secret::from_bytes([n; 32])).hash(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + Duration::days(14),
            password_change_required: false,
            revoked_at: None,
        };
        let mut changes = ChangeSet::new();
        changes.push(Change::InsertSession(session.clone()));
        self.kit.store.commit(changes).await.unwrap();
        session
    }

    fn stored_session(&self, session: &Session) -> Session {
        self.kit.store.sessions().into_iter().find(|s| s.id == session.id).unwrap()
    }

    fn last_audit(&self) -> guildhall_domain::audit::AuditEntry {
        self.kit.store.audit().pop().unwrap()
    }

    async fn search(&self, search: MemberSearch) -> Vec<UserId> {
        let page = self.members().search(self.ann.id, self.org.id, &search).await.unwrap();
        page.items.iter().map(|item| item.membership.user).collect()
    }
}

fn bo_form(north: &Facility) -> NewMember {
    NewMember {
        first_name: " Bo ".to_owned(),
        last_name: "Therapist".to_owned(),
        email: "Bo.Therapist@Example.com".to_owned(),
        phone: Some("+44 (113) 496-0000".to_owned()),
        role: "user_plus".to_owned(),
        settings: MemberSettings {
            position: Some(" Physiotherapist ".to_owned()),
            facilities: [north.id].into_iter().collect(),
            aide: true,
            access: BTreeMap::from([
                (resource_kinds::PATIENTS, AccessScope::Facility),
                (resource_kinds::NPS, AccessScope::Own),
            ]),
            alerts: [alerts::NPS_LOW, alerts::NEW_INTAKES].into_iter().collect(),
        },
    }
}

// ---- creating members ---------------------------------------------------------------------------

#[tokio::test]
async fn creating_a_member_makes_an_unverified_account_with_only_an_emailed_temporary_password() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    let created_at = acme.kit.clock.now();
    let form = bo_form(&north);

    let outcome = acme.members().create_member(acme.ann.id, acme.org.id, &form).await.unwrap();

    let CreateMemberOutcome::AccountCreated { user, membership, temporary_password_expires_at } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(*temporary_password_expires_at, created_at + Duration::hours(72));
    let account = acme.user(*user);
    assert_eq!(account.email, address("bo.therapist@example.com"));
    assert_eq!(account.email.as_str(), "Bo.Therapist@Example.com");
    assert_eq!(account.name.full(), "Bo Therapist");
    assert_eq!(account.phone.as_ref().map(|phone| phone.as_str()), Some("+441134960000"));
    assert_eq!(account.email_verified_at, None);
    assert!(account.password.hash.is_none(), "no regular password until they choose one");
    assert!(account.password.must_change);
    let temporary = account.password.temporary.clone().unwrap();
    assert_eq!(temporary.expires_at, created_at + Duration::hours(72));

    assert_eq!(acme.membership(*user).as_ref(), Some(membership.as_ref()));
    assert_eq!(membership.role, builtin::USER_PLUS);
    assert_eq!(membership.position, Some(Position::parse("Physiotherapist").unwrap()));
    assert_eq!(membership.facilities, [north.id].into_iter().collect());
    assert!(membership.aide);
    assert_eq!(membership.access.scope_for(&resource_kinds::PATIENTS), AccessScope::Facility);
    assert_eq!(membership.access.scope_for(&resource_kinds::NPS), AccessScope::Own);
    assert_eq!(membership.access.scope_for(&resource_kinds::LISTS), AccessScope::None);
    assert_eq!(membership.alerts, form.settings.alerts);
    assert_eq!(membership.origin, MembershipOrigin::CreatedByAdministrator);
    assert_eq!(membership.added_by, Some(acme.ann.id));

    let emails = acme.kit.store.emails_to(&account.email);
    assert_eq!(emails.len(), 1);
    assert_eq!(acme.kit.store.emails().len(), 1);
    let Notification::AccountCreated { org_name, created_by, temporary_password, expires_at } = &emails[0].notification
    else {
        panic!("{:?}", emails[0].notification)
    };
    assert_eq!(org_name, "Acme Physio");
    assert_eq!(created_by, "Ann Example");
    assert_eq!(*expires_at, temporary.expires_at);
    assert!(acme.kit.hasher.verify(temporary_password, &temporary.hash).await.unwrap());
    PasswordPolicy::seed_default().validate(temporary_password, Some(account.email.local_part())).unwrap();

    // The secret is in the email only.
    let secret = temporary_password.expose();
    assert!(!format!("{outcome:?}").contains(secret));
    let audit = acme.kit.store.audit();
    let entry = audit.last().unwrap();
    assert_eq!(entry.action, AuditAction::MemberCreated);
    assert_eq!(entry.actor, Some(acme.ann.id));
    assert_eq!(entry.org, Some(acme.org.id));
    assert_eq!(entry.target, AuditTarget::User(*user));
    assert!(audit.iter().all(|e| !format!("{e:?}").contains(secret)));
    assert!(!format!("{account:?}").contains(secret));
}

#[tokio::test]
async fn the_temporary_password_meets_the_organisations_stricter_policy() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    let strict = PasswordPolicy::new(40, 128, CharacterClass::ALL, true, true).unwrap();
    let update = OrganisationUpdate { password_policy: Some(strict.clone()), ..OrganisationUpdate::default() };
    acme.kit.guildhall.organisations().update(acme.ann.id, acme.org.id, update).await.unwrap();

    acme.members().create_member(acme.ann.id, acme.org.id, &bo_form(&north)).await.unwrap();

    let email = acme.kit.store.emails().pop().unwrap();
    let Notification::AccountCreated { temporary_password, .. } = &email.notification else { panic!("{email:?}") };
    assert!(temporary_password.char_count() >= 40, "{}", temporary_password.char_count());
    strict.validate(temporary_password, Some(email.to.local_part())).unwrap();
    PasswordPolicy::seed_default().validate(temporary_password, Some(email.to.local_part())).unwrap();
}

#[tokio::test]
async fn a_facility_the_organisation_does_not_have_is_refused_naming_the_field() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    let zed = acme.kit.seed_user("zed@beta.example", true).await.unwrap();
    let beta = acme.kit.seed_org("beta-clinic", zed.id).await.unwrap();
    let elsewhere = acme.kit.guildhall.organisations().create_facility(zed.id, beta.id, "Beta Clinic").await.unwrap();
    let users = acme.kit.store.users().len();

    for unknown in [FacilityId::from_uuid(Uuid::from_u128(0xfac)), elsewhere.id] {
        let mut form = bo_form(&north);
        form.settings.facilities.insert(unknown);
        let err = acme.members().create_member(acme.ann.id, acme.org.id, &form).await.unwrap_err();
        let CreateMemberError::Invalid(invalid) = &err else { panic!("{err:?}") };
        assert_eq!(fields(invalid), ["facilities"]);
        assert!(err.to_string().contains(&unknown.to_string()), "{err}");
    }
    assert_eq!(acme.kit.store.users().len(), users);
    assert!(acme.kit.store.emails().is_empty());
}

#[tokio::test]
async fn every_invalid_field_of_the_new_member_form_is_reported_at_once() {
    let Clinics { acme, .. } = Clinics::open().await;
    let form = NewMember {
        first_name: "  ".to_owned(),
        last_name: String::new(),
        email: "bo.example.com".to_owned(),
        phone: Some("0113 496".to_owned()),
        role: "overlord".to_owned(),
        settings: MemberSettings::default(),
    };
    let commits = acme.kit.store.commit_count();

    let err = acme.members().create_member(acme.ann.id, acme.org.id, &form).await.unwrap_err();

    let CreateMemberError::Invalid(invalid) = &err else { panic!("{err:?}") };
    let mut reported = fields(invalid);
    reported.sort_unstable();
    assert_eq!(reported, ["email", "first_name", "last_name", "phone", "role"]);
    assert_eq!(acme.kit.store.commit_count(), commits);
    assert!(acme.kit.store.emails().is_empty());
}

#[tokio::test]
async fn an_address_that_has_an_account_gets_an_invitation_with_the_same_role_instead() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    let cy = acme.kit.seed_user("cy@example.com", true).await.unwrap();
    let form = NewMember { email: "CY@example.com".to_owned(), role: "manager".to_owned(), ..bo_form(&north) };
    let users = acme.kit.store.users();

    let outcome = acme.members().create_member(acme.ann.id, acme.org.id, &form).await.unwrap();

    let CreateMemberOutcome::InvitationSent { invitation } = outcome else { panic!("{outcome:?}") };
    assert_eq!(acme.kit.store.users(), users, "the account is untouched and no other is created");
    assert!(acme.membership(cy.id).is_none(), "nobody joins without consent");
    let stored = acme.kit.store.invitations();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, invitation);
    assert_eq!(stored[0].email, cy.email);
    assert_eq!(stored[0].role, builtin::MANAGER);
    assert_eq!(stored[0].state, InvitationState::Pending);
    let emails = acme.kit.store.emails_to(&cy.email);
    assert_eq!(emails.len(), 1);
    assert!(matches!(emails[0].notification, Notification::Invitation { .. }), "{:?}", emails[0]);

    let token = acme.kit.last_token_sent_to(&cy.email).unwrap();
    let membership = acme.kit.guildhall.invitations().accept(cy.id, token.expose()).await.unwrap();
    assert_eq!(membership.role, builtin::MANAGER);
}

#[tokio::test]
async fn creating_someone_who_is_already_a_member_is_refused() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    acme.member("cy@example.com", builtin::USER).await;
    let form = NewMember { email: "cy@example.com".to_owned(), ..bo_form(&north) };

    let err = acme.members().create_member(acme.ann.id, acme.org.id, &form).await.unwrap_err();

    assert!(matches!(err, CreateMemberError::AlreadyMember(_)), "{err:?}");
    assert!(acme.kit.store.invitations().is_empty());
    assert!(acme.kit.store.emails().is_empty());
}

#[tokio::test]
async fn creating_a_member_needs_member_management_and_a_role_within_the_creators_permissions() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    let dee = acme.member("dee@acme-physio.example", deputy).await;

    let err = acme.members().create_member(mo.id, acme.org.id, &bo_form(&north)).await.unwrap_err();
    assert!(matches!(err, CreateMemberError::Access(AccessError::Forbidden { .. })), "{err:?}");
    let form = NewMember { role: "manager".to_owned(), ..bo_form(&north) };
    let err = acme.members().create_member(dee.id, acme.org.id, &form).await.unwrap_err();
    assert!(matches!(err, CreateMemberError::Escalation(InvariantViolation::Escalation { .. })), "{err:?}");
    assert!(acme.kit.store.emails().is_empty());
}

// ---- linking ----------------------------------------------------------------------------------------

/// Ann administers Acme (where Bo is a User) and Beta.
async fn acme_and_beta() -> (Acme, Organisation, User) {
    let Clinics { acme, .. } = Clinics::open().await;
    let beta = acme.kit.seed_org("beta-clinic", acme.ann.id).await.unwrap();
    let bo = acme.member("bo@example.com", builtin::USER).await;
    (acme, beta, bo)
}

#[tokio::test]
async fn linking_a_member_managed_in_another_organisation_creates_only_a_membership() {
    let (acme, beta, bo) = acme_and_beta().await;
    let users = acme.kit.store.users();

    let membership =
        acme.members().link_existing_user(acme.ann.id, acme.org.id, beta.id, bo.id, &builtin::USER_PLUS).await.unwrap();

    assert_eq!(membership.org, beta.id);
    assert_eq!(membership.role, builtin::USER_PLUS);
    assert_eq!(membership.origin, MembershipOrigin::Linked);
    assert_eq!(membership.added_by, Some(acme.ann.id));
    assert_eq!(acme.kit.store.memberships(beta.id).into_iter().find(|m| m.user == bo.id), Some(membership));
    assert_eq!(acme.membership(bo.id).unwrap().role, builtin::USER, "the source membership is untouched");
    assert_eq!(acme.kit.store.users(), users);
    let entry = acme.last_audit();
    assert_eq!((entry.action, entry.org, entry.actor), (AuditAction::MemberLinked, Some(beta.id), Some(acme.ann.id)));
    assert_eq!(entry.target, AuditTarget::User(bo.id));
    assert!(entry.changes.contains(&FieldChange::new("linked_from", None::<&str>, Some("Acme Physio"))));
}

#[tokio::test]
async fn linking_needs_member_management_in_both_organisations() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    let zed = acme.kit.seed_user("zed@beta.example", true).await.unwrap();
    let beta = acme.kit.seed_org("beta-clinic", zed.id).await.unwrap();
    let gamma = acme.kit.seed_org("gamma-clinic", zed.id).await.unwrap();
    acme.kit.seed_member(beta.id, acme.ann.id, builtin::MANAGER).await.unwrap();

    let err =
        acme.members().link_existing_user(acme.ann.id, acme.org.id, beta.id, bo.id, &builtin::USER).await.unwrap_err();
    assert!(
        matches!(&err, LinkMemberError::Access(AccessError::Forbidden { permission, .. }) if *permission == p::MEMBERS_MANAGE),
        "{err:?}"
    );
    let err =
        acme.members().link_existing_user(acme.ann.id, acme.org.id, gamma.id, bo.id, &builtin::USER).await.unwrap_err();
    assert!(matches!(err, LinkMemberError::Access(AccessError::NotFound)), "{err:?}");
    // Zed manages Beta but not Acme, where Bo is.
    let err = acme.members().link_existing_user(zed.id, acme.org.id, beta.id, bo.id, &builtin::USER).await.unwrap_err();
    assert!(matches!(err, LinkMemberError::Access(AccessError::NotFound)), "{err:?}");
    assert!(acme.kit.store.memberships(beta.id).iter().all(|m| m.user != bo.id));
    assert!(acme.kit.store.memberships(gamma.id).iter().all(|m| m.user != bo.id));
}

#[tokio::test]
async fn linking_with_a_role_above_the_actors_permissions_is_refused() {
    let Clinics { acme, .. } = Clinics::open().await;
    let zed = acme.kit.seed_user("zed@beta.example", true).await.unwrap();
    let beta = acme.kit.seed_org("beta-clinic", zed.id).await.unwrap();
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    let dee = acme.member("dee@acme-physio.example", deputy.clone()).await;
    let beta_deputy = Role {
        key: deputy.clone(),
        name: RoleName::parse("Deputy").unwrap(),
        grant: RoleGrant::Only(deputy_permissions().into_iter().collect()),
        built_in: false,
    };
    let mut changes = ChangeSet::new();
    changes.push(Change::PutRole { org: beta.id, role: beta_deputy });
    acme.kit.store.commit(changes).await.unwrap();
    acme.kit.seed_member(beta.id, dee.id, deputy).await.unwrap();
    let bo = acme.member("bo@example.com", builtin::USER).await;

    let err =
        acme.members().link_existing_user(dee.id, acme.org.id, beta.id, bo.id, &builtin::MANAGER).await.unwrap_err();

    let LinkMemberError::Escalation(InvariantViolation::Escalation { missing }) = &err else { panic!("{err:?}") };
    assert_eq!(missing.iter().collect::<Vec<_>>(), [&p::FINANCIALS_ACCESS]);
    assert!(acme.kit.store.memberships(beta.id).iter().all(|m| m.user != bo.id));
    acme.members().link_existing_user(dee.id, acme.org.id, beta.id, bo.id, &builtin::USER_PLUS).await.unwrap();
}

#[tokio::test]
async fn linking_someone_already_a_member_of_the_target_is_refused() {
    let (acme, beta, bo) = acme_and_beta().await;
    acme.kit.seed_member(beta.id, bo.id, builtin::USER).await.unwrap();

    let err = acme
        .members()
        .link_existing_user(acme.ann.id, acme.org.id, beta.id, bo.id, &builtin::MANAGER)
        .await
        .unwrap_err();

    assert!(matches!(err, LinkMemberError::AlreadyMember), "{err:?}");
    assert_eq!(acme.kit.store.memberships(beta.id).into_iter().find(|m| m.user == bo.id).unwrap().role, builtin::USER);
}

#[tokio::test]
async fn linking_someone_the_actor_does_not_manage_in_the_source_is_refused() {
    let (acme, beta, _) = acme_and_beta().await;
    let stranger = acme.kit.seed_user("stranger@example.com", true).await.unwrap();
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    let dee = acme.member("dee@acme-physio.example", deputy).await;
    acme.kit.seed_member(beta.id, dee.id, builtin::ADMINISTRATOR).await.unwrap();
    let al = acme.member("al@acme-physio.example", builtin::ADMINISTRATOR).await;

    let err = acme
        .members()
        .link_existing_user(acme.ann.id, acme.org.id, beta.id, stranger.id, &builtin::USER)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkMemberError::NotManagedBySource), "{err:?}");
    // Al is an Administrator of Acme: the deputy does not manage them there.
    let err = acme.members().link_existing_user(dee.id, acme.org.id, beta.id, al.id, &builtin::USER).await.unwrap_err();
    assert!(matches!(err, LinkMemberError::NotManagedBySource), "{err:?}");
    assert!(acme.kit.store.memberships(beta.id).iter().all(|m| m.user != stranger.id && m.user != al.id));
}

// ---- updating ---------------------------------------------------------------------------------------

#[tokio::test]
async fn each_member_field_can_be_changed_and_is_audited_before_and_after() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    let expiry = acme.kit.clock.now() + Duration::days(30);
    let access = BTreeMap::from([(resource_kinds::PATIENTS, AccessScope::Organisation)]);
    let cases: Vec<(MemberUpdate, FieldChange)> = vec![
        (
            MemberUpdate { role: Some(builtin::USER_PLUS), ..MemberUpdate::default() },
            FieldChange::new("role", Some("user"), Some("user_plus")),
        ),
        (
            MemberUpdate { position: Some(Some(" Lead  Physio ".to_owned())), ..MemberUpdate::default() },
            FieldChange::new("position", None::<&str>, Some("Lead Physio")),
        ),
        (
            MemberUpdate { facilities: Some([north.id].into_iter().collect()), ..MemberUpdate::default() },
            FieldChange::new("facilities", Some(""), Some(north.id)),
        ),
        (
            MemberUpdate { aide: Some(true), ..MemberUpdate::default() },
            FieldChange::new("aide", Some(false), Some(true)),
        ),
        (
            MemberUpdate { access: Some(access.clone()), ..MemberUpdate::default() },
            FieldChange::new("access", Some(""), Some("patients=organisation")),
        ),
        (
            MemberUpdate { alerts: Some([alerts::NPS_LOW].into_iter().collect()), ..MemberUpdate::default() },
            FieldChange::new("alerts", Some(""), Some("nps_low")),
        ),
        (
            MemberUpdate { expires_at: Some(Some(expiry)), ..MemberUpdate::default() },
            FieldChange::new("expires_at", None::<&str>, Some(expiry)),
        ),
        (
            MemberUpdate { position: Some(None), ..MemberUpdate::default() },
            FieldChange::new("position", Some("Lead Physio"), None::<&str>),
        ),
    ];

    for (update, expected) in cases {
        let updated = acme.members().update_member(acme.ann.id, acme.org.id, bo.id, &update).await.unwrap();
        assert_eq!(acme.membership(bo.id), Some(updated));
        let entry = acme.last_audit();
        assert_eq!(entry.action, AuditAction::MemberUpdated);
        assert_eq!((entry.actor, entry.org), (Some(acme.ann.id), Some(acme.org.id)));
        assert_eq!(entry.target, AuditTarget::User(bo.id));
        assert_eq!(entry.changes, [expected]);
    }

    let membership = acme.membership(bo.id).unwrap();
    assert_eq!(membership.role, builtin::USER_PLUS);
    assert_eq!(membership.position, None);
    assert_eq!(membership.facilities, [north.id].into_iter().collect());
    assert!(membership.aide);
    assert_eq!(membership.access, AccessSettings::new(access));
    assert_eq!(membership.alerts, [alerts::NPS_LOW].into_iter().collect());
    assert_eq!(membership.expires_at, Some(expiry));
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    let before = acme.membership(bo.id);

    for at in [acme.kit.clock.now(), acme.kit.clock.now() - Duration::days(1)] {
        let update = MemberUpdate { expires_at: Some(Some(at)), ..MemberUpdate::default() };
        let err = acme.members().update_member(acme.ann.id, acme.org.id, bo.id, &update).await.unwrap_err();
        let UpdateMemberError::Invalid(invalid) = &err else { panic!("{err:?}") };
        assert_eq!(fields(invalid), ["expires_at"]);
    }
    assert_eq!(acme.membership(bo.id), before);
}

#[tokio::test]
async fn a_member_manager_cannot_change_someone_who_holds_more_than_they_do() {
    let Clinics { acme, .. } = Clinics::open().await;
    let deputy = acme.custom_role("deputy", &deputy_permissions()).await;
    let dee = acme.member("dee@acme-physio.example", deputy).await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;

    let update = MemberUpdate { aide: Some(true), ..MemberUpdate::default() };
    let err = acme.members().update_member(dee.id, acme.org.id, mo.id, &update).await.unwrap_err();

    assert!(matches!(err, UpdateMemberError::Refused(InvariantViolation::Outranked { .. })), "{err:?}");
    assert!(!acme.membership(mo.id).unwrap().aide);
    let err = acme.members().suspend(dee.id, acme.org.id, mo.id).await.unwrap_err();
    assert!(matches!(err, MemberStatusError::Refused(InvariantViolation::Outranked { .. })), "{err:?}");
}

#[tokio::test]
async fn updating_a_non_member_or_with_unknown_values_is_refused() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    let stranger = acme.kit.seed_user("stranger@example.com", true).await.unwrap();

    let update = MemberUpdate { aide: Some(true), ..MemberUpdate::default() };
    let err = acme.members().update_member(acme.ann.id, acme.org.id, stranger.id, &update).await.unwrap_err();
    assert!(matches!(err, UpdateMemberError::MemberNotFound), "{err:?}");

    let update = MemberUpdate {
        role: Some(RoleKey::parse("overlord").unwrap()),
        facilities: Some([FacilityId::from_uuid(Uuid::from_u128(0xfac))].into_iter().collect()),
        ..MemberUpdate::default()
    };
    let err = acme.members().update_member(acme.ann.id, acme.org.id, bo.id, &update).await.unwrap_err();
    let UpdateMemberError::Invalid(invalid) = &err else { panic!("{err:?}") };
    assert_eq!(fields(invalid), ["role", "facilities"]);
    assert_eq!(acme.membership(bo.id).unwrap().role, builtin::USER);
}

// ---- suspend, reactivate, remove, leave ---------------------------------------------------------------

#[tokio::test]
async fn suspending_a_member_ends_their_sessions_and_stops_them_doing_anything() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::MANAGER).await;
    let cy = acme.member("cy@example.com", builtin::USER).await;
    let bo_session = acme.session(bo.id, 1).await;
    let cy_session = acme.session(cy.id, 2).await;
    acme.kit.clock.advance(Duration::minutes(5));
    let now = acme.kit.clock.now();

    let suspended = acme.members().suspend(acme.ann.id, acme.org.id, bo.id).await.unwrap();

    assert_eq!(suspended.status, MembershipStatus::Suspended { since: now, by: acme.ann.id });
    assert_eq!(acme.membership(bo.id), Some(suspended));
    assert_eq!(acme.stored_session(&bo_session).revoked_at, Some(now));
    assert_eq!(acme.stored_session(&cy_session).revoked_at, None);
    let entry = acme.last_audit();
    assert_eq!(
        (entry.action, entry.actor, entry.target),
        (AuditAction::MemberSuspended, Some(acme.ann.id), AuditTarget::User(bo.id))
    );

    let err = acme.kit.guildhall.roles().list(bo.id, acme.org.id).await.unwrap_err();
    assert!(matches!(err, ListRolesError::Access(AccessError::Inactive(Denial::Suspended))), "{err:?}");
    let err = acme.kit.guildhall.organisations().get(bo.id, acme.org.id).await.unwrap_err();
    assert!(matches!(err, ViewOrganisationError::Access(AccessError::Inactive(Denial::Suspended))), "{err:?}");
    let err = acme.members().get(bo.id, acme.org.id, bo.id).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::Inactive(Denial::Suspended))), "{err:?}");
    let scope = Scope::Organisation(acme.org.id);
    let err = acme.members().authorize(bo.id, &p::REPORTS_VIEW, &scope).await.unwrap_err();
    assert!(
        matches!(err, MemberQueryError::Access(AccessError::Forbidden { denial: Denial::Suspended, .. })),
        "{err:?}"
    );

    let err = acme.members().suspend(acme.ann.id, acme.org.id, bo.id).await.unwrap_err();
    assert!(matches!(err, MemberStatusError::AlreadyInState("suspended")), "{err:?}");
}

#[tokio::test]
async fn reactivating_a_suspended_member_restores_their_access() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    acme.members().suspend(acme.ann.id, acme.org.id, bo.id).await.unwrap();

    let reactivated = acme.members().reactivate(acme.ann.id, acme.org.id, bo.id).await.unwrap();

    assert_eq!(reactivated.status, MembershipStatus::Active);
    assert_eq!(acme.last_audit().action, AuditAction::MemberReactivated);
    assert_eq!(acme.kit.guildhall.roles().list(bo.id, acme.org.id).await.unwrap().len(), 4);
    let err = acme.members().reactivate(acme.ann.id, acme.org.id, bo.id).await.unwrap_err();
    assert!(matches!(err, MemberStatusError::AlreadyInState("active")), "{err:?}");
}

#[tokio::test]
async fn removing_a_member_deletes_the_membership_and_ends_their_sessions() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::MANAGER).await;
    let session = acme.session(bo.id, 1).await;

    let removed = acme.members().remove(acme.ann.id, acme.org.id, bo.id).await.unwrap();

    assert_eq!(removed.user, bo.id);
    assert!(acme.membership(bo.id).is_none());
    assert_eq!(acme.stored_session(&session).revoked_at, Some(acme.kit.clock.now()));
    let entry = acme.last_audit();
    assert_eq!((entry.action, entry.actor), (AuditAction::MemberRemoved, Some(acme.ann.id)));
    assert_eq!(entry.changes, [FieldChange::new("role", Some("manager"), None::<&str>)]);
    let err = acme.kit.guildhall.roles().list(bo.id, acme.org.id).await.unwrap_err();
    assert!(matches!(err, ListRolesError::Access(AccessError::NotFound)), "{err:?}");
    let err = acme.members().remove(acme.ann.id, acme.org.id, bo.id).await.unwrap_err();
    assert!(matches!(err, MemberStatusError::MemberNotFound), "{err:?}");
}

#[tokio::test]
async fn a_member_can_leave_an_organisation() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;

    acme.members().leave(bo.id, acme.org.id).await.unwrap();

    assert!(acme.membership(bo.id).is_none());
    let entry = acme.last_audit();
    assert_eq!((entry.action, entry.actor, entry.org), (AuditAction::MemberLeft, Some(bo.id), Some(acme.org.id)));
    let err = acme.kit.guildhall.roles().list(bo.id, acme.org.id).await.unwrap_err();
    assert!(matches!(err, ListRolesError::Access(AccessError::NotFound)), "{err:?}");
}

#[tokio::test]
async fn changing_status_needs_member_management() {
    let Clinics { acme, .. } = Clinics::open().await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;
    let bo = acme.member("bo@example.com", builtin::USER).await;

    let err = acme.members().remove(mo.id, acme.org.id, bo.id).await.unwrap_err();

    assert!(
        matches!(&err, MemberStatusError::Access(AccessError::Forbidden { permission, .. }) if *permission == p::MEMBERS_MANAGE),
        "{err:?}"
    );
    assert!(acme.membership(bo.id).is_some());
}

// ---- search ------------------------------------------------------------------------------------------

#[tokio::test]
async fn searching_matches_part_of_a_first_name_last_name_or_address_ignoring_case() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo.therapist@example.com", builtin::USER).await;
    let dee = acme.member("dee.bobbins@example.com", builtin::USER).await;
    let cy = acme.member("cy.jones@bomail.example", builtin::USER).await;
    acme.member("eve.smith@example.com", builtin::USER).await;

    let found = acme.search(MemberSearch { text: Some("  BO ".to_owned()), ..MemberSearch::default() }).await;

    assert_eq!(found, [dee.id, cy.id, bo.id], "by last name: Bobbins, Jones, Therapist");
    let found = acme.search(MemberSearch { text: Some("ee.bob".to_owned()), ..MemberSearch::default() }).await;
    assert_eq!(found, [dee.id]);
    let found = acme.search(MemberSearch { text: Some("nobody".to_owned()), ..MemberSearch::default() }).await;
    assert!(found.is_empty());
}

#[tokio::test]
async fn searching_filters_by_role_facility_and_state() {
    let Clinics { acme, north, south } = Clinics::open().await;
    let bo = acme.member("bo.therapist@example.com", builtin::USER).await;
    let dee = acme.member("dee.bobbins@example.com", builtin::USER).await;
    let cy = acme.member("cy.jones@example.com", builtin::MANAGER).await;
    let eve = acme.member("eve.smith@example.com", builtin::USER_PLUS).await;
    let members = acme.members();
    members.change_facilities(acme.ann.id, acme.org.id, bo.id, [north.id].into_iter().collect()).await.unwrap();
    members.change_facilities(acme.ann.id, acme.org.id, cy.id, [south.id].into_iter().collect()).await.unwrap();
    members.suspend(acme.ann.id, acme.org.id, bo.id).await.unwrap();
    let expiry = acme.kit.clock.now() + Duration::hours(1);
    let update = MemberUpdate { expires_at: Some(Some(expiry)), ..MemberUpdate::default() };
    members.update_member(acme.ann.id, acme.org.id, dee.id, &update).await.unwrap();
    acme.kit.clock.advance(Duration::hours(2));
    let search = |role: Option<&str>, facility: Option<FacilityId>, state: Option<&str>| MemberSearch {
        role: role.map(str::to_owned),
        facility: facility.map(|f| f.to_string()),
        state: state.map(str::to_owned),
        ..MemberSearch::default()
    };

    assert_eq!(acme.search(search(Some("user"), None, None)).await, [dee.id, bo.id]);
    assert_eq!(acme.search(search(None, Some(north.id), None)).await, [bo.id]);
    assert!(acme.search(search(Some("manager"), Some(north.id), None)).await.is_empty());
    assert_eq!(acme.search(search(None, None, Some("suspended"))).await, [bo.id]);
    assert_eq!(acme.search(search(None, None, Some("expired"))).await, [dee.id]);
    assert_eq!(acme.search(search(None, None, Some("active"))).await, [acme.ann.id, cy.id, eve.id]);
    let page = members.search(acme.ann.id, acme.org.id, &search(None, None, Some("suspended"))).await.unwrap();
    assert_eq!(page.items[0].membership.state(acme.kit.clock.now()), MemberState::Suspended);
    assert_eq!(page.items[0].email, bo.email);
    assert_eq!(page.items[0].name, bo.name);
}

#[tokio::test]
async fn searching_pages_through_every_member_exactly_once_in_sort_order() {
    let Clinics { acme, .. } = Clinics::open().await;
    let firsts = ["ann", "bo", "cy", "dee", "eve"];
    let lasts = ["lee", "ng", "smith", "jones", "brown", "zhu"];
    for i in 0..130 {
        // The `+tag` keeps the address unique while the name repeats: ties break by id.
        acme.member(&format!("{}.{}+{i}@crowd.example", firsts[i % 5], lasts[i % 6]), builtin::USER).await;
    }
    let users: BTreeMap<UserId, User> = acme.kit.store.users().into_iter().map(|u| (u.id, u)).collect();
    let mut expected: Vec<(String, UserId)> =
        acme.kit.store.memberships(acme.org.id).iter().map(|m| (users[&m.user].name.sort_key(), m.user)).collect();
    expected.sort();
    assert_eq!(expected.len(), 131);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let search = MemberSearch { limit: Some(7), cursor: cursor.take(), ..MemberSearch::default() };
        let page = acme.members().search(acme.ann.id, acme.org.id, &search).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|item| item.membership.user));
        match page.next {
            Some(next) => cursor = Some(next.encode()),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }

    assert_eq!(pages, 131_usize.div_ceil(7));
    assert_eq!(seen, expected.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 131);
}

#[tokio::test]
async fn an_invalid_limit_cursor_or_state_is_refused_naming_each_field() {
    let Clinics { acme, .. } = Clinics::open().await;

    let search = MemberSearch {
        limit: Some(0),
        cursor: Some("not-a-cursor".to_owned()),
        state: Some("asleep".to_owned()),
        ..MemberSearch::default()
    };
    let err = acme.members().search(acme.ann.id, acme.org.id, &search).await.unwrap_err();

    let MemberQueryError::Invalid(invalid) = &err else { panic!("{err:?}") };
    assert_eq!(invalid.0.len(), 3, "{invalid:?}");
    let reported = fields(invalid);
    assert!(reported.contains(&"limit") && reported.contains(&"cursor"), "{reported:?}");
    assert!(err.to_string().contains("active, suspended or expired"), "{err}");

    for limit in [201, u32::MAX] {
        let search = MemberSearch { limit: Some(limit), ..MemberSearch::default() };
        let err = acme.members().search(acme.ann.id, acme.org.id, &search).await.unwrap_err();
        assert!(matches!(&err, MemberQueryError::Invalid(invalid) if fields(invalid) == ["limit"]), "{err:?}");
    }
    let search = MemberSearch { limit: Some(200), ..MemberSearch::default() };
    acme.members().search(acme.ann.id, acme.org.id, &search).await.unwrap();
}

#[tokio::test]
async fn searching_members_needs_member_management() {
    let Clinics { acme, .. } = Clinics::open().await;
    let mo = acme.member("mo@acme-physio.example", builtin::MANAGER).await;
    let outsider = acme.kit.seed_user("out@else.example", true).await.unwrap();

    let err = acme.members().search(mo.id, acme.org.id, &MemberSearch::default()).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::Forbidden { .. })), "{err:?}");
    let err = acme.members().search(outsider.id, acme.org.id, &MemberSearch::default()).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::NotFound)), "{err:?}");
}

// ---- get, explain, authorize ---------------------------------------------------------------------------

#[tokio::test]
async fn get_shows_a_member_with_their_account_and_effective_permissions() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    acme.members()
        .update_member(acme.ann.id, acme.org.id, bo.id, &MemberUpdate { aide: Some(true), ..MemberUpdate::default() })
        .await
        .unwrap();

    let details = acme.members().get(acme.ann.id, acme.org.id, bo.id).await.unwrap();

    assert_eq!(details.user, bo);
    assert_eq!(Some(details.membership), acme.membership(bo.id));
    assert_eq!(details.state, MemberState::Active);
    assert_eq!(details.permissions, [p::REPORTS_VIEW].into_iter().collect(), "an aide loses patient permissions");
    // Members may look at themselves, not at others.
    assert_eq!(acme.members().get(bo.id, acme.org.id, bo.id).await.unwrap().user, bo);
    let err = acme.members().get(bo.id, acme.org.id, acme.ann.id).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::Forbidden { .. })), "{err:?}");
    let stranger = acme.kit.seed_user("stranger@example.com", true).await.unwrap();
    let err = acme.members().get(acme.ann.id, acme.org.id, stranger.id).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::MemberNotFound), "{err:?}");
}

#[tokio::test]
async fn explaining_an_aides_missing_patient_permission_says_it_is_denied_to_aides() {
    let Clinics { acme, .. } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    let cy = acme.member("cy@example.com", builtin::USER).await;
    acme.members()
        .update_member(acme.ann.id, acme.org.id, bo.id, &MemberUpdate { aide: Some(true), ..MemberUpdate::default() })
        .await
        .unwrap();

    let explanation = acme.members().explain(acme.ann.id, acme.org.id, bo.id, "patients.assign").await.unwrap();

    assert!(!explanation.allowed);
    assert_eq!(explanation.permission, p::PATIENTS_ASSIGN);
    assert!(matches!(explanation.reasons.last(), Some(Reason::Denied(Denial::Aide { .. }))), "{explanation:?}");
    let text = explanation.reasons.last().unwrap().to_string();
    assert!(text.starts_with("denied:") && text.contains("aides"), "{text}");
    // The same role without the aide flag holds it; anyone may ask about themselves.
    assert!(acme.members().explain(cy.id, acme.org.id, cy.id, "patients.assign").await.unwrap().allowed);
    let err = acme.members().explain(acme.ann.id, acme.org.id, bo.id, "no.such").await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn authorizing_a_resource_follows_the_members_access_scope() {
    let Clinics { acme, north, south } = Clinics::open().await;
    let bo = acme.member("bo@example.com", builtin::USER).await;
    let cy = acme.member("cy@example.com", builtin::USER).await;
    let update = MemberUpdate {
        facilities: Some([north.id].into_iter().collect()),
        access: Some(BTreeMap::from([(resource_kinds::PATIENTS, AccessScope::Facility)])),
        ..MemberUpdate::default()
    };
    acme.members().update_member(acme.ann.id, acme.org.id, bo.id, &update).await.unwrap();
    let patient = |owner: UserId, facility: FacilityId| {
        Scope::Resource(ResourceRef {
            org: acme.org.id,
            kind: resource_kinds::PATIENTS,
            owner: Some(owner),
            facility: Some(facility),
        })
    };
    let members = acme.members();

    members.authorize(bo.id, &p::PATIENTS_ASSIGN, &patient(cy.id, north.id)).await.unwrap();
    members.authorize(bo.id, &p::PATIENTS_ASSIGN, &patient(bo.id, south.id)).await.unwrap();
    members.authorize(bo.id, &p::PATIENTS_ASSIGN, &Scope::Organisation(acme.org.id)).await.unwrap();
    let err = members.authorize(bo.id, &p::PATIENTS_ASSIGN, &patient(cy.id, south.id)).await.unwrap_err();
    assert!(
        matches!(
            &err,
            MemberQueryError::Access(AccessError::Forbidden {
                denial: Denial::OutOfScope { scope: AccessScope::Facility, .. },
                ..
            })
        ),
        "{err:?}"
    );
    let err = members.authorize(bo.id, &p::FINANCIALS_ACCESS, &Scope::Organisation(acme.org.id)).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::Forbidden { .. })), "{err:?}");
    // Cy has no access settings: no patient reaches them.
    let err = members.authorize(cy.id, &p::PATIENTS_ASSIGN, &patient(bo.id, north.id)).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::Forbidden { .. })), "{err:?}");
    let stranger = acme.kit.seed_user("stranger@example.com", true).await.unwrap();
    let err = members.authorize(stranger.id, &p::REPORTS_VIEW, &Scope::Organisation(acme.org.id)).await.unwrap_err();
    assert!(matches!(err, MemberQueryError::Access(AccessError::NotFound)), "{err:?}");
}

#[tokio::test]
async fn the_temporary_password_is_random_per_account() {
    let Clinics { acme, north, .. } = Clinics::open().await;
    acme.members().create_member(acme.ann.id, acme.org.id, &bo_form(&north)).await.unwrap();
    let form = NewMember { email: "cy@example.com".to_owned(), first_name: "Cy".to_owned(), ..bo_form(&north) };
    acme.members().create_member(acme.ann.id, acme.org.id, &form).await.unwrap();

    let passwords: Vec<Password> = acme
        .kit
        .store
        .emails()
        .into_iter()
        .filter_map(|email| match email.notification {
            Notification::AccountCreated { temporary_password, .. } => Some(temporary_password),
            _ => None,
        })
        .collect();

    assert_eq!(passwords.len(), 2);
    assert_ne!(passwords[0], passwords[1]);
}

mod access_grants {
    use super::*;
    use guildhall_domain::catalogue::resource_kinds;
    use guildhall_domain::membership::AccessScope;
    use guildhall_domain::policy::InvariantViolation;

    #[tokio::test]
    async fn a_member_manager_cannot_widen_access_beyond_their_own_nor_add_foreign_facilities() {
        let Clinics { acme, .. } = Clinics::open().await;
        let g = &acme.kit.guildhall;
        let north = g.organisations().create_facility(acme.ann.id, acme.org.id, "North").await.unwrap();
        let south = g.organisations().create_facility(acme.ann.id, acme.org.id, "South").await.unwrap();
        let lead_role = acme
            .custom_role("lead", &[p::MEMBERS_MANAGE, p::REPORTS_VIEW, p::PATIENTS_ASSIGN, p::PATIENTS_MESSAGE])
            .await;
        let lead = acme.member("lead@acme-physio.example", lead_role).await;
        let grant = |facilities: Vec<_>, scope| MemberUpdate {
            facilities: Some(facilities.into_iter().collect()),
            access: Some([(resource_kinds::PATIENTS, scope)].into_iter().collect()),
            ..MemberUpdate::default()
        };
        // The administrator gives the lead facility-wide patient access at North.
        g.members()
            .update_member(acme.ann.id, acme.org.id, lead.id, &grant(vec![north.id], AccessScope::Facility))
            .await
            .unwrap();
        let bo = acme.member("bo@acme-physio.example", builtin::USER).await;
        let before = acme.kit.store.snapshot();

        // Widening their own access is refused...
        let err = g
            .members()
            .update_member(lead.id, acme.org.id, lead.id, &grant(vec![north.id], AccessScope::Organisation))
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateMemberError::Refused(InvariantViolation::WiderAccess { .. })), "{err:?}");
        // ...as is giving someone more than they hold, or a facility they do not belong to.
        let err = g
            .members()
            .update_member(lead.id, acme.org.id, bo.id, &grant(vec![north.id], AccessScope::Organisation))
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateMemberError::Refused(InvariantViolation::WiderAccess { .. })), "{err:?}");
        let err = g
            .members()
            .update_member(lead.id, acme.org.id, bo.id, &grant(vec![south.id], AccessScope::Own))
            .await
            .unwrap_err();
        assert!(matches!(err, UpdateMemberError::Refused(InvariantViolation::ForeignFacility { .. })), "{err:?}");
        assert_eq!(acme.kit.store.snapshot(), before, "refusals write nothing");

        // Up to their own scope, at their own facility, is fine.
        g.members()
            .update_member(lead.id, acme.org.id, bo.id, &grant(vec![north.id], AccessScope::Facility))
            .await
            .unwrap();
    }
}
