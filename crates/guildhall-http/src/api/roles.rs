//! Placeholder: filled in by the roles endpoints.

use poem_openapi::OpenApi;

use super::Tag;
use crate::state::ApiState;

/// `roles` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct RolesApi(pub ApiState);

#[OpenApi(tag = "Tag::Roles")]
impl RolesApi {}
