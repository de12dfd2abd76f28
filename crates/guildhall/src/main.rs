//! `guildhall`: see `guildhall --help`.

/// mimalloc instead of the system allocator. Each Argon2id hash allocates its 19 MiB
/// block on whichever blocking thread runs it; glibc keeps such blocks in per-thread
/// arenas after they are freed, so a sign-in burst left the process at over 1 GiB
/// resident. mimalloc returns them to the system (docs/benchmarks.md has the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    guildhall::cli::main()
}
