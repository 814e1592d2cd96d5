//! Which project a folder deploys to: `deploystack link NAME` writes
//! `.deploystack/project.json` in the folder, and every later command run in it (or in a
//! folder below it) uses that project when no `--project` is given, as `vercel link` does.
//! The `.deploystack` folder itself is never uploaded.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit::CliError;

/// The folder a link lives in, inside the linked folder.
pub const DIR: &str = ".deploystack";
/// The link file's name inside [`DIR`].
pub const FILE: &str = "project.json";

/// What the link file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The project's name.
    pub project: String,
}

/// A link found on disk: the project and the file that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The link.
    pub link: Link,
    /// The file it was read from.
    pub path: PathBuf,
}

/// The link of `dir` or of the nearest folder above it that has one.
pub fn find(dir: &Path) -> Result<Option<Found>, CliError> {
    for folder in dir.ancestors() {
        let path = folder.join(DIR).join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                continue;
            }
            Err(err) => return Err(CliError::local(format!("reading {}", path.display()), err)),
        };
        let link: Link = serde_json::from_str(&text).map_err(|err| {
            CliError::local(format!("reading {}", path.display()), err)
                .with_hint("run `deploystack link NAME` again to rewrite it")
        })?;
        return Ok(Some(Found { link, path }));
    }
    Ok(None)
}

/// Link `dir` to `project`; returns the file written.
pub fn write(dir: &Path, project: &str) -> Result<PathBuf, CliError> {
    let folder = dir.join(DIR);
    let path = folder.join(FILE);
    let failed = |err: std::io::Error| CliError::local(format!("writing {}", path.display()), err);
    fs::create_dir_all(&folder).map_err(failed)?;
    let link = Link {
        project: project.to_owned(),
    };
    let text =
        serde_json::to_string_pretty(&link).map_err(|err| CliError::local("encoding", err))?;
    fs::write(&path, format!("{text}\n")).map_err(failed)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_found_from_its_folder_and_every_folder_below() {
        let root = tempfile::tempdir().unwrap();
        let below = root.path().join("src").join("pages");
        fs::create_dir_all(&below).unwrap();
        assert_eq!(find(&below).unwrap(), None);

        let written = write(root.path(), "shop").unwrap();
        assert_eq!(written, root.path().join(".deploystack/project.json"));
        for dir in [root.path(), below.as_path()] {
            let found = find(dir).unwrap().unwrap();
            assert_eq!(found.link.project, "shop");
            assert_eq!(found.path, written);
        }
        // The nearest link wins.
        write(&below, "blog").unwrap();
        assert_eq!(find(&below).unwrap().unwrap().link.project, "blog");
    }

    #[test]
    fn a_damaged_link_is_an_error_that_says_how_to_fix_it() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join(DIR)).unwrap();
        fs::write(root.path().join(DIR).join(FILE), "{").unwrap();
        let err = find(root.path()).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::LOCAL);
        assert!(err.hint().unwrap().contains("deploystack link"));
    }
}
