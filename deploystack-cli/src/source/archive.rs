//! The files of a zip archive given as the PATH to deploy: its entries are hashed and sent
//! like a folder's files, so a redeploy of a new zip sends only what changed.
//!
//! The archive is read as the server reads an uploaded one: a zip whose files all sit in
//! one top-level folder (GitHub's "Download ZIP", Finder's "Compress") deploys that folder's
//! contents; folders, symbolic links, and anything under `node_modules`, `.git` or
//! `.deploystack` are left out. Unsafe names (absolute, `..`) are refused here rather than
//! sent for the server to refuse.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{MODE_EXECUTABLE, MODE_FILE, Origin, Source, SourceFile, never_sent};
use crate::exit::CliError;

/// Whether the file at `path` starts like a zip archive (`PK\x03\x04`, or `PK\x05\x06` for
/// an empty one).
pub fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06")
}

/// The files of the zip archive at `path`, sorted by path.
pub fn read(path: &Path) -> Result<Source, CliError> {
    let failed = |err: &dyn std::fmt::Display| {
        CliError::usage(format!(
            "{} is not a readable zip archive: {err}",
            path.display()
        ))
    };
    let file = File::open(path)
        .map_err(|err| CliError::local(format!("reading {}", path.display()), err))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|err| failed(&err))?;
    let mut source = Source {
        archive: Some(path.to_path_buf()),
        ..Source::default()
    };
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|err| failed(&err))?;
        let name = entry
            .name()
            .map_err(|err| failed(&err))?
            .trim_start_matches("./")
            .to_owned();
        if entry.is_dir() || name.is_empty() {
            continue;
        }
        if entry.enclosed_name().is_none() || name.starts_with('/') {
            return Err(CliError::usage(format!(
                "{} has an entry with an unsafe path: {name:?}",
                path.display()
            ))
            .with_hint(
                "rebuild the archive from inside the folder: (cd site && zip -r ../site.zip .)",
            ));
        }
        let mode = entry.unix_mode().unwrap_or(0o644);
        if entry.is_symlink() {
            source.skipped.push(name);
            continue;
        }
        if never_sent(&name) {
            continue;
        }
        source.files.push(SourceFile {
            path: name,
            size: entry.size(),
            mode: if mode & 0o100 != 0 {
                MODE_EXECUTABLE
            } else {
                MODE_FILE
            },
            origin: Origin::Entry(index),
        });
    }
    strip_single_folder(&mut source.files);
    source.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(source)
}

/// When every file sits in one top-level folder, the paths inside it.
fn strip_single_folder(files: &mut [SourceFile]) {
    let Some(first) = files.first() else {
        return;
    };
    let Some((folder, _)) = first.path.split_once('/') else {
        return;
    };
    let prefix = format!("{folder}/");
    if files.iter().all(|f| f.path.starts_with(&prefix)) {
        for file in files.iter_mut() {
            file.path = file.path[prefix.len()..].to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;

    use super::*;

    fn zip_at(path: &Path, entries: &[(&str, &[u8], u32)]) {
        let mut writer = zip::ZipWriter::new(File::create(path).unwrap());
        for (name, bytes, mode) in entries {
            if name.ends_with('/') {
                writer
                    .add_directory(*name, SimpleFileOptions::default())
                    .unwrap();
                continue;
            }
            writer
                .start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
                .unwrap();
            writer.write_all(bytes).unwrap();
        }
        writer.finish().unwrap();
    }

    #[test]
    fn entries_are_files_with_sizes_and_modes_and_dependencies_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.zip");
        zip_at(
            &path,
            &[
                ("css/", b"", 0o755),
                ("index.html", b"<h1>hi</h1>", 0o644),
                ("css/a.css", b"h1{}", 0o644),
                ("run.sh", b"#!", 0o755),
                ("node_modules/x.js", b"x", 0o644),
                (".git/HEAD", b"x", 0o644),
            ],
        );
        assert!(is_zip(&path));
        let source = read(&path).unwrap();
        let files: Vec<(&str, u64, u32)> = source
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.size, f.mode))
            .collect();
        assert_eq!(
            files,
            vec![
                ("css/a.css", 4, MODE_FILE),
                ("index.html", 11, MODE_FILE),
                ("run.sh", 2, MODE_EXECUTABLE),
            ]
        );
        let mut opener = source.opener();
        let mut text = String::new();
        opener
            .open(&source.files[1])
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "<h1>hi</h1>");
    }

    #[test]
    fn one_top_level_folder_is_deployed_from_inside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.zip");
        zip_at(
            &path,
            &[
                ("site-main/index.html", b"x", 0o644),
                ("site-main/a/b.css", b"y", 0o644),
            ],
        );
        let paths: Vec<String> = read(&path)
            .unwrap()
            .files
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(paths, vec!["a/b.css", "index.html"]);
    }

    #[test]
    fn an_unsafe_entry_or_a_file_that_is_not_a_zip_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("evil.zip");
        zip_at(&path, &[("../escape.html", b"x", 0o644)]);
        let err = read(&path).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE);
        assert!(err.message().contains("unsafe path"), "{err}");

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        assert!(!is_zip(&text));
        let err = Source::read(&text).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::USAGE);
    }
}
