//! `git` for tests that keep a spec in a repository.

use std::path::Path;
use std::process::Command;

/// Runs `git ARGS` in `dir` with a fixed identity and no user or system
/// configuration, and returns its trimmed output. `Err` when there is no
/// `git` binary (each suite decides whether that skips or fails); panics
/// with git's message when git itself fails.
pub fn git(dir: &Path, args: &[&str]) -> std::io::Result<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=berth test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()?;
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
