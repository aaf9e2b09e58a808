//! Links that stutter: a real room on 127.0.0.1, its joiners reaching it through an
//! impairment proxy (`common::impair`) that adds latency, stalls inside lines, small
//! segments, black holes and resets. Every wait has a deadline.
//!
//! The slow ones (over ~10 s each) are `#[ignore]`d out of the default run; run them
//! with `cargo test --release --test links -- --ignored`.

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

use common::impair::{Impair, Mode, Proxy};
use common::joiner::Joiner;
use tchat::client::{self, Command, NetEvent};
use tchat::protocol::ServerMsg;
use tchat::server::room::Rules;
use tchat::server::{Config, Server};

async fn room(config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::spawn(listener, config).unwrap()
}

fn quick() -> Config {
    Config {
        address: "127.0.0.1:test".into(),
        // Every peer here comes from 127.0.0.1.
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

/// [`quick`] with no flood limit (for tests that send in bulk) and `history` events kept.
fn unlimited(history: usize) -> Config {
    let quick = quick();
    Config {
        rules: Rules {
            history,
            burst: 0,
            rate: 0,
            ..quick.rules
        },
        ..quick
    }
}

/// A room, a proxy to it impaired `up` and `down`, a joiner through the proxy (`far`)
/// and one straight in (`near`).
async fn far_and_near(config: Config, up: Impair, down: Impair) -> (Server, Proxy, Joiner, Joiner) {
    let server = room(config).await;
    let proxy = Proxy::start(server.local_addr(), up, down).await;
    let far = Joiner::join(&proxy.addr.to_string(), "far").await;
    let near = Joiner::join(&server.local_addr().to_string(), "near").await;
    (server, proxy, far, near)
}

/// Take the far side's link down (reset, and new connections refused) and wait until it
/// notices.
async fn lose_link(proxy: &Proxy, far: &mut Joiner) {
    proxy.set_refusing(true);
    proxy.reset_all();
    far.until(Duration::from_secs(10), |e| {
        matches!(e, NetEvent::Lost { .. })
    })
    .await;
}

fn is_welcome(e: &NetEvent) -> bool {
    matches!(e, NetEvent::Server(ServerMsg::Welcome { .. }))
}

fn msg_text(e: &NetEvent, want: &str) -> bool {
    matches!(e, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == want)
}

/// A retransmission in the middle of every line, both ways: 200 ms (Linux's least RTO)
/// after every 40 bytes.
fn stalls_inside_lines() -> Impair {
    Impair {
        pause_every: Some((40, Duration::from_millis(200))),
        ..Impair::default()
    }
}

#[tokio::test]
async fn a_stall_inside_a_line_splits_it_neither_way() {
    let (_server, _proxy, mut far, mut near) =
        far_and_near(quick(), stalls_inside_lines(), stalls_inside_lines()).await;
    let long = "a line long enough to be cut in two by a stall on the way to the room";
    far.say(long, "f1");
    near.until(Duration::from_secs(10), |e| msg_text(e, long))
        .await;
    let back = "and an answer as long, which must reach the far side whole as well";
    near.say(back, "n1");
    far.until(Duration::from_secs(10), |e| msg_text(e, back))
        .await;
    // The far side's own line came back whole too (its echo).
    assert_eq!(far.texts_from(&far.name), [long]);
    assert!(
        far.text_shown().is_empty(),
        "protocol bytes shown: {:?}",
        far.text_shown()
    );
    assert!(
        !far.notices().iter().any(|n| n.contains("ignored")),
        "the host could not read a line: {:?}",
        far.notices()
    );
}

#[tokio::test]
async fn a_link_with_a_one_second_round_trip_joins_as_tchat() {
    let server = room(quick()).await;
    let proxy = Proxy::start(
        server.local_addr(),
        Impair::latency(500),
        Impair::latency(500),
    )
    .await;
    let mut far = Joiner::join(&proxy.addr.to_string(), "far").await;
    assert_eq!(far.name, "far");
    assert!(!far.seen.iter().any(|e| matches!(e, NetEvent::Plain)));
    far.say("over the long link", "f1");
    far.until(Duration::from_secs(10), |e| {
        msg_text(e, "over the long link")
    })
    .await;
}

#[tokio::test]
async fn one_byte_segments_and_jitter_garble_nothing() {
    let choppy = Impair {
        segment: Some(1),
        jitter: Duration::from_millis(30),
        ..Impair::default()
    };
    let (_server, _proxy, far, mut near) = far_and_near(quick(), choppy.clone(), choppy).await;
    for i in 0..5 {
        far.say(&format!("héllo 你好 {i} 👋"), &format!("f{i}"));
    }
    near.until(Duration::from_secs(10), |e| msg_text(e, "héllo 你好 4 👋"))
        .await;
    let got = near.texts_from(&far.name);
    let want: Vec<String> = (0..5).map(|i| format!("héllo 你好 {i} 👋")).collect();
    assert_eq!(got, want);
}

/// A plain peer that has shown it ends its lines (as `nc` does) is read strictly too: a
/// stall inside its next line does not cut it in two.
#[tokio::test]
async fn a_stall_inside_a_netcat_line_does_not_split_it() {
    let server = room(quick()).await;
    let proxy = Proxy::start(server.local_addr(), Impair::default(), Impair::default()).await;
    let mut near = Joiner::join(&server.local_addr().to_string(), "near").await;
    let mut nc = TcpStream::connect(proxy.addr).await.unwrap();
    nc.set_nodelay(true).unwrap();
    nc.write_all(b"first line\n").await.unwrap();
    near.until(Duration::from_secs(10), |e| msg_text(e, "first line"))
        .await;
    nc.write_all(b"second line, sent in ").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    nc.write_all(b"two parts\n").await.unwrap();
    let whole = "second line, sent in two parts";
    near.until(Duration::from_secs(10), |e| msg_text(e, whole))
        .await;
    assert!(
        !near.texts_from("guest").iter().any(|t| t == "two parts"),
        "{:?}",
        near.texts_from("guest")
    );
    // A script that never sends a newline still has each pause taken as a line.
    let mut py = TcpStream::connect(server.local_addr()).await.unwrap();
    py.write_all(b"no newline here").await.unwrap();
    near.until(Duration::from_secs(10), |e| msg_text(e, "no newline here"))
        .await;
    let mut sink = [0u8; 1024];
    let _ = timeout(Duration::from_millis(10), py.read(&mut sink)).await;
}

/// A host that goes silent (frozen, or the path to it dead) is noticed after
/// `HOST_SILENCE` however much the joiner types: only what arrives is a sign of life.
#[tokio::test(start_paused = true)]
async fn a_joiner_that_keeps_typing_still_notices_a_dead_host() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (near, far) = tokio::io::duplex(1 << 20);
    let (r, mut w) = tokio::io::split(far);
    w.write_all(format!("{}\n", tchat::protocol::banner("test")).as_bytes())
        .await
        .unwrap();
    let mut h = client::start(near, "alice".into());
    let mut lines = BufReader::new(r).lines();
    let _hello = lines.next_line().await.unwrap();
    let welcome = ServerMsg::Welcome {
        v: 1,
        room: "r".into(),
        name: "alice".into(),
        asked: None,
        members: vec!["alice".into()],
        max_line: 8192,
        pace: None,
        ts: None,
        topic: None,
    };
    w.write_all(welcome.encode().as_bytes()).await.unwrap();
    let started = Instant::now();
    // The host now says nothing at all; the joiner types a line every 10 s. Its lines
    // are read (so it is not blocked), never answered.
    let reading = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let lost = loop {
        tokio::select! {
            e = h.events.recv() => match e.expect("running") {
                NetEvent::Closed { reason } | NetEvent::Lost { reason, .. } => break reason,
                _ => {}
            },
            () = tokio::time::sleep(Duration::from_secs(10)) => {
                let say = Command::Say { text: "anyone?".into(), cid: format!("{:?}", started.elapsed()) };
                h.commands.send(say).unwrap();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never noticed"
        );
    };
    assert!(lost.contains("no word from the host"), "{lost}");
    assert!(started.elapsed() <= client::HOST_SILENCE + Duration::from_secs(1));
    reading.abort();
    drop(w);
}

/// What a phase does to the link.
type Phase = Box<dyn Fn(&Proxy)>;

/// A line relayed whose echo was lost in a reset, sent again long after the history let
/// go of it: shown once, and acknowledged to its sender.
#[tokio::test]
async fn a_resend_long_after_the_history_forgot_the_line_is_not_shown_twice() {
    let (_server, proxy, mut far, mut near) =
        far_and_near(unlimited(20), Impair::default(), Impair::default()).await;
    // What the host sends the far side now takes 3 s: the echo is still on its way...
    proxy.set_down(Impair::latency(3_000));
    far.say("only once", "f1");
    near.until(Duration::from_secs(10), |e| msg_text(e, "only once"))
        .await;
    // ...while the room moves on past its history...
    for i in 0..30 {
        near.say(&format!("busy {i}"), &format!("n{i}"));
    }
    near.until(Duration::from_secs(10), |e| msg_text(e, "busy 29"))
        .await;
    // ...and the link is reset before the echo arrives.
    proxy.reset_all();
    proxy.set_down(Impair::default());
    far.until(
        Duration::from_secs(10),
        |e| matches!(e, NetEvent::Server(ServerMsg::Ack { cid, .. }) if cid == "f1"),
    )
    .await;
    far.say("and then", "f2");
    near.until(Duration::from_secs(10), |e| msg_text(e, "and then"))
        .await;
    assert_eq!(near.texts_from(&far.name), ["only once", "and then"]);
}

/// Lines typed while the host could not be reached go out after the rejoin no faster
/// than the room's flood limit (told in `welcome`): none is refused.
#[tokio::test]
async fn lines_typed_offline_are_resent_within_the_flood_limit() {
    // The default limit: 20 at once, then 5 a second.
    let (_server, proxy, mut far, mut near) =
        far_and_near(quick(), Impair::default(), Impair::default()).await;
    lose_link(&proxy, &mut far).await;
    let n = 30;
    for i in 1..=n {
        far.say(&format!("offline {i}"), &format!("f{i}"));
    }
    proxy.set_refusing(false);
    let last = format!("offline {n}");
    near.until(Duration::from_secs(20), |e| msg_text(e, &last))
        .await;
    let want: Vec<String> = (1..=n).map(|i| format!("offline {i}")).collect();
    assert_eq!(near.texts_from(&far.name), want);
    if !far.texts_from(&far.name).contains(&last) {
        far.until(Duration::from_secs(10), |e| msg_text(e, &last))
            .await;
    }
    assert!(
        !far.notices().iter().any(|n| n.contains("slow down")),
        "{:?}",
        far.notices()
    );
}

/// A rejoiner on a slow link with a big catch-up to read is not cut as too slow while
/// it drains (the catch-up is the host's choice, not a backlog), and gets all of it
/// and what is said meanwhile, once each.
#[tokio::test]
async fn a_big_catch_up_over_a_slow_link_is_not_cut_as_too_slow() {
    let (_server, proxy, mut far, mut near) = far_and_near(
        Config {
            max_backlog: 64 * 1024,
            ..unlimited(2000)
        },
        Impair::default(),
        Impair::default(),
    )
    .await;
    lose_link(&proxy, &mut far).await;
    // 1,000 lines of 200 bytes while it is away: 200 KB to catch up on, three times the
    // backlog allowed...
    let pad = "x".repeat(180);
    for i in 0..1000 {
        near.say(&format!("{i:04} {pad}"), &format!("n{i}"));
    }
    near.until(Duration::from_secs(20), |e| {
        msg_text(e, &format!("0999 {pad}"))
    })
    .await;
    // ...over a link of 100 KB/s, while the room goes on talking.
    proxy.set_down(Impair {
        bytes_per_sec: Some(100_000),
        ..Impair::default()
    });
    proxy.set_refusing(false);
    for i in 1000..1010 {
        near.say(&format!("{i:04} live"), &format!("n{i}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    far.until(Duration::from_secs(30), |e| msg_text(e, "1009 live"))
        .await;
    let got = far.texts_from(&near.name);
    let mut want: Vec<String> = (0..1000).map(|i| format!("{i:04} {pad}")).collect();
    want.extend((1000..1010).map(|i| format!("{i:04} live")));
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    // Once back in, it stayed in while the catch-up drained (its tries while the
    // link was refused each count a loss; none after the last welcome), and the room
    // never let it go as too slow.
    let back = far.seen.iter().rposition(is_welcome).unwrap();
    assert!(
        !far.seen[back..]
            .iter()
            .any(|e| matches!(e, NetEvent::Lost { .. })),
        "cut after the rejoin"
    );
    assert!(
        !near.seen.iter().any(|e| matches!(
            e,
            NetEvent::Server(ServerMsg::Leave { reason: Some(r), .. }) if r.contains("too slow")
        )),
        "the room cut it as too slow"
    );
}

/// Everything the proxy can do to a link, one after another, on a busy conversation:
/// each line arrives exactly once, in order, and no protocol byte is shown.
#[tokio::test]
#[ignore = "slow: about 30 s; run with --ignored"]
async fn every_impairment_in_turn_loses_and_doubles_nothing() {
    let (_server, proxy, mut far, mut near) = far_and_near(
        Config {
            ping_after: Duration::from_secs(2),
            ..quick()
        },
        Impair::default(),
        Impair::default(),
    )
    .await;
    let phases: Vec<(&str, Phase)> = vec![
        ("latency", Box::new(|p| p.set_up(Impair::latency(300)))),
        (
            "stalls",
            Box::new(|p| {
                p.set_up(stalls_inside_lines());
                p.set_down(stalls_inside_lines());
            }),
        ),
        (
            "1-byte",
            Box::new(|p| {
                let one = Impair {
                    segment: Some(1),
                    ..Impair::default()
                };
                p.set_up(one.clone());
                p.set_down(one);
            }),
        ),
        (
            "slow",
            Box::new(|p| {
                let slow = Impair {
                    bytes_per_sec: Some(2_000),
                    ..Impair::default()
                };
                p.set_up(slow.clone());
                p.set_down(slow);
            }),
        ),
        ("stall 3 s", Box::new(|p| p.set_mode(Mode::Stall))),
        ("reset", Box::new(|p| p.reset_all())),
        ("black hole", Box::new(|p| p.set_mode(Mode::BlackHole))),
    ];
    let mut n = 0;
    for (name, start) in phases {
        start(&proxy);
        for _ in 0..5 {
            n += 1;
            far.say(&format!("far {n}"), &format!("f{n}"));
            near.say(&format!("near {n}"), &format!("n{n}"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if name == "stall 3 s" {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if name == "black hole" {
            // Both sides give up on the dead link (the host's pings go unanswered); the
            // joiner comes back through a healthy one.
            far.until(Duration::from_secs(60), |e| {
                matches!(e, NetEvent::Lost { .. })
            })
            .await;
        }
        proxy.set_mode(Mode::Pass);
        proxy.set_up(Impair::default());
        proxy.set_down(Impair::default());
        let (last_far, last_near) = (format!("far {n}"), format!("near {n}"));
        near.until(Duration::from_secs(60), |e| msg_text(e, &last_far))
            .await;
        far.until(Duration::from_secs(60), |e| msg_text(e, &last_near))
            .await;
        if !far.texts_from(&far.name).contains(&last_far) {
            far.until(Duration::from_secs(60), |e| msg_text(e, &last_far))
                .await;
        }
        eprintln!("{name}: through");
    }
    let want = |who: &str| (1..=n).map(|i| format!("{who} {i}")).collect::<Vec<_>>();
    assert_eq!(near.texts_from(&far.name), want("far"));
    assert_eq!(far.texts_from(&near.name), want("near"));
    assert_eq!(
        far.texts_from(&far.name),
        want("far"),
        "its own echoes, once each"
    );
    assert!(far.text_shown().is_empty(), "{:?}", far.text_shown());
}

/// `--log` across rejoins: what the room said is written once, however often the link
/// drops (each rejoin is caught up on what it missed, never sent the history again).
#[tokio::test]
async fn a_log_across_three_rejoins_writes_each_line_once() {
    let (_server, proxy, far, mut near) =
        far_and_near(quick(), Impair::default(), Impair::default()).await;
    drop(far);
    // Said before the logging joiner comes: it gets them as history, once.
    for i in 0..3 {
        near.say(&format!("before {i}"), &format!("b{i}"));
    }
    near.until(Duration::from_secs(10), |e| msg_text(e, "before 2"))
        .await;
    let mut far = Joiner::join(&proxy.addr.to_string(), "late").await;
    far.until(Duration::from_secs(10), |e| msg_text(e, "before 2"))
        .await;
    for round in 0..4 {
        for i in 0..5 {
            near.say(&format!("round {round} line {i}"), &format!("n{round}-{i}"));
        }
        let last = format!("round {round} line 4");
        far.until(Duration::from_secs(10), |e| msg_text(e, &last))
            .await;
        if round < 3 {
            proxy.reset_all();
            far.until(Duration::from_secs(10), is_welcome).await;
        }
    }
    let mut log = tchat::log::Log::new(Vec::new()).utc_offset(0);
    for e in &far.seen {
        log.record(0, e);
    }
    let text = String::from_utf8(log.into_inner()).unwrap();
    for i in 0..3 {
        let line = format!("near: before {i}");
        assert_eq!(text.matches(&line).count(), 1, "{line} in:\n{text}");
    }
    for round in 0..4 {
        for i in 0..5 {
            let line = format!("near: round {round} line {i}");
            assert_eq!(text.matches(&line).count(), 1, "{line} in:\n{text}");
        }
    }
}
