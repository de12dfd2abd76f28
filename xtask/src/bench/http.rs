//! `cargo xtask bench [--postgres] [--peer] [options]`: the service under load, side by
//! side with the peer.
//!
//! Builds the `guildhall` binary and `crates/guildhall/examples/http_bench` in release
//! mode, runs the program (which starts each server on loopback, seeds it, drives it with
//! its closed-loop keep-alive load generator, stops it by PID and refuses to report from
//! a busy machine), keeps its JSON under `<target dir>/bench/` and puts its report into
//! `docs/benchmarks.md` between the markers below.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use super::json_string_field;
use crate::workspace::{Workspace, display_command};

const BEGIN: &str = "<!-- cargo xtask bench: begin -->";
const END: &str = "<!-- cargo xtask bench: end -->";
/// Where the peer lives, relative to the workspace root.
const PEER: &str = "../shared/peers/better-auth";

/// Options of the default benchmark.
#[derive(Debug, Default)]
pub struct Options {
    postgres: bool,
    /// `--peer` alone: [`PEER`] beside the workspace; `--peer DIR`: the peer in DIR.
    peer: Option<Option<PathBuf>>,
    /// Passed to the program as they are (`--duration 20`, `--sizes ...`).
    program_args: Vec<String>,
}

impl Options {
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        let mut options = Self::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match *arg {
                "--postgres" => options.postgres = true,
                "--peer" => {
                    let dir = rest.clone().next().filter(|next| !next.starts_with("--"));
                    if dir.is_some() {
                        rest.next();
                    }
                    options.peer = Some(dir.map(PathBuf::from));
                }
                "--binary" | "--json" | "--markdown" | "--work" => {
                    return Err(format!("`cargo xtask bench` sets {arg} itself"));
                }
                "--duration" | "--warmup" | "--concurrency" | "--sizes" | "--deep-page" | "--invitees"
                | "--quiet-cores" | "--quiet-wait" => {
                    let value = rest.next().ok_or_else(|| format!("{arg} needs a value"))?;
                    options.program_args.extend([(*arg).to_owned(), (*value).to_owned()]);
                }
                other => return Err(format!("unknown option `{other}` for `cargo xtask bench`")),
            }
        }
        Ok(options)
    }
}

pub fn run(workspace: &Workspace, options: &Options) -> Result<(), String> {
    let (binary, program) = build(workspace)?;
    let target_dir = binary
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("unexpected binary path {}", binary.display()))?
        .to_path_buf();
    let bench_dir = target_dir.join("bench");
    std::fs::create_dir_all(&bench_dir).map_err(|e| format!("{}: {e}", bench_dir.display()))?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let json = bench_dir.join(format!("http-{stamp}.json"));
    let markdown = bench_dir.join("http.md");
    let mut command = Command::new(&program);
    command
        .arg("--binary")
        .arg(&binary)
        .arg("--work")
        .arg(bench_dir.join("work"))
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown)
        .args(&options.program_args)
        .current_dir(workspace.root())
        .stdin(Stdio::null());
    if options.postgres {
        command.arg("--postgres");
    }
    if let Some(dir) = &options.peer {
        let peer = dir.clone().unwrap_or_else(|| workspace.root().join(PEER));
        if !peer.join("server.mjs").is_file() {
            return Err(format!(
                "--peer: no peer at {} (server.mjs missing); name its directory: --peer DIR",
                peer.display()
            ));
        }
        command.arg("--peer").arg(peer);
    }
    eprintln!("==> {}", program.display());
    let status = command.status().map_err(|e| format!("could not start {}: {e}", program.display()))?;
    if !status.success() {
        return Err(format!("the benchmark failed ({status}); docs/benchmarks.md is unchanged"));
    }
    let report = std::fs::read_to_string(&markdown).map_err(|e| format!("{}: {e}", markdown.display()))?;
    splice_docs(workspace, BEGIN, END, "## Service under load, side by side with better-auth", &report)?;
    eprintln!("figures written to {} and docs/benchmarks.md", json.display());
    // The domain's microbenchmarks belong to the same report.
    super::micro::run(workspace).map(|_| ())
}

/// Builds both in release mode; their paths come from cargo's JSON messages, which
/// follow any `--target-dir` or `CARGO_TARGET_DIR`.
fn build(workspace: &Workspace) -> Result<(PathBuf, PathBuf), String> {
    let args = [
        "build",
        "--release",
        "--package",
        "guildhall",
        "--bin",
        "guildhall",
        "--example",
        "http_bench",
        "--message-format=json-render-diagnostics",
    ];
    let shown = display_command(&args);
    eprintln!("==> {shown}");
    let messages = workspace.clean_cargo_stdout(&args)?;
    let executables: Vec<PathBuf> = messages
        .lines()
        .filter(|line| line.contains("\"reason\":\"compiler-artifact\""))
        .filter_map(|line| json_string_field(line, "executable"))
        .map(PathBuf::from)
        .collect();
    let find = |name: &str| {
        executables
            .iter()
            .find(|p| p.file_stem().is_some_and(|s| s == name))
            .cloned()
            .ok_or_else(|| format!("`{shown}` did not report where it put {name}"))
    };
    Ok((find("guildhall")?, find("http_bench")?))
}

/// Replaces the text between `begin` and `end` in docs/benchmarks.md, or appends a
/// `heading` section holding them.
pub(super) fn splice_docs(
    workspace: &Workspace,
    begin: &str,
    end: &str,
    heading: &str,
    report: &str,
) -> Result<(), String> {
    let path = workspace.root().join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let block = format!("{begin}\n{}\n{end}", report.trim_end());
    let updated = match (text.find(begin), text.find(end)) {
        (Some(at), Some(until)) if at < until => format!("{}{block}{}", &text[..at], &text[until + end.len()..]),
        _ => format!("{}\n\n{heading}\n\n{block}\n", text.trim_end()),
    };
    std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))
}
