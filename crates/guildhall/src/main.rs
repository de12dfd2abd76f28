//! `guildhall`: see `guildhall --help`.

fn main() -> std::process::ExitCode {
    guildhall::cli::main()
}
