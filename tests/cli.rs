//! The `tchat` program as a script or a person at a shell meets it: the real binary,
//! run with pipes for stdin, stdout and stderr (so in line mode, with no terminal), and
//! talked to over loopback TCP by plain sockets standing in for `nc`.
//!
//! Every wait is a condition with a deadline, read from threads that own the pipes and
//! sockets; a timeout panics with everything seen so far. Every child process is killed
//! and reaped when its guard drops. Only loopback addresses are used.

mod common;

use common::TempDir;

use common::lines_of;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tchat");

/// How long any one condition may take to come true.
const DEADLINE: Duration = Duration::from_secs(10);

/// How often a process is polled for its exit.
const POLL: Duration = Duration::from_millis(10);

/// What a headless host, or a joiner, is told when the room closes.
const CLOSED: &str = "*** the host left; the room is closed";

// ---------------------------------------------------------------------------------------
// Helpers.

/// Lines read from a pipe or a socket by a thread, kept as bytes.
struct Lines {
    what: String,
    rx: Receiver<Vec<u8>>,
    seen: Vec<Vec<u8>>,
    eof: bool,
}

impl Lines {
    fn of(what: &str, r: impl Read + Send + 'static) -> Lines {
        Lines {
            what: what.to_owned(),
            rx: lines_of(r),
            seen: Vec::new(),
            eof: false,
        }
    }

    /// Everything seen so far, as text.
    fn text(&self) -> String {
        self.seen
            .iter()
            .map(|l| String::from_utf8_lossy(l))
            .collect()
    }

    /// Everything seen so far, as bytes.
    fn bytes(&self) -> Vec<u8> {
        self.seen.concat()
    }

    /// Wait for a line (without its line ending) that satisfies `pred`, and return it.
    fn wait(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let why = match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned();
                    self.seen.push(line);
                    if pred(&text) {
                        return text;
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => format!("not within {DEADLINE:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    "it ended first".to_owned()
                }
            };
            panic!(
                "{}: no line with {what} ({why}); seen:\n{}",
                self.what,
                self.text()
            );
        }
    }

    /// Wait for exactly this line.
    fn wait_for(&mut self, line: &str) -> String {
        self.wait(&format!("{line:?}"), |l| l == line)
    }

    /// Read on until the far side closes.
    fn wait_eof(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => self.eof = true,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: still open after {DEADLINE:?}; seen:\n{}",
                    self.what,
                    self.text()
                ),
            }
        }
    }
}

/// A running `tchat`, killed and reaped when dropped.
struct Tchat {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Lines,
    err: Lines,
    /// Set once the process has exited.
    status: Option<ExitStatus>,
}

impl Tchat {
    fn spawn(name: &str, args: &[&str]) -> Tchat {
        Tchat::spawn_env(name, args, &[])
    }

    /// Like [`Tchat::spawn`], with environment variables set (`Some`) or removed
    /// (`None`). Unless `env` says otherwise, the config file is an empty one
    /// (`TCHAT_CONFIG=/dev/null`), so that the tester's own plays no part.
    fn spawn_env(name: &str, args: &[&str], env: &[(&str, Option<&str>)]) -> Tchat {
        Tchat::spawn_program(name, BIN, args, env)
    }

    /// Another program (a shell running tchat in a pipeline), watched the same way.
    fn spawn_cmd(name: &str, program: &str, args: &[&str]) -> Tchat {
        Tchat::spawn_program(name, program, args, &[])
    }

    fn spawn_program(
        name: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, Option<&str>)],
    ) -> Tchat {
        // Hosts share one config directory, so one host key (a restarted host is the
        // same host). Each joiner gets its own: its `known_hosts` would otherwise remember
        // another test's TLS host at a port a plain server now has, and rightly refuse to
        // talk to it in clear.
        let config_home = if args.contains(&"--join") {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            format!(
                "{}/joiner-{}-{}",
                env!("CARGO_TARGET_TMPDIR"),
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )
        } else {
            common::CONFIG_HOME.to_owned()
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LOG")
            .env("TCHAT_CONFIG", "/dev/null")
            .env("XDG_CONFIG_HOME", &config_home);
        for (k, v) in env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tchat");
        let stdin = child.stdin.take();
        let out = Lines::of(
            &format!("{name}'s stdout"),
            child.stdout.take().expect("stdout"),
        );
        let err = Lines::of(
            &format!("{name}'s stderr"),
            child.stderr.take().expect("stderr"),
        );
        Tchat {
            child,
            stdin,
            out,
            err,
            status: None,
        }
    }

    /// Type `text` on its stdin.
    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(text.as_bytes()).expect("write to tchat");
        stdin.flush().expect("flush to tchat");
    }

    fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Send a signal by name (`TERM`, `INT`) with kill(1).
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{sig} failed: {status:?}");
    }

    fn wait_exit_within(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait().expect("try_wait") {
                Some(status) => {
                    self.status = Some(status);
                    return status;
                }
                None if Instant::now() < deadline => thread::sleep(POLL),
                None => panic!(
                    "tchat did not exit within {within:?}\nstdout:\n{}\nstderr:\n{}",
                    self.out.text(),
                    self.err.text()
                ),
            }
        }
    }

    /// Wait for the exit, then read stdout and stderr to their ends.
    fn finish_within(&mut self, within: Duration) -> ExitStatus {
        let status = self.wait_exit_within(within);
        self.out.wait_eof();
        self.err.wait_eof();
        status
    }

    fn finish(&mut self) -> ExitStatus {
        self.finish_within(DEADLINE)
    }
}

impl Drop for Tchat {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Run `tchat ARGS` with an empty stdin to its end.
fn run(args: &[&str]) -> Tchat {
    run_env(args, &[])
}

/// [`run`], with environment variables as [`Tchat::spawn_env`] takes them.
fn run_env(args: &[&str], env: &[(&str, Option<&str>)]) -> Tchat {
    let mut t = Tchat::spawn_env("tchat", args, env);
    t.close_stdin();
    t.finish();
    t
}

/// Wait for a host's "hosting a room at …" line; it, and the port it names.
fn hosting(host: &mut Tchat) -> (String, u16) {
    let line = host.err.wait("the room's address", |l| {
        l.starts_with("tchat: hosting a room at ")
    });
    let port = line
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (line, port)
}

/// A plain TCP peer, as `nc` would be.
struct Peer {
    stream: TcpStream,
    lines: Lines,
}

impl Peer {
    fn connect(addr: SocketAddr) -> Peer {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect to the room");
        Peer::on(&format!("peer of {addr}"), stream)
    }

    fn on(what: &str, stream: TcpStream) -> Peer {
        let lines = Lines::of(what, stream.try_clone().expect("clone socket"));
        Peer { stream, lines }
    }

    /// Connect to a tchat room, say `first`, and wait until seated (as a guest).
    fn seated(addr: SocketAddr, first: &[u8]) -> Peer {
        let mut p = Peer::greeted(addr);
        p.send(first);
        p.lines
            .wait("the welcome", |l| l.starts_with("*** you are guest"));
        p
    }

    /// Connect to a tchat room and read its greeting.
    fn greeted(addr: SocketAddr) -> Peer {
        let mut p = Peer::connect(addr);
        p.lines
            .wait("the tchat greeting", |l| l.starts_with("* tchat/1 "));
        p
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Also ends the reading thread's clone.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// `tchat --host --headless --bind IP --port 0`, with the port it reports.
fn headless(ip: &str) -> (Tchat, SocketAddr) {
    headless_on(ip, 0)
}

/// `tchat --host --headless --bind IP --port PORT` (0: any free port), with the address
/// it reports.
fn headless_on(ip: &str, port: u16) -> (Tchat, SocketAddr) {
    let asked = port;
    let mut host = Tchat::spawn(
        "host",
        &[
            "--host",
            "--headless",
            "--bind",
            ip,
            "--port",
            &asked.to_string(),
        ],
    );
    let (line, port) = hosting(&mut host);
    assert_ne!(port, 0, "{line:?}");
    if asked != 0 {
        assert_eq!(port, asked, "{line:?}");
    }
    let ip: std::net::IpAddr = ip.parse().expect("an IP");
    let addr = SocketAddr::new(ip, port);
    assert_eq!(line, format!("tchat: hosting a room at {addr}"));
    (host, addr)
}

/// A port nothing listens on (just now).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local_addr").port()
}

fn assert_no_panic(what: &str, text: &str) {
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(!text.contains(bad), "{what} mentions {bad:?}:\n{text}");
    }
}

fn assert_no_escape(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b),
        "an ESC byte in {what}: {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// The program failed to start: non-zero status, nothing on stdout, one line on stderr
/// that starts with `tchat: ` and holds every one of `needles`. Returns the line.
fn assert_clean_failure(t: &Tchat, needles: &[&str]) -> String {
    let status = t.status.expect("run to its end");
    let err = t.err.text();
    assert!(!status.success(), "exit status {status:?}; stderr:\n{err}");
    assert_no_panic("stderr", &err);
    assert_no_escape("stderr", &t.err.bytes());
    assert_eq!(t.out.text(), "", "stdout should be empty");
    assert_eq!(t.err.seen.len(), 1, "one line on stderr, not:\n{err}");
    let line = err.strip_suffix('\n').expect("the line ends in a newline");
    assert!(line.starts_with("tchat: "), "{line:?}");
    for needle in needles {
        assert!(line.contains(needle), "{line:?} should mention {needle:?}");
    }
    line.to_owned()
}

// ---------------------------------------------------------------------------------------
// 1. Failing to start: one clear line.

#[test]
fn port_in_use_is_one_clear_line() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("local_addr").port();
    let t = run(&[
        "--host",
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--plain",
    ]);
    assert_clean_failure(&t, &[&format!("127.0.0.1:{port}"), "in use"]);
    drop(taken);
}

#[test]
fn connection_refused_is_one_clear_line() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let t = run(&["--join", &addr]);
    assert_clean_failure(&t, &[&addr, "refused"]);
}

#[test]
fn unknown_host_is_one_clear_line() {
    let started = Instant::now();
    let mut t = Tchat::spawn("joiner", &["--join", "no-such-host.invalid"]);
    t.close_stdin();
    // The connect timeout is 10 s; a resolver that hangs must not hang tchat longer.
    t.finish_within(Duration::from_secs(13));
    let took = started.elapsed();
    assert_clean_failure(&t, &["no-such-host.invalid"]);
    assert!(took < Duration::from_secs(12), "took {took:?}");
}

#[test]
fn a_bad_port_in_the_join_address_is_one_clear_line() {
    let t = run(&["--join", "host:99999"]);
    assert_clean_failure(&t, &["99999", "port"]);
}

#[test]
fn bad_arguments_get_one_clear_line_and_status_2() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "--host"),
        (&["--host", "--join", "x"], "cannot be used with"),
        (&["--host", "--port", "notaport"], "notaport"),
        (&["--host", "--port", "70000"], "70000"),
        (&["--host", "--bind", "nope"], "nope"),
        (&["--headless"], "--host"),
        (&["--join"], "--join"),
        (&["--host", "--frobnicate"], "--frobnicate"),
        (&["--host", "--bell", "loud"], "loud"),
        (&["--host", "--headless", "--log", "chat.log"], "--log"),
        (&["--host", "--man"], "--man"),
        (&["--completions", "tcsh"], "tcsh"),
    ];
    for (args, needle) in cases {
        let t = run(args);
        let err = t.err.text();
        let status = t.status.expect("finished");
        assert_eq!(status.code(), Some(2), "tchat {args:?}: {status:?}\n{err}");
        assert!(err.starts_with("tchat: "), "tchat {args:?}:\n{err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one line: tchat {args:?}:\n{err}"
        );
        assert!(
            err.contains(needle),
            "tchat {args:?} should name {needle:?}:\n{err}"
        );
        assert!(
            err.contains("--help"),
            "tchat {args:?}: no pointer to --help:\n{err}"
        );
        assert_no_panic(&format!("tchat {args:?}"), &err);
        assert_no_escape(&format!("tchat {args:?}"), &t.err.bytes());
        assert_eq!(t.out.text(), "", "tchat {args:?} wrote to stdout");
    }
}

/// Every option that only means something to a host is a usage error with `--join`,
/// rather than silently ignored (`tchat --join HOST --port 9000` joining port 7878).
#[test]
fn host_only_options_are_refused_with_join() {
    let addr = format!("127.0.0.1:{}", free_port());
    for extra in [
        &["--headless"][..],
        &["--port", "9000"],
        &["--bind", "127.0.0.1"],
        &["--max-line", "100"],
        &["--burst", "5"],
        &["--rate", "2"],
        &["--max-backlog", "65536"],
        &["--max-peers", "10"],
        &["--history", "50"],
    ] {
        let mut args = vec!["--join", addr.as_str()];
        args.extend_from_slice(extra);
        let t = run(&args);
        let status = t.status.expect("finished");
        assert_eq!(
            status.code(),
            Some(2),
            "tchat {args:?} should be a usage error; stderr:\n{}",
            t.err.text()
        );
    }
}

/// With no `--bind`, a host takes IPv6 and IPv4 both: `--join [::1]:P` (as the README
/// shows) and `nc 127.0.0.1 P` reach the same room.
#[test]
fn the_default_bind_takes_ipv6_and_ipv4_both() {
    let mut host = Tchat::spawn("host", &["--host", "--headless", "--port", "0"]);
    let (line, port) = hosting(&mut host);
    let mut v4 = Peer::seated(SocketAddr::from(([127, 0, 0, 1], port)), b"from v4\n");
    let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let mut v6 = Peer::greeted(v6);
    v6.send(b"from v6\n");
    v6.lines.wait_for("guest: from v4");
    v4.lines.wait_for("guest2: from v6");
    // The addresses to share include IPv4 ones, for the many without IPv6.
    assert!(line.contains('.'), "{line}");
}

#[test]
fn a_keep_file_that_is_not_a_room_or_is_taken_is_one_clear_line() {
    let dir = TempDir::new("keep");
    let notes = dir.file(
        "notes.txt",
        "a shopping list, not a room, long enough to tell",
    );
    let notes = notes.display().to_string();
    let t = run(&["--host", "--headless", "--port", "0", "--keep", &notes]);
    assert_clean_failure(
        &t,
        &[
            "cannot keep the room in",
            "notes.txt",
            "not a tchat room file",
        ],
    );
    // A file another host keeps its room in.
    let room = dir.path("room.db");
    let mut first = Tchat::spawn(
        "first host",
        &["--host", "--headless", "--port", "0", "--keep", &room],
    );
    first.err.wait("the hosting line", |l| {
        l.starts_with("tchat: hosting a room at")
    });
    let t = run(&["--host", "--headless", "--port", "0", "--keep", &room]);
    assert_clean_failure(&t, &["room.db", "another tchat host"]);
    drop(first);
    let missing = dir.path("no/such/folder/room.db");
    let t = run(&["--host", "--headless", "--port", "0", "--keep", &missing]);
    assert_clean_failure(&t, &["cannot keep the room in", "room.db"]);
}

// ---------------------------------------------------------------------------------------
// 2. Help and version.

#[test]
fn help_names_every_option_and_nc() {
    let t = run(&["--help"]);
    assert!(t.status.expect("finished").success());
    let help = t.out.text();
    for needle in [
        "--host",
        "--join",
        "--port",
        "--name",
        "--plain",
        "--headless",
        "--max-line",
        "--burst",
        "--rate",
        "--max-backlog",
        "--max-peers",
        "--history",
        "--bell",
        "--log",
        "--config",
        "Config file: ",
        "nc ",
    ] {
        assert!(
            help.contains(needle),
            "--help should mention {needle}:\n{help}"
        );
    }
    assert_no_escape("--help", &t.out.bytes());
    assert_eq!(t.err.text(), "");
}

#[test]
fn version_is_the_crates() {
    let t = run(&["--version"]);
    assert!(t.status.expect("finished").success());
    assert_eq!(
        t.out.text(),
        format!("tchat {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(t.err.text(), "");
}

// ---------------------------------------------------------------------------------------
// 3. The headless host.

#[test]
fn headless_host_relays_logs_and_stops_on_sigterm() {
    let (mut host, addr) = headless("127.0.0.1");

    // The first peer says nothing, as `nc` does, and is let in after a moment.
    let mut a = Peer::greeted(addr);
    a.lines
        .wait("a's welcome", |l| l.starts_with("*** you are guest."));
    host.err
        .wait("guest's join logged", |l| l.ends_with("*** guest joined"));

    // The second speaks first, which lets it in at once.
    let mut b = Peer::greeted(addr);
    b.send(b"here too\n");
    b.lines
        .wait("b's welcome", |l| l.starts_with("*** you are guest2."));
    a.lines.wait_for("*** guest2 joined");
    a.lines.wait_for("guest2: here too");

    a.send(b"hi\n");
    b.lines.wait_for("guest: hi");

    // A third says `exit` before anything else: it is closed, and since no one was told
    // it came, no one is told it went (the line after it shows the room has moved on).
    let mut c = Peer::greeted(addr);
    c.send(b"exit\n");
    c.lines.wait_eof();
    a.send(b"after\n");
    b.lines.wait_for("guest: after");
    assert!(!b.lines.text().contains("guest3"), "{}", b.lines.text());
    // One who talks first and then says `exit` is in and out, and the log shows both.
    // It is guest3: the one before never took a seat or a name.
    let mut d = Peer::greeted(addr);
    d.send(b"bye all\n");
    b.lines.wait_for("guest3: bye all");
    d.send(b"exit\n");
    d.lines.wait_eof();
    host.err.wait("guest3's leaving logged", |l| {
        l.ends_with("*** guest3 left")
    });
    b.lines.wait_for("*** guest3 left");
    let log = host.err.text();
    assert_eq!(log.matches("*** guest3 joined").count(), 1, "{log}");

    host.signal("TERM");
    let status = host.finish_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", host.err.text());
    for (who, p) in [("a", &mut a), ("b", &mut b)] {
        p.lines.wait_for(CLOSED);
        p.lines.wait_eof();
        assert!(p.lines.text().ends_with(&format!("{CLOSED}\n")), "{who}");
    }
    let err = host.err.text();
    assert_no_panic("the host's stderr", &err);
    assert_no_escape("the host's stderr", &host.err.bytes());
    assert_eq!(
        host.out.text(),
        "",
        "a headless host writes nothing to stdout"
    );
}

#[test]
fn headless_host_stops_on_sigint_and_a_line_mode_joiner_is_told() {
    let (mut host, addr) = headless("127.0.0.1");
    let mut dora = Tchat::spawn("dora", &["--join", &addr.to_string(), "--name", "dora"]);
    dora.out
        .wait("dora's welcome", |l| l.starts_with("*** you are dora."));
    host.err
        .wait("dora's join logged", |l| l.ends_with("*** dora joined"));

    host.signal("INT");
    let status = host.finish_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", host.err.text());
    assert_no_panic("the host's stderr", &host.err.text());

    // Dora is told, and leaves by herself though her stdin is still open.
    dora.out.wait_for(CLOSED);
    let status = dora.finish_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", dora.err.text());
    let err = dora.err.text();
    assert_eq!(err, "tchat: the host left; the room is closed\n");
    assert_no_escape("dora's stdout", &dora.out.bytes());
}

// ---------------------------------------------------------------------------------------
// 4. Line mode.

#[test]
fn line_mode_sends_lines_and_leaves_at_exit() {
    let (_host, addr) = headless("127.0.0.1");
    let mut obs = Peer::seated(addr, b"watching\n");

    let mut carol = Tchat::spawn("carol", &["--join", &addr.to_string(), "--name", "carol"]);
    carol.write("hello\nexit\nnot sent\n");
    carol.close_stdin();

    obs.lines.wait_for("*** carol joined");
    obs.lines.wait_for("carol: hello");
    obs.lines.wait_for("*** carol left");
    let status = carol.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", carol.err.text());
    assert_eq!(carol.err.text(), "");
    assert!(
        !obs.lines.text().contains("not sent"),
        "a line after `exit` was sent:\n{}",
        obs.lines.text()
    );
}

/// Line mode waits for the room to take its lines before it leaves, shows what came
/// meanwhile, and a refused line is an error with the room's reason.
#[test]
fn line_mode_waits_for_its_lines_and_a_refused_one_is_an_error() {
    let (_host, port) = headless_with(&["--port", "0", "--max-line", "16"], &[]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut talker = Peer::seated(addr, b"here\n");
    let mut t = Tchat::spawn("fay", &["--join", &addr.to_string(), "--name", "fay"]);
    t.write("fits\nthis one is much too long\n");
    t.close_stdin();
    let status = t.finish();
    assert_eq!(status.code(), Some(1), "stderr:\n{}", t.err.text());
    let err = t.err.text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("tchat: the room refused a line: it is longer than 16 bytes"),
        "{err}"
    );
    talker.lines.wait_for("fay: fits");
    // The room's notice was shown before it left; and an ordinary run ends with 0.
    assert!(
        t.out.text().contains("longer than 16 bytes"),
        "{}",
        t.out.text()
    );
    let mut ok = Tchat::spawn("gus", &["--join", &addr.to_string(), "--name", "gus"]);
    ok.write("all good\n");
    ok.close_stdin();
    assert_eq!(ok.finish().code(), Some(0), "stderr:\n{}", ok.err.text());
    talker.lines.wait_for("gus: all good");
}

/// Commands in line mode: the room's answer confirms them (it is not a refusal), and
/// a `/topic` the room took is confirmed by the topic event.
#[test]
fn line_mode_commands_are_confirmed_by_their_answers() {
    let (_host, addr) = headless("127.0.0.1");
    let mut t = Tchat::spawn("hal", &["--join", &addr.to_string(), "--name", "hal"]);
    t.write("/topic release on Friday\n/who\nhi\n");
    t.close_stdin();
    let status = t.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", t.err.text());
    assert_eq!(t.err.text(), "");
    let out = t.out.text();
    assert!(
        out.contains("*** hal set the topic: release on Friday"),
        "{out}"
    );
    assert!(out.contains("*** in the room (1): hal"), "{out}");
}

/// `/quit` leaves as `exit` does, once: it used to leave and rejoin about once a
/// second for as long as stdin stayed open.
#[test]
fn line_mode_leaves_at_quit_once_though_stdin_stays_open() {
    let (mut host, addr) = headless("127.0.0.1");
    let mut erin = Tchat::spawn("erin", &["--join", &addr.to_string(), "--name", "erin"]);
    erin.out
        .wait("erin's welcome", |l| l.starts_with("*** you are erin."));
    erin.write("/quit\n");
    let status = erin.finish_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", erin.err.text());
    host.err
        .wait("erin's leave logged", |l| l.ends_with("*** erin left"));
    // It has exited, so nothing more can come of it: it joined once.
    let log = host.err.text();
    assert_eq!(log.matches("erin joined").count(), 1, "{log}");
}

#[test]
fn line_mode_shows_the_room_as_text_without_escapes() {
    let (_host, addr) = headless("127.0.0.1");
    let mut carol = Tchat::spawn("carol", &["--join", &addr.to_string(), "--name", "carol"]);
    carol
        .out
        .wait("carol's welcome", |l| l.starts_with("*** you are carol."));

    // A plain peer clears the screen, rings the bell and reverses text, if it can.
    let mut mallory = Peer::greeted(addr);
    mallory.send("\x1b[2J wiped? \u{202E}txet desrever\u{202C} \x07\x1b]0;title\x07\n".as_bytes());
    carol.out.wait_for("*** guest joined");
    let line = carol
        .out
        .wait("mallory's line", |l| l.starts_with("guest: "));
    assert!(
        line.contains("wiped?") && line.contains("txet desrever"),
        "{line:?}"
    );

    carol.write("hello\n");
    mallory.lines.wait_for("carol: hello");
    mallory.send(b"plain words\n");
    carol.out.wait_for("guest: plain words");

    carol.write("exit\nnot sent\n");
    let status = carol.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", carol.err.text());
    mallory.lines.wait_for("*** carol left");
    assert!(!mallory.lines.text().contains("not sent"));

    let out = carol.out.bytes();
    assert_no_escape("carol's stdout", &out);
    let text = String::from_utf8(out).expect("stdout is UTF-8");
    for c in text.chars() {
        assert!(
            c == '\n'
                || !(c.is_control()
                    || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')),
            "{:?} in carol's stdout:\n{text}",
            c
        );
    }
}

/// The host dies without a word (SIGKILL) and a new one starts on the same port: a
/// line-mode joiner says it lost the host and is trying again, rejoins by itself, says
/// the room restarted, and delivers the line typed while the host was down, once.
#[test]
fn a_joiner_rejoins_a_restarted_host_and_sends_what_was_typed_meanwhile() {
    let port = free_port();
    let (mut host, addr) = headless_on("127.0.0.1", port);
    let room = addr.to_string();
    let mut bob = Tchat::spawn("bob", &["--join", &room, "--name", "bob"]);
    bob.out
        .wait("bob's welcome", |l| l.starts_with("*** you are bob."));
    host.err
        .wait("bob's join logged", |l| l.ends_with("*** bob joined"));

    host.child.kill().expect("kill the host");
    host.wait_exit_within(DEADLINE);
    let told = bob
        .out
        .wait("the lost host", |l| l.contains("trying again in "));
    assert!(
        told.starts_with("* ") && told.contains("connection"),
        "bob should say the connection is gone: {told:?}"
    );
    // Typed while there is no host: kept, and sent once back in.
    bob.write("typed while the host was down\n");

    // Promptly, so that the first retry (1 s after the loss) finds the new host, and the
    // observer is in before bob is.
    let (_host2, addr2) = headless_on("127.0.0.1", port);
    assert_eq!(addr2, addr);
    let mut obs = Peer::seated(addr, b"watching\n");

    bob.out.wait("the restart", |l| {
        l == "* the host restarted the room: history starts again"
    });
    obs.lines.wait_for("*** bob joined");
    obs.lines.wait_for("bob: typed while the host was down");

    bob.write("and after\n");
    obs.lines.wait_for("bob: and after");
    let seen = obs.lines.text();
    assert_eq!(
        seen.matches("typed while the host was down").count(),
        1,
        "the line typed offline should arrive once:\n{seen}"
    );
    // Bob's own lines are not printed back to him.
    assert!(
        !bob.out.text().contains("bob: "),
        "bob's stdout:\n{}",
        bob.out.text()
    );

    bob.close_stdin();
    let status = bob.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", bob.err.text());
    obs.lines.wait_for("*** bob left");
    assert_no_panic("bob's stderr", &bob.err.text());
    assert_no_escape("bob's stdout", &bob.out.bytes());
}

/// A line a script sends at once, before the room's welcome has arrived, is relayed
/// twice by a host run with `--history 0`: the client sends it, then sends every
/// unechoed line again on the welcome (src/client.rs, `Session::on_server`), and the
/// room only recognises a resend through its history (src/server/room.rs, `Room::keep`
/// returns before recording the line's `(session, cid)` when `history` is 0).
#[test]
fn a_line_sent_before_the_welcome_is_relayed_once_even_without_history() {
    let mut host = Tchat::spawn(
        "host",
        &[
            "--host",
            "--headless",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--history",
            "0",
        ],
    );
    let line = host.err.wait("the room's address", |l| {
        l.starts_with("tchat: hosting a room at ")
    });
    let addr: SocketAddr = line
        .trim_start_matches("tchat: hosting a room at ")
        .parse()
        .expect("an address");
    let mut obs = Peer::seated(addr, b"watching\n");

    let mut ci = Tchat::spawn("ci", &["--join", &addr.to_string(), "--name", "ci"]);
    ci.write("build done\n");
    ci.out
        .wait("ci's welcome", |l| l.starts_with("*** you are ci."));
    ci.write("and after\n");
    obs.lines.wait_for("ci: and after");
    let seen = obs.lines.text();
    assert_eq!(seen.matches("ci: build done").count(), 1, "{seen}");
}

// ---------------------------------------------------------------------------------------
// 5. Names.

#[test]
fn names_are_cleaned_and_made_unique() {
    let (_host, addr) = headless("127.0.0.1");
    let room = addr.to_string();
    let mut obs = Peer::seated(addr, b"watching\n");

    // A name that is not usable is never quietly rewritten: its owner is told why, and
    // comes in as a guest.
    let mut bad = Tchat::spawn("bad name", &["--join", &room, "--name", "bad name"]);
    obs.lines.wait_for("*** guest2 joined");
    let told = bad
        .out
        .wait("the refused name", |l| l.contains("you are guest2."));
    assert!(
        told.contains("not a usable name: a name has no spaces"),
        "{told:?}"
    );

    let mut alice = Tchat::spawn("alice", &["--join", &room, "--name", "alice"]);
    alice
        .out
        .wait("alice's welcome", |l| l.starts_with("*** you are alice."));
    obs.lines.wait_for("*** alice joined");

    let mut alice2 = Tchat::spawn("alice2", &["--join", &room, "--name", "alice"]);
    let told = alice2.out.wait("the second alice's welcome", |l| {
        l.contains("you are alice2.")
    });
    assert!(told.contains("alice is taken"), "{told:?}");
    obs.lines.wait_for("*** alice2 joined");
    alice.out.wait_for("*** alice2 joined");

    for t in [&mut bad, &mut alice, &mut alice2] {
        t.close_stdin();
        let status = t.finish();
        assert_eq!(status.code(), Some(0), "stderr:\n{}", t.err.text());
    }
}

/// A name that is not usable is reported as such, with the reason, never as taken.
#[test]
fn a_cleaned_name_is_not_called_taken() {
    let (_host, addr) = headless("127.0.0.1");
    let mut bad = Tchat::spawn(
        "bad name",
        &["--join", &addr.to_string(), "--name", "bad name"],
    );
    let told = bad
        .out
        .wait("the refused name", |l| l.contains("you are guest."));
    assert!(
        !told.contains("taken") && told.contains("not a usable name"),
        "nobody else is in the room: {told:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 6. Joining a plain socket program.

/// Accept one connection on `listener` within the deadline.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + DEADLINE;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "nobody connected");
                thread::sleep(POLL);
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn joining_a_plain_server_that_waits_falls_back_to_text() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut zed = Tchat::spawn("zed", &["--join", &addr.to_string(), "--name", "zed"]);
    let mut server = Peer::on("the plain server", accept(&listener));

    zed.write("typed line\n");
    server.lines.wait_for("typed line");
    assert_eq!(server.lines.seen.len(), 1, "{}", server.lines.text());

    // The classic `s.send("hello from python".encode())`: no newline.
    server.send(b"hello from python");
    zed.out.wait_for("hello from python");

    zed.close_stdin();
    server.lines.wait_for("exit");
    server.stream.shutdown(Shutdown::Both).expect("close");
    let status = zed.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", zed.err.text());
    assert_eq!(zed.out.text(), "hello from python\n");
    assert_eq!(server.lines.text(), "typed line\nexit\n");
}

#[test]
fn joining_a_plain_server_that_speaks_first_falls_back_to_text() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut zed = Tchat::spawn("zed", &["--join", &addr.to_string(), "--name", "zed"]);
    let mut server = Peer::on("the plain server", accept(&listener));
    server.send(b"hello from python");
    zed.out.wait_for("hello from python");

    zed.write("and hello back\n");
    server.lines.wait_for("and hello back");
    zed.close_stdin();
    server.lines.wait_for("exit");
    server.stream.shutdown(Shutdown::Both).expect("close");
    let status = zed.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", zed.err.text());
}

// ---------------------------------------------------------------------------------------
// IPv6 loopback, where there is one.

#[test]
fn ipv6_loopback_host_and_join() {
    if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        eprintln!("skipped: cannot bind [::1] here");
        return;
    }
    let (_host, addr) = headless("::1");
    let room = addr.to_string();
    assert!(room.starts_with("[::1]:"), "{room}");
    let mut obs = Peer::seated(addr, b"watching\n");

    let mut six = Tchat::spawn("six", &["--join", &room, "--name", "six"]);
    six.write("over v6\n");
    six.close_stdin();
    obs.lines.wait_for("six: over v6");
    obs.lines.wait_for("*** six left");
    let status = six.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", six.err.text());
}

// ---------------------------------------------------------------------------------------
// 7. The config file.

/// The invitation a headless host writes to stderr after its address: the token.
fn invitation(host: &mut Tchat) -> String {
    let line = host.err.wait("the invitation", |l| {
        l.starts_with("tchat: others join with: tchat --join ")
    });
    let token = line.trim_end().rsplit(' ').next().expect("a token");
    token.to_owned()
}

/// `tchat --host --headless --bind 127.0.0.1 EXTRA`, with the port it reports.
fn headless_with(extra: &[&str], env: &[(&str, Option<&str>)]) -> (Tchat, u16) {
    let mut args = vec!["--host", "--headless", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    let mut host = Tchat::spawn_env("host", &args, env);
    let (_, port) = hosting(&mut host);
    (host, port)
}

#[test]
fn the_config_file_sets_name_port_and_bell_and_flags_override_it() {
    let dir = TempDir::new("config");
    // A host takes its port from the file, unless --port says otherwise.
    let port = free_port();
    let file = dir.file(
        "host.toml",
        &format!("# the room\nport = {port}\nbell = \"all\"\ncolor = false\n"),
    );
    let file = file.to_str().expect("a UTF-8 path");
    let (host, got) = headless_with(&["--config", file], &[]);
    assert_eq!(got, port);
    drop(host);
    let other = free_port();
    let (_host, got) = headless_with(
        &["--port", &other.to_string()],
        &[("TCHAT_CONFIG", Some(file))],
    );
    assert_eq!(got, other, "--port wins over the file");

    // A joiner takes its name from the file, and the port for an address without one.
    let (_room, port) = headless_with(&["--port", "0"], &[]);
    let file = dir.file(
        "joiner.toml",
        &format!("name = \"zoe\"\nport = {port}\nbell = \"never\"\n"),
    );
    let file = file.to_str().expect("a UTF-8 path");
    let mut zoe = Tchat::spawn("zoe", &["--join", "127.0.0.1", "--config", file]);
    zoe.out
        .wait("zoe's welcome", |l| l.starts_with("*** you are zoe."));
    let mut yan = Tchat::spawn_env(
        "yan",
        &["--join", "127.0.0.1", "--name", "yan", "--bell", "all"],
        &[("TCHAT_CONFIG", Some(file))],
    );
    yan.out
        .wait("yan's welcome", |l| l.starts_with("*** you are yan."));
    zoe.out.wait_for("*** yan joined");
    // A port in the address wins over the file's.
    let addr = format!("127.0.0.1:{}", free_port());
    let t = run_env(&["--join", &addr], &[("TCHAT_CONFIG", Some(file))]);
    assert_clean_failure(&t, &[&addr, "refused"]);
    for t in [&mut zoe, &mut yan] {
        t.close_stdin();
        let status = t.finish();
        assert_eq!(status.code(), Some(0), "stderr:\n{}", t.err.text());
    }
}

/// The usual file is `$XDG_CONFIG_HOME/tchat/config.toml` on Linux; `--help` says so,
/// and there being none is fine.
#[cfg(target_os = "linux")]
#[test]
fn the_usual_config_file_is_read_and_help_says_where() {
    let dir = TempDir::new("xdg");
    let xdg = dir.path("config");
    let usual = format!("{xdg}/tchat/config.toml");
    let env = [
        ("TCHAT_CONFIG", None),
        ("XDG_CONFIG_HOME", Some(xdg.as_str())),
    ];

    let t = run_env(&["--help"], &env);
    assert!(t.status.expect("finished").success());
    assert!(
        t.out.text().contains(&format!("Config file: {usual}")),
        "--help should name {usual}:\n{}",
        t.out.text()
    );

    let (_room, port) = headless_with(&["--port", "0"], &env);
    let addr = format!("127.0.0.1:{port}");
    // No file yet: defaults.
    let mut pat = Tchat::spawn_env("pat", &["--join", &addr, "--name", "pat"], &env);
    pat.out
        .wait("pat's welcome", |l| l.starts_with("*** you are pat."));
    dir.file("config/tchat/config.toml", "name = \"una\"\n");
    let mut una = Tchat::spawn_env("una", &["--join", &addr], &env);
    una.out
        .wait("una's welcome", |l| l.starts_with("*** you are una."));
    pat.out.wait_for("*** una joined");
}

#[test]
fn a_bad_config_file_is_one_line_and_status_2() {
    let dir = TempDir::new("bad-config");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown.toml",
            "name = \"a\"\ncolour = false\n",
            &["line 2", "colour"],
        ),
        ("malformed.toml", "name = \n", &["line 1"]),
        ("bell.toml", "bell = \"loud\"\n", &["loud"]),
        ("port.toml", "port = 0\n", &["port", "65535"]),
        ("escape.toml", "\"\u{1b}[2J\" = 1\n", &["line 1"]),
    ];
    for (name, text, needles) in cases {
        let file = dir.file(name, text);
        let file = file.to_str().expect("a UTF-8 path");
        let mut needles = needles.to_vec();
        let prefix = format!("tchat: config {file}: ");
        needles.push(&prefix);
        for t in [
            run(&["--host", "--headless", "--port", "0", "--config", file]),
            run_env(&["--join", "127.0.0.1"], &[("TCHAT_CONFIG", Some(file))]),
        ] {
            assert_eq!(t.status.and_then(|s| s.code()), Some(2), "{name}");
            let line = assert_clean_failure(&t, &needles);
            assert!(line.starts_with(&prefix), "{line:?}");
        }
    }
    // A file named on purpose must be there.
    let missing = dir.path("missing.toml");
    let t = run(&["--host", "--config", &missing]);
    assert_eq!(t.status.and_then(|s| s.code()), Some(2));
    assert_clean_failure(&t, &[&missing, "no such file"]);
}

// ---------------------------------------------------------------------------------------
// 8. The conversation log.

/// `YYYY-MM-DD HH:MM:SS ` at the start of `line`.
fn is_stamped(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 20
        && b[..20].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 | 19 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
}

#[test]
fn log_appends_the_conversation_as_sanitised_text() {
    let dir = TempDir::new("log");
    let log = dir.path("chat.log");
    let (_host, addr) = headless("127.0.0.1");
    let room = addr.to_string();
    let mut lou = Tchat::spawn("lou", &["--join", &room, "--name", "lou", "--log", &log]);
    lou.out
        .wait("lou's welcome", |l| l.starts_with("*** you are lou."));

    let mut peer = Peer::greeted(addr);
    peer.send(b"hi \x1b[31mred\n");
    lou.out.wait_for("*** guest joined");
    lou.out.wait_for("guest: hi \u{241b}[31mred");
    lou.write("hello\n");
    peer.lines.wait_for("lou: hello");
    // Once lou has this, the echo of its own line before it is logged too.
    peer.send(b"bye now\n");
    lou.out.wait_for("guest: bye now");
    lou.close_stdin();
    let status = lou.finish();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", lou.err.text());
    assert_eq!(lou.err.text(), "");

    let bytes = std::fs::read(&log).expect("the log was written");
    assert_no_escape("the log", &bytes);
    let text = String::from_utf8(bytes).expect("the log is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.iter().all(|l| is_stamped(l)),
        "unstamped lines:\n{text}"
    );
    let said: Vec<&str> = lines.iter().map(|l| &l[20..]).collect();
    assert!(said[0].starts_with("*** you are lou."), "{text}");
    for line in [
        "*** guest joined",
        "guest: hi \u{241b}[31mred",
        "lou: hello",
        "guest: bye now",
    ] {
        assert_eq!(
            said.iter().filter(|l| **l == line).count(),
            1,
            "{line:?} once in the log:\n{text}"
        );
    }

    // A second session appends.
    let mut lou = Tchat::spawn("lou", &["--join", &room, "--name", "lou", "--log", &log]);
    lou.out
        .wait("lou's welcome", |l| l.starts_with("*** you are lou."));
    lou.close_stdin();
    lou.finish();
    let text = std::fs::read_to_string(&log).expect("the log");
    assert_eq!(text.matches("*** you are lou.").count(), 2, "{text}");
    assert!(text.starts_with(lines[0]), "{text}");
}

#[test]
fn a_log_that_cannot_be_opened_is_one_line_before_anything_starts() {
    let dir = TempDir::new("log-bad");
    let log = dir.path("no/such/dir/chat.log");
    let (_host, addr) = headless("127.0.0.1");
    let mut obs = Peer::seated(addr, b"watching\n");
    let t = run(&["--join", &addr.to_string(), "--name", "lou", "--log", &log]);
    assert_clean_failure(&t, &[&format!("log {log}: "), "no such file"]);
    // Anyone joining after lou failed comes after lou would have.
    let mut later = Peer::greeted(addr);
    later.send(b"here\n");
    obs.lines.wait_for("*** guest2 joined");
    assert!(!obs.lines.text().contains("lou"), "{}", obs.lines.text());
}

// ---------------------------------------------------------------------------------------
// 9. Completions and the manual page.

#[test]
fn completions_and_the_man_page_print_and_exit() {
    // They need no --host or --join, and don't read the config file.
    let env = [("TCHAT_CONFIG", Some("/nonexistent/tchat.toml"))];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let t = run_env(&["--completions", shell], &env);
        assert_eq!(
            t.status.and_then(|s| s.code()),
            Some(0),
            "{shell}: {}",
            t.err.text()
        );
        assert_eq!(t.err.text(), "", "{shell}");
        let script = t.out.text();
        assert!(script.contains("host"), "{shell}:\n{script}");
        if shell == "bash" {
            assert!(
                script.contains("--host") && script.contains("--join"),
                "{script}"
            );
        }
    }
    let t = run_env(&["--man"], &env);
    assert_eq!(t.status.and_then(|s| s.code()), Some(0), "{}", t.err.text());
    assert_eq!(t.err.text(), "");
    let page = t.out.text();
    let header = page
        .lines()
        .find(|l| !l.starts_with(".ie") && !l.starts_with(".el"))
        .unwrap_or_default();
    assert!(header.starts_with(".TH tchat 1"), "{header:?}\n{page}");
    assert!(page.contains("\\-\\-join"), "{page}");
    // And --help tells of them.
    let help = run(&["--help"]).out.text();
    assert!(help.contains("--completions <SHELL>"), "{help}");
    assert!(help.contains("--man"), "{help}");
}

/// `tchat --join … | head -1`: once `head` has its line, tchat leaves quietly, with
/// status 0 and no "Broken pipe".
#[test]
fn line_mode_into_a_closed_pipe_leaves_quietly() {
    let (_host, addr) = headless("127.0.0.1");
    let mut talker = Peer::seated(addr, b"here\n");
    let script = format!(
        "set -o pipefail; {BIN} --join {addr} --name pipe < <(sleep 30 2>/dev/null) | head -n 1"
    );
    let mut sh = Tchat::spawn_cmd("sh", "bash", &["-c", &script]);
    sh.out.wait("head's one line", |_| true);
    talker.lines.wait_for("*** pipe joined");
    // Nothing more is said: tchat must see the reader go by itself, not on a write
    // that fails (the room may stay quiet for hours).
    let status = sh.finish_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", sh.err.text());
    assert_eq!(sh.err.text(), "", "nothing on stderr");
}

/// A system that allows few open files: the host lowers `--max-peers` to what fits and
/// says so in one line, rather than fail to accept with the room half full.
#[test]
fn max_peers_is_lowered_to_the_open_files_the_system_allows() {
    let script = format!(
        "ulimit -n 200 && exec '{BIN}' --host --headless --bind 127.0.0.1 --port 0 --max-peers 1000"
    );
    let mut child = common::isolated("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the host under sh");
    let lines = lines_of(child.stderr.take().expect("stderr"));
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains("hosting a room at"))
    {
        let line = lines.recv_timeout(DEADLINE).expect("the host starts");
        seen.push(String::from_utf8_lossy(&line).trim_end().to_owned());
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen[0],
        "tchat: --max-peers lowered from 1000 to 136: this system allows 200 open files (raise it with ulimit -n)",
        "{seen:?}"
    );
}

/// A headless host writes the one line to share; pasting it is all a joiner does. An
/// invitation whose key is not the host's is refused in one line.
#[test]
fn the_invitation_a_host_shares_is_all_a_joiner_needs() {
    let (mut host, port) = headless_with(&["--port", "0"], &[]);
    let token = invitation(&mut host);
    assert!(token.starts_with(&format!("127.0.0.1:{port}/")), "{token}");
    let mut obs = Peer::seated(SocketAddr::from(([127, 0, 0, 1], port)), b"watching\n");

    let mut gus = Tchat::spawn("gus", &["--join", &token, "--name", "gus"]);
    gus.write("hello by invitation\n");
    gus.close_stdin();
    obs.lines.wait_for("gus: hello by invitation");
    assert_eq!(gus.finish().code(), Some(0), "stderr:\n{}", gus.err.text());

    // The same address with another key in it: someone else's room, or a forgery.
    let (addrs, _) = token.split_once('/').expect("ADDRS/KEY");
    let forged = format!("{addrs}/{}", "0".repeat(32));
    let t = run(&["--join", &forged, "--name", "gus"]);
    assert_clean_failure(&t, &["not the key in the invitation", "in the middle"]);
    let t = run(&["--join", "127.0.0.1:1/nothex"]);
    assert_clean_failure(&t, &["not a tchat invitation"]);
}

/// `--private`: the invitation carries the code, and is all a joiner needs; `nc` is
/// told the room is private; with `--keep`, a restarted room keeps its code.
#[test]
fn a_private_room_lets_in_who_has_the_invitation_and_keeps_its_code() {
    let dir = TempDir::new("private");
    let keep = dir.path("room.db");
    let start = |keep: &str| {
        let args = [
            "--port",
            "0",
            "--private",
            "--keep",
            keep,
            "--hello-wait",
            "1000",
        ];
        let (mut host, port) = headless_with(&args, &[]);
        let token = invitation(&mut host);
        (host, port, token)
    };
    let (host, port, token) = start(&keep);
    assert_eq!(token.matches('/').count(), 2, "addresses/key/code: {token}");
    let code = token.rsplit('/').next().unwrap().to_owned();

    let mut nc = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut told = String::new();
    std::io::Read::read_to_string(&mut nc, &mut told).unwrap();
    assert!(told.contains("this room is private"), "{told}");

    let mut obs = Tchat::spawn("obs", &["--join", &token, "--name", "obs"]);
    obs.out.wait("the room", |l| l.contains("you are obs"));
    let mut gus = Tchat::spawn("gus", &["--join", &token, "--name", "gus"]);
    gus.write("in by invitation\n");
    gus.close_stdin();
    obs.out
        .wait("gus's line", |l| l.contains("gus: in by invitation"));
    assert_eq!(gus.finish().code(), Some(0), "stderr:\n{}", gus.err.text());
    drop(obs);
    drop(host);

    let (_host, port, again) = start(&keep);
    assert!(again.ends_with(&format!("/{code}")), "{again} keeps {code}");
    let wrong = if code == "1-acorn-zebra" {
        "2-acorn-zebra"
    } else {
        "1-acorn-zebra"
    };
    let t = run(&["--join", &format!("127.0.0.1:{port}"), "--code", wrong]);
    assert_clean_failure(&t, &["wrong code"]);
}

/// A host whose log no one reads any more (its stderr a closed pipe) goes on hosting:
/// a line of log it cannot write is lost, and nothing else.
#[test]
fn a_host_with_its_stderr_closed_keeps_hosting() {
    use std::io::BufRead;
    let mut child = common::isolated(BIN)
        .args(["--host", "--headless", "--bind", "127.0.0.1", "--port", "0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let port: u16 = first
        .trim_end()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // No one reads the log from here on.
    drop(err);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Joins and leaves are logged: each is a write to the closed pipe.
    for i in 0..3 {
        drop(Peer::seated(addr, format!("passer{i}\n").as_bytes()));
    }
    let mut a = Peer::seated(addr, b"still here?\n");
    let mut b = Peer::seated(addr, b"listening\n");
    a.send(b"yes\n");
    b.lines.wait("a's line", |l| l.ends_with(": yes"));
    assert!(child.try_wait().unwrap().is_none(), "the host died");
    let _ = child.kill();
    let _ = child.wait();
}

/// A host's refusal reaches a line-mode joiner's stderr as the one line it prints: a
/// hostile host's escape sequences in it must not reach the terminal raw.
#[test]
fn a_hostile_hosts_refusal_reaches_stderr_without_escapes() {
    use std::io::BufRead;
    use tchat::protocol::{ClientMsg, ServerMsg};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut t = Tchat::spawn("zed", &["--join", &addr.to_string(), "--name", "zed"]);
    let (mut s, _) = listener.accept().expect("accept");
    s.write_all(b"* tchat/1 welcome to a room\n").unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(ClientMsg::parse_hello(line.trim_end()).is_some(), "{line}");
    let welcome = ServerMsg::Welcome {
        v: 1,
        room: "r".into(),
        name: "zed".into(),
        asked: None,
        members: vec!["zed".into()],
        max_line: 8192,
        pace: None,
        ts: None,
        topic: None,
    };
    s.write_all(welcome.encode().as_bytes()).unwrap();
    t.write("hello\n");
    t.close_stdin();
    // The joiner's line, and its cid, which the refusal names.
    let cid = loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "the joiner left first");
        if let Ok(ClientMsg::Say { cid: Some(cid), .. }) = ClientMsg::decode(line.trim_end()) {
            break cid;
        }
    };
    let refusal = ServerMsg::Notice {
        ts: 0,
        text: "no: \u{1b}]0;owned\u{7}\u{1b}[2J".into(),
        cid: Some(cid),
    };
    s.write_all(refusal.encode().as_bytes()).unwrap();
    let status = t.finish();
    assert_eq!(status.code(), Some(1), "a refused line is an error");
    assert!(t.err.text().contains("refused"), "{}", t.err.text());
    assert_no_escape("stderr", &t.err.bytes());
}
