//! Small builders tests of every crate share.

use std::io::Write;

/// A deflated zip archive of `files` (path, bytes); a path ending in `/` is a folder entry.
///
/// # Panics
/// If the zip writer fails, which only happens for names it cannot encode: this is for tests.
pub fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, bytes) in files {
        if path.ends_with('/') {
            writer
                .add_directory(*path, options)
                .expect("add a folder entry");
        } else {
            writer
                .start_file(*path, options)
                .expect("start a file entry");
            writer.write_all(bytes).expect("write a file entry");
        }
    }
    writer.finish().expect("finish the zip").into_inner()
}
