//! `guildhall admin ...`: the operator's actions, through the domain's `Operators` use
//! cases (the same rules and audit trail as everything else; no membership checks,
//! since whoever runs the binary against the database is the operator).

use guildhall_domain::usecases::OperatorCreateOrganisation;

use crate::app::App;
use crate::cli::{Admin, CliError};
use crate::config::Resolved;

/// Runs one operator action and prints what it did.
///
/// # Errors
/// [`CliError::Refused`] with the domain's reason, or a start error.
pub async fn run(resolved: Resolved, command: Admin) -> Result<(), CliError> {
    let delivery = match &resolved.smtp {
        Some(smtp) => format!("sent through {} by a running `guildhall serve`", smtp.host),
        None => format!("written to {} by a running `guildhall serve`", resolved.outbox_dir.display()),
    };
    let app = App::build(resolved).await?;
    let operators = app.guildhall().operators();
    let outcome = match command {
        Admin::CreateOrg(args) => {
            let created = operators
                .create_organisation(OperatorCreateOrganisation {
                    slug: args.slug,
                    name: args.name,
                    administrator_email: args.admin_email.clone(),
                    first_name: args.first_name,
                    last_name: args.last_name,
                })
                .await
                .map_err(|e| CliError::Refused(e.to_string()))?;
            let who = if created.new_account {
                format!(
                    "a new account for {}, which gets an email with a link to choose its password ({delivery})",
                    args.admin_email
                )
            } else {
                format!("the existing account {} ({delivery})", args.admin_email)
            };
            Ok(format!(
                "created organisation {} ({}, id {}); its administrator is {who}",
                created.organisation.name, created.organisation.slug, created.organisation.id
            ))
        }
        Admin::EndSessions(args) => operators
            .end_sessions(&args.email)
            .await
            .map(|()| format!("every session of {} has ended", args.email))
            .map_err(|e| CliError::Refused(e.to_string())),
        Admin::DisableAccount(args) => operators
            .disable_account(&args.email)
            .await
            .map(|_| format!("{} is disabled: it cannot sign in, and its sessions have ended", args.email))
            .map_err(|e| CliError::Refused(e.to_string())),
        Admin::EnableAccount(args) => operators
            .enable_account(&args.email)
            .await
            .map(|_| format!("{} is enabled again", args.email))
            .map_err(|e| CliError::Refused(e.to_string())),
    };
    app.store().connection().clone().close().await.ok();
    println!("{}", outcome?);
    Ok(())
}
