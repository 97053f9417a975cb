//! Which git commit the fleet reflects.
//!
//! When the watched directory is inside a git work tree (kept current by a
//! git sync, for example), the status file and `/metrics` say which commit
//! the spec in force came from (`revision`) and the latest commit seen,
//! valid or not (`attemptedRevision`), in the manner of Flux's
//! `lastAppliedRevision` and `lastAttemptedRevision`. Git is read with gix
//! (discover the repository, resolve `HEAD`), never by running `git`, so
//! nothing outside the process is started and no `git` binary is needed.
//! A directory outside git, or a repository without commits, gives `None`.

use std::path::Path;

/// The commit `HEAD` resolves to in the git work tree holding `dir`, as
/// 40 hex digits; `None` outside git or before the first commit.
pub fn head(dir: &Path) -> Option<String> {
    let repo = gix::discover(dir).ok()?;
    repo.workdir()?;
    let id = repo.head_id().ok()?;
    Some(id.detach().to_hex().to_string())
}

/// The commit in force and the latest commit seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revisions {
    /// Commit of the spec in force.
    pub revision: Option<String>,
    /// Latest commit seen, valid or not.
    pub attempted: Option<String>,
}

impl Revisions {
    /// Takes in the commit checked out now (`head`) and whether the files
    /// on disk are the spec in force (`valid`); returns whether anything
    /// changed.
    pub fn update(&mut self, head: Option<String>, valid: bool) -> bool {
        let before = self.clone();
        if head.is_none() {
            // Outside git (or the repository went away): nothing to say.
            *self = Revisions::default();
        } else {
            if valid {
                self.revision = head.clone();
            }
            self.attempted = head;
        }
        *self != before
    }

    /// Logs a change, naming both commits.
    pub fn log(&self) {
        let short = |r: &Option<String>| {
            r.as_deref()
                .map_or("none".to_string(), |s| s.chars().take(12).collect())
        };
        match (&self.revision, &self.attempted) {
            (_, None) => tracing::info!("the directory is not in a git work tree; no revision"),
            (r, a) if r == a => tracing::info!(
                revision = short(r),
                attempted_revision = short(a),
                "revision {} in force (the latest commit)",
                short(r)
            ),
            (r, a) => tracing::warn!(
                revision = short(r),
                attempted_revision = short(a),
                "commit {} is not in force (its spec is invalid); revision {} stays in force",
                short(a),
                short(r)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revision_follows_valid_commits_only() {
        let mut r = Revisions::default();
        assert!(r.update(Some("a".into()), true));
        assert_eq!(r.revision.as_deref(), Some("a"));
        assert!(!r.update(Some("a".into()), true));
        assert!(r.update(Some("b".into()), false));
        assert_eq!(
            (r.revision.as_deref(), r.attempted.as_deref()),
            (Some("a"), Some("b"))
        );
        assert!(r.update(Some("c".into()), true));
        assert_eq!(
            (r.revision.as_deref(), r.attempted.as_deref()),
            (Some("c"), Some("c"))
        );
        assert!(r.update(None, true));
        assert_eq!(r, Revisions::default());
    }

    #[test]
    fn a_directory_outside_git_has_no_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(head(dir.path()), None);
    }
}
