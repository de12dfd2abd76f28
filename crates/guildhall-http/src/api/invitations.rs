//! Placeholder: filled in by the invitations endpoints.

use poem_openapi::OpenApi;

use super::Tag;
use crate::state::ApiState;

/// `invitations` endpoints.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct InvitationsApi(pub ApiState);

#[OpenApi(tag = "Tag::Invitations")]
impl InvitationsApi {}
