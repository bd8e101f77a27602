//! Which dead letters were resent, in the journal `<data_dir>/dlq_resent.log`
//! (`<group>/<dead letter's msg id>` → the resent message's id and when), so a resend
//! is done once: a second one answers "already resent".
//!
//! A resend appends the message to its topic, then records it here; both are durable
//! before the answer. A crash between the two (after the append, before the record)
//! leaves the dead letter unmarked, and a later resend sends it again: at least once.

use std::collections::BTreeMap;
use std::path::Path;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::journal::{COMPACT_FLOOR, Journal, JournalError};
use crate::core::CoreError;

/// A dead letter that was resent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResentMark {
    /// The id of the message stored on the original topic.
    pub new_msg_id: String,
    /// When, Unix ms.
    pub at_ms: u64,
}

struct State {
    journal: Journal<ResentMark>,
    marks: BTreeMap<String, ResentMark>,
}

/// The resent dead letters of every group.
pub struct ResentLog {
    state: Mutex<State>,
}

impl std::fmt::Debug for ResentLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResentLog").field("marks", &self.state.lock().marks.len()).finish()
    }
}

fn key(group: &str, msg_id: &str) -> String {
    format!("{group}/{msg_id}")
}

impl ResentLog {
    /// Opens (or creates) the journal in `data_dir`, forgetting the marks of dead letters
    /// for which `retained(msg_id)` is false (retention removed them).
    pub fn open(data_dir: &Path, retained: impl Fn(&str) -> bool) -> std::io::Result<Self> {
        let (mut journal, mut marks) = Journal::open(data_dir.join("dlq_resent.log"), COMPACT_FLOOR)?;
        let gone: Vec<String> =
            marks.keys().filter(|k| k.rsplit_once('/').is_none_or(|(_, id)| !retained(id))).cloned().collect();
        for name in gone {
            match journal.delete(&name) {
                Ok(()) => {
                    marks.remove(&name);
                }
                Err(err) => tracing::warn!(%err, "cannot forget a resent mark; it stays"),
            }
        }
        if journal.compaction_due(marks.len())
            && let Err(err) = journal.compact(&marks)
        {
            tracing::warn!(%err, "cannot compact the resent journal");
        }
        Ok(Self { state: Mutex::new(State { journal, marks }) })
    }

    /// The mark of `group`'s dead letter `msg_id`, if it was resent.
    pub fn get(&self, group: &str, msg_id: &str) -> Option<ResentMark> {
        self.state.lock().marks.get(&key(group, msg_id)).cloned()
    }

    /// Records that `group`'s dead letter `msg_id` was resent. Blocks on the fsync.
    pub fn mark(&self, group: &str, msg_id: &str, mark: ResentMark) -> Result<(), CoreError> {
        let name = key(group, msg_id);
        let mut state = self.state.lock();
        state.journal.put(&name, &mark).map_err(persist_error)?;
        state.marks.insert(name, mark);
        let State { journal, marks } = &mut *state;
        if journal.compaction_due(marks.len())
            && let Err(err) = journal.compact(marks)
        {
            tracing::warn!(%err, "cannot compact the resent journal; it grows until a later compaction succeeds");
        }
        Ok(())
    }
}

fn persist_error(err: JournalError) -> CoreError {
    CoreError::metadata("cannot record a resend", std::io::Error::other(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_persist_and_marks_of_removed_dead_letters_are_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = ResentLog::open(dir.path(), |_| true).expect("open");
        assert_eq!(log.get("g", "A"), None);
        let mark = ResentMark { new_msg_id: "N".into(), at_ms: 5 };
        log.mark("g", "A", mark.clone()).expect("mark");
        log.mark("g", "B", mark.clone()).expect("mark");
        drop(log);
        let log = ResentLog::open(dir.path(), |id| id == "A").expect("reopen");
        assert_eq!(log.get("g", "A"), Some(mark));
        assert_eq!(log.get("g", "B"), None, "B's dead letter is gone");
        assert_eq!(log.get("other", "A"), None);
    }
}
