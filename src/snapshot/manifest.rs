//! `manifest.json`: what a snapshot holds and the checksum of every file.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One file of a snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// File name inside the snapshot folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex sha256 of the file.
    pub sha256: String,
}

/// The manifest written last into each snapshot folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// infermon version that wrote it.
    pub infermon_version: String,
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Time zone the day is counted in.
    pub timezone: String,
    /// Start of the range, milliseconds (inclusive).
    pub from_ms: i64,
    /// End of the range, milliseconds (exclusive).
    pub to_ms: i64,
    /// Series exported.
    pub series: u64,
    /// Samples exported.
    pub samples: u64,
    /// The data files.
    pub files: Vec<FileEntry>,
    /// When it was written, milliseconds.
    pub created_ms: i64,
}

/// Size and sha256 of a file.
pub fn describe(path: &Path) -> std::io::Result<FileEntry> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileEntry {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

impl Manifest {
    /// Re-hashes every file in `folder` and returns the names that differ.
    pub fn verify(&self, folder: &Path) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| {
                describe(&folder.join(&f.name))
                    .map(|d| d != **f)
                    .unwrap_or(true)
            })
            .map(|f| f.name.clone())
            .collect()
    }
}
