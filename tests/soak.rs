//! Soak: the real host binary with many plain TCP peers (each like `nc`) talking at a
//! steady rate for a while. Opt-in, since it takes a minute or more:
//!
//! ```sh
//! cargo test --release --test soak -- --ignored --nocapture
//! SOAK_PEERS=10 SOAK_RATE=2 SOAK_SECS=10 cargo test --release --test soak -- --ignored --nocapture
//! ```
//!
//! Every peer checks that it got every other peer's lines exactly once and in the order
//! they were sent. The host's resident memory (VmRSS) and open file descriptors are read
//! from `/proc` (Linux only): memory must stay flat while the room talks, and the
//! descriptors must come back to where they were once everyone has left.
//!
//! Loopback only, bounded in peers, rate and time; every wait has a deadline, the whole
//! run has one too, and the host is killed when the test ends, passing or not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use common::{Headless, fd_count, rss_kb};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep, timeout};

/// The host's flood limit, given on its command line so that nothing else changes it.
/// A peer at `RATE_MAX` lines a second or less never meets it.
const BURST: u32 = 20;
const FLOOD_RATE: u32 = 5;
const RATE_MAX: u32 = FLOOD_RATE - 1;

/// Any one step (starting, joining, closing) may take this long.
const STEP: Duration = Duration::from_secs(10);
/// After the last line is sent, how long the last deliveries may take.
const DRAIN: Duration = Duration::from_secs(10);
/// After everyone has left, how long the host may take to close their sockets.
const SETTLE: Duration = Duration::from_secs(15);
/// How often the host is sampled while the room talks.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// The in-run sample that memory growth is measured from.
const RSS_REFERENCE_AT: Duration = Duration::from_secs(10);
/// Open descriptors may differ from the baseline by this many once everyone has left.
const FD_SLACK: usize = 2;

#[derive(Debug, Clone)]
struct Sample {
    /// Time since the peers started sending.
    at: Duration,
    rss_kb: u64,
    fds: usize,
}

fn sample(pid: u32, run_start: Instant) -> Sample {
    Sample {
        at: run_start.elapsed(),
        rss_kb: rss_kb(pid),
        fds: fd_count(pid),
    }
}

/// A soak parameter from the environment, within `lo..=hi`.
fn param(var: &str, default: u32, lo: u32, hi: u32) -> u32 {
    let v = match std::env::var(var) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={s:?} is not a whole number")),
        Err(_) => default,
    };
    assert!((lo..=hi).contains(&v), "{var}={v}: must be in {lo}..={hi}");
    v
}

/// What one peer has read, filled in by its reading task line by line.
#[derive(Default)]
struct Received {
    /// Per sender index, the sequence numbers in the order they came.
    seqs: Vec<Vec<u32>>,
    /// Per sender index, the name its lines came under (the first one seen).
    names: Vec<Option<String>>,
    /// Lines that came under another name than that sender's earlier ones.
    name_changes: usize,
    /// Its own lines sent back to it (a plain peer must not get them).
    echoes: usize,
    /// Notices that a line was refused, or that someone fell behind.
    refusals: Vec<String>,
    /// Lines that are none of the above, and not a join or leave notice.
    strange: Vec<String>,
    /// The host closed the connection.
    closed: bool,
}

impl Received {
    fn new(peers: usize) -> Received {
        Received {
            seqs: vec![Vec::new(); peers],
            names: vec![None; peers],
            ..Received::default()
        }
    }
}

/// `p7 s123` → `(7, 123)`.
fn parse_payload(text: &str) -> Option<(usize, u32)> {
    let (p, s) = text.split_once(' ')?;
    Some((
        p.strip_prefix('p')?.parse().ok()?,
        s.strip_prefix('s')?.parse().ok()?,
    ))
}

/// A connected peer, in the room under `name`.
struct Joined {
    index: usize,
    name: String,
    writer: OwnedWriteHalf,
    reader: tokio::task::JoinHandle<()>,
}

/// Connect peer `index`, wait for its welcome (`* you are NAME. In the room: …`), then
/// leave a task reading everything that comes into `received` until the host closes.
async fn join(
    index: usize,
    addr: String,
    received: Arc<Mutex<Received>>,
    delivered: Arc<AtomicU64>,
) -> Joined {
    let stream = timeout(STEP, TcpStream::connect(&addr))
        .await
        .unwrap_or_else(|_| panic!("peer {index}: connect timed out"))
        .unwrap_or_else(|e| panic!("peer {index}: connect: {e}"));
    let (read, writer) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let mut before = Vec::new();
    let name = loop {
        let line = timeout(STEP, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("peer {index}: no welcome within {STEP:?}: {before:?}"))
            .unwrap_or_else(|e| panic!("peer {index}: read: {e}"))
            .unwrap_or_else(|| panic!("peer {index}: closed before the welcome: {before:?}"));
        if let Some(rest) = line.strip_prefix("*** you are ") {
            let name = rest.split_once(". In the room:").map(|(n, _)| n);
            break name
                .unwrap_or_else(|| panic!("peer {index}: odd welcome {line:?}"))
                .to_owned();
        }
        before.push(line);
    };
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut r = received.lock().unwrap();
            if let Some(text) = line.strip_prefix("*** ") {
                let bad = ["not sent", "flood limit", "slow down", "too slow"];
                if bad.iter().any(|b| text.contains(b)) {
                    r.refusals.push(line);
                } else if !text.contains(" joined") && !text.contains(" left") {
                    r.strange.push(line);
                }
                continue;
            }
            let parsed = line
                .split_once(": ")
                .and_then(|(from, text)| Some((from, parse_payload(text)?)));
            match parsed {
                Some((_, (sender, _))) if sender == index => r.echoes += 1,
                Some((from, (sender, seq))) if sender < r.seqs.len() => {
                    match &r.names[sender] {
                        None => r.names[sender] = Some(from.to_owned()),
                        Some(n) if n != from => r.name_changes += 1,
                        Some(_) => {}
                    }
                    r.seqs[sender].push(seq);
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
                _ => r.strange.push(line),
            }
        }
        received.lock().unwrap().closed = true;
    });
    Joined {
        index,
        name,
        writer,
        reader,
    }
}

/// Send `count` lines `p{index} s{seq}`, `rate` a second, the first at `first`.
async fn talk(
    index: usize,
    mut writer: OwnedWriteHalf,
    first: Instant,
    rate: u32,
    count: u32,
) -> OwnedWriteHalf {
    let mut tick = interval_at(first, Duration::from_secs(1) / rate);
    // A late tick is sent late, never in a catch-up burst: the rate stays at most `rate`.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for seq in 0..count {
        tick.tick().await;
        writer
            .write_all(format!("p{index} s{seq}\n").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("peer {index}: send s{seq}: {e}"));
    }
    writer
}

/// What the run measured.
struct Report {
    peers: usize,
    rate: u32,
    secs: u32,
    sent: u64,
    expected: u64,
    delivered: u64,
    lost: u64,
    dup: u64,
    out_of_order: u64,
    echoes: usize,
    name_errors: usize,
    refusals: Vec<String>,
    strange: Vec<String>,
    not_closed: usize,
    before: Sample,
    joined: Sample,
    run: Vec<Sample>,
    after: Sample,
}

async fn soak(pid: u32, addr: String, peers: usize, rate: u32, secs: u32) -> Report {
    let zero = Instant::now();
    let before = sample(pid, zero);

    // Everyone in, all at once; nobody sends until every peer has its welcome, since
    // a line sent before someone joined is not delivered to them.
    let delivered = Arc::new(AtomicU64::new(0));
    let received: Vec<_> = (0..peers)
        .map(|_| Arc::new(Mutex::new(Received::new(peers))))
        .collect();
    let joining: Vec<_> = (0..peers)
        .map(|i| {
            tokio::spawn(join(
                i,
                addr.clone(),
                received[i].clone(),
                delivered.clone(),
            ))
        })
        .collect();
    let mut joined = Vec::new();
    for j in joining {
        joined.push(j.await.expect("a peer joins"));
    }
    let names: Vec<String> = joined.iter().map(|j| j.name.clone()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        peers,
        "every peer has its own name: {names:?}"
    );
    let joined_sample = sample(pid, zero);

    // Talk. Each peer's first line is offset by a fraction of the period, so that the
    // host sees an even stream rather than `peers` lines at every tick.
    let per_peer = rate * secs;
    let period = Duration::from_secs(1) / rate;
    let run_start = Instant::now();
    let mut readers = Vec::new();
    let mut talking = Vec::new();
    for j in joined {
        let first = run_start + period * j.index as u32 / peers as u32;
        readers.push(j.reader);
        talking.push(tokio::spawn(talk(j.index, j.writer, first, rate, per_peer)));
    }
    let mut all_sent = tokio::spawn(async move {
        let mut writers = Vec::new();
        for t in talking {
            writers.push(t.await.expect("a peer sends all its lines"));
        }
        writers
    });
    let mut run = Vec::new();
    let mut every = interval_at(run_start, SAMPLE_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut writers = loop {
        tokio::select! {
            _ = every.tick() => run.push(sample(pid, run_start)),
            w = &mut all_sent => break w.expect("the senders finish"),
        }
    };
    run.push(sample(pid, run_start));

    // Drain: until every line has reached every other peer, or the deadline.
    let sent = u64::from(per_peer) * peers as u64;
    let expected = sent * (peers as u64 - 1);
    let drain_until = Instant::now() + DRAIN;
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        sleep(Duration::from_millis(50)).await;
    }

    // Everyone leaves ("exit", as a person at `nc` would) and the host closes each.
    for w in &mut writers {
        let _ = w.write_all(b"exit\n").await;
        let _ = w.shutdown().await;
    }
    let close_until = Instant::now() + STEP;
    for r in &mut readers {
        let left = close_until.saturating_duration_since(Instant::now());
        let _ = timeout(left, r).await;
    }
    for r in &readers {
        r.abort();
    }
    drop(writers);
    let settle_until = Instant::now() + SETTLE;
    while fd_count(pid) > before.fds + FD_SLACK && Instant::now() < settle_until {
        sleep(Duration::from_millis(100)).await;
    }
    let after = sample(pid, zero);

    // Tally, per receiver and sender.
    let mut report = Report {
        peers,
        rate,
        secs,
        sent,
        expected,
        delivered: 0,
        lost: 0,
        dup: 0,
        out_of_order: 0,
        echoes: 0,
        name_errors: 0,
        refusals: Vec::new(),
        strange: Vec::new(),
        not_closed: 0,
        before,
        joined: joined_sample,
        run,
        after,
    };
    for (me, r) in received.iter().enumerate() {
        let r = r.lock().unwrap();
        report.echoes += r.echoes;
        report.name_errors += r.name_changes;
        report.refusals.extend(r.refusals.iter().cloned());
        report.strange.extend(r.strange.iter().cloned());
        report.not_closed += usize::from(!r.closed);
        for (sender, seqs) in r.seqs.iter().enumerate() {
            if sender == me {
                continue;
            }
            if r.names[sender]
                .as_ref()
                .is_some_and(|n| *n != names[sender])
            {
                report.name_errors += 1;
            }
            report.delivered += seqs.len() as u64;
            let mut seen = vec![false; per_peer as usize];
            for &s in seqs {
                match seen.get_mut(s as usize) {
                    Some(true) => report.dup += 1,
                    Some(slot) => *slot = true,
                    None => report
                        .strange
                        .push(format!("peer {me}: s{s} from p{sender}, never sent")),
                }
            }
            report.lost += seen.iter().filter(|&&s| !s).count() as u64;
            report.out_of_order += seqs.windows(2).filter(|w| w[1] < w[0]).count() as u64;
        }
    }
    report
}

fn print_report(r: &Report) {
    let run_rss = r.run.iter().map(|s| s.rss_kb);
    let min = run_rss.clone().min().unwrap_or(0);
    let max = run_rss.max().unwrap_or(0);
    let end = r.run.last().map_or(0, |s| s.rss_kb);
    println!();
    println!("tchat soak: headless host, plain TCP peers on 127.0.0.1");
    println!();
    println!(
        "| peers | rate (lines/s/peer) | seconds | lines sent | deliveries | expected | lost | dup | out of order |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        r.peers, r.rate, r.secs, r.sent, r.delivered, r.expected, r.lost, r.dup, r.out_of_order
    );
    println!();
    println!(
        "| host RSS KB: before | joined | min (run) | max (run) | end (run) | after leaving |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {min} | {max} | {end} | {} |",
        r.before.rss_kb, r.joined.rss_kb, r.after.rss_kb
    );
    println!();
    println!("| host fds: before | joined | after leaving |");
    println!("|---:|---:|---:|");
    println!("| {} | {} | {} |", r.before.fds, r.joined.fds, r.after.fds);
    println!();
    println!(
        "in-run samples (s: RSS KB / fds): {}",
        r.run
            .iter()
            .map(|s| format!("{:.1}: {} / {}", s.at.as_secs_f64(), s.rss_kb, s.fds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: run with cargo test --release --test soak -- --ignored --nocapture"]
async fn many_plain_peers_talk_for_a_while_and_nothing_is_lost_or_kept() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("soak: no /proc here (not Linux); skipped");
        return;
    }
    let peers = param("SOAK_PEERS", 50, 2, 500) as usize;
    let rate = param("SOAK_RATE", 2, 1, RATE_MAX);
    let secs = param("SOAK_SECS", 60, 1, 1800);

    // Every peer comes from 127.0.0.1: the limits per address are off.
    let host = Headless::start(&[
        "--burst",
        &BURST.to_string(),
        "--rate",
        &FLOOD_RATE.to_string(),
        "--addr-burst",
        "0",
        "--max-per-address",
        "0",
        "--joins-per-minute",
        "0",
    ]);
    let pid = host.pid();
    let addr = host.addr.clone();
    // The whole run, with room for joining, draining and closing.
    let overall = Duration::from_secs(u64::from(secs)) + 3 * STEP + DRAIN + SETTLE;
    let r = timeout(overall, soak(pid, addr, peers, rate, secs))
        .await
        .unwrap_or_else(|_| panic!("soak: not done within {overall:?}"));
    print_report(&r);
    // Dropped at the end of this function in any case; here, before the verdict.
    drop(host);

    assert!(
        r.refusals.is_empty(),
        "lines refused: {:?}",
        &r.refusals[..r.refusals.len().min(10)]
    );
    assert!(
        r.strange.is_empty(),
        "unexpected lines: {:?}",
        &r.strange[..r.strange.len().min(10)]
    );
    assert_eq!(r.echoes, 0, "plain peers were sent their own lines");
    assert_eq!(r.name_errors, 0, "lines came under the wrong sender's name");
    assert_eq!(r.lost, 0, "lines lost");
    assert_eq!(r.dup, 0, "lines duplicated");
    assert_eq!(r.out_of_order, 0, "lines out of their sender's order");
    assert_eq!(r.delivered, r.expected, "deliveries");
    assert_eq!(
        r.not_closed, 0,
        "peers whose connection the host did not close after exit"
    );

    assert!(
        r.after.fds.abs_diff(r.before.fds) <= FD_SLACK,
        "the host's fds after everyone left: {} (before: {})",
        r.after.fds,
        r.before.fds
    );

    // Memory is flat. By 10 s into the run the host's steady state is built: every
    // connection's buffers, the runtime's and the allocator's pools, and much or all of
    // the room's history (at most `--history` = 1000 small events, well under a MB).
    // From there, talking on must not grow it: 25% + 2 MB leaves room for allocator
    // noise and the rest of the history filling, while holding on to anything per line
    // (the default run delivers ~300k lines) would show as many MB.
    let reference = r
        .run
        .iter()
        .find(|s| s.at >= RSS_REFERENCE_AT)
        .or(r.run.last())
        .expect("an in-run sample");
    let last = r.run.last().expect("an in-run sample");
    let bound = reference.rss_kb * 5 / 4 + 2048;
    assert!(
        last.rss_kb <= bound,
        "the host's RSS grew: {} KB at {:?}, {} KB at the end ({:?}); bound {bound} KB",
        reference.rss_kb,
        reference.at,
        last.rss_kb,
        last.at
    );
}
