//! Integration tests of the domain: one test binary, a module per area.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
mod alerts;
mod contract;
mod interactions;
mod invariants;
mod invitations;
mod join_requests;
mod members;
mod operators;
mod organisations;
mod password_policy;
mod preview;
mod regressions;
mod role_policy;
mod roles;
mod support;
