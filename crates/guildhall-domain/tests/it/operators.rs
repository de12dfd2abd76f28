//! The service operator's actions: creating an organisation with its administrator, and
//! looking up, signing out, disabling and enabling accounts by address.

// Fixture helpers outside `#[test]` functions unwrap too; a failing fixture is a failing test.
#![allow(clippy::unwrap_used)]

use chrono::Duration;
use guildhall_domain::audit::{AuditAction, AuditTarget, FieldChange};
use guildhall_domain::membership::MembershipOrigin;
use guildhall_domain::notification::{Notification, SetPasswordLink};
use guildhall_domain::ports::{Change, ChangeSet, Clock, UnitOfWork};
use guildhall_domain::role::builtin;
use guildhall_domain::testing::TestKit;
use guildhall_domain::token::TokenPurpose;
use guildhall_domain::usecases::{
    AccountStatusError, ConfirmPasswordResetError, CreateOrganisationError, CreatedOrganisation, OperatorAccountError,
    OperatorCreateOrganisation, OperatorCreateOrganisationError, Operators, OrganisationCreation, Settings,
    SignInError,
};
use guildhall_domain::user::{User, UserStatus};

use crate::support::{address, fields};

const NEW_PASSWORD: &str = "Harbour-Lantern-2026";

fn operators(kit: &TestKit) -> Operators {
    kit.guildhall.operators()
}

/// Dana Reyes is to administer Riverside Clinic.
fn riverside(administrator_email: &str) -> OperatorCreateOrganisation {
    OperatorCreateOrganisation {
        slug: "riverside".into(),
        name: "Riverside Clinic".into(),
        administrator_email: administrator_email.into(),
        first_name: "Dana".into(),
        last_name: "Reyes".into(),
    }
}

async fn create(kit: &TestKit, administrator_email: &str) -> CreatedOrganisation {
    operators(kit).create_organisation(riverside(administrator_email)).await.unwrap()
}

fn stored_user(kit: &TestKit, email: &str) -> Option<User> {
    kit.store.users().into_iter().find(|u| u.email == address(email))
}

/// The notifications emailed to `email`, oldest first.
fn notifications_to(kit: &TestKit, email: &str) -> Vec<Notification> {
    kit.store.emails_to(&address(email)).into_iter().map(|e| e.notification).collect()
}

async fn disabled(kit: &TestKit, user: User) {
    let disabled = User { status: UserStatus::Disabled { since: kit.clock.now() }, ..user };
    kit.store.commit(ChangeSet { changes: vec![Change::UpdateUser(disabled)], ..ChangeSet::new() }).await.unwrap();
}

// ---- creating an organisation for a new account -------------------------------------------

#[tokio::test]
async fn a_new_administrator_gets_an_account_without_a_password_and_a_link_to_choose_one() {
    let kit = TestKit::new();
    let commits = kit.store.commit_count();
    let now = kit.clock.now();

    let created = create(&kit, "Dana.Reyes@Riverside.example").await;

    assert!(created.new_account);
    assert_eq!(kit.store.commit_count(), commits + 1, "everything in one commit");
    let dana = stored_user(&kit, "dana.reyes@riverside.example").unwrap();
    assert_eq!(created.administrator, dana.id);
    assert_eq!((dana.name.first(), dana.name.last()), ("Dana", "Reyes"));
    assert!(!dana.is_verified(), "following the link proves the address, not the operator");
    assert!(dana.is_active());
    assert!(dana.password.hash.is_none() && dana.password.temporary.is_none(), "no password of any kind");

    let org = &created.organisation;
    assert_eq!((org.slug.as_str(), org.name.as_str()), ("riverside", "Riverside Clinic"));
    assert_eq!(org.created_by, dana.id);
    assert_eq!(kit.store.organisations(), vec![org.clone()]);
    let members = kit.store.memberships(org.id);
    assert_eq!(members.len(), 1);
    assert_eq!((members[0].user, &members[0].role), (dana.id, &builtin::ADMINISTRATOR));
    assert_eq!((members[0].origin, members[0].added_by), (MembershipOrigin::Founder, None));

    let tokens = kit.store.one_time_tokens();
    assert_eq!(tokens.len(), 1);
    assert_eq!((tokens[0].user, &tokens[0].purpose), (dana.id, &TokenPurpose::ResetPassword));
    assert_eq!(tokens[0].expires_at, now + Duration::hours(72), "Settings::temporary_password_lifetime");

    let emails = kit.store.emails_to(&dana.email);
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].org, Some(org.id));
    let Notification::AdministratorAppointed { org_name, set_password: Some(SetPasswordLink { token, expires_at }) } =
        &emails[0].notification
    else {
        panic!("{:?}", emails[0].notification)
    };
    assert_eq!(org_name, "Riverside Clinic");
    assert_eq!(*expires_at, tokens[0].expires_at);
    assert_eq!(token.hash(), tokens[0].hash, "the emailed link is the stored token");
}

#[tokio::test]
async fn the_operator_is_audited_as_the_system_creating_the_organisation_and_the_account() {
    let kit = TestKit::new();

    let created = create(&kit, "dana@riverside.example").await;

    let org = created.organisation.id;
    let audit = kit.store.audit();
    let summary: Vec<_> = audit.iter().map(|e| (e.action, e.org, e.actor, e.target.clone())).collect();
    assert_eq!(
        summary,
        vec![
            (AuditAction::OrgCreated, Some(org), None, AuditTarget::Organisation(org)),
            (AuditAction::MemberCreated, Some(org), None, AuditTarget::User(created.administrator)),
        ]
    );
    assert_eq!(
        audit[0].changes,
        vec![
            FieldChange::new("slug", None::<&str>, Some("riverside")),
            FieldChange::new("name", None::<&str>, Some("Riverside Clinic")),
            FieldChange::new("administrator", None::<&str>, Some("dana@riverside.example")),
        ]
    );
    assert_eq!(
        audit[1].changes,
        vec![
            FieldChange::new("email", None::<&str>, Some("dana@riverside.example")),
            FieldChange::new("role", None::<&str>, Some("administrator")),
        ]
    );
}

#[tokio::test]
async fn the_link_sets_the_password_and_proves_the_address_and_then_the_administrator_signs_in() {
    let kit = TestKit::new();
    let created = create(&kit, "dana@riverside.example").await;
    let link = kit.last_token_sent_to(&address("dana@riverside.example")).unwrap();
    kit.clock.advance(Duration::hours(71));

    kit.guildhall.accounts().confirm_password_reset(link.expose(), NEW_PASSWORD).await.unwrap();

    let dana = stored_user(&kit, "dana@riverside.example").unwrap();
    assert!(dana.is_verified());
    assert!(dana.password.hash.is_some());
    let signed_in = kit.guildhall.accounts().sign_in("dana@riverside.example", NEW_PASSWORD).await.unwrap();
    assert!(!signed_in.password_change_required);
    let view = kit.guildhall.organisations().get(dana.id, created.organisation.id).await.unwrap();
    assert_eq!(view.organisation.id, created.organisation.id);
    let again = kit.guildhall.accounts().confirm_password_reset(link.expose(), "Another-one-2026").await.unwrap_err();
    assert!(matches!(again, ConfirmPasswordResetError::AlreadyUsed), "{again:?}");
}

#[tokio::test]
async fn the_link_stops_working_after_the_temporary_password_lifetime() {
    let kit = TestKit::new();
    create(&kit, "dana@riverside.example").await;
    let link = kit.last_token_sent_to(&address("dana@riverside.example")).unwrap();
    kit.clock.advance(Duration::hours(72));

    let error = kit.guildhall.accounts().confirm_password_reset(link.expose(), NEW_PASSWORD).await.unwrap_err();

    assert!(matches!(error, ConfirmPasswordResetError::Expired { .. }), "{error:?}");
    assert!(stored_user(&kit, "dana@riverside.example").unwrap().password.hash.is_none());
}

#[tokio::test]
async fn signing_in_to_an_account_without_a_password_fails_like_a_wrong_password_at_the_same_cost() {
    let kit = TestKit::new();
    create(&kit, "dana@riverside.example").await;
    kit.seed_user("jo@example.com", true).await.unwrap();
    let accounts = kit.guildhall.accounts();
    let work = || kit.hasher.verify_calls() + kit.hasher.dummy_verify_calls();

    let before = work();
    let wrong = accounts.sign_in("jo@example.com", "Wrong-password-1").await.unwrap_err();
    let for_wrong = work() - before;
    let dummies = kit.hasher.dummy_verify_calls();
    let passwordless = accounts.sign_in("dana@riverside.example", "Wrong-password-1").await.unwrap_err();
    let for_passwordless = work() - before - for_wrong;

    assert!(matches!(passwordless, SignInError::InvalidCredentials), "{passwordless:?}");
    assert_eq!(passwordless.to_string(), wrong.to_string());
    assert_eq!(for_passwordless, for_wrong);
    assert_eq!(kit.hasher.dummy_verify_calls(), dummies + 1, "a dummy verification stands in for the hash");
    assert!(kit.store.sessions().is_empty());
}

// ---- creating an organisation for an existing account -------------------------------------

#[tokio::test]
async fn an_existing_account_becomes_the_founding_administrator_and_keeps_its_password() {
    let kit = TestKit::new();
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();

    let created = operators(&kit).create_organisation(riverside("JO@example.com")).await.unwrap();

    assert!(!created.new_account);
    assert_eq!(created.administrator, jo.id);
    assert_eq!(kit.store.users(), vec![jo.clone()], "no account created, the names given are not used");
    assert!(kit.store.one_time_tokens().is_empty(), "no link");
    let members = kit.store.memberships(created.organisation.id);
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].user, &members[0].role, members[0].origin),
        (jo.id, &builtin::ADMINISTRATOR, MembershipOrigin::Founder)
    );
    assert_eq!(
        notifications_to(&kit, "jo@example.com"),
        vec![Notification::AdministratorAppointed { org_name: "Riverside Clinic".into(), set_password: None }]
    );
    let actions: Vec<_> = kit.store.audit().iter().map(|e| e.action).collect();
    assert_eq!(actions, vec![AuditAction::OrgCreated]);
    kit.guildhall.accounts().sign_in("jo@example.com", TestKit::PASSWORD).await.unwrap();
}

#[tokio::test]
async fn a_disabled_or_unverified_account_is_not_made_an_administrator() {
    let kit = TestKit::new();
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();
    disabled(&kit, jo).await;
    kit.seed_user("squatter@example.com", false).await.unwrap();
    let before = kit.store.snapshot();

    let disabled = operators(&kit).create_organisation(riverside("jo@example.com")).await.unwrap_err();
    let unverified = operators(&kit).create_organisation(riverside("squatter@example.com")).await.unwrap_err();

    assert!(
        matches!(&disabled, OperatorCreateOrganisationError::AccountDisabled(e) if *e == address("jo@example.com"))
    );
    assert!(disabled.to_string().contains("enable it first"), "{disabled}");
    assert!(matches!(unverified, OperatorCreateOrganisationError::AccountUnverified(_)), "{unverified:?}");
    assert!(unverified.to_string().contains("ask the owner to verify it"), "{unverified}");
    assert_eq!(kit.store.snapshot(), before);
}

// ---- refusals -------------------------------------------------------------------------------

#[tokio::test]
async fn a_taken_slug_is_refused_and_nothing_is_written() {
    let kit = TestKit::new();
    let ann = kit.seed_user("ann@example.com", true).await.unwrap();
    kit.seed_org("riverside", ann.id).await.unwrap();
    let before = kit.store.snapshot();
    let emails = kit.store.emails().len();

    let error = operators(&kit)
        .create_organisation(OperatorCreateOrganisation {
            slug: "RiverSide".into(),
            ..riverside("dana@riverside.example")
        })
        .await
        .unwrap_err();

    let OperatorCreateOrganisationError::SlugTaken(slug) = &error else { panic!("{error:?}") };
    assert_eq!(slug.as_str(), "riverside");
    assert!(error.to_string().contains("choose another"), "{error}");
    assert_eq!(kit.store.snapshot(), before, "no account, token, membership or audit entry");
    assert_eq!(kit.store.emails().len(), emails, "no email");
}

#[tokio::test]
async fn every_invalid_field_is_listed_at_once() {
    let kit = TestKit::new();
    let request = OperatorCreateOrganisation {
        slug: "api".into(),
        name: " ".into(),
        administrator_email: "dana at riverside".into(),
        first_name: String::new(),
        last_name: "\u{7}".into(),
    };

    let error = operators(&kit).create_organisation(request).await.unwrap_err();

    let OperatorCreateOrganisationError::Invalid(invalid) = &error else { panic!("{error:?}") };
    assert_eq!(fields(invalid), ["slug", "name", "administrator_email", "first_name", "last_name"]);
    assert!(kit.store.users().is_empty() && kit.store.organisations().is_empty());
}

#[tokio::test]
async fn operators_create_organisations_even_where_only_operators_may() {
    let kit = TestKit::with_settings(Settings {
        organisation_creation: OrganisationCreation::OperatorsOnly,
        ..Settings::default()
    });
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();

    let refused = kit.guildhall.organisations().create(jo.id, "jo-clinic", "Jo's Clinic").await.unwrap_err();
    let created = operators(&kit).create_organisation(riverside("jo@example.com")).await.unwrap();

    assert!(matches!(refused, CreateOrganisationError::OperatorsOnly), "{refused:?}");
    assert_eq!(created.administrator, jo.id);
    assert_eq!(kit.store.organisations(), vec![created.organisation]);
}

// ---- accounts by address --------------------------------------------------------------------

#[tokio::test]
async fn an_account_is_found_by_its_address_in_any_case() {
    let kit = TestKit::new();
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();

    assert_eq!(operators(&kit).find_account(" JO@Example.com ").await.unwrap(), Some(jo));
    assert_eq!(operators(&kit).find_account("nobody@example.com").await.unwrap(), None);
    let malformed = operators(&kit).find_account("jo").await.unwrap_err();
    let OperatorAccountError::Invalid(invalid) = &malformed else { panic!("{malformed:?}") };
    assert_eq!(fields(invalid), ["email"]);
}

#[tokio::test]
async fn ending_an_accounts_sessions_signs_it_out_everywhere_but_it_can_sign_in_again() {
    let kit = TestKit::new();
    let accounts = kit.guildhall.accounts();
    kit.seed_user("jo@example.com", true).await.unwrap();
    let other = kit.seed_user("ann@example.com", true).await.unwrap();
    let laptop = accounts.sign_in("jo@example.com", TestKit::PASSWORD).await.unwrap();
    let phone = accounts.sign_in("jo@example.com", TestKit::PASSWORD).await.unwrap();
    let anns = accounts.sign_in(other.email.as_str(), TestKit::PASSWORD).await.unwrap();

    operators(&kit).end_sessions("Jo@example.com").await.unwrap();

    assert!(accounts.authenticate(laptop.token.expose()).await.is_err());
    assert!(accounts.authenticate(phone.token.expose()).await.is_err());
    assert!(accounts.authenticate(anns.token.expose()).await.is_ok(), "only that account's sessions end");
    let again = accounts.sign_in("jo@example.com", TestKit::PASSWORD).await.unwrap();
    assert!(accounts.authenticate(again.token.expose()).await.is_ok());
}

#[tokio::test]
async fn an_unknown_address_is_an_error_and_a_malformed_one_is_invalid() {
    let kit = TestKit::new();
    let ops = operators(&kit);

    let unknown = [
        ops.end_sessions("nobody@example.com").await.unwrap_err(),
        ops.disable_account("nobody@example.com").await.unwrap_err(),
        ops.enable_account("nobody@example.com").await.unwrap_err(),
    ];
    let malformed = [
        ops.end_sessions("nobody").await.unwrap_err(),
        ops.disable_account("").await.unwrap_err(),
        ops.enable_account("a@b@c").await.unwrap_err(),
    ];

    for error in unknown {
        assert!(matches!(&error, OperatorAccountError::UnknownAccount(e) if *e == address("nobody@example.com")));
        assert!(error.to_string().contains("nobody@example.com"), "{error}");
    }
    for error in malformed {
        assert!(matches!(error, OperatorAccountError::Invalid(_)), "{error:?}");
    }
}

#[tokio::test]
async fn an_operator_disables_and_enables_an_account_by_its_address() {
    let kit = TestKit::new();
    let accounts = kit.guildhall.accounts();
    let jo = kit.seed_user("jo@example.com", true).await.unwrap();
    let session = accounts.sign_in("jo@example.com", TestKit::PASSWORD).await.unwrap();

    let off = operators(&kit).disable_account("jo@example.com").await.unwrap();
    let twice = operators(&kit).disable_account("jo@example.com").await.unwrap_err();

    assert!(!off.is_active());
    assert!(accounts.authenticate(session.token.expose()).await.is_err(), "sessions end at once");
    let refused = accounts.sign_in("jo@example.com", TestKit::PASSWORD).await.unwrap_err();
    assert!(matches!(refused, SignInError::AccountDisabled), "{refused:?}");
    assert!(
        matches!(twice, OperatorAccountError::Refused(AccountStatusError::AlreadyInState("disabled"))),
        "{twice:?}"
    );

    let on = operators(&kit).enable_account("jo@example.com").await.unwrap();
    assert!(on.is_active());
    accounts.sign_in("jo@example.com", TestKit::PASSWORD).await.unwrap();
    let audit: Vec<_> = kit.store.audit().into_iter().map(|e| (e.action, e.actor, e.target)).collect();
    assert_eq!(
        audit,
        vec![
            (AuditAction::AccountDisabled, None, AuditTarget::User(jo.id)),
            (AuditAction::AccountEnabled, None, AuditTarget::User(jo.id)),
        ]
    );
}

#[tokio::test]
async fn the_last_administrator_of_an_organisation_is_not_disabled() {
    let kit = TestKit::new();
    let ann = kit.seed_user("ann@example.com", true).await.unwrap();
    kit.seed_org("acme-physio", ann.id).await.unwrap();

    let error = operators(&kit).disable_account("ann@example.com").await.unwrap_err();

    let OperatorAccountError::Refused(AccountStatusError::LastAdministrator(orgs)) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(orgs, &["Acme Physio".to_owned()]);
    assert!(error.to_string().contains("make someone else an administrator"), "{error}");
    assert!(kit.store.users().iter().all(User::is_active));
}
