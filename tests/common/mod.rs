//! Helpers shared by the test crates: a fresh `App`, keys, typing, reading a pipe.

// Each test crate uses its own subset of these.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::thread;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tchat::app::{App, Msg, Role, update};

/// 2024-01-01 12:01:00 UTC.
pub const T0: i64 = 1_704_110_460_000;

/// A joiner's screen, `w`×`h`, in UTC.
pub fn joiner(w: u16, h: u16) -> App {
    App::new(
        Role::Joiner {
            address: "10.0.0.2:7878".into(),
        },
        "alice".into(),
        w,
        h,
        0,
    )
}

/// A host's screen, `w`×`h`, in UTC.
pub fn host(w: u16, h: u16) -> App {
    App::new(
        Role::Host {
            addresses: vec!["192.168.1.5:7878".into(), "[fe80::1]:7878".into()],
        },
        "alice".into(),
        w,
        h,
        0,
    )
}

/// A key press with no modifiers.
pub fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// Type `s` one character at a time; typing alone never asks anything of the world.
pub fn type_str(app: &mut App, s: &str) {
    for c in s.chars() {
        let fx = update(app, key(KeyCode::Char(c)), T0);
        assert!(fx.is_empty(), "typing {c:?} gave {fx:?}");
    }
}

/// Read `r` on a thread, line by line (bytes kept, `\n` included), into a channel that
/// ends when `r` does.
pub fn lines_of(r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// The tests' own config directory: every spawned tchat uses it (so hosts share one
/// host key), with an empty config file, so that no developer's settings change a test.
pub const CONFIG_HOME: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/config");

/// `program` (tchat, or a shell that runs it) with the tests' own config.
pub fn isolated(program: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env("TCHAT_CONFIG", "/dev/null")
        .env("XDG_CONFIG_HOME", CONFIG_HOME);
    cmd
}

/// `tchat --host --headless` on a free loopback port, with an empty config file, plus
/// `extra` arguments; killed and reaped when dropped, so a failing test leaves nothing
/// behind. Its log (stderr) is read on a thread, so the host never blocks writing it.
pub struct Headless {
    child: std::process::Child,
    /// Where it hosts, `127.0.0.1:PORT`.
    pub addr: String,
    log: mpsc::Receiver<Vec<u8>>,
    /// Every line of its log read so far.
    pub logged: Vec<String>,
}

impl Headless {
    pub fn start(extra: &[&str]) -> Headless {
        Headless::start_at(0, extra)
    }

    /// A host on `127.0.0.1:port` (0: any free port).
    pub fn start_at(port: u16, extra: &[&str]) -> Headless {
        Headless::start_in(port, extra, CONFIG_HOME)
    }

    /// A host whose config directory (and so its host key) is `config`.
    pub fn start_in(port: u16, extra: &[&str], config: &str) -> Headless {
        let port = port.to_string();
        let mut child = isolated(env!("CARGO_BIN_EXE_tchat"))
            .env("XDG_CONFIG_HOME", config)
            .args([
                "--host",
                "--headless",
                "--bind",
                "127.0.0.1",
                "--port",
                &port,
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the host");
        let log = lines_of(child.stderr.take().expect("the host's stderr"));
        let mut host = Headless {
            child,
            addr: String::new(),
            log,
            logged: Vec::new(),
        };
        let line = host.wait_log(|l| l.starts_with("tchat: hosting a room at "));
        host.addr = line["tchat: hosting a room at ".len()..].to_owned();
        host
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait (up to 10 s) for a log line that satisfies `pred`; return it.
    pub fn wait_log(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .expect("the host logs the line waited for within 10 s");
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            self.logged.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resident memory in KB, from `/proc/PID/status` (Linux).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A process's open file descriptors, from `/proc/PID/fd` (Linux).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// A process's user + system CPU time, from `/proc/PID/stat` (Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap_or(0.0) + f[12].parse::<f64>().unwrap_or(0.0);
    ticks / 100.0
}

/// A fresh directory for a test's files, removed with what is in it when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir =
            std::env::temp_dir().join(format!("tchat-cli-{}-{tag}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    /// Write `text` to `name` in the directory (making folders on the way); its path.
    pub fn file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create a folder");
        }
        std::fs::write(&path, text).expect("write a file");
        path
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub mod impair;
pub mod joiner;
