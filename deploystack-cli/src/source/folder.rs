//! The files of a folder to deploy, with git's ignore rules: every `.gitignore` and
//! `.deployignore` inside the folder, at any depth, read as git reads `.gitignore` (whether
//! or not the folder is a git repository). `.deployignore` is read after `.gitignore` and
//! wins over it, so `!dist/` in `.deployignore` sends a `dist/` that git ignores — the
//! built output one deploys but never commits. Rules above the folder, git's global
//! excludes and `.git/info/exclude` are not read: what a deploy sends depends on the folder
//! alone. `node_modules`, `.git` and `.deploystack` are never sent, whatever the rules say.
//! Hidden files are sent (`.well-known/`, `_headers`-style dotfiles) unless a rule says
//! otherwise; symbolic links are not followed, and are reported as skipped.

use std::path::Path;

use ignore::WalkBuilder;

use super::{MODE_EXECUTABLE, MODE_FILE, NEVER_SENT, Origin, Source, SourceFile};
use crate::exit::CliError;

/// The name of the ignore file of deployments, beside `.gitignore`.
pub const DEPLOYIGNORE: &str = ".deployignore";

/// The files of the folder `root`, sorted by path.
pub fn read(root: &Path) -> Result<Source, CliError> {
    let mut source = Source::default();
    let walk = WalkBuilder::new(root)
        .standard_filters(false)
        .git_ignore(true)
        .require_git(false)
        .parents(false)
        .add_custom_ignore_filename(DEPLOYIGNORE)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| {
            entry.depth() == 0
                || !entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| NEVER_SENT.contains(&name))
        })
        .build();
    for entry in walk {
        let entry =
            entry.map_err(|err| CliError::local(format!("reading {}", root.display()), err))?;
        let Some(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            continue;
        }
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let path = relative_path(relative)?;
        if !kind.is_file() {
            // Symbolic links and special files: never followed.
            source.skipped.push(path);
            continue;
        }
        let metadata = entry
            .metadata()
            .map_err(|err| CliError::local(format!("reading {}", entry.path().display()), err))?;
        source.files.push(SourceFile {
            path,
            size: metadata.len(),
            mode: mode_of(&metadata),
            origin: Origin::Disk(entry.path().to_path_buf()),
        });
    }
    source.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(source)
}

/// `relative` as a `/`-separated UTF-8 path, or an error naming the file.
fn relative_path(relative: &Path) -> Result<String, CliError> {
    let mut parts = Vec::new();
    for component in relative.components() {
        let part = component.as_os_str().to_str().ok_or_else(|| {
            CliError::usage(format!(
                "{} has a name that is not UTF-8, which URLs cannot carry",
                relative.display()
            ))
            .with_hint(format!("rename it, or list it in {DEPLOYIGNORE}"))
        })?;
        parts.push(part);
    }
    Ok(parts.join("/"))
}

#[cfg(unix)]
fn mode_of(metadata: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    if metadata.permissions().mode() & 0o100 != 0 {
        MODE_EXECUTABLE
    } else {
        MODE_FILE
    }
}

#[cfg(not(unix))]
fn mode_of(_metadata: &std::fs::Metadata) -> u32 {
    MODE_FILE
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn paths(root: &Path) -> Vec<String> {
        read(root)
            .unwrap()
            .files
            .into_iter()
            .map(|f| f.path)
            .collect()
    }

    #[test]
    fn gitignore_and_deployignore_rules_apply_and_deployignore_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "index.html", "<h1>");
        write(root, ".gitignore", "dist/\n*.log\nsecret.txt\n");
        write(root, ".deployignore", "!dist/\ndrafts/\n");
        write(root, "dist/app.js", "x");
        write(root, "debug.log", "x");
        write(root, "secret.txt", "x");
        write(root, "drafts/post.md", "x");
        write(root, "blog/.gitignore", "*.tmp\n");
        write(root, "blog/a.tmp", "x");
        write(root, "blog/a.md", "x");
        write(root, ".well-known/security.txt", "x");
        assert_eq!(
            paths(root),
            vec![
                ".deployignore",
                ".gitignore",
                ".well-known/security.txt",
                "blog/.gitignore",
                "blog/a.md",
                "dist/app.js",
                "index.html",
            ]
        );
    }

    #[test]
    fn node_modules_git_and_the_link_are_never_sent_even_when_a_rule_asks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "index.html", "x");
        write(root, ".deployignore", "!node_modules/\n");
        write(root, "node_modules/react/index.js", "x");
        write(root, "packages/a/node_modules/b.js", "x");
        write(root, ".git/HEAD", "x");
        write(root, ".deploystack/project.json", "{}");
        assert_eq!(paths(root), vec![".deployignore", "index.html"]);
    }

    #[test]
    fn rules_above_the_folder_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".gitignore", "site/\n*.html\n");
        write(dir.path(), "site/index.html", "x");
        assert_eq!(paths(&dir.path().join("site")), vec!["index.html"]);
    }

    #[cfg(unix)]
    #[test]
    fn modes_keep_the_owner_execute_bit_and_links_are_skipped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "build.sh", "#!/bin/sh");
        fs::set_permissions(root.join("build.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        write(root, "index.html", "hello");
        std::os::unix::fs::symlink(root.join("index.html"), root.join("link.html")).unwrap();
        let source = read(root).unwrap();
        let modes: Vec<(&str, u32, u64)> = source
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.mode, f.size))
            .collect();
        assert_eq!(
            modes,
            vec![
                ("build.sh", MODE_EXECUTABLE, 9),
                ("index.html", MODE_FILE, 5)
            ]
        );
        assert_eq!(source.skipped, vec!["link.html"]);
    }
}
