//! stub
use super::Context;
/// JoinRequests.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct JoinRequests {
    pub(crate) ctx: Context,
}
