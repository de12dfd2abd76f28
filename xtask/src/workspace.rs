//! Where the workspace is, and how to run cargo inside it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The cargo workspace xtask belongs to, and the cargo that launched xtask.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    cargo: OsString,
}

impl Workspace {
    /// The workspace root is the parent of this crate's manifest directory, fixed at
    /// compile time so that xtask works from any current directory.
    pub fn locate() -> Result<Self, String> {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir.parent().ok_or_else(|| {
            format!("cannot find the workspace root: {} has no parent directory", manifest_dir.display())
        })?;
        // `cargo xtask` sets CARGO to the cargo running it, so nested commands use the
        // same toolchain even when several are installed.
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        Ok(Self { root: root.to_path_buf(), cargo })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `cargo <args>` in the workspace root, for callers that wire its output themselves,
    /// without the variables `cargo run` set for xtask itself (`CARGO_MANIFEST_DIR`,
    /// `CARGO_PKG_*`, ...): some build scripts (ring's) rerun when they change, so a
    /// nested build would otherwise rebuild what a plain `cargo build` just built.
    pub fn clean_cargo_command(&self, args: &[&str]) -> Command {
        let mut command = self.cargo(args);
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || matches!(key, "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE")
            {
                command.env_remove(key);
            }
        }
        command
    }

    fn cargo(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.cargo);
        command.args(args).current_dir(&self.root);
        command
    }

    /// Runs `cargo <args>` with the terminal as its stdout/stderr.
    pub fn run_cargo(&self, args: &[&str]) -> Result<(), String> {
        let shown = display_command(args);
        let status = self.cargo(args).status().map_err(|error| format!("could not start `{shown}`: {error}"))?;
        if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
    }

    /// Runs `cargo <args>` with one extra environment variable, terminal attached.
    pub fn run_cargo_with_env(&self, args: &[&str], key: &str, value: &str) -> Result<(), String> {
        let shown = format!("{key}={value:?} {}", display_command(args));
        let status =
            self.cargo(args).env(key, value).status().map_err(|error| format!("could not start `{shown}`: {error}"))?;
        if status.success() { Ok(()) } else { Err(format!("`{shown}` failed ({status})")) }
    }

    /// Runs `cargo <args>` through [`clean_cargo_command`](Self::clean_cargo_command) with
    /// its stderr on the terminal, and returns its stdout (cargo's JSON messages, a
    /// benchmark's summary).
    pub fn clean_cargo_stdout(&self, args: &[&str]) -> Result<String, String> {
        let shown = display_command(args);
        let output = self
            .clean_cargo_command(args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|error| format!("could not start `{shown}`: {error}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!("`{shown}` failed ({})", output.status))
        }
    }

    /// Runs `cargo <args>` and returns its stdout; its stderr goes into the error.
    pub fn capture_cargo(&self, args: &[&str]) -> Result<String, String> {
        let shown = display_command(args);
        let output = self
            .cargo(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("could not start `{shown}`: {error}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "`{shown}` failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim_end()
            ))
        }
    }
}

pub fn display_command(args: &[&str]) -> String {
    let mut shown = String::from("cargo");
    for arg in args {
        shown.push(' ');
        shown.push_str(arg);
    }
    shown
}
