//! Timers of the fault handling, on tokio's paused clock: the joiner's backoff, a host
//! that goes silent without closing (half-open), and the host dropping a tchat peer
//! that stops answering pings. The far side of each connection is an in-memory pipe
//! driven by the test, so every wait is exact and no test takes real time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use tchat::client::{self, Command, NetEvent, Retry};
use tchat::protocol::{self, ClientMsg, ServerMsg};
use tchat::server::{Config, Server};

/// A pretend tchat host on the far end of a pipe.
struct FakeHost {
    lines: tokio::io::Lines<BufReader<tokio::io::ReadHalf<DuplexStream>>>,
    w: tokio::io::WriteHalf<DuplexStream>,
}

impl FakeHost {
    /// A pipe whose near end is for the client; the far end greets like a host.
    async fn new() -> (DuplexStream, FakeHost) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let (r, w) = tokio::io::split(far);
        let mut host = FakeHost {
            lines: BufReader::new(r).lines(),
            w,
        };
        host.send_raw(&format!("{}\n", protocol::banner("test")))
            .await;
        (near, host)
    }

    async fn send_raw(&mut self, s: &str) {
        self.w.write_all(s.as_bytes()).await.unwrap();
    }

    async fn send(&mut self, m: &ServerMsg) {
        self.send_raw(&m.encode()).await;
    }

    async fn next(&mut self) -> ClientMsg {
        let line = self.lines.next_line().await.unwrap().expect("a line");
        ClientMsg::decode(&line).unwrap()
    }

    /// Read the client's hello and welcome it into room `epoch`.
    async fn welcome(&mut self, epoch: &str) -> ClientMsg {
        let hello = self.next().await;
        assert!(matches!(hello, ClientMsg::Hello { .. }), "{hello:?}");
        self.send(&ServerMsg::Welcome {
            v: 1,
            room: epoch.into(),
            name: "alice".into(),
            asked: None,
            members: vec!["alice".into()],
            max_line: 8192,
            pace: None,
            ts: None,
            topic: None,
        })
        .await;
        hello
    }
}

/// A client on `near`, welcomed by `host`, whose every reconnect succeeds: the far end
/// of each new pipe comes out of the receiver.
async fn rejoining(
    near: DuplexStream,
    host: &mut FakeHost,
) -> (client::Handle, mpsc::UnboundedReceiver<FakeHost>) {
    let (pipes_tx, pipes_rx) = mpsc::unbounded_channel::<FakeHost>();
    let connect = move || {
        let pipes_tx = pipes_tx.clone();
        async move {
            let (near, host) = FakeHost::new().await;
            pipes_tx.send(host).unwrap();
            Ok::<_, String>(near)
        }
    };
    let mut h = client::start_rejoining(near, "alice".into(), Retry::default(), connect);
    host.welcome("e1").await;
    until(&mut h, is_welcome).await;
    (h, pipes_rx)
}

async fn next_event(h: &mut client::Handle) -> NetEvent {
    h.events.recv().await.expect("the client task is running")
}

async fn until(h: &mut client::Handle, pred: impl Fn(&NetEvent) -> bool) -> NetEvent {
    loop {
        let e = next_event(h).await;
        if pred(&e) {
            return e;
        }
    }
}

fn is_welcome(e: &NetEvent) -> bool {
    matches!(e, NetEvent::Server(ServerMsg::Welcome { .. }))
}

#[tokio::test(start_paused = true)]
async fn a_lost_host_is_retried_after_1_2_4_to_30_s_and_the_backoff_restarts_after_a_rejoin() {
    let (near, mut host) = FakeHost::new().await;
    // Every try fails until the eighth; each try's time is noted.
    let tries: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let (pipes_tx, mut pipes_rx) = mpsc::unbounded_channel::<FakeHost>();
    let connect = {
        let tries = tries.clone();
        move || {
            let tries = tries.clone();
            let pipes_tx = pipes_tx.clone();
            async move {
                let n = {
                    let mut t = tries.lock().unwrap();
                    t.push(Instant::now());
                    t.len()
                };
                if n % 8 != 0 {
                    return Err("connection refused".to_owned());
                }
                let (near, host) = FakeHost::new().await;
                pipes_tx.send(host).unwrap();
                Ok(near)
            }
        }
    };
    let mut h = client::start_rejoining(near, "alice".into(), Retry::default(), connect);
    host.welcome("e1").await;
    until(&mut h, is_welcome).await;
    let lost_at = Instant::now();
    drop(host);

    let mut waits = Vec::new();
    loop {
        match next_event(&mut h).await {
            NetEvent::Lost { retry_in, .. } => waits.push(retry_in.as_secs()),
            NetEvent::Reconnecting { attempt: 8 } => break,
            NetEvent::Reconnecting { .. } => {}
            e => panic!("unexpected {e:?}"),
        }
    }
    // The eighth try connects: welcome it.
    let mut host = pipes_rx.recv().await.unwrap();
    host.welcome("e1").await;
    until(&mut h, is_welcome).await;
    // Lost again at once: the wait starts from 1 s again.
    drop(host);
    let again = until(&mut h, |e| matches!(e, NetEvent::Lost { .. })).await;
    assert!(
        matches!(again, NetEvent::Lost { retry_in, .. } if retry_in == Duration::from_secs(1)),
        "{again:?}"
    );
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    // The tries happened when the waits said: 1, 3, 7, 15, 31, 61, 91, 121 s after the loss.
    let at: Vec<u64> = tries
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.duration_since(lost_at).as_secs())
        .collect();
    assert_eq!(at, vec![1, 3, 7, 15, 31, 61, 91, 121]);
    let _ = h.commands.send(Command::Leave);
}

#[tokio::test(start_paused = true)]
async fn a_host_that_goes_silent_without_closing_is_found_and_left() {
    let (near, mut host) = FakeHost::new().await;
    let connects = Arc::new(Mutex::new(0));
    let connect = {
        let connects = connects.clone();
        move || {
            *connects.lock().unwrap() += 1;
            async { Err::<DuplexStream, _>("connection refused".to_owned()) }
        }
    };
    let mut h = client::start_rejoining(near, "alice".into(), Retry::default(), connect);
    host.welcome("e1").await;
    until(&mut h, is_welcome).await;
    let start = Instant::now();

    // While the host pings every 20 s, the client answers and stays.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(20)).await;
        host.send(&ServerMsg::Ping).await;
        // The client, having heard nothing for 15 s, asked first.
        assert_eq!(host.next().await, ClientMsg::Ping);
        assert_eq!(host.next().await, ClientMsg::Pong);
    }
    assert!(
        h.events.try_recv().is_err(),
        "nothing to report: pings are not shown"
    );
    assert_eq!(*connects.lock().unwrap(), 0);

    // Then nothing at all, and the pipe stays open (as a half-open connection does).
    let quiet_from = Instant::now();
    let lost = until(&mut h, |e| matches!(e, NetEvent::Lost { .. })).await;
    let NetEvent::Lost { reason, .. } = lost else {
        unreachable!()
    };
    assert!(reason.contains("no word from the host"), "{reason}");
    assert_eq!(quiet_from.duration_since(start), Duration::from_secs(100));
    assert_eq!(
        Instant::now().duration_since(quiet_from),
        client::HOST_SILENCE
    );
    // And it tries to rejoin.
    until(&mut h, |e| {
        matches!(e, NetEvent::Reconnecting { attempt: 1 })
    })
    .await;
    assert_eq!(*connects.lock().unwrap(), 1);
    let _ = h.commands.send(Command::Leave);
}

#[tokio::test(start_paused = true)]
async fn lines_typed_while_offline_are_sent_after_the_rejoin_and_events_pass_once() {
    let (near, mut host) = FakeHost::new().await;
    let (mut h, mut pipes_rx) = rejoining(near, &mut host).await;
    let msg = |id: u64, text: &str, cid: Option<&str>| ServerMsg::Msg {
        id,
        ts: 0,
        from: "bob".into(),
        text: text.into(),
        cid: cid.map(str::to_owned),
        held: None,
    };
    host.send(&msg(1, "one", None)).await;
    host.send(&msg(2, "two", None)).await;
    until(&mut h, |e| {
        matches!(e, NetEvent::Server(ServerMsg::Msg { id: 2, .. }))
    })
    .await;
    // A line sent just before the cut; no echo comes.
    h.commands
        .send(Command::Say {
            text: "in flight".into(),
            cid: "c1".into(),
        })
        .unwrap();
    assert!(matches!(host.next().await, ClientMsg::Say { cid: Some(c), .. } if c == "c1"));
    drop(host);
    until(&mut h, |e| matches!(e, NetEvent::Lost { .. })).await;
    // Typed while offline.
    h.commands
        .send(Command::Say {
            text: "while away".into(),
            cid: "c2".into(),
        })
        .unwrap();

    let mut host = pipes_rx.recv().await.unwrap();
    let hello = host.welcome("e1").await;
    // It asks for what came after the last event it saw, as the same session.
    let ClientMsg::Hello { since, session, .. } = hello else {
        unreachable!()
    };
    assert_eq!(since.map(|s| (s.room, s.id)), Some(("e1".into(), 2)));
    assert!(session.is_some());
    // Both unconfirmed lines go out again, in order.
    assert!(matches!(host.next().await, ClientMsg::Say { cid: Some(c), .. } if c == "c1"));
    assert!(matches!(host.next().await, ClientMsg::Say { cid: Some(c), .. } if c == "c2"));
    // The host replays from id 2 (one already seen) and echoes.
    host.send(&ServerMsg::Catchup { count: 2, lost: 0 }).await;
    host.send(&msg(2, "two", None)).await;
    host.send(&msg(3, "in flight", Some("c1"))).await;
    host.send(&msg(4, "while away", Some("c2"))).await;
    // A resend's echo repeated by the host is not passed on twice either.
    host.send(&msg(3, "in flight", Some("c1"))).await;
    host.send(&msg(5, "after", None)).await;
    let mut ids = Vec::new();
    loop {
        match next_event(&mut h).await {
            NetEvent::Server(ServerMsg::Msg { id, .. }) => {
                ids.push(id);
                if id == 5 {
                    break;
                }
            }
            NetEvent::Server(ServerMsg::Welcome { .. } | ServerMsg::Catchup { .. })
            | NetEvent::Lost { .. }
            | NetEvent::Reconnecting { .. } => {}
            e => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ids, vec![3, 4, 5]);
    let _ = h.commands.send(Command::Leave);
}

#[tokio::test(start_paused = true)]
async fn the_host_pings_a_silent_tchat_peer_and_drops_it_when_it_stays_silent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        address: "test".into(),
        ..Config::default()
    };
    let ping_after = config.ping_after;
    let settle = config.hello_wait;
    let server = Server::spawn(listener, config).unwrap();

    // A plain peer watches (plain peers are never pinged).
    let watcher = server.connect_local().await.unwrap();
    let (wr, _ww) = tokio::io::split(watcher);
    let mut watcher = BufReader::new(wr).lines();
    tokio::time::sleep(settle * 2).await;

    let silent = server.connect_local().await.unwrap();
    let (sr, mut sw) = tokio::io::split(silent);
    let mut silent = BufReader::new(sr).lines();
    let hello = ClientMsg::Hello {
        v: 1,
        name: "ghost".into(),
        client: None,
        session: None,
        since: None,
    };
    sw.write_all(hello.encode().as_bytes()).await.unwrap();
    let joined_at = Instant::now();
    loop {
        let line = silent.next_line().await.unwrap().unwrap();
        if line.contains("\"t\":\"welcome\"") {
            break;
        }
    }
    // Nothing from it for `ping_after`: a ping.
    let line = silent.next_line().await.unwrap().unwrap();
    assert_eq!(ServerMsg::decode(&line).unwrap(), ServerMsg::Ping);
    assert_eq!(Instant::now().duration_since(joined_at), ping_after);
    // Still nothing: it is gone, and the room is told.
    assert_eq!(
        silent.next_line().await.unwrap(),
        None,
        "the host closes it"
    );
    assert_eq!(Instant::now().duration_since(joined_at), ping_after * 2);
    loop {
        let line = watcher.next_line().await.unwrap().unwrap();
        if line.starts_with("*** ghost left") {
            assert!(line.contains("timed out"), "{line}");
            break;
        }
    }
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rejoin_asks_for_the_name_taken_with_nick() {
    let (near, mut host) = FakeHost::new().await;
    let (mut h, mut pipes_rx) = rejoining(near, &mut host).await;
    host.send(&ServerMsg::Nick {
        id: 1,
        ts: 0,
        old: "alice".into(),
        new: "alicia".into(),
        cid: Some("n1".into()),
    })
    .await;
    until(&mut h, |e| {
        matches!(e, NetEvent::Server(ServerMsg::Nick { .. }))
    })
    .await;
    drop(host);
    let mut host = pipes_rx.recv().await.unwrap();
    let hello = host.welcome("e1").await;
    assert!(
        matches!(&hello, ClientMsg::Hello { name, .. } if name == "alicia"),
        "{hello:?}"
    );
    let _ = h.commands.send(Command::Leave);
}

#[tokio::test(start_paused = true)]
async fn a_message_the_client_does_not_know_is_never_shown_as_text() {
    let (near, mut host) = FakeHost::new().await;
    let mut h = client::start(near, "alice".into());
    host.welcome("e1").await;
    until(&mut h, is_welcome).await;
    host.send_raw("{\"t\":\"something_newer\",\"id\":7}\n")
        .await;
    host.send_raw("{\"t\":\"msg\",\"id\":").await;
    host.send(&ServerMsg::Msg {
        id: 1,
        ts: 0,
        from: "bob".into(),
        text: "after".into(),
        cid: None,
        held: None,
    })
    .await;
    // The half line above and the one after it make one line the client cannot read:
    // dropped, not shown. The host's strict framing never sends such a thing; a client
    // still never prints protocol bytes.
    host.send(&ServerMsg::Msg {
        id: 2,
        ts: 0,
        from: "bob".into(),
        text: "last".into(),
        cid: None,
        held: None,
    })
    .await;
    let e = next_event(&mut h).await;
    assert!(
        matches!(&e, NetEvent::Server(ServerMsg::Msg { text, .. }) if text == "last"),
        "{e:?}"
    );
    let _ = h.commands.send(Command::Leave);
}

#[tokio::test(start_paused = true)]
async fn retry_now_cuts_the_wait_short() {
    let (near, mut host) = FakeHost::new().await;
    let tries: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let connect = {
        let tries = tries.clone();
        move || {
            tries.lock().unwrap().push(Instant::now());
            async { Err::<DuplexStream, _>("connection refused".to_owned()) }
        }
    };
    let retry = Retry {
        first_delay: Duration::from_secs(30),
        ..Retry::default()
    };
    let mut h = client::start_rejoining(near, "alice".into(), retry, connect);
    host.welcome("e1").await;
    until(&mut h, is_welcome).await;
    drop(host);
    until(&mut h, |e| matches!(e, NetEvent::Lost { .. })).await;
    let asked = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    h.commands.send(Command::RetryNow).unwrap();
    until(&mut h, |e| {
        matches!(e, NetEvent::Reconnecting { attempt: 1 })
    })
    .await;
    assert_eq!(tries.lock().unwrap().len(), 1);
    assert_eq!(
        tries.lock().unwrap()[0].duration_since(asked),
        Duration::from_secs(3),
        "tried when asked, not after the 30 s wait"
    );
    let _ = h.commands.send(Command::Leave);
}

/// Every event that answers a line of ours with its cid confirms it: a `/topic` the room
/// took is not sent again after a rejoin (which would set the topic once more).
#[tokio::test(start_paused = true)]
async fn a_command_the_room_answered_is_not_sent_again_after_a_rejoin() {
    let (near, mut host) = FakeHost::new().await;
    let (mut h, mut pipes_rx) = rejoining(near, &mut host).await;
    let say = |text: &str, cid: &str| Command::Say {
        text: text.into(),
        cid: cid.into(),
    };
    h.commands.send(say("/topic release", "t1")).unwrap();
    assert!(matches!(host.next().await, ClientMsg::Say { cid: Some(c), .. } if c == "t1"));
    host.send(&ServerMsg::Topic {
        id: 1,
        ts: 0,
        by: "alice".into(),
        text: "release".into(),
        cid: Some("t1".into()),
    })
    .await;
    until(&mut h, |e| {
        matches!(e, NetEvent::Server(ServerMsg::Topic { .. }))
    })
    .await;
    drop(host);
    until(&mut h, |e| matches!(e, NetEvent::Lost { .. })).await;
    h.commands.send(say("after", "a1")).unwrap();
    let mut host = pipes_rx.recv().await.unwrap();
    host.welcome("e1").await;
    // The first line sent on the new connection is the new one.
    let next = host.next().await;
    assert!(
        matches!(&next, ClientMsg::Say { cid: Some(c), .. } if c == "a1"),
        "{next:?}"
    );
    let _ = h.commands.send(Command::Leave);
}

/// Lines held back by the pace wait for the welcome of the next connection: they go
/// out at the pace it gives, never before it (a host may not have seated us yet).
#[tokio::test(start_paused = true)]
async fn held_lines_wait_for_the_next_welcome() {
    let (near, mut host) = FakeHost::new().await;
    let (mut h, mut pipes_rx) = rejoining(near, &mut host).await;
    let paced = ServerMsg::Welcome {
        v: 1,
        room: "e1".into(),
        name: "alice".into(),
        asked: None,
        members: vec!["alice".into()],
        max_line: 8192,
        // One line at once (three less the client's margin of two), then one a second.
        pace: Some(tchat::protocol::Pace { burst: 3, rate: 1 }),
        ts: None,
        topic: None,
    };
    host.send(&paced).await;
    until(&mut h, is_welcome).await;
    for i in 0..4 {
        let say = Command::Say {
            text: format!("line {i}"),
            cid: format!("c{i}"),
        };
        h.commands.send(say).unwrap();
    }
    assert!(matches!(host.next().await, ClientMsg::Say { cid: Some(c), .. } if c == "c0"));
    drop(host);
    until(&mut h, |e| matches!(e, NetEvent::Lost { .. })).await;
    let mut host = pipes_rx.recv().await.unwrap();
    let hello = host.next().await;
    assert!(matches!(hello, ClientMsg::Hello { .. }), "{hello:?}");
    // No welcome yet: nothing but the hello (a ping would come after 15 s of quiet).
    let early = tokio::time::timeout(Duration::from_secs(10), host.next()).await;
    assert!(early.is_err(), "sent before the welcome: {early:?}");
    host.send(&paced).await;
    for i in 0..4 {
        let c = format!("c{i}");
        let next = host.next().await;
        assert!(
            matches!(&next, ClientMsg::Say { cid: Some(got), .. } if *got == c),
            "{next:?}"
        );
    }
    let _ = h.commands.send(Command::Leave);
}
