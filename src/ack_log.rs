//! The ack log: one JSON line per acknowledged append, written as soon as the
//! append returns success (under sync flush: after it is durable), so a test
//! that kills the writer knows exactly which messages must survive.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// One acknowledged message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// Message id as the store returned it.
    pub msg_id: String,
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Queue offset.
    pub queue_offset: u64,
}

/// A shared ack-log writer; each line reaches the OS before `record` returns.
pub struct AckLog {
    out: Mutex<BufWriter<File>>,
}

impl AckLog {
    /// Creates (truncating) the log at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("cannot create ack log {}", path.display()))?;
        Ok(Self { out: Mutex::new(BufWriter::new(file)) })
    }

    /// Appends one line and hands it to the OS (so it survives the process being killed).
    pub fn record(&self, ack: &Ack) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(ack)?;
        line.push(b'\n');
        let mut out = self.out.lock();
        out.write_all(&line)?;
        out.flush()?;
        Ok(())
    }
}

/// Reads an ack log. A torn last line (the writer was killed mid-write) is
/// ignored; any other malformed line is an error.
pub fn read(path: &Path) -> anyhow::Result<Vec<Ack>> {
    let file = File::open(path).with_context(|| format!("cannot open ack log {}", path.display()))?;
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let mut acks = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(ack) => acks.push(ack),
            Err(_) if i + 1 == lines.len() => {}
            Err(err) => anyhow::bail!("{}:{}: malformed ack line: {err}", path.display(), i + 1),
        }
    }
    Ok(acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_a_torn_last_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acks");
        let log = AckLog::create(&path).expect("create");
        let ack = Ack { msg_id: "ID".into(), topic: "t".into(), queue_id: 1, queue_offset: 2 };
        log.record(&ack).expect("record");
        drop(log);
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("{\"msg_id\":\"I");
        std::fs::write(&path, &text).expect("write");
        assert_eq!(read(&path).expect("read"), [ack]);
        std::fs::write(&path, format!("garbage\n{text}")).expect("write");
        assert!(read(&path).is_err());
    }
}
