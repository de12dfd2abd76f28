//! The API over real HTTP on a loopback port, over SQLite (and PostgreSQL where set).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs, dead_code)]

mod auth;
mod hardening;
mod idor;
mod invitations;
mod members;
mod orgs;
mod roles;
mod support;
