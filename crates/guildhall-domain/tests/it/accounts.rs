//! Accounts: sign-up, verification, sign-in, sessions, passwords, profile.

use chrono::Duration;
use guildhall_domain::audit::AuditAction;
use guildhall_domain::ids::{SessionId, UserId};
use guildhall_domain::membership::MemberState;
use guildhall_domain::notification::{Notification, OutboundEmail};
use guildhall_domain::org::Organisation;
use guildhall_domain::password::{CharacterClass, Password, PasswordPolicy, PasswordViolation};
use guildhall_domain::ports::{Change, ChangeSet, Clock, Precondition, UnitOfWork};
use guildhall_domain::role::builtin;
use guildhall_domain::testing::TestKit;
use guildhall_domain::token::{Session, Token};
use guildhall_domain::usecases::{
    Accounts, AuthenticateError, ChangePassword, ChangePasswordError, ConfirmPasswordResetError, ProfileUpdate,
    RequestEmailChangeError, ResendVerificationError, RevokeSessionError, SignInError, SignUp, SignUpError,
    SignUpOutcome, UpdateProfileError, VerifyEmailError,
};
use guildhall_domain::user::{PasswordState, TemporaryPassword, User, UserStatus};
use guildhall_domain::values::EmailAddress;

// ----- the kit, wrapped so that the tests read as specifications -------------------------

const PASSWORD: &str = TestKit::PASSWORD;
const NEW_PASSWORD: &str = "Brand-new-Secret-42";

fn accounts(kit: &TestKit) -> Accounts {
    kit.guildhall.accounts()
}

fn email(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

async fn seed_user(kit: &TestKit, address: &str) -> User {
    kit.seed_user(address, true).await.unwrap()
}

async fn seed_org(kit: &TestKit, slug: &str) -> Organisation {
    let founder = seed_user(kit, &format!("founder@{slug}.example")).await;
    kit.seed_org(slug, founder.id).await.unwrap()
}

fn user(kit: &TestKit, id: UserId) -> User {
    kit.store.users().into_iter().find(|u| u.id == id).expect("the account exists")
}

fn user_by_email(kit: &TestKit, address: &str) -> Option<User> {
    kit.store.users().into_iter().find(|u| u.email == email(address))
}

/// Writes straight to the store, as an operator or another use case would have.
async fn write(kit: &TestKit, change: Change) {
    kit.store.commit(ChangeSet { changes: vec![change], ..ChangeSet::new() }).await.unwrap();
}

async fn set_password_policy(kit: &TestKit, org: &Organisation, policy: PasswordPolicy) {
    let mut org = org.clone();
    org.settings.password_policy = policy;
    write(kit, Change::UpdateOrganisation(org)).await;
}

async fn disable(kit: &TestKit, account: User) {
    let status = UserStatus::Disabled { since: kit.clock.now() };
    write(kit, Change::UpdateUser(User { status, ..account })).await;
}

fn emails_to(kit: &TestKit, address: &str) -> Vec<OutboundEmail> {
    kit.store.emails_to(&email(address))
}

fn link_sent_to(kit: &TestKit, address: &str) -> String {
    kit.last_token_sent_to(&email(address)).expect("an email with a link").expose().to_owned()
}

fn valid_sign_up(address: &str) -> SignUp {
    SignUp {
        email: address.to_owned(),
        password: NEW_PASSWORD.to_owned(),
        first_name: "Jane".to_owned(),
        last_name: "Doe".to_owned(),
        phone: Some("+44 113 496 0000".to_owned()),
        invitation_token: None,
    }
}

/// Stricter than the platform's: longer than [`TestKit::PASSWORD`].
fn strict_policy() -> PasswordPolicy {
    PasswordPolicy::new(40, 128, CharacterClass::ALL, true, true).unwrap()
}

async fn sign_in(kit: &TestKit, address: &str, password: &str) -> (Token, Session) {
    let signed_in = accounts(kit).sign_in(address, password).await.unwrap();
    (signed_in.token, signed_in.session)
}

/// An administrator-created account: no chosen password yet, a temporary one by email.
async fn with_temporary_password(kit: &TestKit, address: &str, password: &str, lifetime: Duration) -> User {
    let account = kit.seed_user(address, false).await.unwrap();
    let temporary = TemporaryPassword {
        hash: kit.hasher.hash_uncounted(&Password::new(password)),
        expires_at: kit.clock.now() + lifetime,
    };
    let password = PasswordState { hash: None, temporary: Some(temporary), must_change: true, changed_at: None };
    let account = User { password, ..account };
    write(kit, Change::UpdateUser(account.clone())).await;
    account
}

async fn invite(kit: &TestKit, address: &str) -> String {
    let admin = seed_user(kit, "admin@acme-physio.example").await;
    let org = kit.seed_org("acme-physio", admin.id).await.unwrap();
    kit.guildhall.invitations().invite(admin.id, org.id, address, &builtin::USER).await.unwrap();
    link_sent_to(kit, address)
}

// ----- sign-up ---------------------------------------------------------------------------

#[tokio::test]
async fn sign_up_creates_an_unverified_account_and_sends_a_verification_link() {
    let kit = TestKit::new();
    let outcome = accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap();

    assert_eq!(outcome, SignUpOutcome::VerificationSent);
    let account = user_by_email(&kit, "jane.doe@example.com").expect("account created");
    assert!(!account.is_verified());
    assert_eq!(account.version, 0);
    assert_eq!(account.phone.unwrap().as_str(), "+441134960000");
    let sent = emails_to(&kit, "jane.doe@example.com");
    assert_eq!(sent.len(), 1);
    assert!(matches!(sent[0].notification, Notification::VerifyEmail { .. }));
    let audit = kit.store.audit();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, AuditAction::UserSignedUp);
    assert_eq!(audit[0].org, None);
}

#[tokio::test]
async fn sign_up_with_a_registered_email_answers_like_a_new_one_and_tells_the_owner() {
    let kit = TestKit::new();
    let owner = seed_user(&kit, "jo@example.com").await;

    let fresh = accounts(&kit).sign_up(valid_sign_up("someone.new@example.com")).await.unwrap();
    let hashes_for_new = kit.hasher.hash_calls();
    let taken = accounts(&kit).sign_up(valid_sign_up("JO@example.com")).await.unwrap();

    assert_eq!(fresh, taken, "the same answer for a new and a registered address");
    assert_eq!(kit.hasher.hash_calls(), 2 * hashes_for_new, "the same hashing work in both paths");
    assert_eq!(user(&kit, owner.id), owner, "the existing account is untouched");
    let sent = emails_to(&kit, "jo@example.com");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].notification, Notification::SignUpAttemptWithExistingAccount);
    assert_eq!(kit.store.users().len(), 2);
}

#[tokio::test]
async fn sign_up_reports_every_invalid_field_and_every_broken_password_rule_at_once() {
    let kit = TestKit::new();
    let request = SignUp {
        email: "jane.doe@".to_owned(),
        password: "jane.doe1".to_owned(),
        first_name: "  ".to_owned(),
        last_name: "x".repeat(101),
        phone: Some("0113 496".to_owned()),
        invitation_token: None,
    };

    let Err(SignUpError::Invalid { fields, password }) = accounts(&kit).sign_up(request).await else {
        panic!("expected Invalid");
    };

    let names: Vec<_> = fields.iter().map(|f| f.field()).collect();
    assert_eq!(names, ["email", "first_name", "last_name", "phone"]);
    let violations = password.expect("password problems").into_violations();
    assert!(violations.contains(&PasswordViolation::TooShort { min: 10, actual: 9 }));
    assert!(violations.contains(&PasswordViolation::MissingClass(CharacterClass::Uppercase)));
    assert!(violations.contains(&PasswordViolation::ContainsEmailLocalPart), "{violations:?}");
    assert!(kit.store.users().is_empty());
    assert_eq!(kit.hasher.hash_calls(), 0, "nothing is hashed before the form is valid");
}

#[tokio::test]
async fn an_error_message_never_contains_the_password() {
    let kit = TestKit::new();
    let mut request = valid_sign_up("bad-address");
    request.password = "hunter2".to_owned();
    let error = accounts(&kit).sign_up(request.clone()).await.unwrap_err();
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!format!("{error:?} {request:?}").contains("hunter2"));
}

#[tokio::test]
async fn sign_up_through_an_invitation_to_the_same_address_creates_a_verified_account() {
    let kit = TestKit::new();
    let token = invite(&kit, "new.person@example.com").await;
    let mut request = valid_sign_up("New.Person@example.com");
    request.invitation_token = Some(token);

    let outcome = accounts(&kit).sign_up(request).await.unwrap();

    let account = user_by_email(&kit, "new.person@example.com").unwrap();
    assert_eq!(outcome, SignUpOutcome::Verified { user: account.id });
    assert!(account.is_verified());
    let verifications = emails_to(&kit, "new.person@example.com")
        .into_iter()
        .filter(|m| matches!(m.notification, Notification::VerifyEmail { .. }))
        .count();
    assert_eq!(verifications, 0, "no verification email");
}

#[tokio::test]
async fn an_invitation_for_another_address_does_not_verify_the_sign_up() {
    let kit = TestKit::new();
    let token = invite(&kit, "invited@example.com").await;
    let mut request = valid_sign_up("someone.else@example.com");
    request.invitation_token = Some(token);

    let outcome = accounts(&kit).sign_up(request).await.unwrap();

    assert_eq!(outcome, SignUpOutcome::VerificationSent);
    assert!(!user_by_email(&kit, "someone.else@example.com").unwrap().is_verified());
}

#[tokio::test]
async fn sign_up_through_an_invitation_to_a_registered_address_asks_to_sign_in() {
    let kit = TestKit::new();
    seed_user(&kit, "invited@example.com").await;
    let token = invite(&kit, "invited@example.com").await;
    let mut request = valid_sign_up("invited@example.com");
    request.invitation_token = Some(token);

    let error = accounts(&kit).sign_up(request).await.unwrap_err();

    assert!(matches!(error, SignUpError::AccountExists), "{error:?}");
    assert!(error.to_string().contains("sign in"));
}

#[tokio::test]
async fn sign_up_whose_hashing_fails_stores_nothing() {
    let kit = TestKit::new();
    kit.hasher.set_failing(true);
    let commits = kit.store.commit_attempts();

    let error = accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap_err();

    assert!(matches!(error, SignUpError::Unexpected(_)), "{error:?}");
    assert_eq!(kit.store.commit_attempts(), commits, "nothing was even tried");
    assert!(kit.store.users().is_empty());
    assert!(kit.store.emails().is_empty());
    assert!(kit.store.audit().is_empty());
}

// ----- email verification ----------------------------------------------------------------

#[tokio::test]
async fn verifying_the_email_marks_the_account_verified_and_the_link_works_once() {
    let kit = TestKit::new();
    accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap();
    let token = link_sent_to(&kit, "jane.doe@example.com");

    let id = accounts(&kit).verify_email(&token).await.unwrap();

    let account = user(&kit, id);
    assert_eq!(account.email_verified_at, Some(kit.clock.now()));
    assert_eq!(account.version, 1);
    assert!(kit.store.audit().iter().any(|e| e.action == AuditAction::EmailVerified && e.org.is_none()));
    let again = accounts(&kit).verify_email(&token).await.unwrap_err();
    assert!(matches!(again, VerifyEmailError::AlreadyUsed), "{again:?}");
    let bogus = accounts(&kit).verify_email("not-a-token").await.unwrap_err();
    assert!(matches!(bogus, VerifyEmailError::InvalidToken), "{bogus:?}");
    let unknown = accounts(&kit).verify_email(&"ab".repeat(32)).await.unwrap_err();
    assert!(matches!(unknown, VerifyEmailError::InvalidToken), "{unknown:?}");
}

#[tokio::test]
async fn an_expired_verification_link_is_refused_as_expired() {
    let kit = TestKit::new();
    accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap();
    let token = link_sent_to(&kit, "jane.doe@example.com");
    kit.clock.advance(Duration::hours(48));

    let error = accounts(&kit).verify_email(&token).await.unwrap_err();

    assert!(matches!(error, VerifyEmailError::Expired { .. }), "{error:?}");
    assert!(!user_by_email(&kit, "jane.doe@example.com").unwrap().is_verified());
}

#[tokio::test]
async fn resending_the_verification_replaces_the_older_link() {
    let kit = TestKit::new();
    accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap();
    let first = link_sent_to(&kit, "jane.doe@example.com");
    let id = user_by_email(&kit, "jane.doe@example.com").unwrap().id;

    accounts(&kit).resend_verification(id).await.unwrap();
    let second = link_sent_to(&kit, "jane.doe@example.com");

    assert_ne!(first, second);
    assert!(matches!(accounts(&kit).verify_email(&first).await, Err(VerifyEmailError::AlreadyUsed)));
    accounts(&kit).verify_email(&second).await.unwrap();
    let error = accounts(&kit).resend_verification(id).await.unwrap_err();
    assert!(matches!(error, ResendVerificationError::AlreadyVerified), "{error:?}");
}

#[tokio::test]
async fn changing_the_email_takes_effect_only_when_the_new_address_is_verified() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;

    accounts(&kit).request_email_change(jo.id, "jo@new-domain.example", PASSWORD).await.unwrap();

    assert_eq!(user(&kit, jo.id).email, email("jo@example.com"), "nothing changes yet");
    let token = link_sent_to(&kit, "jo@new-domain.example");
    accounts(&kit).verify_email(&token).await.unwrap();
    let account = user(&kit, jo.id);
    assert_eq!(account.email, email("jo@new-domain.example"));
    assert!(account.is_verified());
}

#[tokio::test]
async fn changing_the_email_needs_the_current_password() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;

    let wrong = accounts(&kit).request_email_change(jo.id, "jo@new-domain.example", "nope").await.unwrap_err();
    let invalid = accounts(&kit).request_email_change(jo.id, "jo@", PASSWORD).await.unwrap_err();

    assert!(matches!(wrong, RequestEmailChangeError::WrongPassword), "{wrong:?}");
    assert!(matches!(invalid, RequestEmailChangeError::Invalid(_)), "{invalid:?}");
    assert!(kit.store.emails().is_empty());
}

#[tokio::test]
async fn changing_the_email_to_a_registered_address_answers_like_a_free_one_and_tells_its_owner() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let taken = seed_user(&kit, "taken@example.com").await;

    accounts(&kit).request_email_change(jo.id, "Taken@example.com", PASSWORD).await.unwrap();

    let to_owner = kit.store.emails_to(&taken.email);
    assert_eq!(to_owner.len(), 1);
    assert!(matches!(to_owner[0].notification, Notification::SignUpAttemptWithExistingAccount));
    assert!(kit.last_token_sent_to(&taken.email).is_none(), "no verification link goes to someone else's mailbox");
    assert_eq!(user(&kit, jo.id).email, email("jo@example.com"));
}

#[tokio::test]
async fn an_address_taken_between_request_and_verification_is_refused() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    accounts(&kit).request_email_change(jo.id, "wanted@example.com", PASSWORD).await.unwrap();
    let token = link_sent_to(&kit, "wanted@example.com");
    seed_user(&kit, "wanted@example.com").await;

    let error = accounts(&kit).verify_email(&token).await.unwrap_err();

    assert!(matches!(error, VerifyEmailError::AddressTaken), "{error:?}");
    assert_eq!(user(&kit, jo.id).email, email("jo@example.com"));
}

// ----- sign-in ---------------------------------------------------------------------------

#[tokio::test]
async fn sign_in_opens_a_session_storing_only_the_token_hash() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;

    let signed_in = accounts(&kit).sign_in("Jo@Example.com", PASSWORD).await.unwrap();

    assert_eq!(signed_in.user, jo.id);
    assert!(!signed_in.password_change_required);
    let stored = kit.store.sessions();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].token_hash, signed_in.token.hash());
    assert_eq!(stored[0].last_seen_at, kit.clock.now());
    assert_eq!(stored[0].expires_at, kit.clock.now() + Duration::days(14));
    let authenticated = accounts(&kit).authenticate(signed_in.token.expose()).await.unwrap();
    assert_eq!(authenticated.require_full_access().unwrap(), jo.id);
}

#[tokio::test]
async fn sign_in_with_an_unknown_email_fails_exactly_like_a_wrong_password_at_the_same_cost() {
    let kit = TestKit::new();
    seed_user(&kit, "jo@example.com").await;

    let work = || kit.hasher.verify_calls() + kit.hasher.dummy_verify_calls();
    let before = work();
    let wrong_password = accounts(&kit).sign_in("jo@example.com", "Wrong-password-1").await.unwrap_err();
    let for_known = work() - before;
    let unknown = accounts(&kit).sign_in("nobody@example.com", "Wrong-password-1").await.unwrap_err();
    let for_unknown = work() - before - for_known;
    let malformed = accounts(&kit).sign_in("not an address", "Wrong-password-1").await.unwrap_err();

    assert!(matches!(wrong_password, SignInError::InvalidCredentials));
    assert!(matches!(unknown, SignInError::InvalidCredentials));
    assert!(matches!(malformed, SignInError::InvalidCredentials));
    assert_eq!(wrong_password.to_string(), unknown.to_string());
    assert_eq!(for_known, for_unknown, "a dummy verification for unknown addresses");
    assert_eq!(kit.hasher.dummy_verify_calls(), 2, "unknown and malformed addresses");
    assert!(kit.store.sessions().is_empty());
}

#[tokio::test]
async fn a_disabled_account_is_only_reported_to_someone_who_knows_its_password() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    disable(&kit, jo).await;

    let wrong = accounts(&kit).sign_in("jo@example.com", "Wrong-password-1").await.unwrap_err();
    let right = accounts(&kit).sign_in("jo@example.com", PASSWORD).await.unwrap_err();

    assert!(matches!(wrong, SignInError::InvalidCredentials), "{wrong:?}");
    assert!(matches!(right, SignInError::AccountDisabled), "{right:?}");
    assert!(kit.store.sessions().is_empty());
}

#[tokio::test]
async fn a_temporary_password_works_once_and_forces_a_password_change() {
    let kit = TestKit::new();
    let temp = "Temp-Pass-123-xyz";
    let account = with_temporary_password(&kit, "new.hire@example.com", temp, Duration::hours(72)).await;

    let signed_in = accounts(&kit).sign_in("new.hire@example.com", temp).await.unwrap();

    assert!(signed_in.password_change_required);
    assert!(signed_in.session.password_change_required);
    let after = user(&kit, account.id);
    assert!(after.password.temporary.is_none(), "used up");
    assert!(after.password.must_change);
    assert!(after.is_verified(), "the password came by email");
    let again = accounts(&kit).sign_in("new.hire@example.com", temp).await.unwrap_err();
    assert!(matches!(again, SignInError::InvalidCredentials), "{again:?}");
}

#[tokio::test]
async fn an_expired_temporary_password_asks_for_a_new_one_only_when_it_matches() {
    let kit = TestKit::new();
    let temp = "Temp-Pass-123-xyz";
    with_temporary_password(&kit, "new.hire@example.com", temp, Duration::hours(72)).await;
    kit.clock.advance(Duration::hours(72));

    let right = accounts(&kit).sign_in("new.hire@example.com", temp).await.unwrap_err();
    let wrong = accounts(&kit).sign_in("new.hire@example.com", "Other-Pass-123-xyz").await.unwrap_err();

    assert!(matches!(right, SignInError::TemporaryPasswordExpired { .. }), "{right:?}");
    assert!(right.to_string().contains("administrator"));
    assert!(matches!(wrong, SignInError::InvalidCredentials), "{wrong:?}");
}

#[tokio::test]
async fn sign_in_with_a_password_that_no_longer_meets_a_stricter_org_policy_is_restricted() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let org = seed_org(&kit, "strict-clinic").await;
    kit.seed_member(org.id, jo.id, builtin::USER).await.unwrap();
    set_password_policy(&kit, &org, strict_policy()).await;

    let signed_in = accounts(&kit).sign_in("jo@example.com", PASSWORD).await.unwrap();

    assert!(signed_in.password_change_required);
    assert!(user(&kit, jo.id).password.must_change, "persisted for the next sign-in");
    let authenticated = accounts(&kit).authenticate(signed_in.token.expose()).await.unwrap();
    assert!(matches!(authenticated.require_full_access(), Err(AuthenticateError::PasswordChangeRequired)));
}

#[tokio::test]
async fn a_restricted_session_can_change_the_password_without_the_current_one_and_then_do_everything() {
    let kit = TestKit::new();
    let temp = "Temp-Pass-123-xyz";
    let account = with_temporary_password(&kit, "new.hire@example.com", temp, Duration::hours(72)).await;
    let (token, _) = sign_in(&kit, "new.hire@example.com", temp).await;
    let authenticated = accounts(&kit).authenticate(token.expose()).await.unwrap();
    assert!(matches!(authenticated.require_full_access(), Err(AuthenticateError::PasswordChangeRequired)));

    accounts(&kit)
        .change_password(ChangePassword {
            user: account.id,
            session_token: token.expose().to_owned(),
            current_password: None,
            new_password: NEW_PASSWORD.to_owned(),
        })
        .await
        .unwrap();

    let authenticated = accounts(&kit).authenticate(token.expose()).await.unwrap();
    assert_eq!(authenticated.require_full_access().unwrap(), account.id);
    assert!(!user(&kit, account.id).password.must_change);
    accounts(&kit).sign_in("new.hire@example.com", NEW_PASSWORD).await.unwrap();
}

// ----- sessions --------------------------------------------------------------------------

#[tokio::test]
async fn a_session_ends_after_the_idle_timeout() {
    let kit = TestKit::new();
    seed_user(&kit, "jo@example.com").await;
    let (token, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;

    kit.clock.advance(Duration::hours(11));
    accounts(&kit).authenticate(token.expose()).await.unwrap();
    kit.clock.advance(Duration::hours(11));
    accounts(&kit).authenticate(token.expose()).await.expect("use slides the idle expiry");
    kit.clock.advance(Duration::hours(12));

    let error = accounts(&kit).authenticate(token.expose()).await.unwrap_err();
    assert!(matches!(error, AuthenticateError::InvalidSession), "{error:?}");
}

#[tokio::test]
async fn a_session_ends_at_the_absolute_timeout_however_much_it_is_used() {
    let kit = TestKit::new();
    seed_user(&kit, "jo@example.com").await;
    let (token, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;

    // 28 uses, each just inside the 12-hour idle timeout: 335.5 hours of 336.
    for _ in 0..28 {
        kit.clock.advance(Duration::hours(12) - Duration::minutes(1));
        accounts(&kit).authenticate(token.expose()).await.unwrap();
    }
    kit.clock.advance(Duration::hours(1));

    let error = accounts(&kit).authenticate(token.expose()).await.unwrap_err();
    assert!(matches!(error, AuthenticateError::InvalidSession), "{error:?}");
}

#[tokio::test]
async fn a_session_is_touched_at_most_once_per_touch_interval() {
    let kit = TestKit::new();
    seed_user(&kit, "jo@example.com").await;
    let (token, session) = sign_in(&kit, "jo@example.com", PASSWORD).await;
    let stored = || kit.store.sessions().into_iter().find(|s| s.id == session.id).unwrap();

    kit.clock.advance(Duration::seconds(30));
    accounts(&kit).authenticate(token.expose()).await.unwrap();
    assert_eq!(stored().last_seen_at, session.last_seen_at, "not written within the interval");

    kit.clock.advance(Duration::seconds(30));
    let authenticated = accounts(&kit).authenticate(token.expose()).await.unwrap();
    assert_eq!(stored().last_seen_at, kit.clock.now());
    assert_eq!(authenticated.session.last_seen_at, kit.clock.now());
}

#[tokio::test]
async fn a_disabled_account_or_an_unknown_token_has_no_valid_session() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let (token, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;
    disable(&kit, jo).await;

    for presented in [token.expose(), "garbage", &"cd".repeat(32)] {
        let error = accounts(&kit).authenticate(presented).await.unwrap_err();
        assert!(matches!(error, AuthenticateError::InvalidSession), "{error:?}");
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_and_is_idempotent() {
    let kit = TestKit::new();
    seed_user(&kit, "jo@example.com").await;
    let (token, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;

    accounts(&kit).sign_out(token.expose()).await.unwrap();
    accounts(&kit).sign_out(token.expose()).await.unwrap();
    accounts(&kit).sign_out("garbage").await.unwrap();

    assert!(matches!(accounts(&kit).authenticate(token.expose()).await, Err(AuthenticateError::InvalidSession)));
}

#[tokio::test]
async fn a_person_can_list_and_revoke_only_their_own_sessions() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let ann = seed_user(&kit, "ann@example.com").await;
    let (jo_token, jo_session) = sign_in(&kit, "jo@example.com", PASSWORD).await;
    kit.clock.advance(Duration::minutes(5));
    let (_, jo_laptop) = sign_in(&kit, "jo@example.com", PASSWORD).await;
    let (ann_token, ann_session) = sign_in(&kit, "ann@example.com", PASSWORD).await;

    let listed: Vec<SessionId> = accounts(&kit).sessions(jo.id).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&jo_session.id) && listed.contains(&jo_laptop.id));

    let error = accounts(&kit).revoke_session(jo.id, ann_session.id).await.unwrap_err();
    assert!(matches!(error, RevokeSessionError::NotFound), "{error:?}");
    accounts(&kit).authenticate(ann_token.expose()).await.expect("untouched");

    accounts(&kit).revoke_session(jo.id, jo_laptop.id).await.unwrap();
    assert_eq!(accounts(&kit).sessions(jo.id).await.unwrap().len(), 1);

    accounts(&kit).revoke_all_sessions(jo.id, Some(jo_token.hash())).await.unwrap();
    accounts(&kit).authenticate(jo_token.expose()).await.expect("the kept session");
    accounts(&kit).revoke_all_sessions(jo.id, None).await.unwrap();
    assert!(accounts(&kit).sessions(jo.id).await.unwrap().is_empty());
    let _ = ann;
}

// ----- password change -------------------------------------------------------------------

#[tokio::test]
async fn changing_the_password_ends_every_other_session_and_tells_the_owner() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let (here, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;
    let (elsewhere, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;

    accounts(&kit)
        .change_password(ChangePassword {
            user: jo.id,
            session_token: here.expose().to_owned(),
            current_password: Some(PASSWORD.to_owned()),
            new_password: NEW_PASSWORD.to_owned(),
        })
        .await
        .unwrap();

    accounts(&kit).authenticate(here.expose()).await.expect("this session stays");
    assert!(matches!(accounts(&kit).authenticate(elsewhere.expose()).await, Err(AuthenticateError::InvalidSession)));
    assert!(
        emails_to(&kit, "jo@example.com")
            .iter()
            .any(|m| matches!(m.notification, Notification::PasswordChanged { .. }))
    );
    let entry = kit.store.audit().into_iter().find(|e| e.action == AuditAction::PasswordChanged).unwrap();
    assert_eq!(entry.org, None);
    assert!(!format!("{entry:?}").contains(NEW_PASSWORD));
    assert!(matches!(accounts(&kit).sign_in("jo@example.com", PASSWORD).await, Err(SignInError::InvalidCredentials)));
    accounts(&kit).sign_in("jo@example.com", NEW_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn changing_the_password_from_a_full_session_needs_the_right_current_password() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let (token, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;
    let change = |current: Option<&str>| ChangePassword {
        user: jo.id,
        session_token: token.expose().to_owned(),
        current_password: current.map(str::to_owned),
        new_password: NEW_PASSWORD.to_owned(),
    };

    let missing = accounts(&kit).change_password(change(None)).await.unwrap_err();
    let wrong = accounts(&kit).change_password(change(Some("Wrong-password-1"))).await.unwrap_err();

    assert!(matches!(missing, ChangePasswordError::CurrentPasswordRequired), "{missing:?}");
    assert!(matches!(wrong, ChangePasswordError::WrongPassword), "{wrong:?}");
    assert_eq!(user(&kit, jo.id).password, jo.password);
}

#[tokio::test]
async fn a_new_password_is_checked_against_the_strictest_policy_listing_every_violation() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let org = seed_org(&kit, "strict-clinic").await;
    kit.seed_member(org.id, jo.id, builtin::USER).await.unwrap();
    let (token, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;
    set_password_policy(&kit, &org, strict_policy()).await;

    let error = accounts(&kit)
        .change_password(ChangePassword {
            user: jo.id,
            session_token: token.expose().to_owned(),
            current_password: Some(PASSWORD.to_owned()),
            new_password: "short".to_owned(),
        })
        .await
        .unwrap_err();

    let ChangePasswordError::PasswordRejected(rejected) = error else { panic!("expected PasswordRejected") };
    assert_eq!(
        rejected.violations(),
        [
            PasswordViolation::TooShort { min: 40, actual: 5 },
            PasswordViolation::MissingClass(CharacterClass::Uppercase),
            PasswordViolation::MissingClass(CharacterClass::Digit),
            PasswordViolation::MissingClass(CharacterClass::Symbol),
        ]
    );
}

#[tokio::test]
async fn a_session_of_another_account_cannot_change_the_password() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    seed_user(&kit, "ann@example.com").await;
    let (ann_token, _) = sign_in(&kit, "ann@example.com", PASSWORD).await;

    let error = accounts(&kit)
        .change_password(ChangePassword {
            user: jo.id,
            session_token: ann_token.expose().to_owned(),
            current_password: Some(PASSWORD.to_owned()),
            new_password: NEW_PASSWORD.to_owned(),
        })
        .await
        .unwrap_err();

    assert!(matches!(error, ChangePasswordError::InvalidSession), "{error:?}");
}

// ----- password reset --------------------------------------------------------------------

#[tokio::test]
async fn a_password_reset_invalidates_older_links_and_every_session() {
    let kit = TestKit::new();
    let mut jo = kit.seed_user("jo@example.com", false).await.unwrap();
    jo.password.must_change = true;
    write(&kit, Change::UpdateUser(jo.clone())).await;
    let (session, _) = sign_in(&kit, "jo@example.com", PASSWORD).await;

    accounts(&kit).request_password_reset("jo@example.com").await.unwrap();
    let older = link_sent_to(&kit, "jo@example.com");
    accounts(&kit).request_password_reset("JO@example.com").await.unwrap();
    let newer = link_sent_to(&kit, "jo@example.com");

    let error = accounts(&kit).confirm_password_reset(&older, NEW_PASSWORD).await.unwrap_err();
    assert!(matches!(error, ConfirmPasswordResetError::AlreadyUsed), "{error:?}");
    accounts(&kit).confirm_password_reset(&newer, NEW_PASSWORD).await.unwrap();

    assert!(matches!(accounts(&kit).authenticate(session.expose()).await, Err(AuthenticateError::InvalidSession)));
    let account = user(&kit, jo.id);
    assert!(!account.password.must_change);
    assert!(account.is_verified(), "the link proved the mailbox");
    assert!(kit.store.audit().iter().any(|e| e.action == AuditAction::PasswordReset && e.org.is_none()));
    let reused = accounts(&kit).confirm_password_reset(&newer, "Yet-another-Pass-9").await.unwrap_err();
    assert!(matches!(reused, ConfirmPasswordResetError::AlreadyUsed), "{reused:?}");
    accounts(&kit).sign_in("jo@example.com", NEW_PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_password_reset_link_expires_and_a_weak_password_is_refused_with_every_reason() {
    let kit = TestKit::new();
    seed_user(&kit, "jo@example.com").await;
    accounts(&kit).request_password_reset("jo@example.com").await.unwrap();
    let token = link_sent_to(&kit, "jo@example.com");

    let weak = accounts(&kit).confirm_password_reset(&token, "password").await.unwrap_err();
    let ConfirmPasswordResetError::PasswordRejected(rejected) = weak else { panic!("expected PasswordRejected") };
    assert!(rejected.violations().len() >= 3, "{rejected:?}");

    kit.clock.advance(Duration::hours(1));
    let expired = accounts(&kit).confirm_password_reset(&token, NEW_PASSWORD).await.unwrap_err();
    assert!(matches!(expired, ConfirmPasswordResetError::Expired { .. }), "{expired:?}");
    let invalid = accounts(&kit).confirm_password_reset("nope", NEW_PASSWORD).await.unwrap_err();
    assert!(matches!(invalid, ConfirmPasswordResetError::InvalidToken), "{invalid:?}");
}

#[tokio::test]
async fn a_password_reset_for_an_unknown_or_disabled_address_answers_ok_and_sends_nothing() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    disable(&kit, jo).await;

    accounts(&kit).request_password_reset("nobody@example.com").await.unwrap();
    accounts(&kit).request_password_reset("not an address").await.unwrap();
    accounts(&kit).request_password_reset("jo@example.com").await.unwrap();

    assert!(kit.store.emails().is_empty());
}

#[tokio::test]
async fn a_verification_link_cannot_be_used_as_a_password_reset_link() {
    let kit = TestKit::new();
    accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap();
    let token = link_sent_to(&kit, "jane.doe@example.com");

    let error = accounts(&kit).confirm_password_reset(&token, NEW_PASSWORD).await.unwrap_err();

    assert!(matches!(error, ConfirmPasswordResetError::InvalidToken), "{error:?}");
}

// ----- profile and overview --------------------------------------------------------------

#[tokio::test]
async fn updating_the_profile_reports_every_problem_at_once() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;

    let error = accounts(&kit)
        .update_profile(
            jo.id,
            ProfileUpdate {
                first_name: Some(" ".to_owned()),
                last_name: Some("x".repeat(101)),
                phone: Some(Some("12".to_owned())),
            },
        )
        .await
        .unwrap_err();

    let UpdateProfileError::Invalid { fields } = error else { panic!("expected Invalid") };
    let names: Vec<_> = fields.iter().map(|f| f.field()).collect();
    assert_eq!(names, ["first_name", "last_name", "phone"]);
    assert_eq!(user(&kit, jo.id), jo);
}

#[tokio::test]
async fn updating_the_profile_records_what_changed_before_and_after() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;

    let updated = accounts(&kit)
        .update_profile(
            jo.id,
            ProfileUpdate {
                first_name: Some("Joanna".to_owned()),
                last_name: None,
                phone: Some(Some("+44 113 496 0000".to_owned())),
            },
        )
        .await
        .unwrap();

    assert_eq!(updated, user(&kit, jo.id));
    assert_eq!(updated.name.full(), "Joanna Example");
    let entry = kit.store.audit().into_iter().find(|e| e.action == AuditAction::ProfileUpdated).unwrap();
    let changed: Vec<_> =
        entry.changes.iter().map(|c| (c.field.as_str(), c.before.as_deref(), c.after.as_deref())).collect();
    assert_eq!(changed, [("first_name", Some("Jo"), Some("Joanna")), ("phone", None, Some("+441134960000"))]);

    let unchanged = accounts(&kit).update_profile(jo.id, ProfileUpdate::default()).await.unwrap();
    assert_eq!(unchanged, updated);
    assert_eq!(kit.store.audit().len(), 1, "nothing to record");
}

#[tokio::test]
async fn the_overview_lists_every_membership_with_its_organisation_role_and_state() {
    let kit = TestKit::new();
    let jo = seed_user(&kit, "jo@example.com").await;
    let zen = seed_org(&kit, "zen-clinic").await;
    let acme = seed_org(&kit, "acme-physio").await;
    kit.seed_member(zen.id, jo.id, builtin::USER).await.unwrap();
    kit.seed_member(acme.id, jo.id, builtin::MANAGER).await.unwrap();

    let overview = accounts(&kit).overview(jo.id).await.unwrap();

    assert_eq!(overview.user, jo);
    let listed: Vec<_> =
        overview.memberships.iter().map(|m| (m.slug.as_str(), m.name.as_str(), m.role.as_str(), m.state)).collect();
    assert_eq!(
        listed,
        [
            ("acme-physio", "Acme Physio", "manager", MemberState::Active),
            ("zen-clinic", "Zen Clinic", "user", MemberState::Active),
        ]
    );
    assert!(overview.memberships.iter().all(|m| !m.role_name.is_empty()));
    assert_eq!(overview.memberships[0].org, acme.id);
}

// ----- races: what a concurrent request commits between a decision and its commit -------

#[tokio::test]
async fn a_sign_up_that_loses_the_race_for_its_address_answers_like_a_registered_one() {
    let kit = TestKit::new();
    let template = seed_user(&kit, "template@example.com").await;
    let winner = User {
        id: UserId::from_uuid(uuid::Uuid::from_u128(u128::MAX)),
        email: email("jane.doe@example.com"),
        ..template
    };
    kit.store
        .land_before_next_commit(ChangeSet { changes: vec![Change::InsertUser(winner.clone())], ..ChangeSet::new() });

    let outcome = accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap();

    assert_eq!(outcome, SignUpOutcome::VerificationSent);
    assert_eq!(user_by_email(&kit, "jane.doe@example.com"), Some(winner));
    let sent: Vec<_> = emails_to(&kit, "jane.doe@example.com").into_iter().map(|m| m.notification).collect();
    assert_eq!(sent, [Notification::SignUpAttemptWithExistingAccount]);
    assert!(kit.store.audit().is_empty());
}

#[tokio::test]
async fn two_sign_ins_with_one_temporary_password_cannot_both_succeed() {
    let kit = TestKit::new();
    let temp = "Temp-Pass-123-xyz";
    let account = with_temporary_password(&kit, "new.hire@example.com", temp, Duration::hours(72)).await;
    // The other sign-in used it between this one's read and its commit.
    let used = User { password: PasswordState { temporary: None, ..account.password.clone() }, ..account.clone() };
    kit.store.land_before_next_commit(ChangeSet {
        preconditions: vec![Precondition::UserVersion { user: account.id, version: account.version }],
        changes: vec![Change::UpdateUser(used)],
        ..ChangeSet::new()
    });

    let error = accounts(&kit).sign_in("new.hire@example.com", temp).await.unwrap_err();

    assert!(matches!(error, SignInError::InvalidCredentials), "{error:?}");
    assert!(kit.store.sessions().is_empty());
}

#[tokio::test]
async fn a_verification_link_used_concurrently_reads_as_already_used() {
    let kit = TestKit::new();
    accounts(&kit).sign_up(valid_sign_up("jane.doe@example.com")).await.unwrap();
    let token = Token::parse(&link_sent_to(&kit, "jane.doe@example.com")).unwrap();
    kit.store.land_before_next_commit(ChangeSet {
        changes: vec![Change::ConsumeToken { hash: token.hash(), at: kit.clock.now() }],
        ..ChangeSet::new()
    });

    let error = accounts(&kit).verify_email(token.expose()).await.unwrap_err();

    assert!(matches!(error, VerifyEmailError::AlreadyUsed), "{error:?}");
}

mod disabling {
    use guildhall_domain::policy::InvariantViolation;
    use guildhall_domain::role::builtin;
    use guildhall_domain::testing::TestKit;
    use guildhall_domain::usecases::{AccountStatusError, MemberStatusError, SignInError};

    #[tokio::test]
    async fn the_last_administrator_of_an_organisation_cannot_be_disabled() {
        let kit = TestKit::new();
        let ann = kit.seed_user("ann@example.com", true).await.unwrap();
        kit.seed_org("acme-physio", ann.id).await.unwrap();
        let err = kit.guildhall.accounts().disable(ann.id).await.unwrap_err();
        match err {
            AccountStatusError::LastAdministrator(orgs) => assert_eq!(orgs.len(), 1),
            other => panic!("expected LastAdministrator, got {other:?}"),
        }
        assert!(kit.store.users().iter().all(|u| u.is_active()));
    }

    #[tokio::test]
    async fn a_disabled_account_cannot_sign_in_loses_its_sessions_and_no_longer_counts_as_an_administrator() {
        let kit = TestKit::new();
        let g = &kit.guildhall;
        let ann = kit.seed_user("ann@example.com", true).await.unwrap();
        let bo = kit.seed_user("bo@example.com", true).await.unwrap();
        let org = kit.seed_org("acme-physio", ann.id).await.unwrap();
        kit.seed_member(org.id, bo.id, builtin::ADMINISTRATOR).await.unwrap();
        let session = g.accounts().sign_in("bo@example.com", TestKit::PASSWORD).await.unwrap();

        let disabled = g.accounts().disable(bo.id).await.unwrap();
        assert!(!disabled.is_active());
        assert!(g.accounts().authenticate(session.token.expose()).await.is_err(), "sessions end at once");
        let err = g.accounts().sign_in("bo@example.com", TestKit::PASSWORD).await.unwrap_err();
        assert!(matches!(err, SignInError::AccountDisabled), "{err:?}");
        // Bo's membership still reads as an administrator's, but a disabled account
        // cannot act: Ann is now the last administrator and cannot leave.
        let err = g.members().leave(ann.id, org.id).await.unwrap_err();
        assert!(matches!(err, MemberStatusError::Refused(InvariantViolation::NoAdministratorLeft)), "{err:?}");
        assert!(matches!(g.accounts().disable(ann.id).await, Err(AccountStatusError::LastAdministrator(_))));

        g.accounts().enable(bo.id).await.unwrap();
        g.members().leave(ann.id, org.id).await.unwrap();
        let actions: Vec<_> = kit.store.audit().iter().map(|e| e.action.as_str()).collect();
        assert!(actions.contains(&"user.disabled") && actions.contains(&"user.enabled"));
    }
}

#[tokio::test]
async fn a_password_reset_kills_a_pending_email_change_so_a_stolen_password_cannot_take_the_account() {
    let kit = TestKit::new();
    let ann = seed_user(&kit, "ann@example.com").await;
    // Someone who knows Ann's password asks to move her account to their address.
    accounts(&kit).request_email_change(ann.id, "mallory@evil.example", PASSWORD).await.unwrap();
    let stolen_link = link_sent_to(&kit, "mallory@evil.example");
    let told = emails_to(&kit, "ann@example.com");
    assert!(
        told.iter().any(|e| matches!(&e.notification, Notification::EmailChangeRequested { new_email } if *new_email == email("mallory@evil.example"))),
        "the current address hears of the request"
    );

    // Ann resets her password.
    accounts(&kit).request_password_reset("ann@example.com").await.unwrap();
    let reset = link_sent_to(&kit, "ann@example.com");
    accounts(&kit).confirm_password_reset(&reset, "Brand-New-Secret-99!").await.unwrap();

    let err = accounts(&kit).verify_email(&stolen_link).await.unwrap_err();
    assert!(matches!(err, VerifyEmailError::AlreadyUsed | VerifyEmailError::Expired { .. }), "{err:?}");
    assert_eq!(user(&kit, ann.id).email, email("ann@example.com"));
}

#[tokio::test]
async fn a_completed_email_change_is_announced_to_the_old_address() {
    let kit = TestKit::new();
    let ann = seed_user(&kit, "ann@example.com").await;
    accounts(&kit).request_email_change(ann.id, "ann@new.example", PASSWORD).await.unwrap();
    accounts(&kit).verify_email(&link_sent_to(&kit, "ann@new.example")).await.unwrap();
    let told = emails_to(&kit, "ann@example.com");
    assert!(told.iter().any(|e| matches!(&e.notification, Notification::EmailChanged { new_email } if *new_email == email("ann@new.example"))));
}

#[tokio::test]
async fn an_account_that_must_change_its_password_can_do_nothing_else_until_it_does() {
    use guildhall_domain::error::AccessError;
    use guildhall_domain::usecases::{CreateOrganisationError, ListRolesError};

    let kit = TestKit::new();
    let org = seed_org(&kit, "acme-physio").await;
    let ann = user_by_email(&kit, "founder@acme-physio.example").unwrap();
    // Ann signs in with a password that no longer meets a stricter rule: she must change it.
    set_password_policy(&kit, &org, strict_policy()).await;
    let (token, session) = sign_in(&kit, ann.email.as_str(), PASSWORD).await;
    assert!(session.password_change_required);

    let err = kit.guildhall.roles().list(ann.id, org.id).await.unwrap_err();
    assert!(matches!(err, ListRolesError::Access(AccessError::PasswordChangeRequired)), "{err:?}");
    let err = kit.guildhall.organisations().create(ann.id, "second-site", "Second Site").await.unwrap_err();
    assert!(matches!(err, CreateOrganisationError::PasswordChangeRequired), "{err:?}");

    accounts(&kit)
        .change_password(ChangePassword {
            user: ann.id,
            session_token: token.expose().to_owned(),
            current_password: None,
            new_password: "A-Much-Longer-Passphrase-For-The-Clinic-2026!".into(),
        })
        .await
        .unwrap();
    assert!(kit.guildhall.roles().list(ann.id, org.id).await.is_ok());
}

#[tokio::test]
async fn an_account_that_still_has_to_change_its_password_can_be_disabled() {
    use guildhall_domain::usecases::{CreateMemberOutcome, NewMember};

    let kit = TestKit::new();
    let org = seed_org(&kit, "acme-physio").await;
    let form = NewMember {
        first_name: "Cy".into(),
        last_name: "New".into(),
        email: "cy@example.com".into(),
        role: "user".into(),
        ..NewMember::default()
    };
    let outcome = kit.guildhall.members().create_member(org.created_by, org.id, &form).await.unwrap();
    let CreateMemberOutcome::AccountCreated { user: cy, .. } = outcome else { panic!("{outcome:?}") };
    assert!(user(&kit, cy).password.must_change);

    let disabled = accounts(&kit).disable(cy).await.unwrap();
    assert!(!disabled.is_active());
}
