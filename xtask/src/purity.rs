//! The domain purity check: `guildhall-domain` must not depend, even transitively, on
//! anything that performs I/O or draws randomness behind the domain's back.
//!
//! Which names are forbidden: the exact crate names in [`FORBIDDEN_CRATES`], plus every
//! member of the families in [`FORBIDDEN_FAMILIES`] (the stem itself or the stem followed
//! by `-`, e.g. `sqlx-core`, `tokio-util`, `sea-query-binder`). Names are compared as
//! whole tokens, so `tokio_like`, `hyperloglog` or `mime` are not caught by `tokio`,
//! `hyper` or `mio`. `rand_core` (and `rand_chacha`) are allowed on purpose: `rand_core` only
//! defines the `RngCore` traits and does no I/O, which is what a `TokenGenerator` port
//! may reasonably be written against; `rand` itself is forbidden because it brings
//! `thread_rng` and OS entropy with it.

use std::collections::BTreeSet;

use crate::workspace::{Workspace, display_command};

const DOMAIN: &str = "guildhall-domain";

/// Crates the domain must not depend on, by exact name.
const FORBIDDEN_CRATES: &[&str] = &["tokio", "sqlx", "sea-orm", "poem", "hyper", "reqwest", "lettre", "mio", "rand"];

/// Crate families the domain must not depend on: `stem` or `stem-<anything>`.
const FORBIDDEN_FAMILIES: &[&str] = &["tokio", "sqlx", "sea-orm", "sea-query", "poem"];

/// Both feature sets are checked: an optional feature (`mocks`, `serde`, ...) must not
/// smuggle a runtime in either.
const FEATURE_SETS: &[(&str, &[&str])] = &[("default features", &[]), ("all features", &["--all-features"])];

/// One package line of `cargo tree --prefix none`: `name vX.Y.Z [(path) | (proc-macro)]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: Option<String>,
}

impl Package {
    /// `name@version`, which `cargo tree -i` accepts even when two versions are present.
    fn spec(&self) -> String {
        match &self.version {
            Some(version) => format!("{}@{version}", self.name),
            None => self.name.clone(),
        }
    }

    fn label(&self) -> String {
        match &self.version {
            Some(version) => format!("{} v{version}", self.name),
            None => self.name.clone(),
        }
    }
}

pub fn is_forbidden(name: &str) -> bool {
    FORBIDDEN_CRATES.contains(&name)
        || FORBIDDEN_FAMILIES
            .iter()
            .any(|stem| name.strip_prefix(stem).is_some_and(|rest| rest.is_empty() || rest.starts_with('-')))
}

fn parse_package(line: &str) -> Option<Package> {
    let mut tokens = line.split_whitespace();
    let name = tokens.next()?;
    // Section headers such as `[build-dependencies]` are not packages.
    if name.starts_with('[') {
        return None;
    }
    let version = tokens.next().and_then(|token| token.strip_prefix('v')).map(str::to_owned);
    Some(Package { name: name.to_owned(), version })
}

/// The forbidden packages named in `cargo tree --prefix none` output, each once, sorted.
pub fn find_forbidden(tree: &str) -> Vec<Package> {
    tree.lines()
        .filter_map(parse_package)
        .filter(|package| is_forbidden(&package.name))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn tree_args<'a>(features: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "tree",
        "-p",
        DOMAIN,
        "-e",
        "normal",
        "--prefix",
        "none",
        "--no-dedupe",
        // Also count dependencies declared for other platforms (`[target.'cfg(..)']`).
        "--target",
        "all",
    ];
    args.extend_from_slice(features);
    args
}

fn inverse_tree_args<'a>(spec: &'a str, features: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["tree", "-i", spec, "-p", DOMAIN, "-e", "normal", "--target", "all"];
    args.extend_from_slice(features);
    args
}

pub fn check(workspace: &Workspace) -> Result<(), String> {
    let mut reported: BTreeSet<Package> = BTreeSet::new();
    let mut report = String::new();

    for (label, features) in FEATURE_SETS {
        let args = tree_args(features);
        let tree = workspace.capture_cargo(&args)?;
        let root = tree.lines().find_map(parse_package);
        if root.as_ref().map(|package| package.name.as_str()) != Some(DOMAIN) {
            return Err(format!(
                "`{}` did not print {DOMAIN} as its root; cannot check purity:\n{tree}",
                display_command(&args)
            ));
        }
        for package in find_forbidden(&tree) {
            if reported.contains(&package) {
                continue;
            }
            let spec = package.spec();
            let path = workspace.capture_cargo(&inverse_tree_args(&spec, features)).unwrap_or_else(|error| error);
            report.push_str(&format!("  {} (with {label}), reached through:\n", package.label()));
            for line in path.lines() {
                report.push_str(&format!("      {line}\n"));
            }
            reported.insert(package);
        }
    }

    if reported.is_empty() {
        println!("{DOMAIN} is pure: no {} in its normal dependencies (default and all features)", forbidden_list());
        Ok(())
    } else {
        Err(format!(
            "{DOMAIN} must do no I/O and draw no randomness itself (those go through ports), \
             but its normal dependencies include {} forbidden crate(s):\n{}",
            reported.len(),
            report.trim_end()
        ))
    }
}

fn forbidden_list() -> String {
    FORBIDDEN_CRATES
        .iter()
        .map(|name| if FORBIDDEN_FAMILIES.contains(name) { format!("{name}(-*)") } else { (*name).to_owned() })
        .chain(
            FORBIDDEN_FAMILIES.iter().filter(|stem| !FORBIDDEN_CRATES.contains(stem)).map(|stem| format!("{stem}(-*)")),
        )
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tree: &str) -> Vec<String> {
        find_forbidden(tree).into_iter().map(|package| package.name).collect()
    }

    #[test]
    fn every_listed_crate_is_forbidden_by_its_exact_name() {
        for name in ["tokio", "sqlx", "sea-orm", "poem", "hyper", "reqwest", "lettre", "mio", "rand"] {
            assert!(is_forbidden(name), "{name} should be forbidden");
        }
    }

    #[test]
    fn members_of_the_forbidden_families_are_forbidden() {
        for name in [
            "sqlx-core",
            "sqlx-postgres",
            "tokio-util",
            "tokio-stream",
            "sea-orm-macros",
            "sea-query",
            "sea-query-binder",
            "poem-openapi",
        ] {
            assert!(is_forbidden(name), "{name} should be forbidden");
        }
    }

    #[test]
    fn crates_that_merely_share_a_prefix_with_a_forbidden_name_are_allowed() {
        for name in ["tokio_like", "tokiox", "hyperloglog", "mime", "randomize", "sea-ormx", "poems"] {
            assert!(!is_forbidden(name), "{name} should be allowed");
        }
    }

    #[test]
    fn rand_core_and_other_members_of_the_rand_family_are_allowed() {
        for name in ["rand_core", "rand_chacha", "getrandom"] {
            assert!(!is_forbidden(name), "{name} should be allowed");
        }
    }

    #[test]
    fn a_pure_tree_has_no_offenders() {
        let tree = "\
guildhall-domain v0.1.0 (/work/main/crates/guildhall-domain)
async-trait v0.1.89 (proc-macro)
proc-macro2 v1.0.101
chrono v0.4.41
rand_core v0.9.3
uuid v1.18.1
getrandom v0.3.3
";
        assert!(find_forbidden(tree).is_empty());
    }

    #[test]
    fn offenders_are_reported_once_each_with_their_version() {
        let tree = "\
guildhall-domain v0.1.0 (/work/main/crates/guildhall-domain)
sqlx v0.8.6
sqlx-core v0.8.6
tokio v1.47.1
mio v1.0.4
sqlx-macros v0.8.6 (proc-macro)
sqlx-core v0.8.6
tokio v1.47.1
mio v1.0.4
";
        let found = find_forbidden(tree);
        let labels: Vec<String> = found.iter().map(Package::label).collect();
        assert_eq!(labels, ["mio v1.0.4", "sqlx v0.8.6", "sqlx-core v0.8.6", "sqlx-macros v0.8.6", "tokio v1.47.1",]);
        assert_eq!(found[0].spec(), "mio@1.0.4");
    }

    #[test]
    fn two_versions_of_a_forbidden_crate_are_both_reported() {
        let tree = "guildhall-domain v0.1.0 (/x)\nrand v0.8.5\nrand v0.9.2\n";
        let specs: Vec<String> = find_forbidden(tree).iter().map(Package::spec).collect();
        assert_eq!(specs, ["rand@0.8.5", "rand@0.9.2"]);
    }

    #[test]
    fn section_headers_and_blank_lines_are_not_packages() {
        let tree = "\nguildhall-domain v0.1.0 (/x)\n\n[build-dependencies]\nhyper v1.7.0\n";
        assert_eq!(names(tree), ["hyper"]);
    }
}
