//! Placeholder: filled in by the members endpoints.

use poem_openapi::OpenApi;

use super::Tag;
use crate::state::ApiState;

/// `members` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct MembersApi(pub ApiState);

#[OpenApi(tag = "Tag::Members")]
impl MembersApi {}
