//! Typed errors, one enum per operation family.

use std::path::PathBuf;

/// Why a record's bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The record runs past the end of the available bytes.
    #[error("record truncated")]
    Truncated,
    /// The length field is impossible.
    #[error("bad record length {0}")]
    BadLength(usize),
    /// Neither a record nor a blank magic.
    #[error("bad record magic {0:#010x}")]
    BadMagic(u32),
    /// A blank record that does not reach the end of its segment.
    #[error("blank record does not end the segment")]
    BadBlank,
    /// The stored CRC32C does not match the bytes.
    #[error("record CRC mismatch")]
    Crc,
    /// A text field is not UTF-8.
    #[error("record text is not UTF-8")]
    Utf8,
    /// Reserved flag bits are set.
    #[error("record has unknown flag bits")]
    Flags,
    /// A field breaks a format rule (named).
    #[error("record has an invalid {0}")]
    Invalid(&'static str),
}

/// Why a message cannot be appended as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// The body exceeds the configured maximum message size.
    #[error("message body of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Body size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The topic name is empty, too long or has characters outside `[A-Za-z0-9_%|-]`.
    #[error("invalid topic name {0:?}: use 1-127 characters of [A-Za-z0-9_%|-]")]
    Topic(String),
    /// The tag is longer than 65535 bytes.
    #[error("tag of {0} bytes is too long")]
    TagTooLong(usize),
    /// Keys are empty strings or longer than 65535 bytes in total.
    #[error("keys must be non-empty and at most 65535 bytes in total")]
    Keys,
    /// Properties exceed 32 KiB encoded, or a name is empty.
    #[error("properties ({0} bytes encoded) must be at most 32768 bytes with non-empty names")]
    Properties(usize),
    /// Reserved flag bits are set.
    #[error("unknown message flags {0:#x}")]
    Flags(u32),
}

/// Why an append failed. Nothing was written when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The message breaks a format limit.
    #[error(transparent)]
    Invalid(#[from] InvalidMessage),
    /// Disk usage is above the high-water mark, or free space below the reserve kept
    /// for indexing accepted messages; writes are refused until space is freed.
    #[error(
        "disk {used_percent:.1}% used with {free_bytes} bytes free (high-water mark {limit_percent:.1}%, reserve {reserve_bytes} bytes): writes refused until space is freed"
    )]
    DiskFull {
        /// Current usage of the data directory's file system, in percent.
        used_percent: f64,
        /// Configured high-water mark, in percent.
        limit_percent: f64,
        /// Bytes free on the file system.
        free_bytes: u64,
        /// Configured free-space reserve.
        reserve_bytes: u64,
    },
    /// The store cannot make new messages consumable (a queue or index file cannot
    /// be written); it serves reads and accepts writes again once that succeeds.
    #[error("store is read-only: {reason}")]
    ReadOnly {
        /// What failed.
        reason: String,
        /// Whether the cause is a full disk.
        out_of_space: bool,
    },
    /// An earlier I/O failure put the store in fail-stop mode; reopen it.
    #[error("store stopped after an I/O failure ({0}); reopen it to recover")]
    Failed(String),
    /// The store is shutting down.
    #[error("store is closed")]
    Closed,
    /// Creating or mapping a new segment failed.
    #[error("cannot create segment {path}: {source}")]
    Segment {
        /// Segment file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Why opening (and recovering) a store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds a store of another format version, or not a Weir store.
    #[error("{path}: {reason}")]
    Format {
        /// Offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// Another process holds the store's lock.
    #[error("{0} is locked by another process")]
    Locked(PathBuf),
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The offset is outside the retained CommitLog.
    #[error("CommitLog offset {0} is not in the store")]
    OffsetOutOfRange(u64),
    /// The bytes at the offset are not a valid record (corruption).
    #[error("record at CommitLog offset {offset} is invalid: {source}")]
    Corrupt {
        /// CommitLog offset.
        offset: u64,
        /// What is wrong.
        #[source]
        source: DecodeError,
    },
    /// The message id is not of Weir's format.
    #[error("malformed message id {0:?}")]
    BadMessageId(String),
    /// The message id belongs to another store.
    #[error("message id {0} belongs to another store")]
    ForeignMessageId(String),
    /// A queue's files could not be opened or read.
    #[error("cannot read queue files: {0}")]
    Io(String),
}

impl From<std::io::Error> for ReadError {
    fn from(err: std::io::Error) -> Self {
        ReadError::Io(err.to_string())
    }
}

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, OpenError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, OpenError> {
        self.map_err(|source| OpenError::Io { path: path.to_owned(), source })
    }
}
