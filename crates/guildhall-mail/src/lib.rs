//! Guildhall's email adapter.
//!
//! * [`render`]: a template (plain text and HTML) for every
//!   [`Notification`](guildhall_domain::notification::Notification) the domain sends, with
//!   links built from the configured public base URL.

pub mod render;
