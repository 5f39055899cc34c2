//! Builds an app the way Flux does, by running kustomize on a materialised copy of its
//! source. Used only when a primary snapshot is taken (initialization and promotion).

use std::path::Path;
use std::process::Command;

/// A failed build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The kustomize command could not be started.
    #[error("cannot run `{command}` (set WEIR_KUSTOMIZE to a kustomize command): {message}")]
    Spawn { command: String, message: String },
    /// kustomize refused the app.
    #[error("`{command}` failed for {dir}: {stderr}")]
    Failed {
        command: String,
        dir: String,
        stderr: String,
    },
}

/// Runs `command` (e.g. `kubectl kustomize`) on `dir`, with Flux's load restrictions (none:
/// files outside the folder but inside the repository may be referenced).
pub fn build(command: &str, root: &Path, dir: &str) -> Result<String, BuildError> {
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or("kubectl");
    let full = root.join(dir);
    let output = Command::new(program)
        .args(words)
        .arg("--load-restrictor=LoadRestrictionsNone")
        .arg(&full)
        .output()
        .map_err(|e| BuildError::Spawn {
            command: command.to_string(),
            message: e.to_string(),
        })?;
    if !output.status.success() {
        let stderr =
            String::from_utf8_lossy(&output.stderr).replace(&format!("{}/", root.display()), "");
        return Err(BuildError::Failed {
            command: command.to_string(),
            dir: dir.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).to_string())
}
