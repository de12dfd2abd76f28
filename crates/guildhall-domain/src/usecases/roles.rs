//! Roles: list, preview a change, create, edit, delete.
//!
//! Every change goes through [`preview_role_change`]: saving is refused with the same
//! report the preview shows when the change would break an invariant.

use std::collections::BTreeSet;

use super::{Context, OrgAccess, unexpected_duplicate};
use crate::audit::{AuditAction, AuditTarget, FieldChange};
use crate::catalogue::permissions;
use crate::error::{AccessError, Invalid, Unexpected, from_store_error};
use crate::ids::{OrgId, UserId};
use crate::invitation::{Invitation, InvitationState};
use crate::membership::Membership;
use crate::policy::{RoleChange, RoleChangePreview, RoleChangeProblem, preview_role_change};
use crate::ports::{Change, ChangeSet, Duplicate, Precondition};
use crate::role::{Role, RoleGrant};
use crate::values::{Permission, RoleKey, RoleName};

/// Roles of organisations.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // trait objects
pub struct Roles {
    pub(crate) ctx: Context,
}

/// A role as listed: with its permissions resolved against the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleView {
    /// The role.
    pub role: Role,
    /// What it grants now.
    pub permissions: BTreeSet<Permission>,
}

/// [`Roles::list`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ListRolesError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// [`Roles::preview`], [`Roles::apply`] or a shorthand failed.
#[derive(Debug, thiserror::Error)]
pub enum RoleChangeError {
    /// Not allowed.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The proposal refers to something that does not exist or cannot change.
    #[error(transparent)]
    Problem(#[from] RoleChangeProblem),
    /// The input is invalid.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The change would break invariants; the preview says which and whom it affects.
    #[error("the change was refused: {0}")]
    Refused(Box<RoleChangePreview>),
    /// Something unexpected.
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

from_store_error!(ListRolesError, RoleChangeError);

impl Roles {
    /// The organisation's roles, built-in first then custom, with their permissions.
    ///
    /// # Errors
    /// See [`ListRolesError`]; any member may list roles.
    pub async fn list(&self, actor: UserId, org: OrgId) -> Result<Vec<RoleView>, ListRolesError> {
        let ctx = &self.ctx;
        let access = ctx.active_access::<ListRolesError>(org, actor).await?;
        let mut roles: Vec<RoleView> = access
            .roles
            .iter()
            .map(|role| RoleView { permissions: role.permissions(&ctx.catalogue), role: role.clone() })
            .collect();
        roles.sort_by_key(|view| (!view.role.built_in, view.permissions.len(), view.role.key.clone()));
        Ok(roles)
    }

    /// What `change` would do, saving nothing: per affected member the permissions gained
    /// and lost, and the invariants it would break.
    ///
    /// # Errors
    /// See [`RoleChangeError`]; creating, editing and deleting roles needs
    /// `roles.manage`, assigning one needs `members.manage`.
    pub async fn preview(
        &self,
        actor: UserId,
        org: OrgId,
        change: &RoleChange,
    ) -> Result<RoleChangePreview, RoleChangeError> {
        let (_, _, preview) = self.evaluate(actor, org, change).await?;
        Ok(preview)
    }

    /// Saves `change` if it breaks no invariant.
    ///
    /// # Errors
    /// [`RoleChangeError::Refused`] with the preview when it would; see
    /// [`RoleChangeError`] otherwise.
    pub async fn apply(
        &self,
        actor: UserId,
        org: OrgId,
        change: &RoleChange,
    ) -> Result<RoleChangePreview, RoleChangeError> {
        self.apply_named(actor, org, change, None).await
    }

    /// Creates a custom role.
    ///
    /// # Errors
    /// See [`RoleChangeError`]; the key must be new and the permissions within the
    /// actor's own.
    pub async fn create_role(
        &self,
        actor: UserId,
        org: OrgId,
        key: &str,
        name: &str,
        permissions: &[String],
    ) -> Result<Role, RoleChangeError> {
        let mut problems = Vec::new();
        let key = RoleKey::parse(key).map_err(|e| problems.push(e)).ok();
        let name = RoleName::parse(name).map_err(|e| problems.push(e)).ok();
        let permissions = parse_permissions(permissions, &mut problems);
        let (Some(key), Some(name), true) = (key, name, problems.is_empty()) else {
            return Err(Invalid(problems).into());
        };
        let preview = self.apply(actor, org, &RoleChange::CreateRole { key: key.clone(), name, permissions }).await?;
        preview.roles_after.get(&key).cloned().ok_or_else(|| Unexpected::message("the created role is missing").into())
    }

    /// Replaces a custom role's permissions (and, when given, its name).
    ///
    /// # Errors
    /// See [`RoleChangeError`].
    pub async fn edit_role(
        &self,
        actor: UserId,
        org: OrgId,
        key: &RoleKey,
        name: Option<&str>,
        permissions: &[String],
    ) -> Result<Role, RoleChangeError> {
        let mut problems = Vec::new();
        let name = name.and_then(|n| RoleName::parse(n).map_err(|e| problems.push(e)).ok());
        let permissions = parse_permissions(permissions, &mut problems);
        if !problems.is_empty() {
            return Err(Invalid(problems).into());
        }
        let change = RoleChange::EditRole { key: key.clone(), permissions };
        let preview = self.apply_named(actor, org, &change, name).await?;
        preview.roles_after.get(key).cloned().ok_or_else(|| Unexpected::message("the edited role is missing").into())
    }

    /// Deletes a custom role, moving its members to `replacement` (required when it has
    /// members).
    ///
    /// # Errors
    /// See [`RoleChangeError`].
    pub async fn delete_role(
        &self,
        actor: UserId,
        org: OrgId,
        key: &RoleKey,
        replacement: Option<&RoleKey>,
    ) -> Result<RoleChangePreview, RoleChangeError> {
        self.apply(actor, org, &RoleChange::DeleteRole { key: key.clone(), replacement: replacement.cloned() }).await
    }

    async fn evaluate(
        &self,
        actor: UserId,
        org: OrgId,
        change: &RoleChange,
    ) -> Result<(OrgAccess, Vec<Membership>, RoleChangePreview), RoleChangeError> {
        let ctx = &self.ctx;
        let needed = match change {
            RoleChange::AssignRole { .. } => &permissions::MEMBERS_MANAGE,
            _ => &permissions::ROLES_MANAGE,
        };
        let access = ctx.authorized::<RoleChangeError>(org, actor, needed).await?;
        let target = match change {
            RoleChange::AssignRole { user, .. } => ctx.ports.memberships.membership(org, *user).await?,
            _ => None,
        };
        let members = ctx
            .administrators_and(
                access.org.id,
                &access.roles,
                &change.affected_roles(),
                &target.iter().collect::<Vec<_>>(),
            )
            .await?;
        let preview = preview_role_change(&ctx.catalogue, &access.roles, &members, &access.actor, change, ctx.now())?;
        if let RoleChange::DeleteRole { key, .. } = change
            && access.org.settings.default_role == *key
        {
            return Err(RoleChangeProblem::DefaultRole(key.clone()).into());
        }
        Ok((access, members, preview))
    }

    async fn apply_named(
        &self,
        actor: UserId,
        org: OrgId,
        change: &RoleChange,
        rename: Option<RoleName>,
    ) -> Result<RoleChangePreview, RoleChangeError> {
        let ctx = &self.ctx;
        ctx.decide_and_commit(
            || async {
                let (access, members, mut preview) = self.evaluate(actor, org, change).await?;
                if !preview.is_allowed() {
                    return Err(RoleChangeError::Refused(Box::new(preview)));
                }
                let mut changes = ChangeSet::new();
                changes.require(Precondition::OrgVersion { org, version: access.org.version });
                let entry = |action, target, diff| ctx.audit(Some(org), Some(actor), action, target, diff);
                match change {
                    RoleChange::CreateRole { key, .. } => {
                        let role = preview
                            .roles_after
                            .get(key)
                            .cloned()
                            .ok_or_else(|| Unexpected::message("role vanished"))?;
                        changes.push(Change::PutRole { org, role: role.clone() }).audit(entry(
                            AuditAction::RoleCreated,
                            AuditTarget::Role(key.clone()),
                            vec![FieldChange::new("permissions", None::<String>, Some(grant_text(&role.grant)))],
                        ));
                    }
                    RoleChange::EditRole { key, .. } => {
                        let before =
                            access.roles.get(key).cloned().ok_or_else(|| Unexpected::message("role vanished"))?;
                        let mut role = preview
                            .roles_after
                            .get(key)
                            .cloned()
                            .ok_or_else(|| Unexpected::message("role vanished"))?;
                        let mut diff = vec![FieldChange::new(
                            "permissions",
                            Some(grant_text(&before.grant)),
                            Some(grant_text(&role.grant)),
                        )];
                        if let Some(name) = &rename {
                            diff.push(FieldChange::new("name", Some(&before.name), Some(name)));
                            role.name = name.clone();
                        }
                        changes.push(Change::PutRole { org, role: role.clone() });
                        changes.audit(entry(AuditAction::RoleEdited, AuditTarget::Role(key.clone()), diff));
                        preview.roles_after.put(role);
                    }
                    RoleChange::AssignRole { user, role } => {
                        let current = members
                            .iter()
                            .find(|m| m.user == *user)
                            .ok_or_else(|| Unexpected::message("member vanished"))?;
                        changes
                            .push(Change::UpdateMembership(Membership { role: role.clone(), ..current.clone() }))
                            .audit(entry(
                                AuditAction::MemberUpdated,
                                AuditTarget::User(*user),
                                vec![FieldChange::new("role", Some(&current.role), Some(role))],
                            ));
                    }
                    RoleChange::DeleteRole { key, replacement } => {
                        match replacement {
                            Some(to) => changes.push(Change::ReassignRole { org, from: key.clone(), to: to.clone() }),
                            // Accepting an invitation does not bump the version: if someone
                            // took the role meanwhile, decide again (a replacement is needed).
                            None => changes.require(Precondition::RoleUnheld { org, role: key.clone() }),
                        };
                        // Open invitations offering the role die with it, so a role created
                        // later under the same key is never granted by an old link.
                        let now = ctx.now();
                        for invitation in ctx.ports.invitations.open_invitations(org).await? {
                            if invitation.role == *key {
                                let id = invitation.id;
                                let token_hash = invitation.token_hash;
                                let revoked =
                                    Invitation { state: InvitationState::Revoked { by: actor, at: now }, ..invitation };
                                changes
                                    .require(Precondition::InvitationPending { org, id, token_hash })
                                    .push(Change::UpdateInvitation(revoked))
                                    .audit(entry(
                                        AuditAction::InvitationRevoked,
                                        AuditTarget::Invitation(id),
                                        vec![FieldChange::new("state", Some("pending"), Some("revoked"))],
                                    ));
                            }
                        }
                        changes.push(Change::DeleteRole { org, key: key.clone() }).audit(entry(
                            AuditAction::RoleDeleted,
                            AuditTarget::Role(key.clone()),
                            vec![
                                FieldChange::new("role", Some(key), None::<String>),
                                FieldChange::new("members_moved_to", None::<String>, replacement.as_ref()),
                            ],
                        ));
                    }
                }
                Ok((preview, changes))
            },
            |duplicate| match duplicate {
                Duplicate::RoleKey => match change {
                    RoleChange::CreateRole { key, .. } => {
                        RoleChangeError::Problem(RoleChangeProblem::RoleExists(key.clone()))
                    }
                    _ => unexpected_duplicate(Duplicate::RoleKey),
                },
                other => unexpected_duplicate(other),
            },
        )
        .await
    }
}

fn parse_permissions(raw: &[String], problems: &mut Vec<crate::values::InvalidValue>) -> BTreeSet<Permission> {
    raw.iter()
        .filter_map(|p| Permission::parse(p).map_err(|e| problems.push(e.for_field("permissions"))).ok())
        .collect()
}

fn grant_text(grant: &RoleGrant) -> String {
    match grant {
        RoleGrant::All => "all".to_owned(),
        RoleGrant::Only(set) => set.iter().map(Permission::as_str).collect::<Vec<_>>().join(", "),
    }
}
