//! Encryption, tested as an attacker would look at it: a recording proxy on the path,
//! a host with another key at a known address, a known host gone plain; and the
//! clients that are not tchat (`openssl s_client`, a plain socket server). Real rooms
//! on 127.0.0.1, real TLS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use tchat::client::{self, Command, NetEvent, Retry};
use tchat::link::{self, Security, Trust};
use tchat::protocol::ServerMsg;
use tchat::server::{Config, Server};
use tchat::tls::{self, HostKey, KnownHosts};

mod common;
use common::impair::{Impair, Proxy};

const DEADLINE: Duration = Duration::from_secs(10);

/// A room whose host holds `key`, on a free loopback port.
async fn room(key: &HostKey) -> Server {
    let config = Config {
        tls: Some(tls::server_config(key).unwrap()),
        // Longer than the slowest path here takes to answer a greeting (0.8 s).
        hello_wait: Duration::from_secs(3),
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::spawn(listener, config).unwrap()
}

/// Join the room at `addr` as `name`, trusting as `trust` says.
async fn join(
    addr: SocketAddr,
    name: &str,
    trust: &Trust,
) -> Result<(client::Handle, Security), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (stream, security) = link::secure(tcp, &addr.to_string(), trust).await?;
    let retry = Retry {
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(500),
        after_closing: false,
    };
    let h = client::join(
        stream,
        vec![addr.to_string()],
        name.into(),
        retry,
        trust.clone(),
    );
    Ok((h, security))
}

/// Wait for an event `f` accepts.
async fn until(h: &mut client::Handle, what: &str, mut f: impl FnMut(&NetEvent) -> bool) {
    let found = tokio::time::timeout(DEADLINE, async {
        while let Some(ev) = h.events.recv().await {
            if f(&ev) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "no {what} within {DEADLINE:?}");
}

fn said(ev: &NetEvent, needle: &str) -> bool {
    match ev {
        NetEvent::Server(ServerMsg::Msg { text, .. }) => text.contains(needle),
        NetEvent::Text { text, .. } => text.contains(needle),
        _ => false,
    }
}

fn welcomed(ev: &NetEvent) -> bool {
    matches!(ev, NetEvent::Server(ServerMsg::Welcome { .. }))
}

fn say(h: &client::Handle, text: &str) {
    let cid = format!("c{}", rand_id());
    h.commands
        .send(Command::Say {
            text: text.into(),
            cid,
        })
        .unwrap();
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A proxy that passes bytes both ways and keeps a copy of all of them.
async fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(host) = TcpStream::connect(upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (hr, hw) = host.into_split();
            for (mut from, mut to) in [(cr, hw), (hr, cw)].map(|(r, w)| (r, w)) {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = from.read(&mut buf).await {
                        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        keep.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown().await;
                });
            }
        }
    });
    (addr, seen)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn between_tchat_peers_nothing_crosses_in_clear() {
    let key = HostKey::generate().unwrap();
    let server = room(&key).await;
    let (path, recorded) = recording_proxy(server.local_addr()).await;
    let (mut alice, a) = join(path, "alice-xq", &Trust::default()).await.unwrap();
    let (mut bob, b) = join(path, "bob-xq", &Trust::default()).await.unwrap();
    let want = Security::Encrypted {
        fingerprint: key.fingerprint(),
    };
    assert_eq!((a, b), (want.clone(), want));
    until(&mut alice, "alice's welcome", welcomed).await;
    until(&mut bob, "bob's welcome", welcomed).await;
    say(&alice, "the password is swordfish");
    until(&mut bob, "alice's line at bob", |e| said(e, "swordfish")).await;
    let bytes = recorded.lock().unwrap().clone();
    assert!(
        bytes.len() > 1000,
        "the proxy saw the traffic ({} bytes)",
        bytes.len()
    );
    for secret in ["swordfish", "alice-xq", "bob-xq", "hello"] {
        assert!(!contains(&bytes, secret), "{secret:?} crossed in clear");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_host_with_another_key_is_refused_unless_accepted_on_purpose() {
    let (key_a, key_b) = (HostKey::generate().unwrap(), HostKey::generate().unwrap());
    let (a, b) = (room(&key_a).await, room(&key_b).await);
    let dir = std::env::temp_dir().join(format!("tchat-secure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let known = dir.join("known_hosts");
    let b_addr = b.local_addr().to_string();

    // First meeting: trusted, and remembered.
    let trust = Trust::new(Some(known.clone()), None, false);
    let (_h, _) = join(a.local_addr(), "ann", &trust).await.unwrap();
    let remembered = KnownHosts::load(&known).unwrap();
    assert_eq!(
        remembered.get(&a.local_addr().to_string()),
        Some(key_a.fingerprint().as_str())
    );

    // The address now answers with another key (a man in the middle, or a new key):
    // refused, both keys shown, and how to accept the new one deliberately.
    let mut k = remembered.clone();
    k.set(&b_addr, &key_a.fingerprint());
    k.save(&known).unwrap();
    let trust = Trust::new(Some(known.clone()), None, false);
    let err = join(b.local_addr(), "ann", &trust)
        .await
        .err()
        .expect("refused");
    for part in [
        "has changed".to_owned(),
        tls::short(&key_a.fingerprint()),
        tls::short(&key_b.fingerprint()),
        "--accept-new-key".to_owned(),
    ] {
        assert!(err.contains(&part), "{part:?} not in {err:?}");
    }
    assert!(!err.contains('\n'), "one line: {err:?}");

    // With an invitation's key (its first 128 bits), the same, said as such.
    let invite =
        tchat::invite::Invitation::new(std::slice::from_ref(&b_addr), &key_a.fingerprint(), None);
    let invited = Trust::new(None, Some(invite.key.clone()), false);
    let err = join(b.local_addr(), "ann", &invited)
        .await
        .err()
        .expect("refused");
    assert!(err.contains("not the key in the invitation"), "{err}");
    // And the right invitation's key is enough to join, with nothing remembered.
    let invite =
        tchat::invite::Invitation::new(std::slice::from_ref(&b_addr), &key_b.fingerprint(), None);
    let invited = Trust::new(None, Some(invite.key.clone()), false);
    let (_h, security) = join(b.local_addr(), "ann", &invited)
        .await
        .expect("the invited key");
    assert_eq!(
        security,
        Security::Encrypted {
            fingerprint: key_b.fingerprint()
        }
    );

    // Accepted on purpose: joined, and the new key remembered.
    let trust = Trust::new(Some(known.clone()), None, true);
    let (_h, security) = join(b.local_addr(), "ann", &trust).await.unwrap();
    assert_eq!(
        security,
        Security::Encrypted {
            fingerprint: key_b.fingerprint()
        }
    );
    let now = KnownHosts::load(&known).unwrap();
    assert_eq!(now.get(&b_addr), Some(key_b.fingerprint().as_str()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plain socket server, as the seed's Python program is: it greets with `greeting`
/// (if any) and keeps what it receives.
async fn seed_server(greeting: Option<&'static str>) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            if let Some(g) = greeting {
                let _ = s.write_all(g.as_bytes()).await;
            }
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    keep.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    (addr, got)
}

#[tokio::test]
async fn a_plain_server_is_joined_in_clear_and_said_to_be() {
    for greeting in [Some("hello from the seed\n"), None] {
        let (addr, got) = seed_server(greeting).await;
        let (mut h, security) = join(addr, "zed", &Trust::default()).await.unwrap();
        assert_eq!(security, Security::Plain);
        until(&mut h, "the plain far side noticed", |e| {
            *e == NetEvent::Plain
        })
        .await;
        if greeting.is_some() {
            // Read while deciding, and not lost.
            until(&mut h, "the seed's greeting", |e| {
                said(e, "hello from the seed")
            })
            .await;
        }
        say(&h, "hi seed");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !contains(&got.lock().unwrap(), "hi seed\n") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the seed never got the line"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Nothing but text reached it: no TLS handshake first.
        let bytes = got.lock().unwrap().clone();
        assert!(
            bytes.starts_with(b"hi seed"),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[tokio::test]
async fn a_host_known_to_speak_tls_is_never_spoken_to_in_clear() {
    let (addr, got) = seed_server(Some("* tchat/1 welcome to a fake room\n")).await;
    let trust = Trust::new(None, Some("ab".repeat(32)), false);
    let err = join(addr, "zed", &trust).await.err().expect("refused");
    assert!(err.contains("not talking to it in clear"), "{err}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bytes = got.lock().unwrap().clone();
    assert_eq!(
        bytes.first(),
        Some(&tls::HANDSHAKE),
        "only a TLS start was sent"
    );
    assert!(!contains(&bytes, "zed"));
}

#[tokio::test]
async fn a_tls_start_held_back_on_a_slow_path_is_taken_after_the_greeting() {
    let key = HostKey::generate().unwrap();
    let server = room(&key).await;
    // 400 ms one way: the host has greeted in clear before the TLS start arrives.
    let proxy = Proxy::start(
        server.local_addr(),
        Impair::latency(400),
        Impair::latency(400),
    )
    .await;
    let trust = Trust::new(None, Some(key.fingerprint()), false);
    let (mut h, security) = join(proxy.addr, "slow", &trust).await.unwrap();
    assert!(matches!(security, Security::Encrypted { .. }));
    until(&mut h, "the welcome", welcomed).await;
    server.shutdown().await;
}

// Several threads: the test reads openssl's output with blocking calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_talks_in_an_ordinary_room() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("skipped: `openssl` is not installed (apt-get install openssl)");
        return;
    }
    let key = HostKey::generate().unwrap();
    let server = room(&key).await;
    let addr = server.local_addr();
    let (mut bob, _) = join(addr, "bob", &Trust::default()).await.unwrap();
    until(&mut bob, "bob's welcome", welcomed).await;
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = common::lines_of(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    // The greeting comes inside TLS, in the plain dialect.
    let greeting = out
        .recv_timeout(DEADLINE)
        .expect("a greeting through openssl");
    assert!(
        String::from_utf8_lossy(&greeting).starts_with("* tchat/1"),
        "{greeting:?}"
    );
    use std::io::Write;
    stdin.write_all(b"hello from openssl\n").unwrap();
    stdin.flush().unwrap();
    until(&mut bob, "the openssl line", |e| {
        said(e, "hello from openssl")
    })
    .await;
    say(&bob, "hi openssl");
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let line = out
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("bob's line through openssl");
        if String::from_utf8_lossy(&line).contains("bob: hi openssl") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    server.shutdown().await;
}

/// A private room with `code`, its host holding `key`.
async fn private_room(key: &HostKey, code: &str) -> Server {
    let config = Config {
        tls: Some(tls::server_config(key).unwrap()),
        code: Some(tchat::code::Code::parse(code).unwrap()),
        hello_wait: Duration::from_secs(3),
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::spawn(listener, config).unwrap()
}

fn with_code(code: &str) -> Trust {
    let mut t = Trust::default();
    t.code = tchat::code::Code::parse(code);
    t
}

const CODE: &str = "4821-tiger-piano";

#[tokio::test]
async fn the_right_code_gets_in_a_wrong_one_does_not_and_wrong_ones_make_an_address_wait() {
    let key = HostKey::generate().unwrap();
    let server = private_room(&key, CODE).await;
    let addr = server.local_addr();
    let (mut ann, _) = join(addr, "ann", &with_code(CODE)).await.unwrap();
    until(&mut ann, "ann's welcome", welcomed).await;

    let err = join(addr, "eve", &Trust::default())
        .await
        .err()
        .expect("no code");
    assert!(
        err.contains("private room") && err.contains("--code"),
        "{err}"
    );
    let mut refusals = Vec::new();
    for _ in 0..4 {
        let err = join(addr, "eve", &with_code("4821-tiger-pillow"))
            .await
            .err()
            .expect("wrong");
        refusals.push(err);
    }
    assert!(
        refusals.iter().all(|e| e.contains("wrong code")),
        "{refusals:?}"
    );
    // Four wrong tries: this address now waits, even with the right code.
    let err = join(addr, "eve", &with_code(CODE))
        .await
        .err()
        .expect("waiting");
    assert!(
        err.contains("too many wrong codes") && err.contains("try again in"),
        "{err}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn nc_at_a_private_room_is_told_it_is_private_and_hears_nothing_of_it() {
    let key = HostKey::generate().unwrap();
    let server = private_room(&key, CODE).await;
    let addr = server.local_addr();
    let (mut ann, _) = join(addr, "ann", &with_code(CODE)).await.unwrap();
    until(&mut ann, "ann's welcome", welcomed).await;
    for first in [Some("hello?\n"), None] {
        let mut nc = TcpStream::connect(addr).await.unwrap();
        if let Some(line) = first {
            nc.write_all(line.as_bytes()).await.unwrap();
        }
        say(&ann, "the secret plan");
        let mut got = Vec::new();
        let read = tokio::time::timeout(DEADLINE, nc.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "the host closes it");
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("this room is private") && text.contains("tchat --join"),
            "{text}"
        );
        assert!(!text.contains("secret") && !text.contains("ann"), "{text}");
        assert_eq!(text.lines().count(), 1, "one line: {text}");
    }
    server.shutdown().await;
}

/// A man in the middle who relays everything, code exchange included, between his own
/// TLS session with the joiner (with his own key) and his TLS session with the host.
async fn relaying_middle(host: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let his = HostKey::generate().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&his).unwrap());
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // As a tchat host greets a joiner it has not met.
                let _ = client
                    .write_all(b"* tchat/1 tls welcome to the room\n")
                    .await;
                let Ok(mut near) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(tcp) = TcpStream::connect(host).await else {
                    return;
                };
                let (config, _) = tls::client_config(tls::Expect::Any);
                let connector = tokio_rustls::TlsConnector::from(config);
                let Ok(mut far) = connector.connect(tls::server_name(), tcp).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut near, &mut far).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_man_in_the_middle_who_relays_the_code_exchange_is_still_refused() {
    let key = HostKey::generate().unwrap();
    let server = private_room(&key, CODE).await;
    let middle = relaying_middle(server.local_addr()).await;
    // A joiner that has not met the host (so takes the middle's key on first use), with
    // the right code: the exchange is bound to each TLS session, and the two differ.
    let err = join(middle, "ann", &with_code(CODE))
        .await
        .err()
        .expect("refused");
    assert!(err.contains("wrong code"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_host_is_told_of_each_wrong_code() {
    let key = HostKey::generate().unwrap();
    let server = private_room(&key, CODE).await;
    let seat = server.connect_local().await.unwrap();
    let mut host = client::start(seat, "host".into());
    until(&mut host, "the host's welcome", welcomed).await;
    let err = join(server.local_addr(), "eve", &with_code("1-acorn-zebra"))
        .await
        .err()
        .expect("wrong");
    assert!(err.contains("wrong code"), "{err}");
    until(&mut host, "a notice of the wrong code", |e| {
        matches!(e, NetEvent::Server(ServerMsg::Notice { text, .. })
            if text.contains("wrong code was tried from 127.0.0.1 (1 from that address)"))
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn tls_starts_that_stall_hold_up_no_one_else() {
    let key = HostKey::generate().unwrap();
    let server = room(&key).await;
    let addr = server.local_addr();
    // Ten connections that start a TLS handshake and then say nothing more.
    let mut stalled = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&[tls::HANDSHAKE, 3, 1]).await.unwrap();
        stalled.push(s);
    }
    let (mut ann, _) = join(addr, "ann", &Trust::default()).await.unwrap();
    until(&mut ann, "ann's welcome", welcomed).await;
    drop(stalled);
    server.shutdown().await;
}

#[tokio::test]
async fn a_rejoin_tries_the_invitations_other_addresses() {
    // One host key, two addresses (as a host on two networks, or a room moved).
    let key = HostKey::generate().unwrap();
    let (first, second) = (room(&key).await, room(&key).await);
    let (a, b) = (first.local_addr(), second.local_addr());
    let trust = Trust::new(None, Some(key.fingerprint()), false);
    let tcp = TcpStream::connect(a).await.unwrap();
    let (stream, _) = link::secure(tcp, &a.to_string(), &trust).await.unwrap();
    let retry = Retry {
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(300),
        after_closing: true,
    };
    let addrs = vec![a.to_string(), b.to_string()];
    let mut h = client::join(stream, addrs, "ann".into(), retry, trust);
    until(&mut h, "the first welcome", welcomed).await;
    first.shutdown().await;
    // The first address is gone: the rejoin finds the room at the second.
    until(&mut h, "a welcome at the second address", welcomed).await;
    say(&h, "over here now");
    let (mut bob, _) = join(b, "bob", &Trust::default()).await.unwrap();
    until(&mut bob, "ann's line at the second address", |e| {
        said(e, "over here now")
    })
    .await;
    second.shutdown().await;
}

/// A guesser that sends its guess, reads the host's answer (which tells it whether the
/// guess was right) and then neither confirms nor leaves: the connection is kept open.
async fn guess_and_hold(
    addr: SocketAddr,
    code: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    use tchat::pake::{Exchange, Line};
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (config, _) = tls::client_config(tls::Expect::Any);
    let mut s = tokio_rustls::TlsConnector::from(config)
        .connect(tls::server_name(), tcp)
        .await
        .unwrap();
    let prompt = tchat::net::read_one_line(&mut s, 1024).await.unwrap();
    assert!(String::from_utf8_lossy(&prompt).starts_with(tchat::pake::PROMPT));
    let mut binding = [0u8; tchat::pake::BINDING_LEN];
    s.get_ref()
        .1
        .export_keying_material(&mut binding, tchat::pake::EXPORTER_LABEL, None)
        .unwrap();
    let ours = Exchange::start(&tchat::code::Code::parse(code).unwrap(), &binding);
    let start = Line::Pake {
        message: ours.message.clone(),
        confirm: None,
    };
    s.write_all(start.render().as_bytes()).await.unwrap();
    let answer = tchat::net::read_one_line(&mut s, 1024).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("pake "));
    s
}

#[tokio::test]
async fn a_guess_counts_when_it_is_made_not_when_the_guesser_says_it_is_done() {
    let key = HostKey::generate().unwrap();
    let server = private_room(&key, CODE).await;
    let addr = server.local_addr();
    // Four wrong guesses whose answers were read, the connections held open.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(guess_and_hold(addr, "1-acorn-zebra").await);
    }
    let err = join(addr, "eve", &with_code(CODE))
        .await
        .err()
        .expect("waiting");
    assert!(err.contains("too many wrong codes"), "{err}");
    drop(held);
    server.shutdown().await;
}

#[tokio::test]
async fn guesses_made_side_by_side_share_their_addresss_limit() {
    let key = HostKey::generate().unwrap();
    let server = private_room(&key, CODE).await;
    let addr = server.local_addr();
    // Twelve connections at once, each past the door before any has guessed.
    let tries = (0..12).map(|_| async move {
        let r = tokio::time::timeout(DEADLINE, async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let (config, _) = tls::client_config(tls::Expect::Any);
            let mut s = tokio_rustls::TlsConnector::from(config)
                .connect(tls::server_name(), tcp)
                .await
                .unwrap();
            tchat::net::read_one_line(&mut s, 1024).await.unwrap();
            s
        })
        .await;
        r.unwrap()
    });
    let mut streams = futures::future::join_all(tries).await;
    // Now each guesses.
    let mut answered = 0;
    for s in &mut streams {
        use tchat::pake::{Exchange, Line};
        let mut binding = [0u8; tchat::pake::BINDING_LEN];
        s.get_ref()
            .1
            .export_keying_material(&mut binding, tchat::pake::EXPORTER_LABEL, None)
            .unwrap();
        let ours = Exchange::start(
            &tchat::code::Code::parse("1-acorn-zebra").unwrap(),
            &binding,
        );
        let start = Line::Pake {
            message: ours.message.clone(),
            confirm: None,
        };
        s.write_all(start.render().as_bytes()).await.unwrap();
        let answer = tchat::net::read_one_line(s, 1024).await.unwrap();
        if String::from_utf8_lossy(&answer).starts_with("pake ") {
            answered += 1;
        }
    }
    // Three free, and the fourth sets the wait: no more are answered.
    assert_eq!(answered, 4, "guesses answered");
    drop(streams);
    server.shutdown().await;
}

#[tokio::test]
async fn a_joiner_that_accepted_a_new_key_holds_to_it_and_to_tls_on_every_rejoin() {
    let (key_a, key_b) = (HostKey::generate().unwrap(), HostKey::generate().unwrap());
    let (a, b) = (room(&key_a).await, room(&key_b).await);
    let trust = Trust::new(None, None, true);
    let (_h, first) = join(a.local_addr(), "ann", &trust).await.unwrap();
    assert!(matches!(first, Security::Encrypted { .. }));
    // A rejoin that reaches another key (someone in the middle) is refused ...
    let tcp = TcpStream::connect(b.local_addr()).await.unwrap();
    let err = link::secure(tcp, &a.local_addr().to_string(), &trust)
        .await
        .err()
        .expect("another key");
    assert!(err.contains("has changed"), "{err}");
    // ... and so is one that reaches a far side without TLS.
    let (plain, _) = seed_server(Some("* tchat/1 welcome to the room\n")).await;
    let tcp = TcpStream::connect(plain).await.unwrap();
    let err = link::secure(tcp, &a.local_addr().to_string(), &trust)
        .await
        .err()
        .expect("no TLS");
    assert!(err.contains("in clear"), "{err}");
}

#[tokio::test]
async fn a_joiner_with_a_rooms_code_never_talks_in_clear() {
    // A greeting with `tls` taken out: not the private room this joiner was given.
    let (addr, got) = seed_server(Some("* tchat/1 welcome to the room\n")).await;
    let err = join(addr, "ann", &with_code(CODE))
        .await
        .err()
        .expect("refused");
    assert!(err.contains("in clear"), "{err}");
    assert!(!contains(&got.lock().unwrap(), "ann"));
}

#[tokio::test]
async fn a_greeting_without_end_before_tls_is_not_read_forever() {
    // A far side that answers a TLS start with endless text that looks like a greeting.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let _ = s.write_all(b"* tchat/1 tls ").await;
        let chunk = vec![b'x'; 4096];
        for _ in 0..64 {
            if s.write_all(&chunk).await.is_err() {
                break;
            }
        }
        tokio::time::sleep(DEADLINE).await;
    });
    let trust = Trust::new(None, Some("ab".repeat(32)), false);
    let started = tokio::time::Instant::now();
    let err = join(addr, "ann", &trust).await.err().expect("refused");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{err} after {:?}",
        started.elapsed()
    );
}
