//! stub
use super::Context;
/// Accounts.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Accounts {
    pub(crate) ctx: Context,
}
