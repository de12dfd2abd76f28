//! The domain clock/RNG check: the domain reads time through its `Clock` port and draws
//! randomness through its `TokenGenerator`/id ports, never directly.
//!
//! This is a textual scan of `crates/guildhall-domain/src/**/*.rs`, complementing the
//! crate's `clippy.toml` `disallowed-methods` (which cannot see `rand::` paths or
//! `OsRng` values). Skipped, because test doubles may legitimately read the real clock:
//! the `testing` module (`src/testing.rs` and `src/testing/`) and every file named
//! `tests.rs`. Lines that are `//` comments (including doc comments) are skipped too, so
//! documentation may say "never call `Utc::now`". Occurrences inside string literals or
//! `/* */` comments are still reported; rephrase them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::workspace::Workspace;

const DOMAIN_SRC: &str = "crates/guildhall-domain/src";

/// Paths and names that read the wall clock, a monotonic clock or an entropy source.
const FORBIDDEN_CALLS: &[&str] =
    &["Utc::now", "Local::now", "SystemTime::now", "Instant::now", "thread_rng", "OsRng", "rand::", "getrandom"];

/// One forbidden call found in a source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// 1-based.
    pub line: usize,
    pub call: &'static str,
}

fn is_identifier_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether `needle` occurs in `line` as a whole path segment: `Utc::now` in
/// `chrono::Utc::now()`, but `rand::` not in `getrandom::` or `brand::`.
fn contains_token(line: &str, needle: &str) -> bool {
    line.match_indices(needle).any(|(start, _)| {
        let before_ok = !line[..start].chars().next_back().is_some_and(is_identifier_char);
        let needle_ends_in_identifier = needle.chars().next_back().is_some_and(is_identifier_char);
        let after_ok =
            !needle_ends_in_identifier || !line[start + needle.len()..].chars().next().is_some_and(is_identifier_char);
        before_ok && after_ok
    })
}

/// Every forbidden call in `source`, in line order (several per line if present).
pub fn scan(source: &str) -> Vec<Hit> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .flat_map(|(index, line)| {
            FORBIDDEN_CALLS
                .iter()
                .filter(move |call| contains_token(line, call))
                .map(move |call| Hit { line: index + 1, call })
        })
        .collect()
}

/// Whether a file, given by its path relative to the domain's `src/`, is test support
/// and therefore not scanned.
pub fn is_excluded(relative: &Path) -> bool {
    let mut components = relative.components();
    let first = components.next().map(|c| c.as_os_str());
    let in_testing_module = match first {
        Some(name) if name == "testing" => components.next().is_some(),
        Some(name) if name == "testing.rs" => components.next().is_none(),
        _ => false,
    };
    in_testing_module || relative.file_name().is_some_and(|name| name == "tests.rs")
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|error| format!("cannot read {}: {error}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|error| format!("cannot read {}: {error}", dir.display()))?.path();
        if path.is_dir() {
            collect_rust_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

pub fn check(workspace: &Workspace) -> Result<(), String> {
    let src = workspace.root().join(DOMAIN_SRC);
    let mut files = Vec::new();
    collect_rust_files(&src, &mut files)?;
    files.sort();

    let mut scanned = 0_usize;
    let mut findings = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src).unwrap_or(path);
        if is_excluded(relative) {
            continue;
        }
        scanned += 1;
        let source = fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let shown = Path::new(DOMAIN_SRC).join(relative);
        let lines: Vec<&str> = source.lines().collect();
        for hit in scan(&source) {
            let text = lines.get(hit.line - 1).map_or("", |line| line.trim());
            findings.push(format!("  {}:{}: `{}` in: {text}", shown.display(), hit.line, hit.call));
        }
    }

    if scanned == 0 {
        // Passing on nothing would hide a moved or renamed crate.
        return Err(format!("found no Rust files to scan under {DOMAIN_SRC}; has the domain crate moved?"));
    }
    if findings.is_empty() {
        println!("{DOMAIN_SRC}: {scanned} file(s) read no clock and no RNG directly");
        Ok(())
    } else {
        Err(format!(
            "the domain must read time through its Clock port and randomness through its \
             generator ports, but {} direct use(s) were found:\n{}",
            findings.len(),
            findings.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(source: &str) -> Vec<&'static str> {
        scan(source).into_iter().map(|hit| hit.call).collect()
    }

    #[test]
    fn reading_the_wall_clock_is_reported_with_its_line_number() {
        let source = "fn expires() {\n    let now = chrono::Utc::now();\n}\n";
        assert_eq!(scan(source), [Hit { line: 2, call: "Utc::now" }]);
    }

    #[test]
    fn every_forbidden_call_is_recognised_in_typical_use() {
        let cases = [
            ("let t = Utc::now();", "Utc::now"),
            ("let t = chrono::Local::now();", "Local::now"),
            ("let t = std::time::SystemTime::now();", "SystemTime::now"),
            ("let t = Instant::now();", "Instant::now"),
            ("let mut rng = thread_rng();", "thread_rng"),
            ("let key = Key::generate(&mut OsRng);", "OsRng"),
            ("let n: u64 = rand::random();", "rand::"),
            ("use rand::Rng;", "rand::"),
            ("getrandom::fill(&mut buf)?;", "getrandom"),
        ];
        for (line, call) in cases {
            assert_eq!(calls(line), [call], "in `{line}`");
        }
    }

    #[test]
    fn several_calls_on_one_line_are_all_reported() {
        assert_eq!(calls("let (a, b) = (Utc::now(), rand::random::<u8>());"), ["Utc::now", "rand::"]);
    }

    #[test]
    fn comment_lines_that_name_a_forbidden_call_are_not_reported() {
        let source = "/// Use the `Clock` port, never `Utc::now()`.\n\
                      //! No `rand::` here.\n    // thread_rng is banned\n";
        assert!(scan(source).is_empty());
    }

    #[test]
    fn identifiers_that_merely_contain_a_forbidden_name_are_not_reported() {
        let source = "\
let now = self.clock.now();
let operand::x = 1;
let brand::Name = 2;
let my_thread_rng_seed = 3;
struct OsRngAdapter;
let t = MyUtc::now();
";
        assert!(scan(source).is_empty(), "{:?}", scan(source));
    }

    #[test]
    fn rand_core_paths_are_not_mistaken_for_rand() {
        assert!(scan("use rand_core::RngCore;").is_empty());
    }

    #[test]
    fn test_support_files_are_excluded_from_the_scan() {
        for path in ["testing.rs", "testing/mod.rs", "testing/clock.rs", "invitation/tests.rs", "tests.rs"] {
            assert!(is_excluded(Path::new(path)), "{path} should be excluded");
        }
    }

    #[test]
    fn domain_files_are_scanned_even_when_their_names_mention_tests() {
        for path in ["lib.rs", "invitation.rs", "testing_policy.rs", "membership/testing.rs", "tests_helpers.rs"] {
            assert!(!is_excluded(Path::new(path)), "{path} should be scanned");
        }
    }
}
