//! stub
use super::Context;
/// Roles.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Roles {
    pub(crate) ctx: Context,
}
