//! A `weir broker` child process and helpers the end-to-end tests of the `weir`
//! binary share.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_client::{Client, ClientConfig};

/// The `weir` binary under test.
pub fn weir() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weir"))
}

/// A `weir broker` child process and how to reach it.
pub struct BrokerProcess {
    pub child: Child,
    pub addr: String,
    pub ca: PathBuf,
    pub data_dir: PathBuf,
}

impl BrokerProcess {
    /// A broker on a free port over `data_dir`.
    pub fn start(data_dir: &Path, flush: &str) -> Self {
        Self::start_with(data_dir, flush, &[])
    }

    /// [`start`](Self::start) with extra `weir broker` arguments.
    pub fn start_with(data_dir: &Path, flush: &str, extra: &[&str]) -> Self {
        // A free UDP port: bind, read, release (a tiny race a test can live with).
        let port = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        Self::start_on(data_dir, flush, format!("127.0.0.1:{port}"), extra)
    }

    /// A broker on `addr` over `data_dir`.
    pub fn start_on(data_dir: &Path, flush: &str, addr: String, extra: &[&str]) -> Self {
        let child = weir()
            .args(["broker", "--listen", &addr, "--flush", flush])
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn broker");
        let broker = Self { child, addr, ca: data_dir.join("tls/cert.pem"), data_dir: data_dir.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !broker.cli(&["status"]).status.success() {
            assert!(Instant::now() < deadline, "broker did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// `weir` with `args`, pointed at this broker.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = weir();
        cmd.args(args).env("WEIR_BROKER", &self.addr).env("WEIR_CA", &self.ca);
        cmd
    }

    /// Runs `weir` with `args` against this broker.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run weir")
    }

    /// Runs a command that must succeed and returns its JSON lines.
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
    }

    /// Runs a command that must fail and returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A client of this broker, connected on `runtime`.
    pub fn client(&self, runtime: &tokio::runtime::Runtime) -> Client {
        let config = ClientConfig::default().with_broker(self.addr.clone()).with_ca_file(self.ca.clone());
        runtime.block_on(Client::connect(config)).expect("connect")
    }

    /// Sends `signal` (e.g. `KILL`) to the broker.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON lines of a successful command's output.
pub fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "command failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}
