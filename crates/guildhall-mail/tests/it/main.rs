//! guildhall-mail's integration tests: one binary (see the workspace's conventions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dispatch;
mod render;
mod smtp;
mod support;
