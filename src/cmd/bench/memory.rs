//! A process's memory as Linux reports it in `/proc/<pid>/status`, for the benchmarks that
//! watch a broker's footprint.

use anyhow::Context as _;

/// One reading of a process's resident memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// Everything resident (`VmRSS`): the heap, and the file pages it maps (the
    /// CommitLog's pages count once touched).
    pub rss: u64,
    /// Resident anonymous memory (`RssAnon`): the heap and stacks, what connections and
    /// held requests cost.
    pub anon: u64,
}

impl Memory {
    /// Reads process `pid`'s memory; an error when it is gone.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("process {pid} is not running"))?;
        Self::parse(&status).with_context(|| format!("no memory figures in /proc/{pid}/status"))
    }

    fn parse(status: &str) -> Option<Self> {
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|line| line.starts_with(name))?;
            let kib: u64 = line[name.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        };
        Some(Memory { rss: field("VmRSS:")?, anon: field("RssAnon:")? })
    }
}

/// Whether process `pid` is alive: it exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) state ...`; comm may hold spaces and parentheses, the state follows the last `)`.
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some(state) if state != 'Z' && state != 'X')
}

/// Bytes as MiB, for reports.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_and_anonymous_memory() {
        let status = "Name:\tweir\nVmRSS:\t  204800 kB\nRssAnon:\t   10240 kB\nRssFile:\t  194560 kB\n";
        assert_eq!(Memory::parse(status), Some(Memory { rss: 200 << 20, anon: 10 << 20 }));
        assert_eq!(Memory::parse("Name:\tweir\n"), None);
    }

    #[test]
    fn this_process_is_alive_and_has_memory() {
        let pid = std::process::id();
        assert!(alive(pid));
        assert!(Memory::of(pid).expect("own status").anon > 0);
        assert!(!alive(u32::MAX));
    }
}
