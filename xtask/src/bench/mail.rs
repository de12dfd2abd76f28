//! `cargo xtask bench mail`: the outbox dispatcher's delivery throughput to aiosmtpd on a
//! loopback port, at several concurrency settings, plus the cost of rendering and
//! composing a message without the network.
//!
//! Builds `crates/guildhall-mail/examples/throughput.rs` (feature `testing`) in release
//! mode, runs it once on a quiet machine with the terminal as its output (it prints its
//! own table) and has it write every figure to `<target dir>/bench/mail.json`.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{Example, OwnWork, build, report_dir, wait_for_quiet};
use crate::workspace::Workspace;

pub(super) const THROUGHPUT: Example =
    Example { package: "guildhall-mail", name: "throughput", features: &["testing"] };

/// `bench mail`'s options: checked here, so that a typo fails before the release build,
/// and passed to the program.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    program_args: Vec<String>,
}

impl Options {
    /// `[--messages N] [--concurrency LIST] [--batch N] [program options]`, after `mail`.
    pub(super) fn parse(args: &[&str]) -> Result<Self, String> {
        let mut program_args = Vec::new();
        let mut rest = args.iter().copied();
        while let Some(flag) = rest.next() {
            match flag {
                "--messages" | "--batch" => {
                    let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
                    if !is_positive(value) {
                        return Err(format!("{flag} takes a number of at least 1, not `{value}`"));
                    }
                    program_args.extend([flag.to_owned(), value.to_owned()]);
                }
                "--concurrency" => {
                    let value = rest.next().ok_or_else(|| format!("{flag} needs a value"))?;
                    if let Some(bad) = value.split(',').map(str::trim).find(|item| !is_positive(item)) {
                        return Err(format!(
                            "{flag} takes numbers of at least 1, comma-separated: `{bad}` in `{value}`"
                        ));
                    }
                    program_args.extend([flag.to_owned(), value.to_owned()]);
                }
                "--json" => return Err("`bench mail` writes <target dir>/bench/mail.json itself".to_owned()),
                other => program_args.push(other.to_owned()),
            }
        }
        Ok(Self { program_args })
    }
}

fn is_positive(text: &str) -> bool {
    text.replace('_', "").parse::<u64>().is_ok_and(|n| n > 0)
}

pub(super) fn run(workspace: &Workspace, options: &Options) -> Result<(), String> {
    let mut own = OwnWork::default();
    let program = own.measure(|| build(workspace, THROUGHPUT))?;
    let json = report_dir(workspace, &program)?.join("mail.json");
    // A failed run must not leave the figures of an earlier one looking current.
    match std::fs::remove_file(&json) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("cannot remove the old {}: {error}", json.display()));
        }
        _ => {}
    }
    let gate = wait_for_quiet(&own, "mail")?;
    let mut shown = program.display().to_string();
    for arg in &options.program_args {
        shown.push(' ');
        shown.push_str(arg);
    }
    eprintln!("==> mail: {}; {shown} --json {}", gate.describe(), json.display());
    run_program(&program, options, &json)?;
    println!("figures written to {}", json.display());
    Ok(())
}

fn run_program(program: &Path, options: &Options, json: &Path) -> Result<(), String> {
    let status = Command::new(program)
        .args(&options.program_args)
        .arg("--json")
        .arg(json)
        .stdin(Stdio::null())
        .status()
        .map_err(|error| format!("could not start {}: {error}", program.display()))?;
    if status.success() { Ok(()) } else { Err(format!("the mail benchmark failed ({status})")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(options: &Options) -> Vec<&str> {
        options.program_args.iter().map(String::as_str).collect()
    }

    #[test]
    fn without_options_the_program_keeps_its_defaults() {
        assert_eq!(args(&Options::parse(&[]).unwrap()), Vec::<&str>::new());
    }

    #[test]
    fn options_are_checked_and_passed_on_in_order() {
        let options =
            Options::parse(&["--messages", "5_000", "--concurrency", "1,2,16", "--batch", "64", "--connections", "8"])
                .unwrap();
        assert_eq!(
            args(&options),
            ["--messages", "5_000", "--concurrency", "1,2,16", "--batch", "64", "--connections", "8"]
        );
    }

    #[test]
    fn counts_that_are_not_positive_numbers_are_refused_before_building() {
        for bad in [
            &["--messages", "0"][..],
            &["--messages", "many"],
            &["--batch", "-1"],
            &["--concurrency", "1,,4"],
            &["--concurrency", "4,0"],
            &["--concurrency"],
        ] {
            assert!(Options::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_report_path_is_not_an_option() {
        let error = Options::parse(&["--json", "/tmp/mail.json"]).unwrap_err();
        assert!(error.contains("mail.json"), "{error}");
    }
}
