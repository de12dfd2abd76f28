//! The Guildhall service: one binary that wires the store (`guildhall-store`), the mailer
//! (`guildhall-mail`) and the REST API (`guildhall-http`) around the use cases
//! (`guildhall-domain`).
//!
//! - [`config`]: defaults → `guildhall.toml` → `GUILDHALL_*` variables, checked.
//! - [`app`]: the wiring, and a server's life from start to a clean stop.
//! - [`telemetry`]: logs, request IDs, Prometheus metrics.
//! - [`cli`]: `serve`, `migrate`, `check-config`, `admin`.
//! - [`admin`]: the operator's actions.
//!
//! The binary is `cli::main`; tests and embedders drive [`app::App`] directly.

#![warn(missing_docs)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod telemetry;
