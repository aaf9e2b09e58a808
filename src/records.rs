//! The host's side of an established TLS 1.3 connection: application records sealed
//! and opened with the two traffic keys, and nothing else kept per peer.
//!
//! rustls makes the handshake: it checks the version and the suite, proves the host's
//! key and derives the traffic secrets. Kept for the whole connection, a rustls
//! connection holds about 7.4 KB per idle peer (its receive buffer, its record layer,
//! its state), more than everything else a plain peer costs together. So once the
//! handshake (and a private room's code exchange) is over, [`Records::take_over`] takes
//! the secrets out of rustls (`dangerous_extract_secrets`, the hand-off rustls offers
//! for kernel TLS, which this machine's kernels cannot be counted on to have) and the
//! records are sealed and opened here with ring's AEAD. An idle peer then holds two
//! keys (about 1.1 KB); its buffers are given back whenever they are empty.
//!
//! Written by hand because no crate does this part alone: it is the record framing of
//! RFC 8446 §5 (header, inner content type, padding, per-record nonce), with the
//! cryptography itself from ring, as rustls uses it. What it does not do:
//! - key updates: a peer that asks for one is closed with an error (tchat joiners
//!   never ask; `openssl s_client`'s `k` command does);
//! - more records than the suite's confidentiality limit (2^24 for AES-GCM) in one
//!   direction: the connection is closed there, and a tchat joiner rejoins.
//!
//! [`WholeRecords`] is the other half: during the handshake it hands rustls only whole
//! records, so that when the handshake ends no piece of a later record is left inside
//! rustls, where it could not be taken back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use ring::aead;
use rustls::{ConnectionTrafficSecrets, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A record's header: content type, legacy version (2 bytes), length (2 bytes).
const HEADER: usize = 5;
/// The most plaintext one record may carry (RFC 8446 §5.1).
const MAX_PLAIN: usize = 1 << 14;
/// The most a protected record's body may be (RFC 8446 §5.2).
const MAX_CIPHER: usize = MAX_PLAIN + 256;
const TAG: usize = 16;
/// How much one write seals before it is sent: several records in one `write`.
const SEAL_AT_ONCE: usize = 4 * MAX_PLAIN;
/// How much one read takes from the socket (on the stack, not kept).
const READ_CHUNK: usize = 8 * 1024;

const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const CLOSE_NOTIFY: u8 = 0;
const KEY_UPDATE: u8 = 24;
/// Empty records taken in a row before a peer is refused (as rustls does).
const MAX_EMPTY_RUN: u32 = 32;

fn broken(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {why}"))
}

/// One direction's key, its IV and the number of the next record.
struct Direction {
    key: aead::LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    seq: u64,
    /// Records allowed under this key: the suite's confidentiality limit.
    limit: u64,
}

impl Direction {
    fn new(seq: u64, secrets: ConnectionTrafficSecrets, limit: u64) -> io::Result<Direction> {
        let (algorithm, key, iv) = match &secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => return Err(broken("a cipher suite this host does not seal")),
        };
        let key = aead::UnboundKey::new(algorithm, key.as_ref())
            .map_err(|_| broken("a key of the wrong length"))?;
        let iv = <[u8; aead::NONCE_LEN]>::try_from(iv.as_ref())
            .map_err(|_| broken("an IV of the wrong length"))?;
        Ok(Direction {
            key: aead::LessSafeKey::new(key),
            iv,
            seq,
            limit,
        })
    }

    /// The next record's nonce: the IV with the record's number mixed into its last
    /// eight bytes (RFC 8446 §5.3).
    fn next_nonce(&mut self) -> io::Result<aead::Nonce> {
        if self.seq >= self.limit {
            return Err(broken(
                "this connection's key has carried all it may; rejoin",
            ));
        }
        let mut nonce = self.iv;
        for (b, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        self.seq += 1;
        Ok(aead::Nonce::assume_unique_for_key(nonce))
    }

    /// Seal `plain` as one record of inner type `kind` at the end of `out`.
    fn seal(&mut self, out: &mut Vec<u8>, plain: &[u8], kind: u8) -> io::Result<()> {
        debug_assert!(plain.len() <= MAX_PLAIN);
        let len = plain.len() + 1 + TAG;
        let header = [APPLICATION_DATA, 3, 3, (len >> 8) as u8, len as u8];
        let nonce = self.next_nonce()?;
        let start = out.len();
        out.extend_from_slice(&header);
        out.extend_from_slice(plain);
        out.push(kind);
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, aead::Aad::from(header), &mut out[start + HEADER..])
            .map_err(|_| broken("sealing failed"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

/// What one record turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Opened {
    /// Application data: this range of the buffer, decrypted in place.
    Data(std::ops::Range<usize>),
    /// The peer's close_notify: the end of what it sends.
    Closed,
}

/// The length of the record at the start of `buf` (header included), once it is all
/// there; `None` while it is not. A header that cannot start a protected record is an
/// error at once, before its body is waited for.
fn record_len(buf: &[u8]) -> io::Result<Option<usize>> {
    let Some(header) = buf.get(..HEADER) else {
        return Ok(None);
    };
    if header[0] != APPLICATION_DATA {
        return Err(broken(
            "a record that is not protected, after the handshake",
        ));
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_CIPHER {
        return Err(broken("a record longer than TLS allows"));
    }
    if len <= TAG {
        return Err(broken("a record too short to be sealed"));
    }
    Ok((buf.len() >= HEADER + len).then_some(HEADER + len))
}

/// Open the whole record at the start of `buf` (of `total` bytes) in place.
fn open(rx: &mut Direction, buf: &mut [u8], total: usize) -> io::Result<Opened> {
    let (header, body) = buf[..total].split_at_mut(HEADER);
    let aad = aead::Aad::from(<[u8; HEADER]>::try_from(&*header).expect("five bytes"));
    let nonce = rx.next_nonce()?;
    let inner = rx
        .key
        .open_in_place(nonce, aad, body)
        .map_err(|_| broken("a record that does not open with this connection's key"))?;
    // The content type is the last byte that is not padding.
    let Some(at) = inner.iter().rposition(|&b| b != 0) else {
        return Err(broken("a record with no content type"));
    };
    if at > MAX_PLAIN {
        return Err(broken("a record longer than TLS allows"));
    }
    let content = &inner[..at];
    match inner[at] {
        APPLICATION_DATA => Ok(Opened::Data(HEADER..HEADER + at)),
        ALERT if content.len() == 2 && content[1] == CLOSE_NOTIFY => Ok(Opened::Closed),
        ALERT => Err(broken("the peer sent an alert")),
        HANDSHAKE if content.first() == Some(&KEY_UPDATE) => Err(broken(
            "the peer asked for new keys, which this host does not do",
        )),
        _ => Err(broken("an unexpected message after the handshake")),
    }
}

/// An established TLS 1.3 connection from the host's side: `io` carries records,
/// this reads and writes what is inside them.
pub struct Records<S> {
    io: S,
    rx: Direction,
    tx: Direction,
    /// Received, not yet opened, from `in_at` on (empty, and nothing held, while
    /// idle).
    inbuf: Vec<u8>,
    in_at: usize,
    /// Records in a row that carried no data: bounded, as each costs an opening.
    empty_run: u32,
    /// Opened, not yet read.
    plain: Vec<u8>,
    plain_at: usize,
    /// Sealed, not yet written.
    out: Vec<u8>,
    out_at: usize,
    /// The peer said close_notify, or closed its side: nothing more will be read.
    read_closed: bool,
    close_sent: bool,
}

impl<S> Records<S> {
    /// The records of a connection whose handshake rustls has made over
    /// [`WholeRecords`]: what rustls had already opened is kept to be read first, what
    /// it had sealed and not sent is sent first, and the bytes after the handshake's
    /// last record are the start of what is read.
    pub fn take_over(
        io: WholeRecords<S>,
        mut conn: rustls::ServerConnection,
    ) -> io::Result<Records<S>> {
        use std::io::Read;
        let mut plain = Vec::new();
        let mut read_closed = false;
        loop {
            let mut chunk = [0u8; 4096];
            match conn.reader().read(&mut chunk) {
                Ok(0) => {
                    read_closed = true;
                    break;
                }
                Ok(n) => plain.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        // A key update the peer asked for before now: rustls has switched its sending
        // key and parked the reply, which an empty write moves to what is to be sent.
        std::io::Write::write(&mut conn.writer(), &[])?;
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out)?;
        }
        let limit = match conn.negotiated_cipher_suite() {
            Some(SupportedCipherSuite::Tls13(suite)) => suite.common.confidentiality_limit,
            _ => return Err(broken("not a TLS 1.3 connection")),
        };
        let secrets = conn
            .dangerous_extract_secrets()
            .map_err(|e| broken(&e.to_string()))?;
        let WholeRecords { io, buf, at, owed } = io;
        if owed != 0 {
            return Err(broken("the handshake ended inside a record"));
        }
        Ok(Records {
            io,
            rx: Direction::new(secrets.rx.0, secrets.rx.1, limit)?,
            tx: Direction::new(secrets.tx.0, secrets.tx.1, limit)?,
            inbuf: buf[at..].to_vec(),
            in_at: 0,
            empty_run: 0,
            plain,
            plain_at: 0,
            out,
            out_at: 0,
            read_closed,
            close_sent: false,
        })
    }

    /// Open the next record if it has all come, into `plain`. Whether one was opened.
    fn open_next(&mut self) -> io::Result<bool> {
        let held = &mut self.inbuf[self.in_at..];
        let Some(total) = record_len(held)? else {
            return Ok(false);
        };
        match open(&mut self.rx, held, total)? {
            Opened::Data(range) if range.is_empty() => {
                self.empty_run += 1;
                if self.empty_run > MAX_EMPTY_RUN {
                    return Err(broken("too many empty records in a row"));
                }
            }
            Opened::Data(range) => {
                self.empty_run = 0;
                self.plain.extend_from_slice(&held[range]);
            }
            Opened::Closed => self.read_closed = true,
        }
        self.in_at += total;
        if self.in_at == self.inbuf.len() {
            self.inbuf = Vec::new();
            self.in_at = 0;
        }
        Ok(true)
    }
}

impl<S: AsyncWrite + Unpin> Records<S> {
    /// Write out what is sealed; the buffer is given back once it has all gone.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.out = Vec::new();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Records<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_at < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.plain_at);
                buf.put_slice(&this.plain[this.plain_at..this.plain_at + n]);
                this.plain_at += n;
                if this.plain_at == this.plain.len() {
                    this.plain = Vec::new();
                    this.plain_at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            if this.open_next()? {
                continue;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // Closed without close_notify, as rustls takes it: an error, so that a
                // stream cut short on the way is not taken for a whole one.
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "TLS: closed without close_notify",
                )));
            }
            if this.in_at > 0 {
                this.inbuf.drain(..this.in_at);
                this.in_at = 0;
            }
            this.inbuf.extend_from_slice(read.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Records<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was sealed before goes first: a slow reader holds at most one batch.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let take = data.len().min(SEAL_AT_ONCE);
        let records = take.div_ceil(MAX_PLAIN);
        if this.tx.seq.saturating_add(records as u64) > this.tx.limit {
            return Poll::Ready(Err(broken(
                "this connection's key has carried all it may; rejoin",
            )));
        }
        this.out.reserve(take + records * (HEADER + 1 + TAG));
        for piece in data[..take].chunks(MAX_PLAIN) {
            this.tx.seal(&mut this.out, piece, APPLICATION_DATA)?;
        }
        // Sent now if the socket takes it; if not, it goes on the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_sent {
            this.close_sent = true;
            // A warning-level close_notify (RFC 8446 §6.1); past the key's limit the
            // connection is closed without one.
            let _ = this.tx.seal(&mut this.out, &[1, CLOSE_NOTIFY], ALERT);
        }
        // What cannot be sent does not keep the connection open.
        let _ = ready!(this.poll_send(cx));
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// The connection under a TLS handshake that rustls makes: it hands rustls only whole
/// records (or, when a record does not fit in what rustls asks for, the rest of one it
/// already holds whole), so that rustls never holds part of a record when the
/// handshake is over. What comes after is kept here for [`Records::take_over`].
pub struct WholeRecords<S> {
    io: S,
    buf: Vec<u8>,
    at: usize,
    /// Bytes of a record begun and not yet handed on (all of them are in `buf`).
    owed: usize,
}

impl<S> WholeRecords<S> {
    pub fn new(io: S) -> WholeRecords<S> {
        WholeRecords {
            io,
            buf: Vec::new(),
            at: 0,
            owed: 0,
        }
    }

    /// How many of the bytes held may be handed on into `room` bytes, and how many of
    /// a record begun would then still be owed.
    fn ready_len(&self, room: usize) -> (usize, usize) {
        let held = &self.buf[self.at..];
        if self.owed > 0 {
            let n = self.owed.min(room).min(held.len());
            return (n, self.owed - n);
        }
        let mut end = 0;
        while held.len() - end >= HEADER {
            let len = HEADER + usize::from(u16::from_be_bytes([held[end + 3], held[end + 4]]));
            if len > HEADER + MAX_CIPHER {
                if end > 0 {
                    // The whole records first, on their own.
                    break;
                }
                // Not TLS: rustls says why at once, no need to wait for more.
                return (held.len().min(room), 0);
            }
            if held.len() - end < len {
                break;
            }
            if end + len > room {
                if end == 0 {
                    // One record bigger than the room: a piece now, the rest owed.
                    return (room, len - room);
                }
                break;
            }
            end += len;
        }
        (end, 0)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WholeRecords<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let (n, owed) = this.ready_len(out.remaining());
            if n > 0 {
                this.owed = owed;
                let held = &this.buf[this.at..];
                out.put_slice(&held[..n]);
                this.at += n;
                if this.at == this.buf.len() {
                    this.buf = Vec::new();
                    this.at = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The end: hand on what is held (rustls says it is cut short).
                let held = &this.buf[this.at..];
                let n = held.len().min(out.remaining());
                out.put_slice(&held[..n]);
                this.at += n;
                return Poll::Ready(Ok(()));
            }
            if this.at > 0 {
                this.buf.drain(..this.at);
                this.at = 0;
            }
            this.buf.extend_from_slice(read.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WholeRecords<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn direction(seq: u64, limit: u64) -> Direction {
        let secrets = ConnectionTrafficSecrets::Aes256Gcm {
            key: rustls::crypto::cipher::AeadKey::from([7u8; 32]),
            iv: rustls::crypto::cipher::Iv::from([9u8; 12]),
        };
        Direction::new(seq, secrets, limit).unwrap()
    }

    fn sealed(plain: &[u8], kind: u8) -> Vec<u8> {
        let mut out = Vec::new();
        direction(0, u64::MAX).seal(&mut out, plain, kind).unwrap();
        out
    }

    fn opened(record: &mut [u8]) -> io::Result<Opened> {
        let total = record_len(record)?.expect("whole");
        open(&mut direction(0, u64::MAX), record, total)
    }

    #[test]
    fn a_sealed_record_opens_to_what_was_sealed_and_only_with_its_number() {
        let mut record = sealed(b"hello\n", APPLICATION_DATA);
        assert_eq!(record.len(), HEADER + 6 + 1 + TAG);
        assert_eq!(&record[..3], &[APPLICATION_DATA, 3, 3]);
        let mut copy = record.clone();
        let Opened::Data(range) = opened(&mut record).unwrap() else {
            panic!("data")
        };
        assert_eq!(&record[range], b"hello\n");
        // The same record again (a replay) is the next number's, and does not open.
        let mut rx = direction(0, u64::MAX);
        let total = copy.len();
        open(&mut rx, &mut copy.clone(), total).unwrap();
        assert!(open(&mut rx, &mut copy, total).is_err());
    }

    #[test]
    fn a_changed_byte_anywhere_is_refused() {
        let record = sealed(b"hello\n", APPLICATION_DATA);
        for at in 0..record.len() {
            let mut bad = record.clone();
            bad[at] ^= 0x40;
            let refused = record_len(&bad)
                .and_then(|len| match len {
                    Some(total) => open(&mut direction(0, u64::MAX), &mut bad, total),
                    None => Err(broken("cut")),
                })
                .is_err();
            assert!(refused, "byte {at} changed and still opened");
        }
    }

    #[test]
    fn close_notify_ends_the_stream_and_other_messages_are_errors() {
        assert_eq!(
            opened(&mut sealed(&[1, CLOSE_NOTIFY], ALERT)).unwrap(),
            Opened::Closed
        );
        assert!(opened(&mut sealed(&[2, 40], ALERT)).is_err());
        let key_update = [KEY_UPDATE, 0, 0, 1, 0];
        let err = opened(&mut sealed(&key_update, HANDSHAKE)).unwrap_err();
        assert!(err.to_string().contains("new keys"), "{err}");
        assert!(opened(&mut sealed(b"x", 99)).is_err());
    }

    #[test]
    fn padding_is_not_content_and_a_record_all_padding_is_refused() {
        let mut padded = b"hi".to_vec();
        padded.push(APPLICATION_DATA);
        padded.extend_from_slice(&[0; 10]);
        // Sealed as inner type 0: the padding is the last bytes.
        let mut record = sealed(&padded, 0);
        let Opened::Data(range) = opened(&mut record).unwrap() else {
            panic!("data")
        };
        assert_eq!(&record[range], b"hi");
        assert!(opened(&mut sealed(&[0; 4], 0)).is_err());
    }

    #[test]
    fn headers_that_cannot_be_a_protected_record_are_refused_before_their_body() {
        assert!(record_len(&[APPLICATION_DATA, 3, 3, 0]).unwrap().is_none());
        assert!(
            record_len(&[APPLICATION_DATA, 3, 3, 0, 40])
                .unwrap()
                .is_none()
        );
        assert!(record_len(&[HANDSHAKE, 3, 3, 0, 40]).is_err());
        assert!(record_len(&[ALERT, 3, 3, 0, 2]).is_err());
        let too_long = (MAX_CIPHER + 1) as u16;
        let [hi, lo] = too_long.to_be_bytes();
        assert!(record_len(&[APPLICATION_DATA, 3, 3, hi, lo]).is_err());
        assert!(record_len(&[APPLICATION_DATA, 3, 3, 0, TAG as u8]).is_err());
    }

    #[test]
    fn a_key_is_not_used_past_its_limit() {
        let mut tx = direction(0, 2);
        let mut out = Vec::new();
        tx.seal(&mut out, b"a", APPLICATION_DATA).unwrap();
        tx.seal(&mut out, b"b", APPLICATION_DATA).unwrap();
        assert!(tx.seal(&mut out, b"c", APPLICATION_DATA).is_err());
        let mut rx = direction(0, 1);
        let mut first = out[..HEADER + 1 + 1 + TAG].to_vec();
        let mut second = out[HEADER + 1 + 1 + TAG..].to_vec();
        let total = first.len();
        open(&mut rx, &mut first, total).unwrap();
        assert!(open(&mut rx, &mut second, total).is_err());
    }

    fn reading(stream: &[u8]) -> Records<&[u8]> {
        Records {
            io: stream,
            rx: direction(0, u64::MAX),
            tx: direction(0, u64::MAX),
            inbuf: Vec::new(),
            in_at: 0,
            empty_run: 0,
            plain: Vec::new(),
            plain_at: 0,
            out: Vec::new(),
            out_at: 0,
            read_closed: false,
            close_sent: false,
        }
    }

    #[tokio::test]
    async fn an_end_without_close_notify_is_an_error_and_with_it_is_the_end() {
        let mut tx = direction(0, u64::MAX);
        let mut stream = Vec::new();
        tx.seal(&mut stream, b"half a li", APPLICATION_DATA)
            .unwrap();
        let mut got = Vec::new();
        let err = reading(&stream).read_to_end(&mut got).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        tx.seal(&mut stream, &[1, CLOSE_NOTIFY], ALERT).unwrap();
        let mut got = Vec::new();
        reading(&stream).read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"half a li");
    }

    #[tokio::test]
    async fn a_run_of_empty_records_is_refused() {
        let mut tx = direction(0, u64::MAX);
        let mut stream = Vec::new();
        for _ in 0..MAX_EMPTY_RUN {
            tx.seal(&mut stream, b"", APPLICATION_DATA).unwrap();
        }
        tx.seal(&mut stream, b"x", APPLICATION_DATA).unwrap();
        tx.seal(&mut stream, &[1, CLOSE_NOTIFY], ALERT).unwrap();
        let mut got = Vec::new();
        reading(&stream).read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"x", "a few empty records are fine");
        let mut stream = Vec::new();
        let mut tx = direction(0, u64::MAX);
        for _ in 0..=MAX_EMPTY_RUN {
            tx.seal(&mut stream, b"", APPLICATION_DATA).unwrap();
        }
        let err = reading(&stream).read_to_end(&mut got).await.unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn a_header_that_is_not_tls_after_whole_records_waits_for_its_own_read() {
        let mut whole = WholeRecords::new(());
        whole.buf = stream_of(&[20, 30]);
        whole
            .buf
            .extend_from_slice(&[APPLICATION_DATA, 3, 3, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(whole.ready_len(4096), (HEADER * 2 + 50, 0));
        whole.at = HEADER * 2 + 50;
        assert_eq!(whole.ready_len(4096), (8, 0));
    }

    /// Records of the given body lengths, headers only meaningful.
    fn stream_of(lengths: &[usize]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (i, &len) in lengths.iter().enumerate() {
            let [hi, lo] = (len as u16).to_be_bytes();
            bytes.extend_from_slice(&[APPLICATION_DATA, 3, 3, hi, lo]);
            bytes.extend(std::iter::repeat_n(i as u8, len));
        }
        bytes
    }

    /// Hand `bytes` through [`WholeRecords`], read `room` at a time from a source that
    /// gives `piece` at a time; the pieces handed on.
    async fn handed(bytes: Vec<u8>, piece: usize, room: usize) -> Vec<Vec<u8>> {
        let (mut far, near) = tokio::io::duplex(piece);
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(piece) {
                far.write_all(chunk).await.unwrap();
            }
        });
        let mut whole = WholeRecords::new(near);
        let mut pieces = Vec::new();
        loop {
            let mut buf = vec![0u8; room];
            let n = whole.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            pieces.push(buf[..n].to_vec());
        }
        writer.await.unwrap();
        pieces
    }

    /// Where each record in `bytes` ends.
    fn boundaries(bytes: &[u8]) -> Vec<usize> {
        let mut ends = Vec::new();
        let mut at = 0;
        while at + HEADER <= bytes.len() {
            at += HEADER + usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
            ends.push(at);
        }
        ends
    }

    proptest::proptest! {
        #[test]
        fn whole_records_hands_on_everything_and_stops_only_between_records(
            lengths in proptest::collection::vec(17usize..3000, 1..12),
            piece in 1usize..5000,
            room in 64usize..5000,
        ) {
            let bytes = stream_of(&lengths);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let pieces = runtime.block_on(handed(bytes.clone(), piece, room));
            proptest::prop_assert_eq!(pieces.concat(), bytes.clone());
            // A piece ends between records, or inside one that does not fit the room,
            // which the next pieces then finish before anything else.
            let ends = boundaries(&bytes);
            let mut at = 0;
            let mut owed_from: Option<usize> = None;
            for piece in &pieces {
                at += piece.len();
                if ends.contains(&at) {
                    owed_from = None;
                } else {
                    let start = ends.iter().rev().find(|&&e| e < at).copied().unwrap_or(0);
                    let next = ends.iter().find(|&&e| e > at).copied().unwrap();
                    proptest::prop_assert!(next - start > room || owed_from == Some(start),
                        "stopped inside a record that fit: {start}..{next} at {at}");
                    owed_from = Some(start);
                }
            }
        }

        #[test]
        fn any_bytes_after_the_handshake_are_read_or_refused_never_a_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000),
            records in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..4),
        ) {
            let mut stream = Vec::new();
            let mut tx = direction(0, u64::MAX);
            for r in &records {
                tx.seal(&mut stream, r, APPLICATION_DATA).unwrap();
            }
            stream.extend_from_slice(&bytes);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let got = runtime.block_on(async {
                let mut reader = reading(&stream);
                let mut got = Vec::new();
                let _ = reader.read_to_end(&mut got).await;
                got
            });
            // What was sealed is read first, whatever follows it.
            let said = records.concat();
            proptest::prop_assert!(got.starts_with(&said) || said.starts_with(&got));
            proptest::prop_assert!(got.len() >= said.len());
        }
    }

    /// A real handshake with a rustls client (a tchat joiner's side) over an in-memory
    /// pipe as narrow as `pipe`, the client saying `early` right after its handshake,
    /// before the host takes over.
    async fn connected(
        pipe: usize,
        early: Vec<u8>,
    ) -> (
        Records<tokio::io::DuplexStream>,
        tokio::task::JoinHandle<tokio_rustls::client::TlsStream<tokio::io::DuplexStream>>,
    ) {
        let key = crate::tls::HostKey::generate().unwrap();
        let server = crate::tls::server_config(&key).unwrap();
        let (client_config, _) = crate::tls::client_config(crate::tls::Expect::Any);
        let (near, far) = tokio::io::duplex(pipe);
        let client = tokio::spawn(async move {
            let connector = tokio_rustls::TlsConnector::from(client_config);
            let mut tls = connector
                .connect(crate::tls::server_name(), far)
                .await
                .unwrap();
            tls.write_all(&early).await.unwrap();
            tls.flush().await.unwrap();
            tls
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let secured = acceptor.accept(WholeRecords::new(near)).await.unwrap();
        let (io, conn) = secured.into_inner();
        (Records::take_over(io, conn).unwrap(), client)
    }

    #[tokio::test]
    async fn a_rustls_peer_and_the_host_talk_both_ways_through_the_keys_alone() {
        // Said before the host took over, in pieces through a narrow pipe: some of it
        // inside rustls, some of it left over from the handshake's reads.
        let early: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let (mut host, client) = connected(1000, early.clone()).await;
        let mut got = vec![0u8; early.len()];
        host.read_exact(&mut got).await.unwrap();
        assert_eq!(got, early);
        let mut client = client.await.unwrap();

        // More than one write's worth of records, both ways.
        let big: Vec<u8> = (0..150_000u32).map(|i| (i % 241) as u8).collect();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            host.write_all(&sent).await.unwrap();
            host.flush().await.unwrap();
            host
        });
        let mut back = vec![0u8; big.len()];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(back, big);
        let mut host = writer.await.unwrap();
        assert!(host.out.capacity() == 0, "nothing kept once sent");

        client.write_all(b"bye\n").await.unwrap();
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        host.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye\n");
        assert_eq!(host.inbuf.capacity(), 0, "nothing kept while idle");

        host.shutdown().await.unwrap();
        let mut end = Vec::new();
        client.read_to_end(&mut end).await.unwrap();
        assert!(end.is_empty());
    }

    #[tokio::test]
    async fn a_peer_asking_for_new_keys_is_closed_with_an_error() {
        let (mut host, client) = connected(16_384, b"hi\n".to_vec()).await;
        let mut client = client.await.unwrap();
        let mut hi = [0u8; 3];
        host.read_exact(&mut hi).await.unwrap();
        client.get_mut().1.refresh_traffic_keys().unwrap();
        client.write_all(b"after\n").await.unwrap();
        client.flush().await.unwrap();
        let mut buf = [0u8; 16];
        let err = host.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("new keys"), "{err}");
    }
}
