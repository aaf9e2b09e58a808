//! The socket edge shared by the host and the joiner: reading lines (with the pause rule
//! for senders that never send a newline) and writing queued lines in batches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

use crate::protocol::{Frame, IDLE_FLUSH, LineDecoder};

/// What one wait on a [`LineReader`] brought.
#[derive(Debug)]
pub enum Read {
    /// A line, or a too-long line that was dropped.
    Frame(Frame),
    /// Nothing arrived within the time asked for.
    Quiet,
    /// More than the cap (see [`LineReader::with_cap`]) arrived without a newline.
    Overrun,
    /// The far side closed its end (or the connection failed: `Some(reason)`).
    Closed(Option<String>),
}

/// Reads framed lines.
///
/// Framing depends on the dialect. The structured dialect is strictly newline-framed
/// ([`LineReader::strict`]): a line split by a stall on the path (a retransmission, a
/// slow link) waits for its newline, however long it takes. A plain peer may send text
/// without a newline (the classic `s.send(b"hello")`): until it has ended a line with a
/// newline, text it leaves unterminated is taken as a line once it has paused for
/// [`IDLE_FLUSH`]. A peer that has shown it ends its lines (`nc`, telnet) is then read
/// strictly too, so a stall cannot split its lines either.
///
/// The read loop is written out (rather than `FramedRead`) because the pause rule needs
/// to restart its timer on every read that leaves text without a newline behind, and
/// `FramedRead` hides its reads.
pub struct LineReader<R> {
    reader: R,
    decoder: LineDecoder,
    buf: BytesMut,
    eof: bool,
    /// What is buffered is only the start of one character: wait for the rest.
    held: bool,
    /// Bytes read since the last newline (or the last pause that took a partial line),
    /// including those of an over-long line being skipped.
    unterminated: usize,
    cap: usize,
    /// How much room the next read gets: small while a peer chats (an idle connection
    /// should cost next to nothing), doubled while reads keep filling it.
    chunk: usize,
    /// Never take a partial line on a pause (the structured dialect).
    strict: bool,
    /// A line has ended with a newline: the peer ends its lines, so the pause rule is off.
    ended_a_line: bool,
    /// While this says the buffered text looks like the start of a structured line (a
    /// `hello` in the making, a host's greeting), the pause rule waits for its newline.
    hold: Option<fn(&[u8]) -> bool>,
    /// When the last byte arrived: a sign of life, whatever this side sent meanwhile.
    last_arrival: tokio::time::Instant,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Reads `reader`, dropping lines over `frame_limit` bytes.
    pub fn new(reader: R, frame_limit: usize) -> Self {
        LineReader {
            reader,
            decoder: LineDecoder::new(frame_limit),
            buf: BytesMut::new(),
            eof: false,
            held: false,
            unterminated: 0,
            cap: usize::MAX,
            chunk: MIN_CHUNK,
            strict: false,
            ended_a_line: false,
            hold: None,
            last_arrival: tokio::time::Instant::now(),
        }
    }

    /// From now on, lines end at a newline and nowhere else (the structured dialect).
    pub fn set_strict(&mut self) {
        self.strict = true;
        self.hold = None;
    }

    /// While `looks_structured` holds for the buffered text, wait for its newline rather
    /// than take it as a line on a pause; `None` ends that.
    pub fn set_hold(&mut self, looks_structured: Option<fn(&[u8]) -> bool>) {
        self.hold = looks_structured;
    }

    /// When the far side last sent anything (or when reading began).
    pub fn last_arrival(&self) -> tokio::time::Instant {
        self.last_arrival
    }

    /// Does the pause rule apply to what is buffered now?
    fn pause_rule(&self) -> bool {
        !self.strict
            && !self.ended_a_line
            && !self.held
            && !self.buf.is_empty()
            && !self.hold.is_some_and(|looks| looks(&self.buf))
    }

    /// Give up on a peer that sends more than `cap` bytes without a newline: an over-long
    /// line is skipped and costs no memory, but nothing that is chat goes on that long.
    pub fn with_cap(mut self, cap: usize) -> Self {
        self.cap = cap;
        self
    }

    /// The next line. With `quiet_after`, gives up and returns [`Read::Quiet`] once
    /// nothing at all has arrived for that long (counted from the last byte that came,
    /// so a caller that stops waiting and waits again does not restart the count).
    pub async fn next(&mut self, quiet_after: Option<Duration>) -> Read {
        loop {
            let decoded = if self.eof {
                self.decoder.decode_eof(&mut self.buf)
            } else {
                self.decoder.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(frame)) => {
                    self.ended_a_line |= !self.eof;
                    return Read::Frame(frame);
                }
                Ok(None) if self.eof => return Read::Closed(None),
                Ok(None) => {}
                Err(e) => return Read::Closed(Some(e.to_string())),
            }
            let partial = self.pause_rule();
            let deadline = if partial {
                Some(tokio::time::Instant::now() + IDLE_FLUSH)
            } else {
                quiet_after.map(|d| self.last_arrival + d)
            };
            if self.buf.is_empty() {
                // Nothing is buffered: wait until the peer sends before making room for
                // it, so that a connection waiting on a quiet peer holds no buffer.
                self.buf = BytesMut::new();
                let ready = readable(&mut self.reader);
                let ready = match deadline {
                    None => ready.await,
                    Some(at) => match tokio::time::timeout_at(at, ready).await {
                        Ok(ready) => ready,
                        Err(_) => return Read::Quiet,
                    },
                };
                if let Err(e) = ready {
                    return Read::Closed(Some(e.to_string()));
                }
            }
            self.buf.reserve(self.chunk);
            let before = self.buf.len();
            let room = self.buf.capacity() - before;
            // `read_buf` is cancel safe: a timed-out read loses no byte.
            let read = self.reader.read_buf(&mut self.buf);
            let result = match deadline {
                None => read.await,
                Some(at) => match tokio::time::timeout_at(at, read).await {
                    Ok(result) => result,
                    Err(_) if partial => match self.decoder.take_partial(&mut self.buf) {
                        Some(line) => {
                            self.unterminated = self.buf.len();
                            return Read::Frame(Frame::Line(line));
                        }
                        None => {
                            self.held = true;
                            continue;
                        }
                    },
                    Err(_) => return Read::Quiet,
                },
            };
            match result {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.held = false;
                    self.last_arrival = tokio::time::Instant::now();
                    self.chunk = if n >= room {
                        (self.chunk * 2).min(MAX_CHUNK)
                    } else {
                        MIN_CHUNK
                    };
                    let new = &self.buf[before..];
                    self.unterminated = match new.iter().rposition(|&b| b == b'\n') {
                        Some(i) => new.len() - i - 1,
                        None => self.unterminated.saturating_add(new.len()),
                    };
                    if self.unterminated > self.cap {
                        return Read::Overrun;
                    }
                }
                Err(e) => return Read::Closed(Some(e.to_string())),
            }
        }
    }
}

/// Wait until `reader` has something to read (or has reached its end, or failed),
/// without reading it: a read into no room at all. A socket answers it when it becomes
/// readable; a reader that answers at once only costs the caller its buffer while it
/// waits, as before.
async fn readable<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<()> {
    std::future::poll_fn(|cx| {
        let mut no_room = tokio::io::ReadBuf::new(&mut []);
        std::pin::Pin::new(&mut *reader).poll_read(cx, &mut no_room)
    })
    .await
}

/// One line with its newline, read a byte at a time so that nothing after it is taken
/// off the stream (what follows may be another protocol's, or the next layer's); at
/// most `max` bytes, fewer if the stream ends first. For the few lines of a handshake,
/// not for a conversation.
pub async fn read_one_line<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.len() < max {
        if r.read(&mut byte).await? == 0 {
            break;
        }
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    Ok(line)
}

/// Listen on `addr` with room for many connections arriving at once: a burst of joins
/// (a class, a script starting a hundred bots) should not see its connections dropped
/// and retried for seconds because the kernel's queue of unaccepted ones is full.
///
/// `[::]` (the default) listens on IPv6 and IPv4 both (one dual-stack socket); where
/// the system has no IPv6, it falls back to `0.0.0.0`.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = |addr: std::net::SocketAddr| -> std::io::Result<tokio::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            socket.set_only_v6(false)?;
        }
        // A restarted host gets its port back at once, as the standard library does.
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG as i32)?;
        tokio::net::TcpListener::from_std(std::net::TcpListener::from(socket))
    };
    match open(addr) {
        Err(e)
            if addr.is_ipv6()
                && addr.ip().is_unspecified()
                && e.kind() != std::io::ErrorKind::AddrInUse =>
        {
            open(std::net::SocketAddr::new([0, 0, 0, 0].into(), addr.port()))
        }
        other => other,
    }
}

/// Connections the kernel may hold for us before we accept them (capped by the
/// system's `somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Turn on TCP keepalive, so that a peer that vanished without closing (its machine lost
/// power, its network went away) is noticed within about a minute and a half even while
/// nothing is being said. Best effort: a socket that refuses keeps working without it.
pub fn keepalive(stream: &tokio::net::TcpStream) {
    let sock = socket2::SockRef::from(stream);
    let params = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&params);
    // Data the far side never acknowledges also ends the connection, after a minute.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = sock.set_tcp_user_timeout(Some(Duration::from_secs(60)));
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Read and throw away whatever still arrives, until the far side closes or `within`
    /// passes. Closing a socket with unread input resets the connection, and the far
    /// side could then lose the last thing it was told (why it is being closed).
    pub async fn drain(mut self, within: Duration) {
        let mut sink = vec![0u8; MAX_CHUNK];
        let _ = tokio::time::timeout(within, async {
            while matches!(self.reader.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// The least and the most room made in the buffer for one read.
const MIN_CHUNK: usize = 512;
const MAX_CHUNK: usize = 64 * 1024;

/// A connection's queue of outgoing lines: filled by the room, emptied by the
/// connection's writer ([`write_outbox`]). Bounded by the bytes it holds, and holding no
/// memory once it is empty, however long it was during a burst (a channel would keep
/// its high-water mark of slots for the life of the connection).
#[derive(Default)]
pub struct Outbox {
    state: std::sync::Mutex<OutboxState>,
    ready: tokio::sync::Notify,
}

#[derive(Default)]
struct OutboxState {
    lines: std::collections::VecDeque<Bytes>,
    /// Bytes queued or being written, not yet on the socket.
    unsent: usize,
    /// Of those, bytes queued with [`Outbox::push_exempt`] and not yet written: they do
    /// not count against the bound. They are queued first (on joining), so they are
    /// taken to be the first written.
    exempt: usize,
    closed: bool,
}

/// Why a line was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It would take the unsent bytes past the bound: the peer is not reading.
    Full,
    /// The connection is closing.
    Closed,
}

impl Outbox {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Queue `line`, unless that would take the bytes not yet written past `max`.
    pub fn push(&self, line: Bytes, max: usize) -> Result<(), Refused> {
        let mut s = self.lock();
        if s.closed {
            return Err(Refused::Closed);
        }
        if s.unsent - s.exempt + line.len() > max {
            return Err(Refused::Full);
        }
        s.unsent += line.len();
        self.enqueue(s, line);
        Ok(())
    }

    /// Queue `line` whatever the bound: what the host chose to send (a newcomer's
    /// history, a catch-up, bounded in bytes where it is made) is not the peer's fault,
    /// and must not get it cut as too slow while it drains.
    pub fn push_exempt(&self, line: Bytes) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        s.unsent += line.len();
        s.exempt += line.len();
        self.enqueue(s, line);
    }

    /// Drop every line queued and not yet being written; how many.
    pub fn skip(&self) -> usize {
        let mut s = self.lock();
        let n = s.lines.len();
        let bytes: usize = s.lines.iter().map(Bytes::len).sum();
        s.lines.clear();
        s.unsent -= bytes;
        s.exempt = s.exempt.min(s.unsent);
        n
    }

    fn enqueue(&self, mut s: std::sync::MutexGuard<'_, OutboxState>, line: Bytes) {
        let was_empty = s.lines.is_empty();
        s.lines.push_back(line);
        drop(s);
        // The writer takes everything queued at once, so it needs waking only when the
        // queue starts to fill: a line added to a queue that already holds some will be
        // taken with them.
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// No more lines: the writer sends what is queued, then shuts the connection down.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        // Nothing panics while holding it; if something did, the queue is still sound.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Write what `outbox` queues to `writer`, everything waiting in one write, until it
/// is closed and empty; then shut the writer down.
pub async fn write_outbox<W: AsyncWrite + Unpin>(
    mut w: W,
    outbox: Arc<Outbox>,
) -> std::io::Result<()> {
    let mut batch = std::collections::VecDeque::new();
    loop {
        let (took, closed) = {
            let mut s = outbox.lock();
            std::mem::swap(&mut batch, &mut s.lines);
            (!batch.is_empty(), s.closed)
        };
        if !took {
            if closed {
                break;
            }
            // Nothing to write: let go of what a burst grew (both queues are empty), but
            // keep the few slots a chat's one line at a time needs, so that steady
            // traffic allocates nothing per line.
            release(&mut batch);
            release(&mut outbox.lock().lines);
            // `notify_one` keeps a permit when nobody waits: no wake-up is lost.
            outbox.ready.notified().await;
            continue;
        }
        let n = write_batch(&mut w, batch.iter()).await?;
        let mut s = outbox.lock();
        s.unsent -= n;
        s.exempt = s.exempt.saturating_sub(n);
        drop(s);
        batch.clear();
    }
    w.shutdown().await
}

/// Drop an empty queue's slots if a burst grew it past a few.
fn release(lines: &mut std::collections::VecDeque<Bytes>) {
    if lines.is_empty() && lines.capacity() > KEEP_SLOTS {
        *lines = std::collections::VecDeque::new();
    }
}

/// Slots an idle connection's queues keep (each a 32-byte handle to shared bytes).
const KEEP_SLOTS: usize = 4;

/// Writes what arrives on `rx` to `writer`, as many queued lines per write as are
/// waiting, until `rx` is closed; then shuts the writer down.
pub async fn write_queued<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    // No buffer is kept between writes: an idle connection holds nothing.
    let mut batch: Vec<Bytes> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH
            && let Ok(more) = rx.try_recv()
        {
            batch.push(more);
        }
        write_batch(&mut w, batch.iter()).await?;
        batch.clear();
        if batch.capacity() > MAX_BATCH {
            batch = Vec::new();
        }
    }
    w.shutdown().await
}

/// Write `lines` in one write (joined, when there are several) and flush; the bytes
/// written.
async fn write_batch<'a, W: AsyncWrite + Unpin>(
    w: &mut W,
    lines: impl ExactSizeIterator<Item = &'a Bytes> + Clone,
) -> std::io::Result<usize> {
    let n: usize = lines.clone().map(Bytes::len).sum();
    if lines.len() == 1 {
        for line in lines {
            w.write_all(line).await?;
        }
    } else {
        let mut joined = Vec::with_capacity(n);
        for line in lines {
            joined.extend_from_slice(line);
        }
        w.write_all(&joined).await?;
    }
    w.flush().await?;
    Ok(n)
}

/// The most queued lines gathered into one write.
const MAX_BATCH: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn lines_around_a_quiet_spell_are_read_whole() {
        let (mut far, near) = tokio::io::duplex(1024);
        let mut lines = LineReader::new(near, 1024);
        far.write_all(b"hello\n").await.unwrap();
        assert!(matches!(lines.next(None).await, Read::Frame(Frame::Line(l)) if l == "hello"));
        let quiet = Some(Duration::from_secs(5));
        assert!(matches!(lines.next(quiet).await, Read::Quiet));
        // What comes later is read whole, and the end is still seen.
        far.write_all(b"later\nand a last line").await.unwrap();
        drop(far);
        assert!(matches!(lines.next(quiet).await, Read::Frame(Frame::Line(l)) if l == "later"));
        assert!(
            matches!(lines.next(quiet).await, Read::Frame(Frame::Line(l)) if l == "and a last line")
        );
        assert!(matches!(lines.next(quiet).await, Read::Closed(None)));
    }

    fn is_line(r: &Read, want: &str) -> bool {
        matches!(r, Read::Frame(Frame::Line(l)) if l == want)
    }

    #[tokio::test(start_paused = true)]
    async fn a_strict_reader_waits_out_a_stall_inside_a_line() {
        let (mut far, near) = tokio::io::duplex(1024);
        let mut lines = LineReader::new(near, 1024);
        lines.set_strict();
        let writer = tokio::spawn(async move {
            far.write_all(b"{\"t\":\"say\",").await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            far.write_all(b"\"text\":\"hi\"}\n").await.unwrap();
            far
        });
        assert!(is_line(
            &lines.next(None).await,
            "{\"t\":\"say\",\"text\":\"hi\"}"
        ));
        drop(writer.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn the_pause_rule_holds_only_until_a_peer_ends_a_line() {
        let (mut far, near) = tokio::io::duplex(1024);
        let mut lines = LineReader::new(near, 1024);
        // A script that sends without newlines: each pause ends a line.
        far.write_all(b"no newline").await.unwrap();
        assert!(is_line(&lines.next(None).await, "no newline"));
        // Once it ends a line with a newline, a pause no longer cuts one.
        far.write_all(b"ended\nhalf ").await.unwrap();
        assert!(is_line(&lines.next(None).await, "ended"));
        let writer = tokio::spawn(async move {
            tokio::time::sleep(IDLE_FLUSH * 4).await;
            far.write_all(b"and the rest\n").await.unwrap();
            far
        });
        assert!(is_line(&lines.next(None).await, "half and the rest"));
        drop(writer.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_counts_from_the_last_byte_however_often_the_wait_restarts() {
        let (mut far, near) = tokio::io::duplex(1024);
        let mut lines = LineReader::new(near, 1024);
        far.write_all(b"hi\n").await.unwrap();
        assert!(is_line(&lines.next(None).await, "hi"));
        let heard = tokio::time::Instant::now();
        // A caller that gives up waiting every second (as a select loop does whenever
        // something else happens) still sees the quiet after 5 s, not never.
        let quiet = Some(Duration::from_secs(5));
        loop {
            match tokio::time::timeout(Duration::from_secs(1), lines.next(quiet)).await {
                Err(_) => continue,
                Ok(Read::Quiet) => break,
                Ok(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(heard.elapsed(), Duration::from_secs(5));
        drop(far);
    }

    #[tokio::test]
    async fn the_writer_sends_every_queued_line_in_order_however_they_were_queued() {
        use tokio::io::AsyncReadExt;
        // A small pipe: the writer blocks mid-batch while more lines are queued.
        let (near, mut far) = tokio::io::duplex(64);
        let out = Outbox::new();
        let writer = tokio::spawn(write_outbox(near, out.clone()));
        let mut expected = String::new();
        for i in 0..200 {
            let line = format!("line {i}\n");
            expected.push_str(&line);
            out.push(Bytes::from(line), 1 << 20).unwrap();
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // Everything arrives while the queue is still open: the pushes woke the writer
        // (closing would wake it too, and hide a lost wake-up). A lost wake-up leaves
        // lines queued and this waiting: fail instead.
        let mut got = vec![0u8; expected.len()];
        tokio::time::timeout(Duration::from_secs(10), far.read_exact(&mut got))
            .await
            .expect("the writer wrote every line without being closed")
            .unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected);
        out.close();
        assert_eq!(
            out.push(Bytes::from_static(b"late\n"), 1 << 20),
            Err(Refused::Closed)
        );
        let mut rest = Vec::new();
        far.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after the close");
        writer.await.unwrap().unwrap();
    }

    #[test]
    fn a_queue_refuses_what_would_take_it_past_its_bound() {
        let out = Outbox::new();
        out.push(Bytes::from_static(b"12345"), 8).unwrap();
        assert_eq!(out.push(Bytes::from_static(b"6789"), 8), Err(Refused::Full));
        out.push(Bytes::from_static(b"678"), 8).unwrap();
    }

    #[test]
    fn what_the_host_chose_to_send_does_not_count_against_the_bound() {
        let out = Outbox::new();
        out.push_exempt(Bytes::from(vec![b'h'; 100]));
        out.push(Bytes::from_static(b"12345678"), 8).unwrap();
        assert_eq!(out.push(Bytes::from_static(b"9"), 8), Err(Refused::Full));
        // Skipping drops every queued line and what it counted.
        assert_eq!(out.skip(), 2);
        out.push(Bytes::from_static(b"12345678"), 8).unwrap();
    }

    /// A pipe answers a read with no room at once, so only a socket shows the saving.
    #[tokio::test]
    async fn a_socket_reader_waiting_on_a_quiet_peer_holds_no_buffer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (far, near) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (mut far, near) = (far.unwrap(), near.unwrap().0);
        let mut lines = LineReader::new(near, 1024);
        let quiet = Some(Duration::from_millis(50));
        assert!(matches!(lines.next(quiet).await, Read::Quiet));
        assert_eq!(lines.buf.capacity(), 0);
        far.write_all("你好\n".as_bytes()).await.unwrap();
        assert!(matches!(lines.next(None).await, Read::Frame(Frame::Line(l)) if l == "你好"));
        drop(far);
        assert!(matches!(lines.next(None).await, Read::Closed(None)));
    }
}
