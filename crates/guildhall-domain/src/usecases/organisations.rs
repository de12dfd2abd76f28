//! stub
use super::Context;
/// Organisations.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Organisations {
    pub(crate) ctx: Context,
}
