//! `/me`: one's own account, memberships (the linked-accounts view) and sessions.

use guildhall_domain::ids::SessionId;
use guildhall_domain::token::Session;
use guildhall_domain::usecases::{
    ListSessionsError, OverviewError, ProfileUpdate, RequestEmailChangeError, ResendVerificationError,
    RevokeSessionError, UpdateProfileError,
};
use guildhall_domain::user::{User, UserStatus};
use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::{Done, Tag, patch_field};
use crate::problem::{ApiError, ApiResult, field_errors};
use crate::session::Credentials;
use crate::state::ApiState;

/// `/me` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct MeApi(pub ApiState);

/// An account's profile.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Profile {
    /// The account's id.
    pub id: String,
    /// Email address (the username).
    pub email: String,
    /// Whether the address is verified.
    pub email_verified: bool,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Phone number (E.164).
    pub phone: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// The password must be changed before anything else.
    pub password_change_required: bool,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Profile {
    /// The profile of `user`.
    #[must_use]
    pub fn of(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.to_string(),
            email_verified: user.is_verified(),
            first_name: user.name.first().to_owned(),
            last_name: user.name.last().to_owned(),
            phone: user.phone.as_ref().map(ToString::to_string),
            status: match user.status {
                UserStatus::Active => "active",
                UserStatus::Disabled { .. } => "disabled",
            }
            .to_owned(),
            password_change_required: user.password.must_change,
            created_at: user.created_at,
        }
    }
}

/// One organisation the account belongs to.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LinkedMembershipView {
    /// The organisation's id.
    pub org_id: String,
    /// Its URL name.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// The member's role key.
    pub role: String,
    /// The role's display name.
    pub role_name: String,
    /// Whether the membership is in force now.
    pub state: super::members::MemberStateBody,
}

/// One's account and every organisation it belongs to.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Me {
    /// The profile.
    pub user: Profile,
    /// Every membership (switch between organisations with these).
    pub memberships: Vec<LinkedMembershipView>,
}

/// Changes to the profile; absent fields stay as they are.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ProfilePatch {
    /// A new first name.
    pub first_name: Option<String>,
    /// A new last name.
    pub last_name: Option<String>,
    /// A new phone number; `null` or blank removes it.
    pub phone: poem_openapi::types::MaybeUndefined<String>,
}

/// A session of the account.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionView {
    /// Its id.
    pub id: String,
    /// When it began.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it was last used.
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// When it ends at the latest.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Whether it is the session making this request.
    pub current: bool,
}

/// An email change.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EmailChangeRequest {
    /// The new address; a link to confirm it is sent there.
    pub new_email: String,
    /// The current password.
    #[oai(write_only)]
    pub current_password: String,
}

impl From<OverviewError> for ApiError {
    fn from(error: OverviewError) -> Self {
        match error {
            OverviewError::Unexpected(e) => e.into(),
        }
    }
}

impl From<UpdateProfileError> for ApiError {
    fn from(error: UpdateProfileError) -> Self {
        match error {
            UpdateProfileError::Invalid { fields } => ApiError::invalid(field_errors(&fields)),
            UpdateProfileError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ListSessionsError> for ApiError {
    fn from(error: ListSessionsError) -> Self {
        match error {
            ListSessionsError::Unexpected(e) => e.into(),
        }
    }
}

impl From<RevokeSessionError> for ApiError {
    fn from(error: RevokeSessionError) -> Self {
        match error {
            RevokeSessionError::NotFound => ApiError::not_found("session"),
            RevokeSessionError::Unexpected(e) => e.into(),
        }
    }
}

impl From<RequestEmailChangeError> for ApiError {
    fn from(error: RequestEmailChangeError) -> Self {
        let detail = error.to_string();
        match error {
            RequestEmailChangeError::Invalid(value) => ApiError::invalid(field_errors(&[value.for_field("new_email")])),
            RequestEmailChangeError::WrongPassword => ApiError::invalid_field("current_password", detail),
            RequestEmailChangeError::Unchanged(_) => ApiError::invalid_field("new_email", detail),
            RequestEmailChangeError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ResendVerificationError> for ApiError {
    fn from(error: ResendVerificationError) -> Self {
        let detail = error.to_string();
        match error {
            ResendVerificationError::AlreadyVerified => {
                ApiError::new(StatusCode::CONFLICT, "already-verified", "Already verified", detail)
            }
            ResendVerificationError::Unexpected(e) => e.into(),
        }
    }
}

fn session_view(session: &Session, current: &Session) -> SessionView {
    SessionView {
        id: session.id.to_string(),
        created_at: session.created_at,
        last_seen_at: session.last_seen_at,
        expires_at: session.expires_at,
        current: session.id == current.id,
    }
}

#[OpenApi(tag = "Tag::Me")]
impl MeApi {
    /// My account and every organisation I belong to.
    ///
    /// Works with a session that must change its password, so a client can show why.
    #[oai(path = "/me", method = "get", operation_id = "get_me")]
    async fn me(&self, credentials: Credentials) -> ApiResult<Json<Me>> {
        let caller = self.0.caller_restricted(&credentials).await?;
        if caller.authenticated.password_change_required() {
            return Ok(Json(Me { user: Profile::of(&caller.authenticated.user), memberships: Vec::new() }));
        }
        let overview = self.0.guildhall.accounts().overview(caller.user()).await?;
        Ok(Json(Me {
            user: Profile::of(&overview.user),
            memberships: overview
                .memberships
                .into_iter()
                .map(|m| LinkedMembershipView {
                    org_id: m.org.to_string(),
                    slug: m.slug.to_string(),
                    name: m.name.to_string(),
                    role: m.role.to_string(),
                    role_name: m.role_name,
                    state: m.state.into(),
                })
                .collect(),
        }))
    }

    /// Change my names or phone number.
    #[oai(path = "/me", method = "patch", operation_id = "update_me")]
    async fn update_me(&self, credentials: Credentials, body: Json<ProfilePatch>) -> ApiResult<Json<Profile>> {
        let caller = self.0.caller(&credentials).await?;
        let Json(body) = body;
        let update =
            ProfileUpdate { first_name: body.first_name, last_name: body.last_name, phone: patch_field(body.phone) };
        let user = self.0.guildhall.accounts().update_profile(caller.user(), update).await?;
        Ok(Json(Profile::of(&user)))
    }

    /// Where I am signed in.
    #[oai(path = "/me/sessions", method = "get", operation_id = "list_my_sessions")]
    async fn sessions(&self, credentials: Credentials) -> ApiResult<Json<Vec<SessionView>>> {
        let caller = self.0.caller(&credentials).await?;
        let sessions = self.0.guildhall.accounts().sessions(caller.user()).await?;
        let current = &caller.authenticated.session;
        Ok(Json(sessions.iter().map(|s| session_view(s, current)).collect()))
    }

    /// Sign out one of my sessions.
    #[oai(path = "/me/sessions/:session", method = "delete", operation_id = "revoke_my_session")]
    async fn revoke_session(&self, credentials: Credentials, session: Path<String>) -> ApiResult<Json<Done>> {
        let caller = self.0.caller(&credentials).await?;
        let session = SessionId::parse(&session.0).map_err(|_| ApiError::not_found("session"))?;
        self.0.guildhall.accounts().revoke_session(caller.user(), session).await?;
        Ok(Json(Done::new("the session has ended")))
    }

    /// Change my email address: a confirmation link goes to the new address.
    #[oai(path = "/me/email", method = "post", operation_id = "request_email_change")]
    async fn change_email(&self, credentials: Credentials, body: Json<EmailChangeRequest>) -> ApiResult<Json<Done>> {
        let caller = self.0.caller(&credentials).await?;
        let Json(body) = body;
        self.0
            .guildhall
            .accounts()
            .request_email_change(caller.user(), &body.new_email, &body.current_password)
            .await?;
        Ok(Json(Done::new("a confirmation link is on its way to the new address")))
    }

    /// Send my email-verification link again.
    #[oai(path = "/me/verification", method = "post", operation_id = "resend_verification")]
    async fn resend_verification(&self, credentials: Credentials) -> ApiResult<Json<Done>> {
        let caller = self.0.caller_restricted(&credentials).await?;
        self.0.guildhall.accounts().resend_verification(caller.user()).await?;
        Ok(Json(Done::new("a new verification link is on its way")))
    }
}
