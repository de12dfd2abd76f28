//! Integration tests of the domain: one test binary, a module per area.

mod interactions;
mod password_policy;
mod preview;
mod role_policy;
