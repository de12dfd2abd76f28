//! `/orgs/{org}/roles`: the organisation's roles, changes to them, and what a proposed
//! change would do before it is saved.
//!
//! Every change is evaluated by the domain's role-change preview: saving is refused with
//! the same violations the preview endpoint reports. The handlers only translate.

use std::collections::{BTreeMap, BTreeSet};

use guildhall_domain::catalogue::Catalogue;
use guildhall_domain::error::Invalid;
use guildhall_domain::ids::{OrgId, UserId};
use guildhall_domain::policy::{InvariantViolation, MemberImpact, RoleChange, RoleChangePreview, RoleChangeProblem};
use guildhall_domain::role::{Role, RoleGrant};
use guildhall_domain::usecases::{ListRolesError, MemberQueryError, RoleChangeError, RoleView};
use guildhall_domain::values::{InvalidValue, Permission, RoleKey, RoleName};
use poem::http::StatusCode;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Union};

use super::Tag;
use crate::problem::{ApiError, ApiResult, FieldError, field_errors};
use crate::session::Credentials;
use crate::state::ApiState;

/// `roles` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct RolesApi(pub ApiState);

/// A role: a named set of permissions.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename = "Role")]
pub struct RoleBody {
    /// Its key, unique within the organisation (`administrator`, `front_desk`); never changes.
    pub key: String,
    /// Its display name.
    pub name: String,
    /// Built-in roles (`user`, `user_plus`, `manager`, `administrator`) exist in every
    /// organisation and cannot be edited or deleted.
    pub built_in: bool,
    /// Whether it grants the whole catalogue, including permissions added to it later
    /// (the administrator role).
    pub grants_all: bool,
    /// What it grants now, sorted.
    pub permissions: Vec<String>,
}

impl RoleBody {
    /// The body of a listed role.
    #[must_use]
    pub fn of_view(view: &RoleView) -> Self {
        Self::with_permissions(&view.role, &view.permissions)
    }

    /// The body of `role`, its permissions resolved against `catalogue`.
    #[must_use]
    pub fn of(role: &Role, catalogue: &Catalogue) -> Self {
        Self::with_permissions(role, &role.permissions(catalogue))
    }

    fn with_permissions(role: &Role, permissions: &BTreeSet<Permission>) -> Self {
        Self {
            key: role.key.to_string(),
            name: role.name.to_string(),
            built_in: role.built_in,
            grants_all: matches!(role.grant, RoleGrant::All),
            permissions: names(permissions),
        }
    }
}

fn names(permissions: &BTreeSet<Permission>) -> Vec<String> {
    permissions.iter().map(ToString::to_string).collect()
}

/// A new custom role.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct NewRole {
    /// Its key: 2 to 64 characters of `a-z`, `0-9`, `_`, `.` and `-`, starting with a
    /// letter; unique in the organisation and never changed.
    pub key: String,
    /// Its display name (at most 60 characters).
    pub name: String,
    /// The permissions it grants (catalogue keys such as `reports.view`); you may grant
    /// only permissions you hold yourself.
    pub permissions: Vec<String>,
}

/// Changes to a custom role; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RolePatch {
    /// A new display name.
    pub name: Option<String>,
    /// The permissions it grants from now on (replacing the current ones); you may grant
    /// only permissions you hold yourself, and change only roles that hold no more than
    /// you do.
    pub permissions: Option<Vec<String>>,
}

/// A proposed change to roles, as the preview takes it; `change` says which kind.
#[derive(Debug, Union)]
#[oai(discriminator_name = "change", one_of)]
pub enum ProposedRoleChange {
    /// Create a custom role.
    #[oai(mapping = "create")]
    Create(NewRole),
    /// Replace a custom role's permissions.
    #[oai(mapping = "edit")]
    Edit(ProposedRoleEdit),
    /// Delete a custom role, moving its members to a replacement.
    #[oai(mapping = "delete")]
    Delete(ProposedRoleDeletion),
    /// Give a member another role.
    #[oai(mapping = "assign")]
    Assign(ProposedRoleAssignment),
}

/// A proposed edit of a custom role's permissions.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProposedRoleEdit {
    /// The role's key.
    pub role: String,
    /// Its permissions after the change (replacing the current ones).
    pub permissions: Vec<String>,
}

/// A proposed deletion of a custom role.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProposedRoleDeletion {
    /// The role's key.
    pub role: String,
    /// The role its members move to; required when it has members.
    pub replacement: Option<String>,
}

/// A proposed change of a member's role.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProposedRoleAssignment {
    /// The member's user id.
    pub user_id: String,
    /// The role they would have.
    pub role: String,
}

/// What a role change does (or would do) to one member.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberImpactBody {
    /// The member's user id.
    pub user_id: String,
    /// Their name, when the caller may see members (`members.manage`).
    pub name: Option<String>,
    /// Their email address, when the caller may see members (`members.manage`).
    pub email: Option<String>,
    /// Their role before the change.
    pub role_before: String,
    /// Their role after the change.
    pub role_after: String,
    /// Effective permissions they gain, sorted.
    pub gained: Vec<String>,
    /// Effective permissions they lose, sorted.
    pub lost: Vec<String>,
}

/// The kinds of invariant a change can break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ViolationKind {
    /// No active, unsuspended, non-expiring member able to manage members and roles would remain.
    NoAdministratorLeft,
    /// The caller would grant permissions they do not hold.
    Escalation,
    /// The caller would widen someone's access to a kind of resource beyond their own.
    WiderAccess,
    /// The caller would attribute someone to a facility they do not belong to.
    ForeignFacility,
    /// The role or member changed holds permissions the caller lacks.
    Outranked,
}

/// An invariant the change would break.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ViolationBody {
    /// Which invariant.
    pub kind: ViolationKind,
    /// What is wrong, as a sentence to show a person.
    pub message: String,
    /// For `escalation` and `outranked`: the permissions the caller lacks.
    #[oai(skip_serializing_if_is_empty, default)]
    pub missing_permissions: Vec<String>,
    /// For `outranked` by a member: that member's user id.
    #[oai(skip_serializing_if_is_none)]
    pub user_id: Option<String>,
}

impl ViolationBody {
    /// The body of `violation`.
    #[must_use]
    pub fn of(violation: &InvariantViolation) -> Self {
        let message = violation.to_string();
        let (kind, missing, user) = match violation {
            InvariantViolation::NoAdministratorLeft => (ViolationKind::NoAdministratorLeft, Vec::new(), None),
            InvariantViolation::Escalation { missing } => (ViolationKind::Escalation, names(missing), None),
            InvariantViolation::WiderAccess { .. } => (ViolationKind::WiderAccess, Vec::new(), None),
            InvariantViolation::ForeignFacility { .. } => (ViolationKind::ForeignFacility, Vec::new(), None),
            InvariantViolation::Outranked { user, missing } => {
                (ViolationKind::Outranked, names(missing), user.map(|u| u.to_string()))
            }
        };
        Self { kind, message, missing_permissions: missing, user_id: user }
    }
}

/// What a role change does, or would do: nothing is saved by a preview.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(rename = "RoleChangePreview")]
pub struct RoleChangePreviewBody {
    /// Whether the change may be saved: `true` when it breaks no invariant.
    pub allowed: bool,
    /// Every member whose role or effective permissions change, by user id.
    pub impacts: Vec<MemberImpactBody>,
    /// Every invariant the change would break; saving is refused unless this is empty.
    pub violations: Vec<ViolationBody>,
    /// The organisation's roles after the change, built-in first.
    pub roles_after: Vec<RoleBody>,
}

/// `POST /orgs/{org}/roles` succeeded.
#[derive(Debug, ApiResponse)]
pub enum RoleCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<RoleBody>),
}

/// The problem for a change refused because it would break `violations`: the caller's
/// own limits first (`403`), else the first violation ([`crate::problem::violation`]);
/// `detail` lists every violation, and the preview endpoint shows them with the members
/// affected.
#[must_use]
pub fn refused(violations: &[InvariantViolation], detail: impl std::fmt::Display) -> ApiError {
    let problems: Vec<ApiError> = violations.iter().map(crate::problem::violation).collect();
    let chosen = problems.iter().find(|p| p.status() == StatusCode::FORBIDDEN).or_else(|| problems.first()).cloned();
    match chosen {
        Some(mut problem) => {
            problem.0.detail = detail.to_string();
            problem
        }
        None => ApiError::new(StatusCode::CONFLICT, "invariant-broken", "The change was refused", detail),
    }
}

impl From<ListRolesError> for ApiError {
    fn from(error: ListRolesError) -> Self {
        match error {
            ListRolesError::Access(e) => e.into(),
            ListRolesError::Unexpected(e) => e.into(),
        }
    }
}

/// How the request named things, so that a domain error lands on the request's fields.
#[derive(Debug, Default)]
struct Named<'a> {
    /// Roles the request body or query names, with their field; an unknown one is `422`
    /// on that field. A role not listed here came from the path: `404`.
    roles: Vec<(&'static str, &'a RoleKey)>,
    /// The request's names for the domain's validation fields (`role_name` → `name`).
    renames: &'a [(&'static str, &'static str)],
}

impl Named<'_> {
    fn invalid(&self, invalid: Invalid) -> ApiError {
        let renamed: Vec<InvalidValue> = invalid
            .0
            .into_iter()
            .map(|value| match self.renames.iter().find(|(from, _)| *from == value.field()) {
                Some((_, to)) => value.for_field(to),
                None => value,
            })
            .collect();
        ApiError::invalid(field_errors(&renamed))
    }

    fn error(&self, error: RoleChangeError) -> ApiError {
        match error {
            RoleChangeError::Access(e) => e.into(),
            RoleChangeError::Problem(problem) => self.problem(&problem),
            RoleChangeError::Invalid(invalid) => self.invalid(invalid),
            RoleChangeError::Refused(preview) => {
                refused(&preview.violations, format!("the change was refused: {preview}"))
            }
            RoleChangeError::Unexpected(e) => e.into(),
        }
    }

    fn problem(&self, problem: &RoleChangeProblem) -> ApiError {
        let detail = problem.to_string();
        match problem {
            RoleChangeProblem::UnknownRole(key) => match self.roles.iter().find(|(_, named)| *named == key) {
                Some((field, _)) => ApiError::invalid_field(field, detail),
                None => ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail),
            },
            RoleChangeProblem::RoleExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "role-exists", "Role exists", detail)
            }
            RoleChangeProblem::BuiltInRole(_) => {
                ApiError::new(StatusCode::CONFLICT, "built-in-role", "Built-in role", detail)
            }
            RoleChangeProblem::UnknownPermission(_) => ApiError::invalid_field("permissions", detail),
            RoleChangeProblem::UnknownMember(_) => ApiError::invalid_field("user_id", detail),
            RoleChangeProblem::ReplacementRequired { .. } => {
                ApiError::new(StatusCode::CONFLICT, "role-in-use", "Role in use", detail)
            }
            RoleChangeProblem::DefaultRole(_) => {
                ApiError::new(StatusCode::CONFLICT, "default-role", "Default role", detail)
            }
            RoleChangeProblem::ReplacementIsSame => ApiError::invalid_field("replacement", detail),
        }
    }
}

impl From<RoleChangeError> for ApiError {
    fn from(error: RoleChangeError) -> Self {
        Named::default().error(error)
    }
}

/// A role key from the path: a malformed one reads as not found.
fn path_role(raw: &str) -> ApiResult<RoleKey> {
    RoleKey::parse(raw).map_err(|_| ApiError::not_found("role"))
}

fn parse_into<T>(
    raw: &str,
    field: &'static str,
    parse: impl Fn(&str) -> Result<T, InvalidValue>,
    problems: &mut Vec<InvalidValue>,
) -> Option<T> {
    parse(raw).map_err(|e| problems.push(e.for_field(field))).ok()
}

fn parse_permissions(raw: &[String], problems: &mut Vec<InvalidValue>) -> BTreeSet<Permission> {
    raw.iter().filter_map(|p| parse_into(p, "permissions", Permission::parse, problems)).collect()
}

/// The domain's change from the preview's body, with every invalid field at once.
fn proposed(change: &ProposedRoleChange) -> ApiResult<RoleChange> {
    let mut problems = Vec::new();
    let mut other = Vec::new();
    let change = match change {
        ProposedRoleChange::Create(new) => {
            let key = parse_into(&new.key, "key", RoleKey::parse, &mut problems);
            let name = parse_into(&new.name, "name", RoleName::parse, &mut problems);
            let permissions = parse_permissions(&new.permissions, &mut problems);
            key.zip(name).map(|(key, name)| RoleChange::CreateRole { key, name, permissions })
        }
        ProposedRoleChange::Edit(edit) => {
            let key = parse_into(&edit.role, "role", RoleKey::parse, &mut problems);
            let permissions = parse_permissions(&edit.permissions, &mut problems);
            key.map(|key| RoleChange::EditRole { key, permissions })
        }
        ProposedRoleChange::Delete(deletion) => {
            let key = parse_into(&deletion.role, "role", RoleKey::parse, &mut problems);
            let replacement = match &deletion.replacement {
                Some(raw) => parse_into(raw, "replacement", RoleKey::parse, &mut problems).map(Some),
                None => Some(None),
            };
            key.zip(replacement).map(|(key, replacement)| RoleChange::DeleteRole { key, replacement })
        }
        ProposedRoleChange::Assign(assignment) => {
            let user = UserId::parse(&assignment.user_id)
                .map_err(|_| {
                    other.push(FieldError { field: "user_id".to_owned(), message: "must be a user id".to_owned() })
                })
                .ok();
            let role = parse_into(&assignment.role, "role", RoleKey::parse, &mut problems);
            user.zip(role).map(|(user, role)| RoleChange::AssignRole { user, role })
        }
    };
    match change {
        Some(change) if problems.is_empty() && other.is_empty() => Ok(change),
        _ => Err(ApiError::invalid(other.into_iter().chain(field_errors(&problems)).collect())),
    }
}

/// The roles the change names in the preview's body, by field.
fn named_in(change: &RoleChange) -> Vec<(&'static str, &RoleKey)> {
    match change {
        RoleChange::CreateRole { key, .. } => vec![("key", key)],
        RoleChange::EditRole { key, .. } => vec![("role", key)],
        RoleChange::DeleteRole { key, replacement } => {
            let mut named = vec![("role", key)];
            named.extend(replacement.iter().map(|r| ("replacement", r)));
            named
        }
        RoleChange::AssignRole { role, .. } => vec![("role", role)],
    }
}

/// Roles in the order the list uses: built-in first, then by breadth, then by key.
fn sorted_roles(preview: &RoleChangePreview, catalogue: &Catalogue) -> Vec<RoleBody> {
    let mut roles: Vec<(bool, usize, RoleBody)> = preview
        .roles_after
        .iter()
        .map(|role| {
            let body = RoleBody::of(role, catalogue);
            (!role.built_in, body.permissions.len(), body)
        })
        .collect();
    roles.sort_by(|a, b| (a.0, a.1, &a.2.key).cmp(&(b.0, b.1, &b.2.key)));
    roles.into_iter().map(|(_, _, body)| body).collect()
}

impl RolesApi {
    /// The names and addresses of `impacts`' members, as far as the caller may see them
    /// (looking at other members needs `members.manage`). Best effort: a lookup that
    /// fails leaves the name out, never the answer.
    async fn people(&self, actor: UserId, org: OrgId, impacts: &[MemberImpact]) -> BTreeMap<UserId, (String, String)> {
        let members = self.0.guildhall.members();
        let mut people = BTreeMap::new();
        for impact in impacts {
            match members.get(actor, org, impact.user).await {
                Ok(details) => {
                    people.insert(impact.user, (details.user.name.full(), details.user.email.to_string()));
                }
                Err(MemberQueryError::Access(_)) => break,
                Err(MemberQueryError::MemberNotFound | MemberQueryError::Invalid(_)) => {}
                Err(MemberQueryError::Unexpected(e)) => {
                    tracing::warn!(error = %e, "could not look up a member for a role-change preview");
                }
            }
        }
        people
    }

    async fn preview_body(&self, actor: UserId, org: OrgId, preview: &RoleChangePreview) -> RoleChangePreviewBody {
        let people = self.people(actor, org, &preview.impacts).await;
        RoleChangePreviewBody {
            allowed: preview.is_allowed(),
            impacts: preview
                .impacts
                .iter()
                .map(|impact| {
                    let person = people.get(&impact.user);
                    MemberImpactBody {
                        user_id: impact.user.to_string(),
                        name: person.map(|(name, _)| name.clone()),
                        email: person.map(|(_, email)| email.clone()),
                        role_before: impact.role_before.to_string(),
                        role_after: impact.role_after.to_string(),
                        gained: names(&impact.gained),
                        lost: names(&impact.lost),
                    }
                })
                .collect(),
            violations: preview.violations.iter().map(ViolationBody::of).collect(),
            roles_after: sorted_roles(preview, self.0.guildhall.catalogue()),
        }
    }

    async fn current_role(&self, actor: UserId, org: OrgId, key: &RoleKey) -> ApiResult<RoleView> {
        let roles = self.0.guildhall.roles().list(actor, org).await?;
        roles.into_iter().find(|view| view.role.key == *key).ok_or_else(|| ApiError::not_found("role"))
    }
}

#[OpenApi(tag = "Tag::Roles")]
impl RolesApi {
    /// The organisation's roles, built-in first, with what each grants.
    ///
    /// Any member may list them.
    #[oai(path = "/orgs/:org/roles", method = "get", operation_id = "list_roles")]
    async fn list(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<Vec<RoleBody>>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let roles = self.0.guildhall.roles().list(caller.user(), org).await?;
        Ok(Json(roles.iter().map(RoleBody::of_view).collect()))
    }

    /// Create a custom role.
    ///
    /// Needs `roles.manage`; you may grant only permissions you hold yourself.
    #[oai(path = "/orgs/:org/roles", method = "post", operation_id = "create_role")]
    async fn create(&self, credentials: Credentials, org: Path<String>, body: Json<NewRole>) -> ApiResult<RoleCreated> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let Json(body) = body;
        let role = self
            .0
            .guildhall
            .roles()
            .create_role(caller.user(), org, &body.key, &body.name, &body.permissions)
            .await
            .map_err(|e| Named { roles: Vec::new(), renames: &[("role", "key"), ("role_name", "name")] }.error(e))?;
        Ok(RoleCreated::Created(Json(RoleBody::of(&role, self.0.guildhall.catalogue()))))
    }

    /// What a proposed role change would do, saving nothing.
    ///
    /// Lists, per member, the role and effective permissions gained and lost, and every
    /// invariant the change would break (`allowed` is `false` then, and saving the change
    /// would be refused). Creating, editing and deleting roles needs `roles.manage`;
    /// assigning one needs `members.manage`. Members' names are shown to callers who may
    /// see members.
    #[oai(path = "/orgs/:org/roles/preview", method = "post", operation_id = "preview_role_change")]
    async fn preview(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<ProposedRoleChange>,
    ) -> ApiResult<Json<RoleChangePreviewBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let change = proposed(&body.0)?;
        let preview = self
            .0
            .guildhall
            .roles()
            .preview(caller.user(), org, &change)
            .await
            .map_err(|e| Named { roles: named_in(&change), renames: &[] }.error(e))?;
        Ok(Json(self.preview_body(caller.user(), org, &preview).await))
    }

    /// One role of the organisation.
    ///
    /// Any member may look at roles.
    #[oai(path = "/orgs/:org/roles/:role", method = "get", operation_id = "get_role")]
    async fn get(&self, credentials: Credentials, org: Path<String>, role: Path<String>) -> ApiResult<Json<RoleBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let key = path_role(&role.0)?;
        let view = self.current_role(caller.user(), org, &key).await?;
        Ok(Json(RoleBody::of_view(&view)))
    }

    /// Rename a custom role or replace its permissions.
    ///
    /// Needs `roles.manage`; you may grant only permissions you hold yourself and change
    /// only roles that hold no more than you do. Refused when no administrator would
    /// remain; `POST …/roles/preview` shows whom a change affects first.
    #[oai(path = "/orgs/:org/roles/:role", method = "patch", operation_id = "update_role")]
    async fn update(
        &self,
        credentials: Credentials,
        org: Path<String>,
        role: Path<String>,
        body: Json<RolePatch>,
    ) -> ApiResult<Json<RoleBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let key = path_role(&role.0)?;
        let Json(body) = body;
        let permissions = match body.permissions {
            Some(permissions) => permissions,
            None if body.name.is_none() => {
                return Err(ApiError::invalid_field("permissions", "give a new name, new permissions, or both"));
            }
            // The domain replaces the permissions on every edit: keep the current ones.
            None => names(&self.current_role(caller.user(), org, &key).await?.permissions),
        };
        let role = self
            .0
            .guildhall
            .roles()
            .edit_role(caller.user(), org, &key, body.name.as_deref(), &permissions)
            .await
            .map_err(|e| Named { roles: Vec::new(), renames: &[("role_name", "name")] }.error(e))?;
        Ok(Json(RoleBody::of(&role, self.0.guildhall.catalogue())))
    }

    /// Delete a custom role, moving its members to `replacement`.
    ///
    /// Needs `roles.manage`. `replacement` is required when the role has members; open
    /// invitations offering the role are revoked. The organisation's default role for
    /// joiners cannot be deleted. Answers what the deletion did to each member.
    #[oai(path = "/orgs/:org/roles/:role", method = "delete", operation_id = "delete_role")]
    async fn delete(
        &self,
        credentials: Credentials,
        org: Path<String>,
        role: Path<String>,
        /// The role the deleted role's members move to (its key).
        replacement: Query<Option<String>>,
    ) -> ApiResult<Json<RoleChangePreviewBody>> {
        let (caller, org) = self.0.scope(&credentials, &org.0).await?;
        let key = path_role(&role.0)?;
        let replacement = match replacement.0.as_deref() {
            Some(raw) => {
                Some(RoleKey::parse(raw).map_err(|e| ApiError::invalid(field_errors(&[e.for_field("replacement")])))?)
            }
            None => None,
        };
        let named = Named {
            roles: replacement.iter().filter(|r| **r != key).map(|r| ("replacement", r)).collect(),
            renames: &[],
        };
        let preview = self
            .0
            .guildhall
            .roles()
            .delete_role(caller.user(), org, &key, replacement.as_ref())
            .await
            .map_err(|e| named.error(e))?;
        Ok(Json(self.preview_body(caller.user(), org, &preview).await))
    }

    // `…/roles/preview` is a static route, which poem matches before `…/roles/:role`
    // whatever the method: without these, a custom role keyed `preview` (a valid key)
    // could not be read, edited or deleted. Hidden from the document: they are the three
    // operations above with `role = preview`.

    #[oai(path = "/orgs/:org/roles/preview", method = "get", operation_id = "get_role_keyed_preview", hidden)]
    async fn get_preview_role(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<RoleBody>> {
        self.get(credentials, org, Path(PREVIEW_KEY.to_owned())).await
    }

    #[oai(path = "/orgs/:org/roles/preview", method = "patch", operation_id = "update_role_keyed_preview", hidden)]
    async fn update_preview_role(
        &self,
        credentials: Credentials,
        org: Path<String>,
        body: Json<RolePatch>,
    ) -> ApiResult<Json<RoleBody>> {
        self.update(credentials, org, Path(PREVIEW_KEY.to_owned()), body).await
    }

    #[oai(path = "/orgs/:org/roles/preview", method = "delete", operation_id = "delete_role_keyed_preview", hidden)]
    async fn delete_preview_role(
        &self,
        credentials: Credentials,
        org: Path<String>,
        replacement: Query<Option<String>>,
    ) -> ApiResult<Json<RoleChangePreviewBody>> {
        self.delete(credentials, org, Path(PREVIEW_KEY.to_owned()), replacement).await
    }
}

/// The one role key that collides with a route of its own.
const PREVIEW_KEY: &str = "preview";
