//! An impairment proxy for fault tests: it sits between a client and a host on loopback
//! and makes the link behave like a bad one. Each direction can be given latency,
//! jitter, a bandwidth cap, segments of a few bytes, and a pause every N bytes; and the
//! whole link can be stalled (bytes held, then delivered), black-holed (bytes vanish,
//! the connections stay open), or reset (every connection gets a TCP RST).
//!
//! Chunks keep their order whatever the jitter: like TCP, a late chunk holds back the
//! ones behind it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How one direction of the link is impaired.
#[derive(Debug, Clone, Default)]
pub struct Impair {
    /// Added to every chunk's trip.
    pub latency: Duration,
    /// Up to this much more, at random, per chunk (order is kept).
    pub jitter: Duration,
    /// Bytes a second at most (`None`: as fast as loopback goes).
    pub bytes_per_sec: Option<u64>,
    /// Write at most this many bytes at a time (TCP_NODELAY on): `Some(1)` sends every
    /// byte in its own segment.
    pub segment: Option<usize>,
    /// After every `N` bytes, stop for the duration (a retransmission in the middle of
    /// a line looks like this).
    pub pause_every: Option<(usize, Duration)>,
}

impl Impair {
    pub fn latency(ms: u64) -> Impair {
        Impair {
            latency: Duration::from_millis(ms),
            ..Impair::default()
        }
    }
}

/// What the whole link does right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow (impaired as set).
    Pass,
    /// Bytes are read and held; they flow again, all of them, when the mode is `Pass`.
    Stall,
    /// Bytes are read and thrown away; the connections stay open (a host that froze, a
    /// path that died without a word).
    BlackHole,
}

struct Control {
    up: Mutex<Impair>,
    down: Mutex<Impair>,
    mode: watch::Sender<Mode>,
    /// Bumped to reset every connection open now.
    resets: watch::Sender<u64>,
    /// Connections accepted so far.
    accepted: Mutex<u64>,
    /// Close every new connection at once (the host is down).
    refusing: std::sync::atomic::AtomicBool,
}

/// A running proxy to one upstream address. Dropping it stops accepting; connections
/// already open go on until either end closes.
pub struct Proxy {
    pub addr: SocketAddr,
    ctl: Arc<Control>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// A proxy on `127.0.0.1:0` to `upstream`: `up` impairs what the client sends, `down`
    /// what it receives.
    pub async fn start(upstream: SocketAddr, up: Impair, down: Impair) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().unwrap();
        let ctl = Arc::new(Control {
            up: Mutex::new(up),
            down: Mutex::new(down),
            mode: watch::channel(Mode::Pass).0,
            resets: watch::channel(0).0,
            accepted: Mutex::new(0),
            refusing: std::sync::atomic::AtomicBool::new(false),
        });
        let c = ctl.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                *c.accepted.lock().unwrap() += 1;
                if c.refusing.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                    continue;
                }
                let c = c.clone();
                tokio::spawn(async move {
                    if let Ok(host) = TcpStream::connect(upstream).await {
                        link(client, host, c).await;
                    }
                });
            }
        });
        Proxy { addr, ctl, accept }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.ctl.mode.send_replace(mode);
    }

    pub fn set_up(&self, impair: Impair) {
        *self.ctl.up.lock().unwrap() = impair;
    }

    pub fn set_down(&self, impair: Impair) {
        *self.ctl.down.lock().unwrap() = impair;
    }

    /// While `true`, every new connection is reset at once, as a host that is down.
    pub fn set_refusing(&self, refusing: bool) {
        self.ctl
            .refusing
            .store(refusing, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reset (RST, both ends) every connection open now.
    pub fn reset_all(&self) {
        self.ctl.resets.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        *self.ctl.accepted.lock().unwrap()
    }
}

/// Carry one connection both ways until both ends have closed or the link is reset.
async fn link(mut client: TcpStream, mut host: TcpStream, ctl: Arc<Control>) {
    let _ = client.set_nodelay(true);
    let _ = host.set_nodelay(true);
    let mut resets = ctl.resets.subscribe();
    resets.borrow_and_update();
    {
        let (mut cr, mut cw) = client.split();
        let (mut hr, mut hw) = host.split();
        let both = async {
            tokio::join!(
                pump(&mut cr, &mut hw, &ctl, true),
                pump(&mut hr, &mut cw, &ctl, false)
            )
        };
        tokio::select! {
            _ = both => return,
            _ = resets.changed() => {}
        }
    }
    // Reset: closing with linger 0 sends an RST instead of a FIN.
    for s in [&client, &host] {
        let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    }
}

/// Read from `r`, impair, write to `w`, until `r` closes (then close `w` once everything
/// read is written) or a write fails.
async fn pump(
    r: &mut tokio::net::tcp::ReadHalf<'_>,
    w: &mut tokio::net::tcp::WriteHalf<'_>,
    ctl: &Control,
    up: bool,
) {
    let impair = || {
        if up {
            ctl.up.lock().unwrap().clone()
        } else {
            ctl.down.lock().unwrap().clone()
        }
    };
    // Chunks with the time they may be written, in order.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async {
        let mode = ctl.mode.subscribe();
        let mut buf = vec![0u8; 16 * 1024];
        let mut last = Instant::now();
        loop {
            let n = match r.read(&mut buf).await {
                // A close does not cross a black hole either.
                Ok(0) | Err(_) if *mode.borrow() == Mode::BlackHole => {
                    std::future::pending::<()>().await;
                    break;
                }
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if *mode.borrow() == Mode::BlackHole {
                continue;
            }
            let i = impair();
            let extra = if i.jitter.is_zero() {
                Duration::ZERO
            } else {
                i.jitter.mul_f64(rand::random::<f64>())
            };
            // Never before the chunk ahead of it.
            let at = (Instant::now() + i.latency + extra).max(last);
            last = at;
            if tx.send((at, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        drop(tx);
    };
    let writing = async {
        let mut mode = ctl.mode.subscribe();
        let mut since_pause = 0usize;
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                // Held while stalled; thrown away once black-holed.
                while *mode.borrow_and_update() == Mode::Stall {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
                if *mode.borrow() == Mode::BlackHole {
                    break;
                }
                let i = impair();
                let mut n = rest.len();
                if let Some(seg) = i.segment {
                    n = n.min(seg.max(1));
                }
                if let Some((every, _)) = i.pause_every {
                    n = n.min(every.max(1) - since_pause);
                }
                if w.write_all(&rest[..n]).await.is_err() {
                    return;
                }
                rest = &rest[n..];
                if let Some(bps) = i.bytes_per_sec {
                    let secs = n as f64 / bps.max(1) as f64;
                    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                } else if i.segment.is_some() {
                    // Give each small segment its own trip.
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
                if let Some((every, pause)) = i.pause_every {
                    since_pause += n;
                    if since_pause >= every.max(1) {
                        since_pause = 0;
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reading, writing);
}
