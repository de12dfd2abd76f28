//! Guildhall's project automation, run as `cargo xtask <task>` (matklad's cargo-xtask
//! pattern: the alias lives in `.cargo/config.toml`).
//!
//! Std only: this binary is compiled before anything else on every CI run.

mod bench;
mod ci;
mod clock_rng;
mod openapi;
mod purity;
mod workspace;

use std::process::ExitCode;

use workspace::Workspace;

const USAGE: &str = "\
Usage: cargo xtask <task> [options]

Tasks:
  ci [--skip-tests]  what CI runs, in order, stopping at the first failure:
                       fmt        cargo fmt --all --check
                       clippy     cargo clippy --workspace --all-targets --all-features -- -D warnings
                       test       cargo test --workspace --all-features  (skipped by --skip-tests)
                       docs       cargo doc --workspace --all-features --no-deps, warnings as errors
                       purity     the domain purity check (see `purity`)
                       clock-rng  the domain clock/RNG check (see `clock-rng`)
                       openapi    docs/openapi.json matches the code (see `openapi --check`)
  purity             fail if guildhall-domain's normal dependencies (default and all features)
                     include an I/O runtime, driver, web or mail crate, or `rand`
  clock-rng          fail if crates/guildhall-domain/src reads the clock or an RNG directly
                     instead of going through its ports
  bench [--postgres] [--peer [DIR]] [OPTIONS]
                     the service under load: builds the guildhall binary and
                     crates/guildhall/examples/http_bench in release, starts Guildhall on loopback on
                     SQLite (and, with --postgres, on a fresh PostgreSQL database named by
                     GUILDHALL_BENCH_POSTGRES_URL or GUILDHALL_TEST_POSTGRES_URL) and, with --peer, the
                     peer in DIR or ../shared/peers/better-auth beside the workspace (copied under
                     <target dir>/bench/work/peer, where the bench runs npm ci); seeds each,
                     drives each with the same closed-loop keep-alive load generator through scenarios
                     (a)-(g), stops each by PID, refuses to report from a busy machine, writes
                     <target dir>/bench/http-<time>.json and the report into docs/benchmarks.md;
                     then runs `bench micro`.
                     OPTIONS: --duration S (20), --warmup S (3), --concurrency N (8),
                     --sizes LIST (1000,10000,100000), --deep-page N (1000), --invitees N (2000),
                     --quiet-cores X (0.25), --quiet-wait S (300)
  bench micro        the domain's criterion microbenchmarks (crates/guildhall-domain/benches):
                     authorize, preview_role_change over 10,000 members, PasswordPolicy::validate,
                     once the machine is quiet; prints a table with the targets, writes
                     <target dir>/bench/micro.json and the table into docs/benchmarks.md
  bench store [--database sqlite|postgres] [OPTIONS]
                     member-list page latency of a 100,000-member organisation: builds
                     crates/guildhall-store/examples/member_pages.rs in release, runs it on
                     SQLite and (when GUILDHALL_BENCH_POSTGRES_URL or GUILDHALL_TEST_POSTGRES_URL
                     is set) PostgreSQL once the machine is quiet, prints one table and writes
                     <target dir>/bench/store-<UTC time>.json. OPTIONS go to the program:
                     --members N, --page-size N, --samples N, --warmup N, --deep-page N,
                     --batch N, --text TEXT (see docs/benchmarks.md)
  bench mail [--messages N] [--concurrency LIST] [--batch N] [OPTIONS]
                     delivery throughput of the outbox dispatcher to aiosmtpd on loopback
                     (python3 -m pip install aiosmtpd): builds
                     crates/guildhall-mail/examples/throughput.rs in release, runs Dispatcher::run
                     over N messages (default 2000) per concurrency setting (default 1,4,8), batch
                     N (default 32), once the machine is quiet; prints a table (also the time to
                     render and compose a message, and FileTransport runs) and writes
                     <target dir>/bench/mail.json. OPTIONS go to the program: --connections N,
                     --transports smtp,file (see docs/benchmarks.md)
  openapi [--check]  write docs/openapi.json from the code (crates/guildhall-http's api_server
                     example with --openapi); with --check, fail if the committed file differs
  help               print this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    let outcome = match args.as_slice() {
        [] | ["help" | "-h" | "--help"] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        ["ci", flags @ ..] => match ci::Options::parse(flags) {
            Ok(options) => with_workspace(|ws| ci::run(ws, options)),
            Err(message) => return usage_error(&message),
        },
        ["bench", rest @ ..] => match bench::Benchmark::parse(rest) {
            Ok(benchmark) => with_workspace(|ws| benchmark.run(ws)),
            Err(message) => return usage_error(&message),
        },
        ["purity"] => with_workspace(purity::check),
        ["clock-rng"] => with_workspace(clock_rng::check),
        ["openapi"] => with_workspace(|ws| openapi::run(ws, false)),
        ["openapi", "--check"] => with_workspace(|ws| openapi::run(ws, true)),
        _ => {
            return usage_error(&format!("unknown task or arguments: `{}`", args.join(" ")));
        }
    };

    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn with_workspace(task: impl FnOnce(&Workspace) -> Result<(), String>) -> Result<(), String> {
    task(&Workspace::locate()?)
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}\n");
    eprint!("{USAGE}");
    ExitCode::from(2)
}
