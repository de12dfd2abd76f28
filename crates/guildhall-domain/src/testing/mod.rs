//! In-memory adapters of every port, and a kit for testing the use cases.
//!
//! * [`MemoryStore`]: every storage port ([`UserRepository`](crate::ports::UserRepository)
//!   ... [`UnitOfWork`](crate::ports::UnitOfWork) and [`Outbox`](crate::ports::Outbox)).
//!   It is the reference implementation: the SQL stores are tested against the same
//!   contract suite, so it enforces preconditions, uniqueness and foreign keys exactly
//!   as they must, and its inspection helpers (`emails()`, `audit()`, `snapshot()`, ...)
//!   and fault injection (`fail_next_commit()`, `land_before_next_commit()`) serve tests.
//! * [`ManualClock`], [`SequentialIds`], [`SequentialTokens`], [`FakeHasher`]:
//!   deterministic stand-ins for the clock, identifiers, secrets and hashing. The last
//!   two are **not secure** and exist for tests only.
//! * [`TestKit`]: [`Guildhall`](crate::usecases::Guildhall) wired to all of the above,
//!   with fixtures (`seed_user`, `seed_org`, `seed_member`).
//!
//! Available with the `testing` feature (and in this crate's own unit tests).
//!
//! ```
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use guildhall_domain::role::builtin;
//! use guildhall_domain::testing::TestKit;
//!
//! let kit = TestKit::new();
//! let ann = kit.seed_user("ann@example.com", true).await?;
//! let acme = kit.seed_org("acme-physio", ann.id).await?;
//! let bob = kit.seed_user("bob.lee@example.com", true).await?;
//! kit.seed_member(acme.id, bob.id, builtin::MANAGER).await?;
//! assert_eq!(kit.store.memberships(acme.id).len(), 2);
//! # Ok(())
//! # }
//! ```

mod commit;
pub mod contract;
mod fakes;
mod kit;
mod outbox;
mod store;
#[cfg(test)]
mod tests;

pub use fakes::{FakeHasher, ManualClock, SequentialIds, SequentialTokens};
pub use kit::{FixtureError, TestKit};
pub use store::{MemoryStore, OutboxRecord, StoreSnapshot};

/// The password every seeded account has ([`TestKit::seed_user`]). It meets
/// [`PasswordPolicy::seed_default`](crate::password::PasswordPolicy::seed_default) for
/// any seeded address whose local part is not part of it.
pub const PASSWORD: &str = "Correct-Horse-7-Battery";
