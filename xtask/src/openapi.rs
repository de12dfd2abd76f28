//! `cargo xtask openapi [--check]`: the committed OpenAPI document, `docs/openapi.json`,
//! is what the code serves at `/openapi.json`.

use std::process::Stdio;

use crate::workspace::Workspace;

const DOCUMENT: &str = "docs/openapi.json";
const GENERATE: &[&str] = &["run", "--quiet", "-p", "guildhall-http", "--example", "api_server", "--", "--openapi"];

/// The document the code describes now.
fn generate(workspace: &Workspace) -> Result<String, String> {
    let output = workspace
        .clean_cargo_command(GENERATE)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run `cargo {}`: {e}", GENERATE.join(" ")))?;
    if !output.status.success() {
        return Err(format!("`cargo {}` failed ({})", GENERATE.join(" "), output.status));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("the generated document is not UTF-8: {e}"))
}

/// Writes the document, or with `check` fails when the committed one differs.
pub fn run(workspace: &Workspace, check: bool) -> Result<(), String> {
    let generated = generate(workspace)?;
    let path = workspace.root().join(DOCUMENT);
    if check {
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != generated {
            return Err(format!(
                "{DOCUMENT} is out of date with the API the code serves; run `cargo xtask openapi` and commit the result"
            ));
        }
        println!("{DOCUMENT} matches the code");
        return Ok(());
    }
    std::fs::write(&path, generated).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    println!("wrote {DOCUMENT}");
    Ok(())
}
