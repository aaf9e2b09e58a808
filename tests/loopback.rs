//! A real room on 127.0.0.1 with real clients: tchat ones (the client task) and plain
//! ones (what `nc` or a Python socket script sends). Every wait has a deadline.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use tchat::client::{self, Command, NetEvent};
use tchat::protocol::{ClientMsg, ServerMsg};
use tchat::sanitize;
use tchat::server::room::Rules;
use tchat::server::{Config, Server};

const DEADLINE: Duration = Duration::from_secs(10);

async fn room(config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::spawn(listener, config).unwrap()
}

fn quick() -> Config {
    Config {
        hello_wait: Duration::from_millis(200),
        address: "127.0.0.1:test".into(),
        // Every peer here comes from 127.0.0.1; the limits per address have tests of
        // their own, from several addresses.
        max_per_address: 0,
        joins_per_minute: 0,
        rules: Rules {
            addr_burst: 0,
            addr_rate: 0,
            ..Rules::default()
        },
        ..Config::default()
    }
}

/// [`quick`] without the flood limit, for tests that send in bulk.
fn unlimited() -> Config {
    let quick = quick();
    Config {
        rules: Rules {
            burst: 0,
            rate: 0,
            ..quick.rules
        },
        ..quick
    }
}

/// A tchat participant.
struct Tchat {
    h: client::Handle,
    name: String,
    /// The name asked for, when the room gave another.
    asked: Option<String>,
}

impl Tchat {
    async fn join(server: &Server, name: &str) -> Tchat {
        let stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut t = Tchat {
            h: client::start(stream, name.into()),
            name: String::new(),
            asked: None,
        };
        let welcome = t
            .until(|e| matches!(e, NetEvent::Server(ServerMsg::Welcome { .. })))
            .await;
        if let NetEvent::Server(ServerMsg::Welcome { name, asked, .. }) = welcome {
            t.name = name;
            t.asked = asked;
        }
        t
    }

    fn say(&self, text: &str, cid: &str) {
        self.h
            .commands
            .send(Command::Say {
                text: text.into(),
                cid: cid.into(),
            })
            .unwrap();
    }

    async fn next(&mut self) -> NetEvent {
        timeout(DEADLINE, self.h.events.recv())
            .await
            .expect("an event before the deadline")
            .expect("the connection task is running")
    }

    /// Skip events until one matches; return it.
    async fn until(&mut self, pred: impl Fn(&NetEvent) -> bool) -> NetEvent {
        loop {
            let e = self.next().await;
            if pred(&e) {
                return e;
            }
        }
    }

    async fn message(&mut self) -> (String, String, Option<String>) {
        match self
            .until(|e| matches!(e, NetEvent::Server(ServerMsg::Msg { .. })))
            .await
        {
            NetEvent::Server(ServerMsg::Msg {
                from, text, cid, ..
            }) => (from, text, cid),
            _ => unreachable!(),
        }
    }
}

/// A plain peer: raw bytes in and out, as netcat would.
struct Plain {
    s: TcpStream,
    got: Vec<u8>,
}

impl Plain {
    async fn connect(server: &Server) -> Plain {
        let s = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut p = Plain { s, got: Vec::new() };
        p.until_line(|l| l.starts_with("* tchat/")).await;
        p
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Read until a whole line matching `pred` has arrived; return it. Lines before it
    /// are consumed.
    async fn until_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            while let Some(i) = self.got.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.got.drain(..=i).collect();
                let line = String::from_utf8(line).expect("the host sends UTF-8");
                let line = line.trim_end_matches('\n').to_owned();
                if pred(&line) {
                    return line;
                }
            }
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no matching line before the deadline; pending: {:?}",
                        String::from_utf8_lossy(&self.got)
                    )
                })
                .unwrap();
            assert!(n > 0, "connection closed while waiting for a line");
            self.got.extend_from_slice(&buf[..n]);
        }
    }

    /// Read everything until the host closes the connection.
    async fn until_closed(&mut self) -> String {
        let mut rest = Vec::new();
        timeout(DEADLINE, self.s.read_to_end(&mut rest))
            .await
            .expect("the host closes the connection")
            .unwrap();
        self.got.extend_from_slice(&rest);
        String::from_utf8(std::mem::take(&mut self.got)).unwrap()
    }
}

#[tokio::test]
async fn tchat_peers_join_talk_and_leave() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut bob = Tchat::join(&server, "bob").await;
    assert_eq!(alice.name, "alice");
    assert_eq!(bob.name, "bob");
    let joined = alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Join { .. })))
        .await;
    assert!(matches!(joined, NetEvent::Server(ServerMsg::Join { name, .. }) if name == "bob"));

    alice.say("hello 世界 🎉", "a1");
    // The sender gets its own line back with its cid: that is the delivery receipt.
    assert_eq!(
        alice.message().await,
        ("alice".into(), "hello 世界 🎉".into(), Some("a1".into()))
    );
    assert_eq!(bob.message().await.1, "hello 世界 🎉");

    alice.h.commands.send(Command::Leave).unwrap();
    let left = bob
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Leave { .. })))
        .await;
    assert!(
        matches!(left, NetEvent::Server(ServerMsg::Leave { name, reason: None, .. }) if name == "alice")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_taken_name_gets_a_suffix() {
    let server = room(quick()).await;
    let _a = Tchat::join(&server, "alice").await;
    let b = Tchat::join(&server, "alice").await;
    assert_eq!(b.name, "alice2");
    assert_eq!(b.asked.as_deref(), Some("alice"), "the person is told");
    server.shutdown().await;
}

#[tokio::test]
async fn netcat_peer_talks_both_ways() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    nc.send(b"hi from nc\r\n").await;
    assert_eq!(
        alice.message().await,
        ("guest".into(), "hi from nc".into(), None)
    );
    nc.until_line(|l| l.starts_with("*** you are guest")).await;
    alice.say("hello nc", "x");
    assert_eq!(
        nc.until_line(|l| l.contains("hello")).await,
        "alice: hello nc"
    );
    // A message of several lines reaches a plain peer as several named lines.
    alice.say("one\ntwo", "y");
    assert_eq!(nc.until_line(|_| true).await, "alice: one");
    assert_eq!(nc.until_line(|_| true).await, "alice: two");
    server.shutdown().await;
}

#[tokio::test]
async fn a_quiet_netcat_peer_joins_and_hears_the_room() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    // It says nothing; after a moment it is in the room anyway.
    nc.until_line(|l| l.starts_with("*** you are guest")).await;
    alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Join { name, .. }) if name == "guest"))
        .await;
    alice.say("anyone?", "q");
    assert_eq!(
        nc.until_line(|l| l.contains("anyone")).await,
        "alice: anyone?"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn text_without_a_newline_is_a_message_once_the_sender_pauses() {
    // The classic Python chat: s.send("hello".encode('utf8')), no newline, then wait.
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut py = Plain::connect(&server).await;
    py.send("hello".as_bytes()).await;
    assert_eq!(alice.message().await.1, "hello");
    py.send("and again".as_bytes()).await;
    assert_eq!(alice.message().await.1, "and again");
    // It reads what the room says with recv(1024).
    alice.say("hi python", "p");
    assert_eq!(
        py.until_line(|l| l.contains("python")).await,
        "alice: hi python"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_character_split_across_a_pause_is_not_mangled() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut py = Plain::connect(&server).await;
    let snow = "雪☃".as_bytes();
    py.send(&snow[..4]).await; // 雪 and the first byte of ☃
    // The sender stalls mid-character, longer than the pause rule.
    tokio::time::sleep(tchat::protocol::IDLE_FLUSH * 3).await;
    py.send(&snow[4..]).await;
    py.send(b"\n").await;
    let mut got = String::new();
    while got != "雪☃" {
        got.push_str(&alice.message().await.1);
        assert!(!got.contains('\u{FFFD}'), "mangled: {got:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn hostile_bytes_never_reach_a_terminal() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut evil = Plain::connect(&server).await;
    let mut watcher = Plain::connect(&server).await;
    watcher.until_line(|l| l.starts_with("*** you are")).await;
    evil.send(b"\x1b]0;pwned\x07\x1b[2J\x1b[31mred \xc2\x9b31m csi \xe2\x80\xaeevil\xe2\x81\xa6 \x7f del \xff\xfe bad\n")
        .await;
    let (_, text, _) = alice.message().await;
    assert!(!text.chars().any(sanitize::is_forbidden), "{text:?}");
    assert!(
        text.contains('\u{FFFD}'),
        "invalid UTF-8 shows as U+FFFD: {text:?}"
    );
    assert!(text.contains("␛[2J"), "escapes become visible: {text:?}");
    let line = watcher.until_line(|l| l.contains("red")).await;
    assert!(!line.chars().any(sanitize::is_forbidden), "{line:?}");
    assert!(!line.bytes().any(|b| b == 0x1b || b == 0x07 || b == 0x7f));
    server.shutdown().await;
}

#[tokio::test]
async fn hostile_names_are_cleaned() {
    let server = room(quick()).await;
    let mut watcher = Plain::connect(&server).await;
    watcher.until_line(|l| l.starts_with("*** you are")).await;
    let evil = Tchat::join(&server, "\u{1b}[2Jmal\u{202e}lory\u{7}").await;
    assert!(
        !evil.name.chars().any(sanitize::is_forbidden),
        "{:?}",
        evil.name
    );
    let line = watcher.until_line(|l| l.ends_with("joined")).await;
    assert!(!line.bytes().any(|b| b == 0x1b || b == 0x07), "{line:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn an_over_long_line_is_refused_and_the_connection_stays() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    let mut long = vec![b'x'; 9000];
    long.push(b'\n');
    nc.send(&long).await;
    nc.send(b"still here\n").await;
    let notice = nc.until_line(|l| l.contains("not sent")).await;
    assert!(notice.contains("8192"), "{notice}");
    assert_eq!(alice.message().await.1, "still here");

    // A tchat peer is told too, and stays.
    alice.say(&"y".repeat(8193), "big");
    let n = alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Notice { .. })))
        .await;
    assert!(matches!(n, NetEvent::Server(ServerMsg::Notice { text, .. }) if text.contains("8192")));
    alice.say("small", "s");
    assert_eq!(alice.message().await.1, "small");
    server.shutdown().await;
}

#[tokio::test]
async fn a_long_line_is_refused_but_the_peer_stays() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    // Past the framing limit (6 × 8 KiB + 1 KiB) but under the no-newline cap (64 KiB).
    nc.send(&vec![b'z'; 60 * 1024]).await;
    nc.send(b"\nafter the long line\n").await;
    nc.until_line(|l| l.contains("not sent")).await;
    assert_eq!(alice.message().await.1, "after the long line");
    server.shutdown().await;
}

#[tokio::test]
async fn endless_input_without_a_newline_closes_the_connection_with_a_reason() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut flood = Plain::connect(&server).await;
    flood.send(b"hello\n").await;
    assert_eq!(alice.message().await.1, "hello");
    let chunk = vec![b'z'; 16 * 1024];
    for _ in 0..256 {
        // 4 MiB with no newline; the host hangs up part way, so writes may fail.
        if flood.s.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let rest = flood.until_closed().await;
    assert!(
        rest.contains("* closing this connection: more than 65536 bytes arrived without a newline"),
        "{rest:?}"
    );
    let left = alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Leave { .. })))
        .await;
    assert!(
        matches!(&left, NetEvent::Server(ServerMsg::Leave { reason: Some(r), .. }) if r.contains("without a newline")),
        "{left:?}"
    );
    // The room goes on.
    let mut bob = Plain::connect(&server).await;
    bob.send(b"still here\n").await;
    assert_eq!(alice.message().await.1, "still here");
    server.shutdown().await;
}

#[tokio::test]
async fn exit_from_a_plain_peer_leaves_and_closes_its_connection() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    nc.send(b"bye all\nexit\n").await;
    assert_eq!(alice.message().await.1, "bye all");
    alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Leave { name, .. }) if name == "guest"))
        .await;
    nc.until_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn when_the_host_leaves_everyone_is_told_at_once() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    nc.until_line(|l| l.starts_with("*** you are")).await;
    server.shutdown().await;
    let rest = nc.until_closed().await;
    assert!(
        rest.contains("*** the host left; the room is closed"),
        "{rest:?}"
    );
    let closing = alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Closing { .. })))
        .await;
    assert!(
        matches!(closing, NetEvent::Server(ServerMsg::Closing { reason, .. }) if reason.contains("host left"))
    );
    let closed = alice.until(|e| matches!(e, NetEvent::Closed { .. })).await;
    assert!(matches!(closed, NetEvent::Closed { reason } if reason.contains("host left")));
}

#[tokio::test]
async fn the_hosts_own_seat_joins_through_the_same_path() {
    let server = room(quick()).await;
    let seat = server.connect_local().await.unwrap();
    let mut host = client::start(seat, "host".into());
    let mut bob = Tchat::join(&server, "bob").await;
    host.commands
        .send(Command::Say {
            text: "welcome bob".into(),
            cid: "h1".into(),
        })
        .unwrap();
    // Only the sender sees its own cid.
    assert_eq!(
        bob.message().await,
        ("host".into(), "welcome bob".into(), None)
    );
    let echo = timeout(DEADLINE, async {
        loop {
            if let Some(NetEvent::Server(ServerMsg::Msg { cid, .. })) = host.events.recv().await {
                return cid;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(echo.as_deref(), Some("h1"));
    server.shutdown().await;
    let _ = host.events.recv().await;
}

#[tokio::test]
async fn many_peers_each_get_every_line_in_order() {
    let server = room(unlimited()).await;
    let peers = 12;
    let lines_each = 20;
    let mut plains = Vec::new();
    for _ in 0..peers {
        let mut p = Plain::connect(&server).await;
        p.send(b"ready\n").await;
        p.until_line(|l| l.starts_with("*** you are")).await;
        plains.push(p);
    }
    let mut watcher = Tchat::join(&server, "watcher").await;
    for (i, p) in plains.iter_mut().enumerate() {
        for n in 0..lines_each {
            p.send(format!("p{i} line {n}\n").as_bytes()).await;
        }
    }
    let mut next = vec![0; peers];
    let mut seen = 0;
    while seen < peers * lines_each {
        let (from, text, _) = watcher.message().await;
        if text == "ready" {
            continue;
        }
        let (who, n) = text.split_once(" line ").unwrap();
        let i: usize = who[1..].parse().unwrap();
        assert_eq!(
            n.parse::<usize>().unwrap(),
            next[i],
            "order kept for {from}"
        );
        next[i] += 1;
        seen += 1;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_never_reads_is_dropped_and_slows_nobody() {
    // The default bound (1 MiB unsent).
    stuck_reader_is_dropped(unlimited()).await;
}

#[tokio::test]
async fn a_peer_whose_unsent_bytes_pass_the_bound_is_dropped() {
    stuck_reader_is_dropped(Config {
        max_backlog: 256 * 1024,
        ..unlimited()
    })
    .await;
}

/// Bob says `rounds × per_round` numbered lines of about `size` bytes, a round at a time,
/// and alice reads each round before the next is sent, as a reader that keeps up does.
/// Alice must get every one of bob's lines, in order; `other` sees her other events.
async fn say_in_rounds(
    bob: &Tchat,
    alice: &mut Tchat,
    (rounds, per_round): (usize, usize),
    size: usize,
    mut other: impl FnMut(NetEvent),
) {
    let pad = "x".repeat(size);
    let mut got = 0;
    for round in 0..rounds {
        for i in 0..per_round {
            let n = round * per_round + i;
            bob.say(&format!("{n} {pad}"), &n.to_string());
        }
        while got < (round + 1) * per_round {
            match alice.next().await {
                NetEvent::Server(ServerMsg::Msg { from, text, .. }) if from == "bob" => {
                    let n: usize = text.split(' ').next().unwrap().parse().unwrap();
                    assert_eq!(n, got, "alice gets every line, in order");
                    got += 1;
                }
                e => other(e),
            }
        }
    }
}

async fn stuck_reader_is_dropped(config: Config) {
    let server = room(config).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut stuck = Plain::connect(&server).await;
    stuck.send(b"i will not read\n").await;
    alice.message().await;
    let mut bob = Tchat::join(&server, "bob").await;
    // Bob reads what comes back to him, as a person's screen does.
    let (_, mut bob_events) = tokio::sync::mpsc::channel(1);
    std::mem::swap(&mut bob.h.events, &mut bob_events);
    tokio::spawn(async move { while bob_events.recv().await.is_some() {} });
    // 20 MB in all, far more than socket buffers hold; the stuck peer falls behind.
    let mut dropped = false;
    say_in_rounds(&bob, &mut alice, (100, 200), 1000, |e| {
        if let NetEvent::Server(ServerMsg::Leave { name, reason, .. }) = e {
            assert_eq!(name, "guest");
            assert!(reason.unwrap().contains("too slow"));
            dropped = true;
        }
    })
    .await;
    assert!(dropped, "the stuck peer was dropped");
    drop(stuck);
    server.shutdown().await;
}

/// Lines [`a_flood_past_a_paused_seat`] sends: 0.5 MB in all.
const FLOOD_LINES: usize = 50 * 20;

/// A room on `config` whose host's seat (a plain reader here) stops reading while bob
/// sends [`FLOOD_LINES`] of 500 bytes; when alice has them all, the room has queued
/// them all for the seat. The server, the seat, alice and bob.
async fn a_flood_past_a_paused_seat(
    config: Config,
) -> (
    Server,
    tokio::io::BufReader<tokio::io::DuplexStream>,
    Tchat,
    Tchat,
) {
    let server = room(config).await;
    let mut seat = tokio::io::BufReader::new(server.connect_local().await.unwrap());
    seat.get_mut().write_all(b"host here\n").await.unwrap();
    let mut alice = Tchat::join(&server, "alice").await;
    let bob = Tchat::join(&server, "bob").await;
    say_in_rounds(&bob, &mut alice, (50, 20), 500, |_| {}).await;
    (server, seat, alice, bob)
}

#[tokio::test]
async fn the_hosts_own_seat_is_not_dropped_for_a_pause_in_a_flood() {
    // A bound any netcat peer would be dropped at (see the test above), and a host whose
    // screen stops reading (Ctrl-S) while bob sends far more than that.
    let (server, mut seat, _, _) = a_flood_past_a_paused_seat(Config {
        max_backlog: 16 * 1024,
        ..unlimited()
    })
    .await;
    let lines = FLOOD_LINES;
    // The screen reads again: every line, in order, and no word of being too slow.
    use tokio::io::AsyncBufReadExt;
    let mut next = 0;
    let mut text = String::new();
    while next < lines {
        text.clear();
        timeout(DEADLINE, seat.read_line(&mut text))
            .await
            .expect("the seat's lines keep coming")
            .unwrap();
        assert!(!text.contains("too slow"), "{text}");
        assert!(!text.is_empty(), "the seat's connection was closed");
        if let Some(rest) = text.strip_prefix("bob: ") {
            let n: usize = rest.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(n, next, "every line, in order");
            next += 1;
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn the_hosts_own_seat_past_its_allowance_skips_ahead_and_stays_in_the_room() {
    // The seat may fall 32 KiB behind; bob sends 0.5 MB while it does not read.
    let (server, mut seat, mut alice, bob) = a_flood_past_a_paused_seat(Config {
        max_backlog: 16 * 1024,
        own_seat_backlog: 32 * 1024,
        ..unlimited()
    })
    .await;
    bob.say("after the flood", "last");
    use tokio::io::AsyncBufReadExt;
    let mut skipped = None;
    let mut text = String::new();
    loop {
        text.clear();
        timeout(DEADLINE, seat.read_line(&mut text))
            .await
            .expect("the seat's lines keep coming")
            .unwrap();
        assert!(!text.is_empty(), "the seat's connection was closed");
        assert!(!text.contains("too slow"), "{text}");
        if text.contains("your screen fell behind the room") {
            skipped = Some(text.clone());
        }
        if text.trim_end() == "bob: after the flood" {
            break;
        }
    }
    let skipped = skipped.expect("the seat is told it skipped lines");
    assert!(
        skipped.starts_with("*** ") && skipped.contains("lines were skipped"),
        "{skipped}"
    );
    // Still in the room, under its name.
    alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == "after the flood"))
        .await;
    alice.say("/who", "who");
    let who = alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Notice { text, .. }) if text.starts_with("in the room")))
        .await;
    assert!(format!("{who:?}").contains("guest"), "{who:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_session_back_on_a_new_connection_takes_its_seat_over_quietly() {
    use tchat::protocol::ClientMsg;
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let hello = ClientMsg::Hello {
        v: 1,
        name: "ann".into(),
        client: None,
        session: Some("s-ann".into()),
        since: None,
    }
    .encode();
    let welcomed = |l: &str| -> Option<String> {
        match ServerMsg::decode(l) {
            Ok(ServerMsg::Welcome { name, .. }) => Some(name),
            _ => None,
        }
    };
    // Ann's first connection; everyone is told she came.
    let mut first = Plain::connect(&server).await;
    first.send(hello.as_bytes()).await;
    let line = first.until_line(|l| welcomed(l).is_some()).await;
    assert_eq!(welcomed(&line).as_deref(), Some("ann"));
    alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Join { name, .. }) if name == "ann"))
        .await;
    // Her network changes: the old connection is still open as far as the host knows,
    // and the same session says hello on a new one. It gets her seat and her name.
    let mut second = Plain::connect(&server).await;
    second.send(hello.as_bytes()).await;
    let line = second.until_line(|l| welcomed(l).is_some()).await;
    assert_eq!(
        welcomed(&line).as_deref(),
        Some("ann"),
        "her name, not ann2"
    );
    // The old connection is closed.
    first.until_closed().await;
    // She talks on; the room sees ann, and was never told she left or came again.
    let say = ClientMsg::Say {
        text: "still me".into(),
        cid: None,
    }
    .encode();
    second.send(say.as_bytes()).await;
    loop {
        match alice.next().await {
            NetEvent::Server(ServerMsg::Msg { from, text, .. }) => {
                assert_eq!((from.as_str(), text.as_str()), ("ann", "still me"));
                break;
            }
            NetEvent::Server(ServerMsg::Join { name, .. } | ServerMsg::Leave { name, .. }) => {
                panic!("the room was told of {name} coming or going")
            }
            _ => {}
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn tchat_falls_back_to_plain_text_with_a_plain_server() {
    // A plain socket program, like the classic Python chat server: it greets nobody,
    // prints what it receives and sends what its user types, without newlines.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        // Wait for the joiner's first line before talking.
        while !got.ends_with(b"\n") {
            let n = s.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        s.write_all("hello from the server, 你好".as_bytes())
            .await
            .unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        got.extend_from_slice(&rest);
        String::from_utf8(got).unwrap()
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut c = client::start(stream, "alice".into());
    let first = timeout(DEADLINE, c.events.recv()).await.unwrap().unwrap();
    assert_eq!(first, NetEvent::Plain);
    c.commands
        .send(Command::Say {
            text: "hi server".into(),
            cid: "1".into(),
        })
        .unwrap();
    let text = timeout(DEADLINE, c.events.recv()).await.unwrap().unwrap();
    assert!(matches!(text, NetEvent::Text { text, .. } if text == "hello from the server, 你好"));
    c.commands.send(Command::Leave).unwrap();
    let got = timeout(DEADLINE, server).await.unwrap().unwrap();
    // What a person typed arrives as a line, and leaving says `exit`, as the classic
    // chat expects. Nothing else (no handshake) is sent.
    assert_eq!(got, "hi server\nexit\n");
}

#[tokio::test]
async fn a_flooding_peer_is_refused_and_told_while_others_are_not_slowed() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    nc.send(b"hi\n").await;
    assert_eq!(alice.message().await.1, "hi");
    // 40 lines at once: the burst of 20 (less the one above) gets through, no more.
    let mut burst = String::new();
    for i in 0..40 {
        burst.push_str(&format!("spam {i}\n"));
    }
    nc.send(burst.as_bytes()).await;
    let told = nc.until_line(|l| l.contains("flood")).await;
    assert!(told.contains("20 lines at once, then 5 a second"), "{told}");
    // A structured sender is told of each refused line, by its cid. (tchat itself
    // keeps to the pace its welcome gives; this one sends all at once.)
    let bob = TcpStream::connect(server.local_addr()).await.unwrap();
    let (r, mut w) = bob.into_split();
    let mut bob = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(r));
    let mut said = ClientMsg::Hello {
        v: 1,
        name: "bob".into(),
        client: None,
        session: None,
        since: None,
    }
    .encode();
    for i in 0..22 {
        let say = ClientMsg::Say {
            text: format!("bob {i}"),
            cid: Some(format!("b{i}")),
        };
        said.push_str(&say.encode());
    }
    w.write_all(said.as_bytes()).await.unwrap();
    let refused = loop {
        let line = timeout(DEADLINE, bob.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ok(notice @ ServerMsg::Notice { cid: Some(_), .. }) = ServerMsg::decode(&line) {
            break notice;
        }
    };
    assert!(
        matches!(&refused, ServerMsg::Notice { cid: Some(c), text, .. } if c == "b20" && text.contains("flood")),
        "{refused:?}"
    );
    // Alice got exactly what was let through, in order, and bob's lines were not held
    // up behind the flood.
    let mut spam = 0;
    let mut bobs = 0;
    while bobs < 20 {
        let (from, text, _) = alice.message().await;
        if from == "guest" {
            assert_eq!(text, format!("spam {spam}"));
            spam += 1;
        } else {
            assert_eq!(text, format!("bob {bobs}"));
            bobs += 1;
        }
    }
    assert_eq!(spam, 19);
    server.shutdown().await;
}

#[tokio::test]
async fn one_more_than_the_room_holds_is_told_the_room_is_full() {
    let server = room(Config {
        max_peers: 2,
        ..quick()
    })
    .await;
    let mut alice = Tchat::join(&server, "alice").await;
    let _nc = Plain::connect(&server).await;
    // A third plain peer gets a line saying so, and is closed.
    let mut third = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut got = String::new();
    timeout(DEADLINE, third.read_to_string(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got.contains("room full") && got.contains("2 people"),
        "{got:?}"
    );
    // A tchat client is told plainly, not mistaken for a plain server.
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut h = client::start(stream, "carol".into());
    let ev = timeout(DEADLINE, h.events.recv()).await.unwrap().unwrap();
    assert!(
        matches!(&ev, NetEvent::Closed { reason } if reason.contains("room full")),
        "{ev:?}"
    );
    // Once someone leaves, there is room again.
    alice.h.commands.send(Command::Leave).unwrap();
    let _ = timeout(DEADLINE, &mut alice.h.task).await;
    let mut again = Plain::connect(&server).await;
    again.send(b"in at last\n").await;
    again.until_line(|l| l.starts_with("*** you are")).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_client_hello_gets_a_clear_line_and_no_one_sees_garbage() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut tls = Plain::connect(&server).await;
    // The start of a real TLS 1.2 ClientHello; then the client waits for an answer.
    tls.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a\x11\xc4\x00")
        .await;
    let rest = tls.until_closed().await;
    assert!(rest.contains("not TLS"), "{rest:?}");
    // Alice saw nothing of it: the next thing she gets is the next real message.
    let mut nc = Plain::connect(&server).await;
    nc.send(b"hello\n").await;
    let next = alice
        .until(|e| !matches!(e, NetEvent::Server(ServerMsg::Join { .. })))
        .await;
    assert!(
        matches!(&next, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == "hello"),
        "{next:?}"
    );
    server.shutdown().await;
}

/// A TCP proxy in front of the room that the test can cut and make refuse connections,
/// standing in for a network that fails.
struct Proxy {
    addr: std::net::SocketAddr,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(to: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let r = refuse.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if r.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            refuse,
            cut,
            task,
        }
    }

    /// Break every connection through the proxy and refuse new ones until `heal`.
    fn fail(&self) {
        self.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn heal(&self) {
        self.refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn chaos_a_joiner_cut_off_mid_conversation_rejoins_and_nothing_is_lost_or_doubled() {
    let server = room(unlimited()).await;
    let proxy = Proxy::start(server.local_addr()).await;
    let fast = client::Retry {
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(400),
        after_closing: true,
    };
    let addr = proxy.addr;
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut alice = Tchat {
        h: client::start_rejoining(stream, "alice".into(), fast, move || async move {
            TcpStream::connect(addr).await.map_err(|e| e.to_string())
        }),
        name: "alice".into(),
        asked: None,
    };
    alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Welcome { .. })))
        .await;
    let mut bob = Tchat::join(&server, "bob").await;
    let mut nc = Plain::connect(&server).await;
    nc.until_line(|l| l.starts_with("*** you are")).await;

    // Everything alice is told, whenever it comes, is kept.
    let mut got: Vec<NetEvent> = Vec::new();
    async fn until_kept(t: &mut Tchat, got: &mut Vec<NetEvent>, pred: impl Fn(&NetEvent) -> bool) {
        loop {
            let e = t.next().await;
            let done = pred(&e);
            got.push(e);
            if done {
                return;
            }
        }
    }
    let mut from_bob = Vec::new(); // what alice must see, per sender, in order
    let mut from_nc = Vec::new();
    let mut mine = Vec::new();
    for round in 0..3 {
        for i in 0..5 {
            let text = format!("r{round} bob {i}");
            bob.say(&text, &format!("b{round}-{i}"));
            from_bob.push(text);
        }
        // Alice says something and the network fails right after, echo or no echo.
        let text = format!("r{round} alice before");
        alice.say(&text, &format!("a{round}-0"));
        mine.push(text);
        proxy.fail();
        until_kept(&mut alice, &mut got, |e| matches!(e, NetEvent::Lost { .. })).await;
        // While she is away: others talk, she types.
        for i in 0..5 {
            let text = format!("r{round} away {i}");
            bob.say(&text, &format!("w{round}-{i}"));
            from_bob.push(text);
        }
        let text = format!("r{round} from nc");
        nc.send(format!("{text}\n").as_bytes()).await;
        from_nc.push(text);
        let text = format!("r{round} alice away");
        alice.say(&text, &format!("a{round}-1"));
        mine.push(text);
        // A few refused tries, then the network heals.
        until_kept(&mut alice, &mut got, |e| {
            matches!(e, NetEvent::Reconnecting { attempt: 2 })
        })
        .await;
        proxy.heal();
        until_kept(&mut alice, &mut got, |e| {
            matches!(e, NetEvent::Server(ServerMsg::Welcome { .. }))
        })
        .await;
    }
    bob.say("the end", "end");
    from_bob.push("the end".into());
    until_kept(
        &mut alice,
        &mut got,
        |e| matches!(e, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == "the end"),
    )
    .await;
    let texts = |who: &str| -> Vec<String> {
        got.iter()
            .filter_map(|e| match e {
                NetEvent::Server(ServerMsg::Msg { from, text, .. }) if from == who => {
                    Some(text.clone())
                }
                _ => None,
            })
            .collect()
    };
    // Alice saw every line of the others exactly once, in order, ...
    assert_eq!(texts("bob"), from_bob);
    assert_eq!(texts("guest"), from_nc);
    assert!(
        got.iter().any(
            |e| matches!(e, NetEvent::Server(ServerMsg::Catchup { count, lost: 0 }) if *count > 0)
        ),
        "she caught up"
    );
    // Bob got each of alice's lines exactly once, in the order she typed them.
    let mut seen_by_bob = Vec::new();
    bob.say("check", "check");
    until_kept(
        &mut alice,
        &mut got,
        |e| matches!(e, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == "check"),
    )
    .await;
    // ... and each of her own lines came back to her (delivered) exactly once.
    let echoes: Vec<String> = got
        .iter()
        .filter_map(|e| match e {
            NetEvent::Server(ServerMsg::Msg {
                from,
                text,
                cid: Some(_),
                ..
            }) if from == "alice" => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(echoes, mine);
    loop {
        let (from, text, _) = bob.message().await;
        if from == "alice" {
            seen_by_bob.push(text);
        } else if text == "check" {
            break;
        }
    }
    assert_eq!(seen_by_bob, mine);
    server.shutdown().await;
}

#[tokio::test]
async fn commands_work_the_same_from_tchat_and_plain_peers() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut bob = Tchat::join(&server, "bob").await;
    let mut nc = Plain::connect(&server).await;
    nc.until_line(|l| l.starts_with("*** you are guest")).await;

    // /nick: a taken name is refused with a reason; a free one is announced.
    nc.send(b"/nick Alice\n").await;
    let refused = nc.until_line(|l| l.contains("taken")).await;
    assert_eq!(refused, "*** the name Alice is taken; you are still guest");
    nc.send(b"/nick carol\n").await;
    let renamed = alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Nick { .. })))
        .await;
    assert!(
        matches!(&renamed, NetEvent::Server(ServerMsg::Nick { old, new, .. }) if old == "guest" && new == "carol"),
        "{renamed:?}"
    );
    nc.until_line(|l| l == "*** guest is now known as carol")
        .await;
    bob.say("/nick carol", "n1");
    let no = bob
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Notice { .. })))
        .await;
    assert!(
        matches!(&no, NetEvent::Server(ServerMsg::Notice { text, cid: Some(c), .. }) if text.contains("taken") && c == "n1"),
        "{no:?}"
    );

    // /who
    nc.send(b"/who\n").await;
    nc.until_line(|l| l == "*** in the room (3): alice, bob, carol")
        .await;

    // /me, from both kinds of peer.
    nc.send(b"/me waves\n").await;
    let me = alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Me { .. })))
        .await;
    assert!(
        matches!(&me, NetEvent::Server(ServerMsg::Me { from, text, .. }) if from == "carol" && text == "waves")
    );
    bob.say("/me waves back", "m1");
    nc.until_line(|l| l == "* bob waves back").await;

    // /msg: only the two see it.
    nc.send(b"/msg bob just between us\n").await;
    let p = bob
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Private { .. })))
        .await;
    assert!(
        matches!(&p, NetEvent::Server(ServerMsg::Private { from, to, text, .. }) if from == "carol" && to == "bob" && text == "just between us")
    );
    nc.until_line(|l| l == "[private] carol → bob: just between us")
        .await;
    bob.say("/msg carol got it", "p1");
    nc.until_line(|l| l == "[private] bob → carol: got it")
        .await;
    // Alice saw neither: the next thing she gets is this public line.
    bob.say("public again", "b2");
    let next = alice
        .until(|e| {
            matches!(
                e,
                NetEvent::Server(ServerMsg::Msg { .. } | ServerMsg::Private { .. })
            )
        })
        .await;
    assert!(
        matches!(&next, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == "public again"),
        "{next:?}"
    );

    // Unknown commands are answered and never relayed; // sends a literal slash.
    nc.send(b"/frobnicate\n//not a command\n").await;
    nc.until_line(|l| l.starts_with("*** there is no command /frobnicate"))
        .await;
    let (_, text, _) = alice.message().await;
    assert_eq!(text, "/not a command");

    // /help, and /quit leaves like exit.
    nc.send(b"/help\n").await;
    nc.until_line(|l| l.contains("/msg NAME TEXT")).await;
    nc.send(b"/quit\n").await;
    alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Leave { name, .. }) if name == "carol"))
        .await;
    nc.until_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn someone_who_joins_late_gets_the_recent_history_in_order() {
    let server = room(unlimited()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    for i in 0..30 {
        alice.say(&format!("line {i}"), &format!("c{i}"));
    }
    alice.say("/me is done", "me");
    alice
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Me { .. })))
        .await;
    // A tchat peer: all 31 (under 100), marked as history, before anything live.
    let stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut bob = Tchat {
        h: client::start(stream, "bob".into()),
        name: "bob".into(),
        asked: None,
    };
    bob.until(|e| matches!(e, NetEvent::Server(ServerMsg::Welcome { .. })))
        .await;
    assert_eq!(
        bob.next().await,
        NetEvent::Server(ServerMsg::History { count: 31 })
    );
    for i in 0..30 {
        assert_eq!(bob.message().await.1, format!("line {i}"));
    }
    assert!(
        matches!(bob.next().await, NetEvent::Server(ServerMsg::Me { text, .. }) if text == "is done")
    );
    alice.say("live now", "live");
    assert_eq!(bob.message().await.1, "live now");
    // A plain peer: the last 20, between marker lines.
    let mut nc = Plain::connect(&server).await;
    nc.until_line(|l| l.starts_with("*** you are")).await;
    nc.until_line(|l| l == "*** the last 20 messages before you came:")
        .await;
    let mut got = Vec::new();
    loop {
        let l = nc.until_line(|_| true).await;
        if l == "*** end of history" {
            break;
        }
        got.push(l);
    }
    let mut want: Vec<String> = (12..30).map(|i| format!("alice: line {i}")).collect();
    want.push("* alice is done".into());
    want.push("alice: live now".into());
    assert_eq!(got, want);
    server.shutdown().await;
}

#[tokio::test]
async fn a_pasted_block_is_one_message_for_tchat_and_lines_for_nc() {
    let server = room(quick()).await;
    let alice = Tchat::join(&server, "alice").await;
    let mut bob = Tchat::join(&server, "bob").await;
    let mut nc = Plain::connect(&server).await;
    nc.until_line(|l| l.starts_with("*** you are")).await;
    // Thirty lines in one message: more than the flood limit's burst of 20 lines, but one
    // message, so it is counted once and not cut.
    let block: Vec<String> = (0..30).map(|i| format!("line {i} of the paste")).collect();
    alice.say(&block.join("\n"), "paste");
    let (from, text, _) = bob.message().await;
    assert_eq!((from.as_str(), text), ("alice", block.join("\n")));
    for line in &block {
        let got = nc.until_line(|l| l.starts_with("alice: ")).await;
        assert_eq!(got, format!("alice: {line}"));
    }
    // And /who from a tchat peer is answered to it alone.
    bob.say("/who", "w");
    let who = bob
        .until(|e| matches!(e, NetEvent::Server(ServerMsg::Notice { .. })))
        .await;
    assert!(
        matches!(&who, NetEvent::Server(ServerMsg::Notice { text, cid: Some(c), .. }) if text == "in the room (3): alice, bob, guest" && c == "w"),
        "{who:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn help_reaches_a_netcat_peer_as_one_notice_line_per_line() {
    let server = room(quick()).await;
    let mut nc = Plain::connect(&server).await;
    nc.send(b"/help\n").await;
    nc.until_line(|l| l == "*** commands:").await;
    // Every command on its own line, each marked as the room's: none folded into one.
    let mut lines = Vec::new();
    for _ in 0..tchat::protocol::COMMAND_HELP.lines().count() {
        lines.push(nc.until_line(|_| true).await);
    }
    for command in ["/nick", "/who", "/me", "/msg", "/quit"] {
        let line = lines.iter().find(|l| l.contains(command));
        let line = line.unwrap_or_else(|| panic!("{command} in {lines:#?}"));
        assert!(line.starts_with("*** "), "{line:?}");
    }
    assert!(!lines.iter().any(|l| l.contains('␊')), "{lines:#?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_topic_reaches_netcat_peers_now_and_when_they_come_in() {
    let server = room(quick()).await;
    let mut alice = Tchat::join(&server, "alice").await;
    let mut nc = Plain::connect(&server).await;
    nc.send(b"hi\n").await;
    alice.message().await;
    alice.say("/topic release on Friday", "t1");
    nc.until_line(|l| l == "*** alice set the topic: release on Friday")
        .await;
    let mut late = Plain::connect(&server).await;
    late.send(b"hello\n").await;
    late.until_line(|l| l == "*** the topic is: release on Friday")
        .await;
    server.shutdown().await;
}
