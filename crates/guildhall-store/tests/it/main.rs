//! Integration tests of the SQL store: one test binary, a module per area. Every test
//! runs on SQLite (a temp file) and on PostgreSQL (`GUILDHALL_TEST_POSTGRES_URL`, a fresh
//! database per store; mandatory under `CI=true`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod contract;
mod migrations;
mod ports;
mod races;
mod sign_in;
