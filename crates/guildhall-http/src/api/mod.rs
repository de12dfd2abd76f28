//! The REST API v1: one module per resource, each with its DTOs and the mapping of the
//! domain errors its use cases return.

use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApiService, Tags};

use crate::state::ApiState;

pub mod auth;
pub mod invitations;
pub mod me;
pub mod members;
pub mod orgs;
pub mod roles;

/// Groups of endpoints in the document.
#[derive(Debug, Tags)]
pub enum Tag {
    /// Sign-up, sign-in, passwords.
    Auth,
    /// One's own account, organisations and sessions.
    Me,
    /// Organisations, their settings, capabilities, runs, facilities and audit log.
    Organisations,
    /// Members of an organisation.
    Members,
    /// Invitations and join requests.
    Invitations,
    /// Roles and what a change to them would do.
    Roles,
}

/// An action that returns nothing but a confirmation.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Done {
    /// What happened, as a sentence to show a person.
    pub message: String,
}

impl Done {
    /// A confirmation.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

/// A JSON merge-patch field: absent leaves it alone, `null` clears it, a value sets it.
#[must_use]
pub fn patch_field<T>(field: MaybeUndefined<T>) -> Option<Option<T>> {
    match field {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(value)),
    }
}

/// The API's title in the document.
pub const TITLE: &str = "Guildhall API";

/// Every endpoint of the API, as one OpenAPI service to mount at `/api/v1`.
#[must_use]
#[allow(clippy::type_complexity)]
pub fn service(
    state: &ApiState,
) -> OpenApiService<
    (auth::AuthApi, me::MeApi, orgs::OrgsApi, members::MembersApi, invitations::InvitationsApi, roles::RolesApi),
    (),
> {
    OpenApiService::new(
        (
            auth::AuthApi(state.clone()),
            me::MeApi(state.clone()),
            orgs::OrgsApi(state.clone()),
            members::MembersApi(state.clone()),
            invitations::InvitationsApi(state.clone()),
            roles::RolesApi(state.clone()),
        ),
        TITLE,
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Organisation membership: accounts, organisations, members, invitations, join requests and roles. \
         Errors are RFC 9457 problems (`application/problem+json`) with a stable `type` per kind of error.",
    )
    .server("/api/v1")
}
