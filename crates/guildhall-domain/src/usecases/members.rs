//! stub
use super::Context;
/// Members.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Members {
    pub(crate) ctx: Context,
}
