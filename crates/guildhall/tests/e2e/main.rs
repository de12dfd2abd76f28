//! End-to-end tests of the `guildhall` service: the binary's wiring (or the binary
//! itself) on a loopback port with a fresh database, driven over HTTP as the seeds'
//! users would, reading emails from the file outbox.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_debug_implementations, dead_code)]

mod analytics;
mod gp_practice;
mod operations;
mod physio_crm;
mod scale_out;
mod shutdown;
mod support;
