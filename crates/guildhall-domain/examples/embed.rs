//! How a team embeds Guildhall's domain in its own service.
//!
//! Run with `cargo run --example embed -p guildhall-domain`.
//!
//! A real service implements the ports with its own adapters (or uses Guildhall's store,
//! mail and hasher crates). Here the in-memory adapters from the `testing` module stand in
//! for them, and the embedder registers a permission and a capability of its own.

use std::error::Error;
use std::sync::Arc;

use guildhall_domain::catalogue::{CapabilityDef, CapabilityKind, Catalogue, permissions};
use guildhall_domain::ids::UserId;
use guildhall_domain::notification::Notification;
use guildhall_domain::org::RunOutcome;
use guildhall_domain::policy::RoleChange;
use guildhall_domain::role::{Scope, builtin};
use guildhall_domain::testing::{FakeHasher, ManualClock, MemoryStore, SequentialIds, SequentialTokens};
use guildhall_domain::usecases::{Guildhall, Ports, RoleChangeError, RunReport, Settings, SignUp, SignUpOutcome};
use guildhall_domain::values::{CapabilityKey, EmailAddress, Permission};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    // 1. The embedder's catalogue: built-in entries plus its own.
    let sign = Permission::parse("prescriptions.sign")?;
    let recall = CapabilityKey::parse("automated_recall")?;
    let catalogue = Catalogue::builder()
        .aide_forbidden_permission(sign.clone(), "Sign prescriptions")?
        .capability(CapabilityDef {
            key: recall.clone(),
            kind: CapabilityKind::Automation,
            enabled_by_default: false,
            description: "Invite patients who are due a review".into(),
        })?
        .build();

    // 2. Wire the ports. Swap these for real adapters in a service.
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::default());
    let ports = Ports::from_store(
        store.clone(),
        Arc::new(FakeHasher::new()),
        clock.clone(),
        Arc::new(SequentialTokens::new()),
        Arc::new(SequentialIds::new()),
    );
    let guildhall = Guildhall::new(ports, Arc::new(catalogue), Settings::default());
    let token_sent_to = |email: &str| -> Result<String, Box<dyn Error>> {
        let to = EmailAddress::parse(email)?;
        let token = store.emails_to(&to).into_iter().rev().find_map(|e| match e.notification {
            Notification::VerifyEmail { token, .. } | Notification::Invitation { token, .. } => Some(token),
            _ => None,
        });
        Ok(token.ok_or("no link was emailed")?.expose().to_owned())
    };

    // 3. Ann signs up, follows the verification link and creates her practice.
    let password = "Physio-Practice-2026!";
    let outcome = guildhall
        .accounts()
        .sign_up(SignUp {
            email: "ann.lee@acme-physio.example".into(),
            password: password.into(),
            first_name: "Ann".into(),
            last_name: "Lee".into(),
            phone: Some("+44 113 496 0000".into()),
            invitation_token: None,
        })
        .await?;
    println!("Ann signs up: {outcome:?}");
    let ann = guildhall.accounts().verify_email(&token_sent_to("ann.lee@acme-physio.example")?).await?;
    println!("Ann verifies her address");
    let org = guildhall.organisations().create(ann, "acme-physio", "Acme Physio").await?;
    println!("Ann creates {} ({}) and is its administrator", org.name, org.slug);

    // 4. Ann invites Bo as a Manager; Bo signs up through the link and accepts.
    let invitation = guildhall.invitations().invite(ann, org.id, "bo.khan@example.com", &builtin::MANAGER).await?;
    println!("Ann invites {} as a manager; the link expires {}", invitation.email, invitation.expires_at);
    let link = token_sent_to("bo.khan@example.com")?;
    let bo_signup = guildhall
        .accounts()
        .sign_up(SignUp {
            email: "bo.khan@example.com".into(),
            password: "Treatment-Room-42?".into(),
            first_name: "Bo".into(),
            last_name: "Khan".into(),
            phone: None,
            invitation_token: Some(link.clone()),
        })
        .await?;
    let SignUpOutcome::Verified { user: bo } = bo_signup else {
        return Err("an invitation link should verify the address".into());
    };
    let membership = guildhall.invitations().accept(bo, &link).await?;
    println!("Bo signs up through the invitation (address verified by the link) and joins as {}", membership.role);
    let signed_in = guildhall.accounts().sign_in("bo.khan@example.com", "Treatment-Room-42?").await?;
    println!("Bo signs in; must change password: {}", signed_in.password_change_required);

    // 5. Permission checks, with reasons.
    let scope = Scope::Organisation(org.id);
    let check = |who: &str, user: UserId, permission: &Permission| {
        let guildhall = guildhall.clone();
        let scope = scope.clone();
        let who = who.to_owned();
        let permission = permission.clone();
        async move {
            match guildhall.members().authorize(user, &permission, &scope).await {
                Ok(()) => println!("  {who} may use {permission}"),
                Err(denied) => println!("  {who} may not use {permission}: {denied}"),
            }
        }
    };
    println!("Permission checks:");
    check("Bo", bo, &permissions::FINANCIALS_ACCESS).await;
    check("Bo", bo, &permissions::MEMBERS_MANAGE).await;
    check("Ann", ann, &sign).await;
    let why = guildhall.members().explain(ann, org.id, bo, "members.manage").await?;
    let reasons: Vec<String> = why.reasons.iter().map(ToString::to_string).collect();
    println!("  why Bo may not manage members: {}", reasons.join(" → "));

    // 6. A role change is previewed before it is saved; one that breaks an invariant is refused.
    let demote_ann = RoleChange::AssignRole { user: ann, role: builtin::USER };
    let preview = guildhall.roles().preview(ann, org.id, &demote_ann).await?;
    println!(
        "Preview of Ann demoting herself: {} member(s) affected, allowed: {}",
        preview.impacts.len(),
        preview.is_allowed()
    );
    match guildhall.roles().apply(ann, org.id, &demote_ann).await {
        Err(RoleChangeError::Refused(report)) => println!("  refused: {report}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    // 7. The embedder's automation: switch it on and record a run.
    guildhall.organisations().set_capability(ann, org.id, &recall, true).await?;
    let started = clock_now(&clock);
    let run = guildhall
        .organisations()
        .record_run(
            ann,
            org.id,
            RunReport {
                capability: recall.clone(),
                started_at: started,
                finished_at: started + chrono::Duration::minutes(3),
                outcome: RunOutcome::Succeeded,
                counts: [("patients_invited".to_owned(), 42)].into_iter().collect(),
            },
        )
        .await?;
    println!("Ann turns on {recall} and records a run: {:?}, {:?}", run.outcome, run.counts);

    // 8. What was written: the outbox and the audit log.
    println!("Emails queued in the outbox:");
    for email in store.emails() {
        println!("  to {:<32} {}", email.to.as_str(), email.notification.template());
    }
    println!("Audit log:");
    for entry in store.audit() {
        println!("  {} {:<24} {:?}", entry.at.format("%H:%M:%S"), entry.action.as_str(), entry.target);
    }
    Ok(())
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    use guildhall_domain::ports::Clock;
    clock.now()
}
