//! One room across several hosts through NATS JetStream: real `nats-server -js` on a
//! free loopback port with its own store, real hosts (`tchat --host --headless
//! --cluster …`), and clients speaking the structured dialect over TCP. Skipped, with a
//! message, where `nats-server` is not installed (`.ci/run` installs it).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::joiner::{Joiner, has_text};
use common::{Headless, TempDir};
use tchat::invite::Invitation;
use tchat::protocol::{ClientMsg, ServerMsg, Since};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `nats-server -js` on a free loopback port, its store in a temporary directory;
/// stopped when dropped.
struct Nats {
    child: Option<std::process::Child>,
    binary: String,
    extra: Vec<String>,
    port: u16,
    store: TempDir,
}

impl Nats {
    /// `None` (and a note why) where there is no `nats-server`.
    fn start() -> Option<Nats> {
        Nats::start_with(&[])
    }

    /// With these further arguments to `nats-server`.
    fn start_with(extra: &[&str]) -> Option<Nats> {
        let Some(binary) = nats_server() else {
            eprintln!(
                "nats-server is not installed: the cluster tests are skipped (apt-get install nats-server)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Nats {
            child: None,
            binary,
            port,
            store: TempDir::new("nats"),
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        nats.run();
        Some(nats)
    }

    fn run(&mut self) {
        let child = std::process::Command::new(&self.binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store.0)
            .args(&self.extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server listens within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Every message of `room`'s log stream, as text: what anyone who can read the
    /// stream sees.
    async fn log_payloads(&self, room: &str) -> Vec<String> {
        use async_nats::jetstream;
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to NATS");
        let js = jetstream::new(client);
        let mut stream = js
            .get_stream(format!("TCHAT_{room}"))
            .await
            .expect("the room's stream");
        let last = stream.info().await.expect("its state").state.last_sequence;
        let mut payloads = Vec::new();
        for seq in 1..=last {
            if let Ok(message) = stream.get_raw_message(seq).await {
                payloads.push(String::from_utf8_lossy(&message.payload).into_owned());
            }
        }
        payloads
    }

    /// A host of `room` on this cluster.
    fn host(&self, room: &str) -> Headless {
        Headless::start(&["--cluster", &self.url(), "--room", room])
    }
}

/// `nats-server` on the PATH, or where Debian puts it (`/usr/sbin`, which an
/// ordinary user's PATH may lack).
fn nats_server() -> Option<String> {
    ["nats-server", "/usr/sbin/nats-server"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(str::to_owned)
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A structured client on one host.
struct Client {
    stream: BufReader<TcpStream>,
    /// The room's epoch, from its welcome.
    epoch: String,
    name: String,
}

const WAIT: Duration = Duration::from_secs(20);

impl Client {
    async fn join(addr: &str, name: &str, session: &str, since: Option<Since>) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to the host");
        let mut stream = BufReader::new(stream);
        let hello = ClientMsg::Hello {
            v: 1,
            name: name.into(),
            client: None,
            session: Some(session.into()),
            since,
        };
        stream
            .get_mut()
            .write_all(hello.encode().as_bytes())
            .await
            .unwrap();
        let mut client = Client {
            stream,
            epoch: String::new(),
            name: String::new(),
        };
        let welcome = client
            .until(|m| matches!(m, ServerMsg::Welcome { .. }))
            .await;
        if let ServerMsg::Welcome { room, name, .. } = welcome {
            client.epoch = room;
            client.name = name;
        }
        client
    }

    async fn say(&mut self, text: &str, cid: &str) {
        let say = ClientMsg::Say {
            text: text.into(),
            cid: Some(cid.into()),
        };
        self.stream
            .get_mut()
            .write_all(say.encode().as_bytes())
            .await
            .unwrap();
    }

    /// The next event, waited for up to [`WAIT`].
    async fn next(&mut self) -> ServerMsg {
        let mut line = String::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .expect("the host sends within the wait")
                .expect("the connection holds");
            assert!(n > 0, "the host closed the connection");
            if let Ok(msg) = ServerMsg::decode(line.trim_end()) {
                return msg;
            }
        }
    }

    /// Events up to and including the first that `pred` holds for.
    async fn until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        loop {
            let msg = self.next().await;
            if pred(&msg) {
                return msg;
            }
        }
    }

    /// The messages (`id`, `text`) seen until one with `text` arrives.
    async fn messages_until(&mut self, last: &str) -> Vec<(u64, String)> {
        self.messages_until_all(&[last]).await
    }

    /// The messages (`id`, `text`) seen until each of `last` has arrived.
    async fn messages_until_all(&mut self, last: &[&str]) -> Vec<(u64, String)> {
        let mut seen = Vec::new();
        let mut left: HashSet<&str> = last.iter().copied().collect();
        while !left.is_empty() {
            if let ServerMsg::Msg { id, text, .. } = self.next().await {
                left.remove(text.as_str());
                seen.push((id, text));
            }
        }
        seen
    }
}

/// The notice everyone on a host is given when it finds NATS gone.
fn link_down(m: &ServerMsg) -> bool {
    matches!(m, ServerMsg::Notice { text, .. } if text.contains("link to the room's other hosts is down"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_cross_three_hosts_in_one_order() {
    let Some(nats) = Nats::start() else { return };
    let hosts: Vec<Headless> = (0..3).map(|_| nats.host("order")).collect();
    let mut clients = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        clients.push(Client::join(&host.addr, &format!("p{i}"), &format!("s{i}"), None).await);
    }
    let epochs: HashSet<&str> = clients.iter().map(|c| c.epoch.as_str()).collect();
    assert_eq!(epochs.len(), 1, "one room, one epoch: {epochs:?}");
    // Each says ten lines, all at once, then a last one; all wait for the three last.
    const EACH: usize = 10;
    for round in 0..EACH {
        for (i, c) in clients.iter_mut().enumerate() {
            c.say(&format!("{i}-{round}"), &format!("c{round}")).await;
        }
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.say(&format!("end{i}"), "end").await;
    }
    let mut seen = Vec::new();
    for c in &mut clients {
        seen.push(c.messages_until_all(&["end0", "end1", "end2"]).await);
    }
    for (i, s) in seen.iter().enumerate() {
        let texts: Vec<&str> = s.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            texts.len(),
            3 * (EACH + 1),
            "client {i} saw every line once: {texts:?}"
        );
        let unique: HashSet<&&str> = texts.iter().collect();
        assert_eq!(unique.len(), texts.len(), "client {i} saw a line twice");
        assert!(
            s.windows(2).all(|w| w[0].0 < w[1].0),
            "ids rise for client {i}: {s:?}"
        );
    }
    assert_eq!(seen[0], seen[1], "hosts 0 and 1 told one story");
    assert_eq!(seen[0], seen[2], "hosts 0 and 2 told one story");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_sent_again_to_another_host_appears_once() {
    let Some(nats) = Nats::start() else { return };
    let a = nats.host("resend");
    let b = nats.host("resend");
    let mut watcher = Client::join(&b.addr, "watcher", "s-watch", None).await;
    let mut mover = Client::join(&a.addr, "mover", "s-move", None).await;
    mover.say("only once", "c1").await;
    let echoed = mover
        .until(|m| matches!(m, ServerMsg::Msg { cid: Some(c), .. } if c == "c1"))
        .await;
    let id = echoed.id().expect("an id");
    // The mover's link breaks before it saw its echo (as far as it knows): it rejoins
    // on the other host from before that line and sends it again.
    drop(mover);
    let since = Since {
        room: watcher.epoch.clone(),
        id: id - 1,
    };
    let mut moved = Client::join(&b.addr, "mover", "s-move", Some(since)).await;
    moved.say("only once", "c1").await;
    moved.say("and then this", "c2").await;
    let again = moved
        .until(|m| matches!(m, ServerMsg::Msg { cid: Some(c), .. } if c == "c1"))
        .await;
    assert_eq!(
        again.id(),
        Some(id),
        "recognised as the line already relayed"
    );
    let seen = watcher.messages_until("and then this").await;
    let times = seen.iter().filter(|(_, t)| t == "only once").count();
    assert_eq!(times, 1, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_line_sent_to_two_hosts_at_once_appears_once() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = nats.host("twice");
    let b = nats.host("twice");
    let c = nats.host("twice");
    let mut watcher = Client::join(&c.addr, "watcher", "s-watch", None).await;
    // One client's session on two hosts at once (a link that came back while the old
    // one lingered), sending the same line on both while the log is out of reach: each
    // host proposes it, neither having seen the other's, and both put it on the log
    // when it is back.
    let mut here = Client::join(&a.addr, "twin", "s-twin", None).await;
    let mut there = Client::join(&b.addr, "twin", "s-twin", None).await;
    let mut near_here = Client::join(&a.addr, "near-a", "s-near-a", None).await;
    let mut near_there = Client::join(&b.addr, "near-b", "s-near-b", None).await;
    nats.stop();
    here.until(link_down).await;
    there.until(link_down).await;
    here.say("just once", "c1").await;
    there.say("just once", "c1").await;
    // Each host has taken the line while the log was away (it shows it held to its
    // own people), so each puts it on the log when it is back.
    let held = |m: &ServerMsg| {
        m.is_held_copy() && matches!(m, ServerMsg::Msg { text, .. } if text == "just once")
    };
    near_here.until(held).await;
    near_there.until(held).await;
    nats.run();
    here.say("done", "c2").await;
    there.say("done there", "c3").await;
    let seen = watcher.messages_until_all(&["done", "done there"]).await;
    let times = seen.iter().filter(|(_, t)| t == "just once").count();
    assert_eq!(times, 1, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_takes_a_line_once_whichever_host_puts_it() {
    use tchat::server::cluster;
    use tchat::server::room::{Entry, Reach};
    let Some(nats) = Nats::start() else { return };
    // Two hosts' hold on the room's log, each putting the same line (one client's
    // session and cid), as two hosts do when a client's resend reaches the second
    // before the first one's entry has come back to it.
    let one = cluster::join(&nats.url(), None, "once", 10, 1000)
        .await
        .unwrap();
    let two = cluster::join(&nats.url(), None, "once", 10, 1000)
        .await
        .unwrap();
    let line = |text: &str, cid: &str| Entry {
        event: ServerMsg::Msg {
            id: 0,
            ts: 0,
            from: "ana".into(),
            text: text.into(),
            cid: None,
            held: None,
        },
        host: String::new(),
        peer: None,
        reach: Reach::Others,
        origin: Some(("s-ana".into(), cid.into())),
        about: None,
        n: 0,
        key: None,
        held: false,
        joined_sessions: Vec::new(),
        sealed: None,
    };
    let (first, again) = one.publisher().put(&line("hi", "c1")).await.unwrap();
    assert!(!again);
    let (second, again) = two.publisher().put(&line("hi", "c1")).await.unwrap();
    assert!(again, "the log knew it");
    assert_eq!(second, first);
    let (third, again) = two.publisher().put(&line("hi", "c2")).await.unwrap();
    assert!(!again, "another cid is another line");
    assert_eq!(third, first + 1);
    // Two hosts that each found a third gone tell its member gone under one key (each
    // under its own number): the log takes it once. (In a room the second host has
    // usually applied the first one's before it looks, so this is seldom seen there.)
    let gone = |n: u64| Entry {
        event: ServerMsg::Leave {
            id: 0,
            ts: 0,
            name: "cy".into(),
            reason: Some("their host is gone".into()),
        },
        reach: Reach::Room,
        origin: None,
        host: "h3".into(),
        n,
        key: Some("gone:h3:cy".into()),
        ..line("", "")
    };
    let (told, again) = one.publisher().put(&gone(1)).await.unwrap();
    assert!(!again);
    let (told_again, again) = two.publisher().put(&gone(2)).await.unwrap();
    assert!(again, "the log knew it");
    assert_eq!(told_again, told);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_one_persons_across_hosts() {
    let Some(nats) = Nats::start() else { return };
    let hosts: Vec<Headless> = (0..3).map(|_| nats.host("names")).collect();
    // Two people ask for one name on two hosts at the same moment.
    let (mut one, mut two) = tokio::join!(
        Client::join(&hosts[0].addr, "ana", "s1", None),
        Client::join(&hosts[1].addr, "ana", "s2", None),
    );
    // One of them keeps it; the other is renamed, and everyone is told.
    let mut names = vec![one.name.clone(), two.name.clone()];
    if names[0] == names[1] {
        let renamed = |m: &ServerMsg| matches!(m, ServerMsg::Nick { old, .. } if old == "ana");
        let (a, b) = tokio::join!(one.until(renamed), two.until(renamed));
        assert_eq!(a, b, "both hosts told the same rename");
        let ServerMsg::Nick { new, .. } = a else {
            unreachable!()
        };
        names = vec!["ana".to_owned(), new];
    }
    names.sort();
    assert_eq!(names, vec!["ana", "ana2"]);
    // A third host lists both once the log has reached it (each host hears the log in
    // its own time), and then gives the name to no one else.
    let mut watcher = Client::join(&hosts[2].addr, "watcher", "s-w", None).await;
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let cid = format!("w{n}");
        watcher.say("/who", &cid).await;
        let who = watcher.until(|m| m.cid() == Some(cid.as_str())).await;
        let ServerMsg::Notice { text, .. } = who else {
            unreachable!()
        };
        if (text.contains("ana,") || text.contains("ana ")) && text.contains("ana2") {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "the third host lists both: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let three = Client::join(&hosts[2].addr, "ana", "s3", None).await;
    assert_eq!(three.name, "ana3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_killed_its_joiners_go_on_at_another_with_nothing_lost_or_doubled() {
    let Some(nats) = Nats::start() else { return };
    let a = nats.host("failover");
    let b = nats.host("failover");
    let mut watcher = Joiner::join(&b.addr, "watcher").await;
    // A tchat joiner given both hosts (`--join A,B`), on the first.
    let mut mover = Joiner::join_any(&[&a.addr, &b.addr], "mover").await;
    for i in 0..5 {
        mover.say(&format!("line {i}"), &format!("c{i}"));
    }
    mover
        .until(Duration::from_secs(10), has_text("line 4"))
        .await;
    // kill -9 (what dropping a host does); the mover goes on typing.
    drop(a);
    for i in 5..10 {
        mover.say(&format!("line {i}"), &format!("c{i}"));
    }
    watcher
        .until(Duration::from_secs(20), has_text("line 9"))
        .await;
    mover
        .until(Duration::from_secs(20), has_text("line 9"))
        .await;
    let want: Vec<String> = (0..10).map(|i| format!("line {i}")).collect();
    let seen: Vec<String> = watcher
        .texts()
        .into_iter()
        .filter(|t| t.starts_with("line "))
        .collect();
    assert_eq!(seen, want, "the watcher saw each line once, in order");
    // The mover's own screen: each line once, though it rejoined in between.
    let own: Vec<String> = mover
        .texts()
        .into_iter()
        .filter(|t| t.starts_with("line "))
        .collect();
    assert_eq!(own, want);
    // It kept its name at the other host: the name went with its session.
    let names: Vec<String> = mover
        .seen
        .iter()
        .filter_map(|e| match e {
            tchat::client::NetEvent::Server(ServerMsg::Welcome { name, .. }) => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["mover", "mover"], "welcomed twice, as itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_dies_has_its_people_told_gone_and_a_new_host_knows_who_is_here() {
    let Some(nats) = Nats::start() else { return };
    let a = nats.host("presence");
    let b = nats.host("presence");
    let _ana = Client::join(&a.addr, "ana", "s-ana", None).await;
    let mut bo = Client::join(&b.addr, "bo", "s-bo", None).await;
    // A host started now learns who is on the others from what they say of themselves.
    let c = nats.host("presence");
    let mut cy = Client::join(&c.addr, "cy", "s-cy", None).await;
    let started = Instant::now();
    loop {
        cy.say("/who", "w").await;
        let who = cy
            .until(|m| matches!(m, ServerMsg::Notice { cid: Some(c), .. } if c == "w"))
            .await;
        let ServerMsg::Notice { text, .. } = who else {
            unreachable!()
        };
        if text.contains("ana") && text.contains("bo") {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "a new host lists everyone: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Host a dies (kill -9): those on the others are told ana is gone, once.
    drop(a);
    let gone = bo
        .until(|m| matches!(m, ServerMsg::Leave { name, .. } if name == "ana"))
        .await;
    let ServerMsg::Leave { reason, .. } = gone else {
        unreachable!()
    };
    assert_eq!(reason.as_deref(), Some("their host is gone"));
    bo.say("after", "c1").await;
    let mut leaves = 0;
    loop {
        match cy.next().await {
            ServerMsg::Leave { name, .. } if name == "ana" => leaves += 1,
            ServerMsg::Msg { text, .. } if text == "after" => break,
            _ => {}
        }
    }
    // (Two hosts telling it at once is held to one by the log: see
    // the_log_takes_a_line_once_whichever_host_puts_it.)
    assert_eq!(leaves, 1, "told once, whichever host noticed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_message_reaches_someone_on_another_host_and_no_one_else() {
    let Some(nats) = Nats::start() else { return };
    let a = nats.host("private");
    let b = nats.host("private");
    let mut bo = Client::join(&b.addr, "bo", "s-bo", None).await;
    let mut cy = Client::join(&b.addr, "cy", "s-cy", None).await;
    let mut ana = Client::join(&a.addr, "ana", "s-ana", None).await;
    // Until host a has heard of bo (at once, or within a heartbeat).
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let cid = format!("m{n}");
        ana.say("/msg bo just between us", &cid).await;
        let answer = ana.until(|m| m.cid() == Some(cid.as_str())).await;
        if matches!(answer, ServerMsg::Private { .. }) {
            break;
        }
        assert!(started.elapsed() < WAIT, "host a hears of bo: {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = bo.until(|m| matches!(m, ServerMsg::Private { .. })).await;
    let ServerMsg::Private { from, to, text, .. } = got else {
        unreachable!()
    };
    assert_eq!(
        (from.as_str(), to.as_str(), text.as_str()),
        ("ana", "bo", "just between us")
    );
    // cy, on bo's host, is not told; the room's next line reaches cy with nothing before it.
    ana.say("for everyone", "p1").await;
    let next = cy
        .until(|m| matches!(m, ServerMsg::Msg { .. } | ServerMsg::Private { .. }))
        .await;
    assert!(
        matches!(next, ServerMsg::Msg { ref text, .. } if text == "for everyone"),
        "{next:?}"
    );
    // The private message went to bo's host, not into the room's shared log: whoever
    // reads the stream finds every line said in the room but that one's words.
    let logged = nats.log_payloads("private").await;
    assert!(
        logged.iter().any(|p| p.contains("for everyone")),
        "{logged:?}"
    );
    assert!(
        !logged.iter().any(|p| p.contains("just between us")),
        "{logged:?}"
    );
    // bo's host dies (kill -9): a private message for bo cannot be handed over, and
    // ana is told so about that line (before the hosts have told bo gone).
    drop(b);
    ana.say("/msg bo are you there", "m-gone").await;
    let answer = ana.until(|m| m.cid() == Some("m-gone")).await;
    assert!(
        matches!(&answer, ServerMsg::Notice { text, .. } if text.contains("not sent to bo")),
        "{answer:?}"
    );
}

/// A host made by `start`, made again a beat apart (up to [`WAIT`]) until `heard` says
/// it has heard of the room's other hosts, looking at it and its invitation: that host
/// and its invitation. (A host learns where the others are as it starts, from what they
/// last said; a host says so as it starts, then every beat.)
async fn host_that_heard(
    start: impl Fn() -> Headless,
    heard: impl Fn(&Headless, &Invitation) -> bool,
) -> (Headless, Invitation) {
    let started = Instant::now();
    loop {
        let mut host = start();
        let line = host.wait_log(|l| l.contains("others join with: tchat --join "));
        let token = line.rsplit(' ').next().unwrap_or_default();
        let invitation = Invitation::parse(token).expect("an invitation");
        if heard(&host, &invitation) {
            return (host, invitation);
        }
        assert!(
            started.elapsed() < WAIT,
            "the host hears of the others: {:?}",
            host.logged
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_invitation_lists_the_rooms_other_hosts() {
    let Some(nats) = Nats::start() else { return };
    let a = nats.host("invite");
    let (b, invitation) = host_that_heard(|| nats.host("invite"), |_, i| i.addrs.len() == 2).await;
    assert_eq!(
        invitation.addrs,
        vec![b.addr.clone(), a.addr.clone()],
        "this host first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_another_key_is_left_out_of_the_invitation_and_the_host_is_told() {
    let Some(nats) = Nats::start() else { return };
    let a = nats.host("keys");
    // Host b keeps its own key (another machine whose host.key was not copied).
    let config = TempDir::new("own-key");
    let config = config.0.to_str().expect("a UTF-8 path").to_owned();
    let url = nats.url();
    let args = ["--cluster", url.as_str(), "--room", "keys"];
    let told = |b: &Headless| {
        b.logged
            .iter()
            .find(|l| l.contains("holds another host key"))
            .cloned()
    };
    let (b, invitation) = host_that_heard(
        || Headless::start_in(0, &args, &config),
        |b, _| told(b).is_some(),
    )
    .await;
    let told = told(&b).unwrap_or_default();
    assert!(told.contains(&a.addr), "{told}");
    assert!(
        !invitation.addrs.contains(&a.addr),
        "a is not in it: {:?}",
        invitation.addrs
    );
    assert_eq!(invitation.addrs[0], b.addr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_with_a_password_is_joined_with_it_and_the_password_is_never_shown() {
    let Some(nats) = Nats::start_with(&["--user", "tchat", "--pass", "s3cret-pw"]) else {
        return;
    };
    let at = |login: &str| format!("nats://{login}@127.0.0.1:{}", nats.port);
    // The password in the URL, or (so that `ps` does not show it) in the environment.
    let a = Headless::start(&["--cluster", &at("tchat:s3cret-pw"), "--room", "locked"]);
    let _one = Client::join(&a.addr, "one", "s1", None).await;
    let host = |password: &str| {
        let mut command = common::isolated(env!("CARGO_BIN_EXE_tchat"));
        command
            .args(["--host", "--headless", "--bind", "127.0.0.1", "--port", "0"])
            .args(["--cluster", &at("tchat"), "--room", "locked"])
            .env("TCHAT_NATS_PASSWORD", password)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        command
    };
    let wrong = host("not-it").output().expect("run tchat");
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success(), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "one line: {said}");
    assert!(said.contains("authorization"), "{said}");
    assert!(!said.contains("not-it"), "{said}");
    let mut right = ChildGuard(host("s3cret-pw").spawn().expect("run tchat"));
    let log = common::lines_of(right.0.stderr.take().expect("stderr"));
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = log.recv_timeout(left).expect("the host starts");
        let line = String::from_utf8_lossy(&line).into_owned();
        assert!(!line.contains("s3cret-pw"), "{line}");
        seen.push(line.clone());
        if line.starts_with("tchat: hosting a room at ") {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("nats://tchat@127.0.0.1")),
        "{seen:?}"
    );
}

/// A child process killed and reaped when dropped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_outlives_every_host() {
    let Some(nats) = Nats::start() else { return };
    {
        let a = nats.host("lasting");
        let b = nats.host("lasting");
        let mut one = Client::join(&a.addr, "one", "s1", None).await;
        let mut two = Client::join(&b.addr, "two", "s2", None).await;
        one.say("remember this", "c1").await;
        two.messages_until("remember this").await;
        two.say("and this", "c1").await;
        one.messages_until("and this").await;
    }
    // Every host is gone; a new one finds the room's story on the log.
    let c = nats.host("lasting");
    let mut late = Client::join(&c.addr, "late", "s3", None).await;
    let seen = late.messages_until("and this").await;
    let texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, vec!["remember this", "and this"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_said_while_nats_is_down_arrive_once_when_it_is_back() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = nats.host("outage");
    let b = nats.host("outage");
    let mut one = Client::join(&a.addr, "one", "s1", None).await;
    let mut two = Client::join(&b.addr, "two", "s2", None).await;
    one.say("before", "c0").await;
    two.messages_until("before").await;
    nats.stop();
    one.say("during 1", "c1").await;
    one.say("during 2", "c2").await;
    // Those on the host are told the link is down, and told when it is back.
    let told = |m: &ServerMsg, what: &str| matches!(m, ServerMsg::Notice { text, .. } if text.contains("link to the room's other hosts") && text.contains(what));
    one.until(|m| told(m, "down")).await;
    nats.run();
    one.until(|m| told(m, "back")).await;
    one.say("after", "c3").await;
    let seen = two.messages_until("after").await;
    let texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, vec!["during 1", "during 2", "after"]);
}

/// A plain peer (what `nc` is): the lines it reads, as text.
struct PlainPeer {
    stream: BufReader<TcpStream>,
    /// Every line read so far.
    seen: Vec<String>,
}

impl PlainPeer {
    async fn join(addr: &str) -> PlainPeer {
        let stream = TcpStream::connect(addr).await.expect("connect to the host");
        let mut peer = PlainPeer {
            stream: BufReader::new(stream),
            seen: Vec::new(),
        };
        // Seated once it is told who is in the room (a plain peer is one that does not
        // speak tchat first).
        peer.until(|l| l.contains("In the room:")).await;
        peer
    }

    /// Read lines until one that `pred` holds for has arrived, waited for up to [`WAIT`].
    async fn until(&mut self, pred: impl Fn(&str) -> bool) {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("no such line within the wait; read: {:?}", self.seen))
                .expect("the connection holds");
            assert!(n > 0, "the host closed the connection");
            let line = line.trim_end().to_owned();
            let found = pred(&line);
            self.seen.push(line);
            if found {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_on_one_host_keep_talking_while_nats_is_down_and_see_each_line_once() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = nats.host("talk");
    let b = nats.host("talk");
    let mut one = Client::join(&a.addr, "one", "s1", None).await;
    let mut neighbour = Client::join(&a.addr, "neighbour", "s2", None).await;
    let mut plain = PlainPeer::join(&a.addr).await;
    let mut far = Client::join(&b.addr, "far", "s3", None).await;
    one.say("before", "c0").await;
    far.messages_until("before").await;
    nats.stop();
    // The host finds the log gone when it cannot put a line there.
    one.say("as it went", "c1").await;
    neighbour.until(link_down).await;
    // From now on what is said here is shown here at once, while NATS is still down:
    // to a tchat client as a held copy (numbered 0), to a plain peer as a line.
    one.say("while it is down", "c2").await;
    let shown = neighbour
        .until(|m| matches!(m, ServerMsg::Msg { text, .. } if text == "while it is down"))
        .await;
    assert!(shown.is_held_copy(), "{shown:?}");
    let key = shown.held().expect("a held key").to_owned();
    plain.until(|l| l == "one: while it is down").await;
    neighbour.say("I see it", "n1").await;
    one.until(|m| matches!(m, ServerMsg::Msg { text, .. } if text == "I see it"))
        .await;
    // The one who said it waits for the room, as ever: no echo yet.
    nats.run();
    one.until(|m| m.cid() == Some("c2")).await;
    one.say("after", "c3").await;
    // On the other host every line arrives once, in one order.
    let seen = far.messages_until("after").await;
    let texts: Vec<&str> = seen.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        texts,
        vec!["as it went", "while it is down", "I see it", "after"]
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
    // Here, the tchat client is sent the numbered copy with the same key (its screen
    // settles the line it showed rather than showing it again) …
    let numbered = neighbour
        .until(|m| matches!(m, ServerMsg::Msg { text, .. } if text == "while it is down"))
        .await;
    assert!(
        !numbered.is_held_copy() && numbered.id() > Some(0),
        "{numbered:?}"
    );
    assert_eq!(numbered.held(), Some(key.as_str()));
    // … and the plain peer, which cannot tell copies apart, is not sent it again.
    plain.until(|l| l == "one: after").await;
    let times = |line: &str| plain.seen.iter().filter(|l| *l == line).count();
    assert_eq!(times("one: while it is down"), 1, "{:?}", plain.seen);
    assert_eq!(times("neighbour: I see it"), 1, "{:?}", plain.seen);
    assert_eq!(times("one: as it went"), 1, "{:?}", plain.seen);
}

#[test]
fn a_line_longer_than_the_log_takes_is_refused_before_starting() {
    let out = common::isolated(env!("CARGO_BIN_EXE_tchat"))
        .args(["--host", "--headless", "--bind", "127.0.0.1", "--port", "0"])
        .args(["--cluster", "nats://127.0.0.1:9", "--max-line", "1000000"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tchat");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    assert!(said.contains("--max-line 1000000"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_mode_joiner_writes_a_line_shown_held_once() {
    let Some(mut nats) = Nats::start() else {
        return;
    };
    let a = nats.host("lines");
    // `tchat --join` with its input and output piped: line mode, as a script reads it.
    let mut child = common::isolated(env!("CARGO_BIN_EXE_tchat"))
        .args(["--join", &a.addr, "--name", "script"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tchat");
    let out = common::lines_of(child.stdout.take().expect("its stdout"));
    let _child = ChildGuard(child);
    let mut written = Vec::new();
    let mut wait_for = |want: &str| {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = out
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("{want:?} is written; written: {written:?}"));
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            let found = line.contains(want);
            written.push(line);
            if found {
                return written.clone();
            }
        }
    };
    wait_for("you are script");
    let mut one = Client::join(&a.addr, "one", "s1", None).await;
    nats.stop();
    one.until(link_down).await;
    one.say("while it is down", "c1").await;
    wait_for("one: while it is down");
    nats.run();
    one.until(|m| m.cid() == Some("c1")).await;
    one.say("after", "c2").await;
    let written = wait_for("one: after");
    let times = written
        .iter()
        .filter(|l| l.ends_with("one: while it is down"))
        .count();
    assert_eq!(times, 1, "{written:?}");
}

/// A certificate authority, and a certificate it signed for 127.0.0.1 with its key, as
/// PEM files in `dir`: their paths.
fn nats_tls_files(dir: &TempDir) -> [String; 3] {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("a key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).expect("the authority");
    let key = KeyPair::generate().expect("a key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("parameters")
        .signed_by(&key, &ca, &ca_key)
        .expect("the server's certificate");
    let files = [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ];
    files.map(|(name, pem)| {
        let path = dir.0.join(name);
        std::fs::write(&path, pem).expect("write a PEM file");
        path.to_str().expect("a UTF-8 path").to_owned()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_reach_a_nats_server_over_tls_with_its_authority() {
    let dir = TempDir::new("nats-tls");
    let [ca, cert, key] = nats_tls_files(&dir);
    let Some(nats) = Nats::start_with(&["--tls", "--tlscert", &cert, "--tlskey", &key]) else {
        return;
    };
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let host =
        |room: &str| Headless::start(&["--cluster", &url, "--cluster-ca", &ca, "--room", room]);
    let a = host("sealed");
    let b = host("sealed");
    let mut one = Client::join(&a.addr, "one", "s1", None).await;
    let mut two = Client::join(&b.addr, "two", "s2", None).await;
    one.say("over tls", "c1").await;
    two.messages_until("over tls").await;
    // Without the authority, the server's certificate is not trusted: one line, and
    // the host does not start.
    let out = common::isolated(env!("CARGO_BIN_EXE_tchat"))
        .args(["--host", "--headless", "--bind", "127.0.0.1", "--port", "0"])
        .args(["--cluster", &url, "--room", "sealed"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tchat");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
    assert!(said.contains("cannot reach NATS"), "{said}");
    assert!(said.contains("--cluster-ca FILE"), "{said}");
    // A path that is not there is said as such.
    let out = common::isolated(env!("CARGO_BIN_EXE_tchat"))
        .args(["--host", "--headless", "--bind", "127.0.0.1", "--port", "0"])
        .args(["--cluster", &url, "--cluster-ca", "/nonexistent/ca.pem"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tchat");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--cluster-ca /nonexistent/ca.pem"), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
}
