//! The host's memory stays bounded when a peer stops reading: the real binary, a peer
//! that never reads, a sender pushing far more than any bound, and a reader that must
//! get every line. Memory is read from `/proc` (Linux); the bound is generous, so this
//! checks that the host does not hold what it cannot deliver, not how fast it is.

mod common;

use common::{Headless, rss_kb};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[tokio::test]
async fn a_peer_that_never_reads_costs_the_host_a_bounded_amount_and_is_dropped() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("no /proc here: skipped");
        return;
    }
    let mut host = Headless::start(&["--burst", "0", "--addr-burst", "0", "--max-line", "1024"]);
    let pid = host.pid();
    let addr = host.addr.clone();

    // One after another, each in before the next: guest, guest2, guest3.
    let join = |hello: &'static [u8]| {
        let addr = addr.clone();
        async move {
            let mut s = BufReader::new(TcpStream::connect(&addr).await.unwrap());
            s.get_mut().write_all(hello).await.unwrap();
            let mut line = String::new();
            while !line.starts_with("*** you are") {
                line.clear();
                timeout(Duration::from_secs(10), s.read_line(&mut line))
                    .await
                    .expect("a welcome")
                    .unwrap();
            }
            s
        }
    };
    let stuck = join(b"i never read\n").await;
    let mut reader = join(b"i read everything\n").await;
    let mut sender = join(b"here it comes\n").await.into_inner();
    // Wait until all three are in: the reader sees the sender's hello line.
    let mut line = String::new();
    loop {
        line.clear();
        timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("the room relays")
            .unwrap();
        if line.contains("here it comes") {
            break;
        }
    }
    let before = rss_kb(pid);

    // 200,000 lines of ~200 bytes: 40 MB, forty times the per-peer bound.
    const LINES: usize = 200_000;
    let pad = "x".repeat(180);
    let send = tokio::spawn(async move {
        let mut batch = String::new();
        for i in 0..LINES {
            batch.push_str(&format!("{i:08} {pad}\n"));
            if batch.len() > 64 * 1024 {
                sender.write_all(batch.as_bytes()).await.unwrap();
                batch.clear();
            }
        }
        sender.write_all(batch.as_bytes()).await.unwrap();
        sender
    });
    let mut peak = before;
    let mut next = 0usize;
    let mut dropped = false;
    while next < LINES {
        line.clear();
        timeout(Duration::from_secs(30), reader.read_line(&mut line))
            .await
            .expect("lines keep coming")
            .unwrap();
        if let Some(rest) = line.strip_prefix("guest3: ") {
            let n: usize = rest[..8].parse().unwrap();
            assert_eq!(n, next, "every line, in order");
            next += 1;
            if next % 10_000 == 0 {
                peak = peak.max(rss_kb(pid));
            }
        } else if line.contains("left (too slow to keep up)") {
            dropped = true;
        }
    }
    let _sender = send.await.unwrap();
    peak = peak.max(rss_kb(pid));
    assert!(dropped, "the peer that never reads was dropped");
    // The stuck peer may hold at most its 1 MiB backlog; the reader and the sender keep
    // up. 32 MB over the start leaves room for allocator slack, not for 40 MB of lines.
    assert!(
        peak < before + 32 * 1024,
        "host RSS went from {before} kB to {peak} kB"
    );
    eprintln!("host RSS: {before} kB before, {peak} kB at most while relaying 40 MB");
    host.wait_log(|l| l.contains("guest left (too slow to keep up)"));
    drop(stuck);
}
