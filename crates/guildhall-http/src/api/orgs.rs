//! `/orgs`: organisations, their settings, capabilities, runs, facilities and audit log.

use guildhall_domain::org::Organisation;
use guildhall_domain::usecases::{CreateOrganisationError, ResolveOrganisationError, ViewOrganisationError};
use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Tag;
use crate::problem::{ApiError, ApiResult};
use crate::session::Credentials;
use crate::state::ApiState;

/// `/orgs` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct OrgsApi(pub ApiState);

/// A new organisation.
#[derive(Debug, Object)]
pub struct NewOrganisation {
    /// URL name: lower-case letters, digits and dashes, unique.
    pub slug: String,
    /// Display name.
    pub name: String,
}

/// An organisation.
#[derive(Debug, Object)]
pub struct OrganisationBody {
    /// Its id (never changes).
    pub id: String,
    /// Its URL name (may be renamed).
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl OrganisationBody {
    /// The body of `org`.
    #[must_use]
    pub fn of(org: &Organisation) -> Self {
        Self { id: org.id.to_string(), slug: org.slug.to_string(), name: org.name.to_string(), created_at: org.created_at }
    }
}

/// `POST /orgs` succeeded.
#[derive(Debug, ApiResponse)]
pub enum Created {
    /// Created; the caller is its first administrator.
    #[oai(status = 201)]
    Created(Json<OrganisationBody>),
}

impl From<ResolveOrganisationError> for ApiError {
    fn from(error: ResolveOrganisationError) -> Self {
        match error {
            ResolveOrganisationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<CreateOrganisationError> for ApiError {
    fn from(error: CreateOrganisationError) -> Self {
        let detail = error.to_string();
        match error {
            CreateOrganisationError::Invalid(invalid) => invalid.into(),
            CreateOrganisationError::AccountUnavailable => ApiError::unauthenticated(detail),
            CreateOrganisationError::EmailNotVerified => {
                ApiError::new(StatusCode::FORBIDDEN, "email-not-verified", "Email address not verified", detail)
            }
            CreateOrganisationError::PasswordChangeRequired => crate::problem::password_change_required(),
            CreateOrganisationError::SlugTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "slug-taken", "Slug taken", detail)
            }
            CreateOrganisationError::Unexpected(e) => e.into(),
        }
    }
}

impl From<ViewOrganisationError> for ApiError {
    fn from(error: ViewOrganisationError) -> Self {
        match error {
            ViewOrganisationError::Access(e) => e.into(),
            ViewOrganisationError::Unexpected(e) => e.into(),
        }
    }
}

#[OpenApi(tag = "Tag::Organisations")]
impl OrgsApi {
    /// Create an organisation; the caller becomes its first administrator.
    #[oai(path = "/orgs", method = "post", operation_id = "create_org")]
    async fn create(&self, credentials: Credentials, body: Json<NewOrganisation>) -> ApiResult<Created> {
        let caller = self.0.caller(&credentials).await?;
        let org = self.0.guildhall.organisations().create(caller.user(), &body.0.slug, &body.0.name).await?;
        Ok(Created::Created(Json(OrganisationBody::of(&org))))
    }

    /// An organisation the caller belongs to, by id or slug.
    #[oai(path = "/orgs/:org", method = "get", operation_id = "get_org")]
    async fn get(&self, credentials: Credentials, org: Path<String>) -> ApiResult<Json<OrganisationBody>> {
        let caller = self.0.caller(&credentials).await?;
        let org = self.0.org(&org.0).await?;
        let view = self.0.guildhall.organisations().get(caller.user(), org).await?;
        Ok(Json(OrganisationBody::of(&view.organisation)))
    }
}
