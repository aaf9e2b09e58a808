//! A durable room (`--keep FILE`): a host stopped, or killed with SIGKILL, and started
//! again with the same file goes on with the same room, and every line reaches every
//! joiner exactly once, in each sender's order.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use common::joiner::{Joiner, has_text};
use common::{Headless, TempDir};
use tchat::client::NetEvent;
use tchat::protocol::ServerMsg;
use tchat::server::room::Rules;
use tchat::server::{Config, Server};

/// A port free now on 127.0.0.1 (a restarted host must come back where it was).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn kept_config(path: PathBuf) -> Config {
    Config {
        address: "127.0.0.1:test".into(),
        max_per_address: 0,
        joins_per_minute: 0,
        keep: Some(path),
        rules: Rules {
            addr_burst: 0,
            addr_rate: 0,
            ..Rules::default()
        },
        ..Config::default()
    }
}

#[tokio::test]
async fn a_kept_room_restarted_goes_on_where_it_stopped() {
    let dir = TempDir::new("durable");
    let file = dir.0.join("room.db");
    let listen = |port: u16| tchat::net::listen(([127, 0, 0, 1], port).into()).unwrap();
    let server = Server::spawn(listen(0), kept_config(file.clone())).unwrap();
    let port = server.local_addr().port();
    let addr = format!("127.0.0.1:{port}");
    let mut alice = Joiner::join(&addr, "alice").await;
    let mut bob = Joiner::join(&addr, "bob").await;
    for i in 1..=3 {
        alice.say(&format!("before {i}"), &format!("a{i}"));
    }
    alice.say("/topic kept across restarts", "t1");
    bob.until(Duration::from_secs(10), has_text("before 3"))
        .await;
    bob.until(Duration::from_secs(10), |e| {
        matches!(e, NetEvent::Server(ServerMsg::Topic { .. }))
    })
    .await;
    server.shutdown().await;
    alice
        .until(Duration::from_secs(10), |e| {
            matches!(e, NetEvent::Lost { .. })
        })
        .await;
    // Typed while the host is down.
    for i in 1..=2 {
        alice.say(&format!("while down {i}"), &format!("d{i}"));
    }
    let server = Server::spawn(listen(port), kept_config(file.clone())).unwrap();
    bob.until(Duration::from_secs(10), has_text("while down 2"))
        .await;
    alice
        .until(Duration::from_secs(10), has_text("while down 2"))
        .await;
    // The same room: the same epoch, nothing shown twice.
    let rooms = bob.rooms();
    assert_eq!(rooms.len(), 2, "{rooms:?}");
    assert_eq!(
        rooms[0], rooms[1],
        "the restarted host has the room's epoch"
    );
    let want = [
        "before 1",
        "before 2",
        "before 3",
        "while down 1",
        "while down 2",
    ];
    assert_eq!(bob.texts(), want);
    assert_eq!(alice.texts(), want, "its own echoes, once each");
    // Someone new is shown what was said before the restart.
    let mut carol = Joiner::join(&addr, "carol").await;
    carol
        .until(Duration::from_secs(10), has_text("while down 2"))
        .await;
    assert_eq!(carol.texts(), want);
    // And the topic set before the restart is still the room's.
    assert!(carol.seen.iter().any(|e| matches!(
        e,
        NetEvent::Server(ServerMsg::Welcome { topic: Some(t), .. }) if t == "kept across restarts"
    )));
    server.shutdown().await;
}

/// The test: a host with `--keep`, three joiners sending numbered lines, the
/// host killed with SIGKILL and started again three times.
#[tokio::test]
async fn three_kills_lose_and_double_nothing() {
    let dir = TempDir::new("durable");
    let file = dir.0.join("room.db");
    let file_arg = file.to_str().unwrap().to_owned();
    let port = free_port();
    let args = [
        "--keep",
        &file_arg,
        "--max-per-address",
        "0",
        "--joins-per-minute",
        "0",
        "--addr-burst",
        "0",
    ];
    let mut host = Headless::start_at(port, &args);
    let addr = host.addr.clone();
    let mut joiners = Vec::new();
    for name in ["j0", "j1", "j2"] {
        joiners.push(Joiner::join(&addr, name).await);
    }
    let lines_each = 24;
    let started = Instant::now();
    let mut kills = 0;
    let mut down_since: Option<Instant> = None;
    for i in 1..=lines_each {
        for (k, j) in joiners.iter().enumerate() {
            j.say(&format!("j{k} {i}"), &format!("c{i}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        for j in &mut joiners {
            j.drain();
        }
        let t = started.elapsed();
        match down_since {
            // Killed every 1.5 s, for 0.4 s each time.
            None if kills < 3 && t >= Duration::from_millis(1500 * (kills + 1)) => {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &host.pid().to_string()])
                    .status();
                kills += 1;
                down_since = Some(Instant::now());
            }
            Some(at) if at.elapsed() >= Duration::from_millis(400) => {
                drop(host);
                host = Headless::start_at(port, &args);
                down_since = None;
            }
            _ => {}
        }
    }
    if down_since.is_some() {
        drop(host);
        host = Headless::start_at(port, &args);
    }
    assert_eq!(kills, 3);
    for (k, j) in joiners.iter_mut().enumerate() {
        for s in 0..3 {
            let last = format!("j{s} {lines_each}");
            if !j.texts().contains(&last) {
                j.until(Duration::from_secs(30), has_text(&last)).await;
            }
        }
        // Per sender: every line, once, in order.
        let mut by_sender: HashMap<String, Vec<u32>> = HashMap::new();
        for t in j.texts() {
            let (s, n) = t.split_once(' ').unwrap();
            by_sender
                .entry(s.into())
                .or_default()
                .push(n.parse().unwrap());
        }
        for s in 0..3 {
            let got = &by_sender[&format!("j{s}")];
            let want: Vec<u32> = (1..=lines_each).collect();
            assert_eq!(got, &want, "joiner j{k}, lines from j{s}");
        }
        let rooms = j.rooms();
        assert!(
            rooms.windows(2).all(|w| w[0] == w[1]),
            "one room: {rooms:?}"
        );
        assert!(rooms.len() >= 4, "rejoined after each kill: {rooms:?}");
    }
    drop(host);
}
