//! Interaction tests with mockall: what the use cases ask of their ports.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use guildhall_domain::catalogue::Catalogue;
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::membership::{Membership, MembershipOrigin};
use guildhall_domain::notification::Notification;
use guildhall_domain::org::{OrgSettings, Organisation};
use guildhall_domain::ports::*;
use guildhall_domain::role::builtin;
use guildhall_domain::token::Secret;
use guildhall_domain::usecases::{Guildhall, InviteError, Ports, Settings};
use guildhall_domain::user::{PasswordState, User, UserStatus};
use guildhall_domain::values::{EmailAddress, OrgName, OrgSlug, PersonName};
use mockall::predicate::eq;
use uuid::Uuid;

pub fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 10, 0, 0).unwrap()
}

pub fn admin_id() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0xA))
}

pub fn org_id() -> OrgId {
    OrgId::from_uuid(Uuid::from_u128(0xB))
}

pub fn organisation() -> Organisation {
    Organisation {
        id: org_id(),
        slug: OrgSlug::parse("acme-physio").unwrap(),
        name: OrgName::parse("Acme Physio").unwrap(),
        settings: OrgSettings::default(),
        created_by: admin_id(),
        created_at: at(),
        version: 7,
    }
}

pub fn admin_user() -> User {
    User {
        id: admin_id(),
        email: EmailAddress::parse("ann@acme-physio.example").unwrap(),
        name: PersonName::parse("Ann", "Admin").unwrap(),
        phone: None,
        email_verified_at: Some(at()),
        status: UserStatus::Active,
        password: PasswordState::default(),
        created_at: at(),
        version: 0,
    }
}

/// Ports whose every mock fails the test if called unexpectedly; callers add expectations.
pub struct Mocks {
    pub users: MockUserRepository,
    pub organisations: MockOrganisationRepository,
    pub memberships: MockMembershipRepository,
    pub invitations: MockInvitationRepository,
    pub join_requests: MockJoinRequestRepository,
    pub tokens: MockTokenRepository,
    pub audit_log: MockAuditLog,
    pub unit_of_work: MockUnitOfWork,
    pub hasher: MockPasswordHasher,
}

impl Mocks {
    pub fn new() -> Self {
        Self {
            users: MockUserRepository::new(),
            organisations: MockOrganisationRepository::new(),
            memberships: MockMembershipRepository::new(),
            invitations: MockInvitationRepository::new(),
            join_requests: MockJoinRequestRepository::new(),
            tokens: MockTokenRepository::new(),
            audit_log: MockAuditLog::new(),
            unit_of_work: MockUnitOfWork::new(),
            hasher: MockPasswordHasher::new(),
        }
    }

    pub fn guildhall(self) -> Guildhall {
        let mut clock = MockClock::new();
        clock.expect_now().returning(at);
        let mut tokens = MockTokenGenerator::new();
        let mut counter = 0u8;
        tokens.expect_generate().returning(move || {
            counter = counter.wrapping_add(1);
            Secret::from_bytes([counter; 32])
        });
        let mut ids = MockIdGenerator::new();
        let mut next = 0u128;
        ids.expect_generate().returning(move || {
            next += 1;
            Uuid::from_u128(0x1000 + next)
        });
        let ports = Ports {
            users: Arc::new(self.users),
            organisations: Arc::new(self.organisations),
            memberships: Arc::new(self.memberships),
            invitations: Arc::new(self.invitations),
            join_requests: Arc::new(self.join_requests),
            tokens: Arc::new(self.tokens),
            audit_log: Arc::new(self.audit_log),
            deliveries: Arc::new(MockDeliveryLog::new()),
            unit_of_work: Arc::new(self.unit_of_work),
            hasher: Arc::new(self.hasher),
            clock: Arc::new(clock),
            token_generator: Arc::new(tokens),
            ids: Arc::new(ids),
        };
        Guildhall::new(ports, Arc::new(Catalogue::builtin()), Settings::default())
    }
}

fn admin_membership() -> Membership {
    Membership::new(org_id(), admin_id(), builtin::ADMINISTRATOR, MembershipOrigin::Founder, None, at())
}

#[tokio::test]
async fn an_invitation_commits_exactly_one_email_to_the_invitee_with_its_audit_entry() {
    let invitee = EmailAddress::parse("Bo.Therapist@Example.com").unwrap();
    let mut mocks = Mocks::new();
    mocks
        .memberships
        .expect_membership()
        .with(eq(org_id()), eq(admin_id()))
        .times(1)
        .returning(|_, _| Ok(Some(admin_membership())));
    mocks.organisations.expect_organisation().with(eq(org_id())).times(1).returning(|_| Ok(Some(organisation())));
    mocks.organisations.expect_custom_roles().with(eq(org_id())).times(1).returning(|_| Ok(Vec::new()));
    mocks.users.expect_user_by_email().with(eq(invitee.clone())).times(1).returning(|_| Ok(None));
    mocks.invitations.expect_open_invitations_for().with(eq(invitee.clone())).times(1).returning(|_| Ok(Vec::new()));
    // Once to check the actor's account may act, once for the inviter's name.
    mocks.users.expect_user().with(eq(admin_id())).times(2).returning(|_| Ok(Some(admin_user())));
    let expected_to = invitee.clone();
    mocks
        .unit_of_work
        .expect_commit()
        .withf(move |changes: &ChangeSet| {
            let only_email_is_to_invitee = changes.emails.len() == 1 && changes.emails_to(&expected_to).count() == 1;
            let is_invitation = matches!(changes.emails[0].notification, Notification::Invitation { .. });
            let guarded = changes.preconditions == invite_guard(7, &expected_to);
            let one_insert =
                matches!(changes.changes.as_slice(), [Change::InsertInvitation(i)] if i.email == expected_to);
            only_email_is_to_invitee && is_invitation && guarded && one_insert && changes.audit.len() == 1
        })
        .times(1)
        .returning(|_| Ok(()));

    let invitation = mocks
        .guildhall()
        .invitations()
        .invite(admin_id(), org_id(), " bo.therapist@example.com ", &builtin::USER)
        .await
        .unwrap();
    assert_eq!(invitation.email, invitee);
    assert_eq!(invitation.expires_at, at() + chrono::Duration::days(7));
}

#[tokio::test]
async fn an_invitation_for_an_existing_member_commits_nothing() {
    let mut mocks = Mocks::new();
    mocks
        .memberships
        .expect_membership()
        .with(eq(org_id()), eq(admin_id()))
        .returning(|_, _| Ok(Some(admin_membership())));
    mocks.organisations.expect_organisation().returning(|_| Ok(Some(organisation())));
    mocks.organisations.expect_custom_roles().returning(|_| Ok(Vec::new()));
    mocks.users.expect_user().with(eq(admin_id())).returning(|_| Ok(Some(admin_user())));
    mocks.users.expect_user_by_email().times(1).returning(|_| Ok(Some(admin_user())));
    mocks.unit_of_work.expect_commit().times(0);
    let err = mocks
        .guildhall()
        .invitations()
        .invite(admin_id(), org_id(), "ann@acme-physio.example", &builtin::USER)
        .await
        .unwrap_err();
    assert!(matches!(err, InviteError::AlreadyMember(_)), "{err:?}");
}

/// What an invitation's commit requires: the organisation unchanged since version
/// `version` (not bumped: invitations do not conflict with each other) and no pending
/// invitation of the address.
fn invite_guard(version: u64, email: &EmailAddress) -> Vec<Precondition> {
    vec![
        Precondition::OrgUnchanged { org: org_id(), version },
        Precondition::NoPendingInvitation { org: org_id(), email: email.clone(), at: at() },
    ]
}

#[tokio::test]
async fn a_conflicting_commit_is_decided_again_from_fresh_reads() {
    let mut mocks = Mocks::new();
    mocks.memberships.expect_membership().times(2).returning(|_, _| Ok(Some(admin_membership())));
    let mut version = 6;
    mocks.organisations.expect_organisation().times(2).returning(move |_| {
        version += 1;
        Ok(Some(Organisation { version, ..organisation() }))
    });
    mocks.organisations.expect_custom_roles().returning(|_| Ok(Vec::new()));
    mocks.users.expect_user_by_email().returning(|_| Ok(None));
    mocks.invitations.expect_open_invitations_for().returning(|_| Ok(Vec::new()));
    mocks.users.expect_user().returning(|_| Ok(Some(admin_user())));
    let mut seq = mockall::Sequence::new();
    mocks
        .unit_of_work
        .expect_commit()
        .withf(|c: &ChangeSet| c.preconditions == invite_guard(7, &EmailAddress::parse("cy@example.com").unwrap()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(CommitError::Conflict));
    mocks
        .unit_of_work
        .expect_commit()
        .withf(|c: &ChangeSet| c.preconditions == invite_guard(8, &EmailAddress::parse("cy@example.com").unwrap()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(()));
    mocks.guildhall().invitations().invite(admin_id(), org_id(), "cy@example.com", &builtin::USER).await.unwrap();
}

#[tokio::test]
async fn a_failed_hash_aborts_the_sign_up_with_nothing_stored() {
    use guildhall_domain::password::Password;
    use guildhall_domain::usecases::{SignUp, SignUpError};

    let mut mocks = Mocks::new();
    mocks
        .hasher
        .expect_hash()
        .with(eq(Password::new("Winter-Garden-2026!")))
        .times(1)
        .returning(|_| Err(HashError("worker pool gone".into())));
    // No read of the address (that would reveal timing) and no commit.
    mocks.users.expect_user_by_email().times(0);
    mocks.unit_of_work.expect_commit().times(0);
    let err = mocks
        .guildhall()
        .accounts()
        .sign_up(SignUp {
            email: "dee@example.com".into(),
            password: "Winter-Garden-2026!".into(),
            first_name: "Dee".into(),
            last_name: "Example".into(),
            phone: None,
            invitation_token: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SignUpError::Unexpected(_)), "{err:?}");
}

#[tokio::test]
async fn signing_in_with_an_unknown_address_costs_a_dummy_verification_and_answers_like_a_wrong_password() {
    use guildhall_domain::password::Password;
    use guildhall_domain::usecases::SignInError;

    let mut mocks = Mocks::new();
    mocks.users.expect_user_by_email().times(1).returning(|_| Ok(None));
    mocks.hasher.expect_verify_dummy().with(eq(Password::new("Guess-Who-1234!"))).times(1).returning(|_| Ok(()));
    mocks.hasher.expect_verify().times(0);
    mocks.unit_of_work.expect_commit().times(0);
    let err = mocks.guildhall().accounts().sign_in("nobody@example.com", "Guess-Who-1234!").await.unwrap_err();
    assert!(matches!(err, SignInError::InvalidCredentials), "{err:?}");
}
