//! A load generator for a chat room on this machine: N peers join one room, some of
//! them send numbered, time-stamped lines, and every peer counts what it receives.
//!
//! ```sh
//! cargo run --release --example loadgen -- --addr 127.0.0.1:7878 --peers 100 --secs 10
//! cargo run --release --example loadgen -- --mode irc --addr 127.0.0.1:6667 --peers 100
//! ```
//!
//! * `--mode tchat` talks to a tchat host as plain peers do (`nc`): one line a message.
//! * `--mode irc` talks to an IRC server: NICK/USER, JOIN #bench, PRIVMSG #bench.
//!
//! Each line carries its sender, a sequence number and the time it was sent, so every
//! receiver can tell lost, duplicated and reordered lines apart and measure latency.
//! It reports deliveries per second across all receivers, latency p50/p99/max, lost and
//! duplicated lines, and (with `--pid`) the server's CPU seconds and RSS from `/proc`.
//! It only connects to loopback addresses, and stops by itself.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
/// One peer's receiving half: plain TCP or TLS.
type OwnedReadHalf = Box<dyn tokio::io::AsyncRead + Unpin>;
/// One peer's sending half.
type OwnedWriteHalf = Box<dyn tokio::io::AsyncWrite + Unpin>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Tchat,
    Irc,
}

#[derive(Debug, Parser)]
#[command(about = "Load a chat room on this machine and measure its fan-out")]
struct Args {
    /// The server: a loopback address with its port.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
    /// Another host of the same room (a cluster, `--cluster`): peers are spread over
    /// `--addr` and these in turn. May be given more than once.
    #[arg(long, value_name = "ADDR")]
    also: Vec<SocketAddr>,
    #[arg(long, value_enum, default_value = "tchat")]
    mode: Mode,
    /// Peers in the room (all of them receive).
    #[arg(long, default_value_t = 100)]
    peers: usize,
    /// How many of the peers send (default: all).
    #[arg(long)]
    senders: Option<usize>,
    /// Lines per second per sender; 0 sends as fast as the socket takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Bytes per line (payload, before the newline).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The server's process id, to read its CPU time and memory from /proc.
    #[arg(long)]
    pid: Option<u32>,
    /// Print one machine-readable line (`key=value …`) instead of the table.
    #[arg(long)]
    raw: bool,
    /// Speak TLS to a tchat host (as `openssl s_client` does: the host's key is not
    /// checked; this measures the cost of encryption, not trust).
    #[arg(long)]
    tls: bool,
    /// Send nothing: join, stay idle this many seconds, and report the server's memory
    /// per idle peer.
    #[arg(long, value_name = "SECS")]
    idle: Option<f64>,
}

/// What all the receivers found, shared within this one thread.
#[derive(Default)]
struct Tally {
    deliveries: u64,
    /// Deliveries while the senders were sending (the rate is worked out from these).
    in_window: u64,
    duplicated: u64,
    reordered: u64,
}

type Shared<T> = Rc<RefCell<T>>;

/// How many deliveries may be outstanding (sent to the server and not yet received by
/// every peer) when sending flat out. It keeps the server's queues (and the kernel's
/// socket buffers) short, so that a run measures what the server delivers, not how much
/// it can buffer.
const IN_FLIGHT: u64 = 1 << 20;

/// Flow control for senders going flat out.
struct Flow {
    /// Lines sent so far, by all senders.
    sent: std::cell::Cell<u64>,
    /// What the receivers found so far.
    tally: Shared<Tally>,
    /// Copies each line makes (peers less its sender).
    fanout: u64,
    wake: tokio::sync::Notify,
}

impl Flow {
    fn outstanding(&self) -> u64 {
        (self.sent.get() * self.fanout).saturating_sub(self.tally.borrow().deliveries)
    }
}

const CHANNEL: &str = "#bench";

fn main() {
    let args = Args::parse();
    if let Err(e) = check(&args) {
        eprintln!("loadgen: {e}");
        std::process::exit(2);
    }
    // One thread: the load generator is pinned to its own core, away from the server.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    match local.block_on(&rt, run(args)) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}

fn check(args: &Args) -> Result<(), String> {
    for addr in std::iter::once(&args.addr).chain(&args.also) {
        if !addr.ip().is_loopback() {
            return Err(format!("{addr} is not a loopback address"));
        }
    }
    if args.peers == 0 || args.peers > 5000 {
        return Err("--peers must be 1..=5000".into());
    }
    if !(0.1..=300.0).contains(&args.secs) {
        return Err("--secs must be 0.1..=300".into());
    }
    if args.senders.unwrap_or(args.peers) > args.peers {
        return Err("--senders cannot be more than --peers".into());
    }
    if !(32..=4096).contains(&args.size) {
        return Err("--size must be 32..=4096".into());
    }
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let senders = args.senders.unwrap_or(args.peers);
    let clock = Instant::now();
    let rss_before = args.pid.map(rss_kb);
    // Join everyone first, a hundred at a time (a silent plain peer joins after a short
    // quiet spell; IRC servers take a burst of registrations slowly), so that every peer
    // is in the room (and gets every line) before the first line is sent.
    use futures::StreamExt;
    let conns = futures::stream::iter((0..args.peers).map(|i| {
        let args = &args;
        async move {
            tokio::time::timeout(Duration::from_secs(30), join(args, i))
                .await
                .map_err(|_| format!("peer {i} could not join within 30 s"))?
        }
    }))
    .buffered(100)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect::<Result<Vec<_>, String>>()?;
    // The last joins are still being announced to the first peers: let that settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu0 = args.pid.map(cpu_seconds);
    let rss_joined = args.pid.map(rss_kb);
    if let Some(idle) = args.idle {
        return idle_report(&args, conns, idle, rss_before).await;
    }

    let tally: Shared<Tally> = Rc::default();
    let hist: Shared<Histogram<u64>> = Rc::new(RefCell::new(
        Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let flow = Rc::new(Flow {
        sent: Default::default(),
        tally: tally.clone(),
        fanout: args.peers as u64 - 1,
        wake: tokio::sync::Notify::new(),
    });
    let start = Instant::now();
    let stop_at = start + Duration::from_secs_f64(args.secs);
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (i, (r, w)) in conns.into_iter().enumerate() {
        let rd = Receiver {
            mode: args.mode,
            me: i,
            next: vec![0; senders],
            tally: tally.clone(),
            hist: hist.clone(),
            clock,
            flow: flow.clone(),
            stop_ns: stop_at.duration_since(clock).as_nanos() as u64,
        };
        readers.push(tokio::task::spawn_local(rd.run(r)));
        if i < senders {
            let s = Sender {
                mode: args.mode,
                me: i,
                size: args.size,
                rate: args.rate,
                stop_at,
                clock,
                flow: flow.clone(),
            };
            writers.push(tokio::task::spawn_local(s.run(w)));
        } else {
            // Receivers keep their write side open: closing it would leave the room.
            writers.push(tokio::task::spawn_local(async move {
                tokio::time::sleep_until(stop_at.into()).await;
                w
            }));
        }
    }
    let mut keep = Vec::new();
    for w in writers {
        keep.push(w.await.map_err(|e| e.to_string())?);
    }
    let sent_total = flow.sent.get();
    // Every line goes to every peer but its sender (neither a tchat host nor an IRC
    // server echoes a plain line back).
    let expected = sent_total * (args.peers as u64 - 1);
    // Drain: wait until everything sent has arrived, or the lines stop coming.
    let send_secs = start.elapsed().as_secs_f64();
    let mut last = (0u64, Instant::now());
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = tally.borrow().deliveries;
        if got >= expected || Instant::now() > give_up {
            break;
        }
        if got != last.0 {
            last = (got, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let total_secs = start.elapsed().as_secs_f64();
    let cpu = args.pid.map(cpu_seconds).zip(cpu0).map(|(b, a)| b - a);
    let rss_end = args.pid.map(rss_kb);
    drop(keep);
    for r in readers {
        r.abort();
    }

    let t = tally.borrow();
    let h = hist.borrow();
    let lost = expected.saturating_sub(t.deliveries - t.duplicated);
    let per_sec = t.in_window as f64 / send_secs;
    let p = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    if args.raw {
        println!(
            "mode={:?} peers={} senders={} rate={} size={} sent={} deliveries={} per_sec={:.0} \
             p50_ms={:.3} p99_ms={:.3} max_ms={:.3} lost={} dup={} reordered={} send_s={:.2} \
             total_s={:.2} cpu_s={} rss_joined_kb={} rss_end_kb={}",
            args.mode,
            args.peers,
            senders,
            args.rate,
            args.size,
            sent_total,
            t.deliveries,
            per_sec,
            p(0.5),
            p(0.99),
            h.max() as f64 / 1000.0,
            lost,
            t.duplicated,
            t.reordered,
            send_secs,
            total_secs,
            cpu.map_or("-".into(), |c| format!("{c:.2}")),
            rss_joined.map_or("-".into(), |r| r.to_string()),
            rss_end.map_or("-".into(), |r| r.to_string()),
        );
    } else {
        println!(
            "{:?} room at {}: {} peers, {senders} sending",
            args.mode, args.addr, args.peers
        );
        println!("  lines sent        {sent_total}");
        println!(
            "  deliveries        {} ({per_sec:.0}/s while sending; all in {total_secs:.2} s)",
            t.deliveries
        );
        println!(
            "  latency           p50 {:.3} ms · p99 {:.3} ms · max {:.3} ms",
            p(0.5),
            p(0.99),
            h.max() as f64 / 1000.0
        );
        println!(
            "  lost / duplicated {lost} / {} (reordered {})",
            t.duplicated, t.reordered
        );
        if let Some(c) = cpu {
            println!("  server CPU        {c:.2} s");
        }
        if let (Some(a), Some(b)) = (rss_joined, rss_end) {
            println!("  server RSS        {a} kB joined, {b} kB at the end");
        }
    }
    Ok(())
}

async fn join(args: &Args, i: usize) -> Result<(OwnedReadHalf, OwnedWriteHalf), String> {
    // Peer i on the i-th host, round the hosts.
    let hosts = 1 + args.also.len();
    let addr = match i % hosts {
        0 => args.addr,
        n => args.also[n - 1],
    };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (r, mut w): (OwnedReadHalf, OwnedWriteHalf) = if args.tls {
        let (config, _) = tchat::tls::client_config(tchat::tls::Expect::Any);
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(tchat::tls::server_name(), stream)
            .await
            .map_err(|e| format!("peer {i}: TLS: {e}"))?;
        let (r, w) = tokio::io::split(tls);
        (Box::new(r), Box::new(w))
    } else {
        let (r, w) = stream.into_split();
        (Box::new(r), Box::new(w))
    };
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut line = String::new();
    match args.mode {
        Mode::Tchat => {
            // A plain peer joins on its first line (or after the host's wait for a
            // hello): a blank line, which says nothing to the room, and wait for the
            // welcome.
            w.write_all(b"\n").await.map_err(|e| e.to_string())?;
            loop {
                line.clear();
                if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
                    return Err(format!("peer {i}: the server closed: {line}"));
                }
                if line.starts_with("*** you are") {
                    break;
                }
            }
        }
        Mode::Irc => {
            let hello = format!("NICK p{i}\r\nUSER p{i} 0 * :load {i}\r\n");
            w.write_all(hello.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut joined = false;
            loop {
                line.clear();
                if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
                    return Err(format!("peer {i}: the server closed: {line}"));
                }
                let mut words = line.split(' ');
                let first = words.next().unwrap_or("");
                if first == "PING" {
                    let pong = format!("PONG {}", &line[5..]);
                    w.write_all(pong.as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                    continue;
                }
                match words.next() {
                    Some("001") => {
                        w.write_all(format!("JOIN {CHANNEL}\r\n").as_bytes())
                            .await
                            .map_err(|e| e.to_string())?;
                        joined = true;
                    }
                    // End of the channel's names: in.
                    Some("366") if joined => break,
                    Some(code) if code.starts_with('4') || code.starts_with('5') => {
                        return Err(format!("peer {i}: {}", line.trim_end()));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok((r.into_inner(), w))
}

struct Sender {
    mode: Mode,
    me: usize,
    size: usize,
    rate: f64,
    stop_at: Instant,
    clock: Instant,
    flow: Rc<Flow>,
}

impl Sender {
    async fn run(self, mut w: OwnedWriteHalf) -> OwnedWriteHalf {
        let mut seq = 0u64;
        let mut buf = Vec::with_capacity(64 * 1024);
        let every = (self.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.rate));
        let mut tick = every.map(|d| {
            // Spread senders over the interval so they do not all send at once.
            let offset = d.mul_f64((self.me % 97) as f64 / 97.0);
            tokio::time::interval_at((Instant::now() + offset).into(), d)
        });
        while Instant::now() < self.stop_at {
            buf.clear();
            // Paced: one line a tick. Flat out: a batch of lines a write.
            let lines = if let Some(t) = &mut tick {
                t.tick().await;
                1
            } else {
                // Flat out, but no further ahead of the room than the budget.
                while self.flow.outstanding() > IN_FLIGHT && Instant::now() < self.stop_at {
                    let wait = self.flow.wake.notified();
                    let _ = tokio::time::timeout(Duration::from_millis(50), wait).await;
                }
                16
            };
            for _ in 0..lines {
                self.line(&mut buf, seq);
                seq += 1;
            }
            if w.write_all(&buf).await.is_err() {
                break;
            }
            self.flow.sent.set(self.flow.sent.get() + lines);
            if tick.is_none() {
                tokio::task::yield_now().await;
            }
        }
        w
    }

    fn line(&self, buf: &mut Vec<u8>, seq: u64) {
        use std::io::Write;
        let at = self.clock.elapsed().as_nanos() as u64;
        let start = buf.len();
        if self.mode == Mode::Irc {
            buf.extend_from_slice(b"PRIVMSG #bench :");
        }
        let body = buf.len();
        let _ = write!(buf, "L {} {} {} ", self.me, seq, at);
        while buf.len() - body < self.size {
            buf.push(b'x');
        }
        if self.mode == Mode::Irc {
            buf.push(b'\r');
        }
        buf.push(b'\n');
        debug_assert!(buf.len() > start);
    }
}

struct Receiver {
    mode: Mode,
    me: usize,
    /// The next sequence number expected from each sender.
    next: Vec<u64>,
    tally: Shared<Tally>,
    hist: Shared<Histogram<u64>>,
    clock: Instant,
    flow: Rc<Flow>,
    /// When sending stops, in nanoseconds on `clock`.
    stop_ns: u64,
}

impl Receiver {
    async fn run(mut self, r: OwnedReadHalf) {
        let mut r = BufReader::with_capacity(256 * 1024, r);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            match r.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => self.on_line(&line),
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        // The payload starts at "L " after the sender's name ("guest3: L …" or
        // ":p3!… PRIVMSG #bench :L …").
        let Some(at) = find(line, b"L ") else { return };
        if self.mode == Mode::Irc && find(line, b" PRIVMSG ").is_none() {
            return;
        }
        let mut fields = line[at + 2..].split(|b| *b == b' ');
        let mut num = || -> Option<u64> { std::str::from_utf8(fields.next()?).ok()?.parse().ok() };
        let (Some(from), Some(seq), Some(sent_at)) = (num(), num(), num()) else {
            return;
        };
        let from = from as usize;
        if from == self.me || from >= self.next.len() {
            return;
        }
        let now = self.clock.elapsed().as_nanos() as u64;
        let mut t = self.tally.borrow_mut();
        t.deliveries += 1;
        let deliveries = t.deliveries;
        if now < self.stop_ns {
            t.in_window += 1;
        }
        let expected = self.next[from];
        if seq == expected {
            self.next[from] += 1;
        } else if seq > expected {
            t.reordered += 1;
            self.next[from] = seq + 1;
        } else {
            t.duplicated += 1;
        }
        drop(t);
        if deliveries % 1024 == 0 && self.flow.outstanding() <= IN_FLIGHT {
            self.flow.wake.notify_waiters();
        }
        let micros = now.saturating_sub(sent_at) / 1000;
        let _ = self.hist.borrow_mut().record(micros.max(1));
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Stay idle, then report what the idle peers cost the server.
async fn idle_report(
    args: &Args,
    conns: Vec<(OwnedReadHalf, OwnedWriteHalf)>,
    secs: f64,
    before: Option<u64>,
) -> Result<(), String> {
    // Read (and drop) whatever the room says meanwhile, as idle clients do.
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (r, w) in conns {
        writers.push(w);
        readers.push(tokio::task::spawn_local(async move {
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
                line.clear();
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let after = args.pid.map(rss_kb);
    let (Some(before), Some(after)) = (before, after) else {
        return Err("--idle needs --pid".into());
    };
    let per_peer = (after as f64 - before as f64) / args.peers as f64;
    if args.raw {
        println!(
            "mode={:?} peers={} idle_s={secs} rss_before_kb={before} rss_idle_kb={after} kb_per_peer={per_peer:.2}",
            args.mode, args.peers
        );
    } else {
        println!(
            "{:?}: {} idle peers: server RSS {before} kB -> {after} kB, {per_peer:.2} kB per peer",
            args.mode, args.peers
        );
    }
    drop(writers);
    for r in readers {
        r.abort();
    }
    Ok(())
}

/// The server's CPU time so far (user + system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
