//! Guildhall's domain: users, organisations, memberships, invitations, join requests,
//! role policy and password rules.
//!
//! This crate is pure. It performs no I/O, reads no clock and draws no randomness: all
//! of that goes through the traits in [`ports`], which adapters implement (a sea-orm
//! store, an SMTP mailer, an Argon2id hasher) and embedders wire together.
//!
//! * [`values`]: validating value objects (`EmailAddress`, `OrgSlug`, `RoleKey`, ...).
//! * [`user`], [`org`], [`membership`], [`invitation`], [`join_request`], [`token`]:
//!   the entities.
//! * [`catalogue`] and [`role`]: permissions, built-in and custom roles, `authorize` and
//!   `explain`.
//! * [`policy`]: the invariants and the role-change preview.
//! * [`password`]: password policies.
//! * [`throttle`]: the failed sign-in throttling policy (the counters are the
//!   [`ports::SignInAttempts`] port).
//! * [`usecases`]: one method per thing a person does, each with its own error type.
//! * `testing` (feature `testing`): in-memory adapters of every port.
//!
//! See `docs/ARCHITECTURE.md` for the invariants and how the pieces fit.

#![warn(missing_docs)]

pub mod audit;
pub mod catalogue;
pub mod error;
pub mod ids;
pub mod invitation;
pub mod join_request;
pub mod membership;
pub mod notification;
pub mod org;
pub mod password;
pub mod policy;
pub mod ports;
pub mod query;
pub mod role;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod token;
pub mod usecases;
pub mod user;
pub mod values;
