//! A joiner's connection to a host, encrypted where the host can be: TLS 1.3 to a tchat
//! host, with its key checked ([`crate::tls`]); plain text only to a far side that does
//! not speak TLS at all (the seed's Python program, a plain socket server), and never
//! to a host already known to speak it.
//!
//! How a host is reached:
//! - a host whose key is expected (from an invitation, `known_hosts`, or earlier in this
//!   run) is spoken to in TLS at once, and another key is refused;
//! - a host met for the first time is listened to first: a tchat host that offers TLS
//!   says so in its greeting (`* tchat/1 tls …`), and TLS starts on the same
//!   connection; its key is then remembered (trust on first use). Anything else is
//!   plain text, and what it already said is kept for the session to read.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::protocol;
use crate::tls::{self, Expect, KnownHosts};

/// How long a joiner listens for a greeting from a host it has not met, before taking
/// it as a plain far side. A tchat host greets within its wait for a TLS client
/// ([`crate::server::session::SNIFF_WAIT`]) plus a round trip.
pub const GREETING_WAIT: Duration = Duration::from_secs(3);

/// The longest a TLS handshake may take.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// The longest greeting line read before deciding (a host's is about 100 bytes).
const GREETING_MAX: usize = 1024;

/// What a joiner trusts, and where it remembers the hosts it met.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The `known_hosts` file (`None`: remember nothing across runs).
    pub known_hosts: Option<PathBuf>,
    /// The fingerprint an invitation gave.
    pub invited: Option<String>,
    /// Take whatever key the host shows, and remember it in place of the old one.
    pub accept_new_key: bool,
    /// A private room's code (from the invitation, `--code` or `TCHAT_CODE`).
    pub code: Option<crate::code::Code>,
    /// The key this run has seen the host use, so that a rejoin expects it.
    seen: Arc<Mutex<Option<String>>>,
}

impl Trust {
    /// Trust as given, remembering hosts in `known_hosts`.
    pub fn new(
        known_hosts: Option<PathBuf>,
        invited: Option<String>,
        accept_new_key: bool,
    ) -> Self {
        Trust {
            known_hosts,
            invited,
            accept_new_key,
            code: None,
            seen: Arc::default(),
        }
    }

    /// The key this run has seen the host use.
    fn seen(&self) -> Option<String> {
        self.seen.lock().ok().and_then(|s| s.clone())
    }

    /// The key an invitation or `known_hosts` names for `addr`.
    fn remembered(&self, addr: &str) -> Result<Option<String>, String> {
        if let Some(fp) = &self.invited {
            return Ok(Some(fp.clone()));
        }
        match &self.known_hosts {
            Some(path) => Ok(KnownHosts::load(path)?.get(addr).map(str::to_owned)),
            None => Ok(None),
        }
    }

    fn remember(&self, addr: &str, fp: &str) -> Result<(), String> {
        if self.seen().as_deref() == Some(fp) {
            // A rejoin to the key already held: `known_hosts` has it too.
            return Ok(());
        }
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fp.to_owned());
        }
        if let Some(path) = &self.known_hosts {
            let mut known = KnownHosts::load(path)?;
            if known.get(addr) != Some(fp) {
                known.set(addr, fp);
                known.save(path)?;
            }
        }
        Ok(())
    }
}

/// Whether a connection is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// TLS, with the host's key of this fingerprint.
    Encrypted { fingerprint: String },
    /// Plain text: the far side does not speak TLS.
    Plain,
}

/// A connection to a host: encrypted or not.
pub enum Link {
    Plain(Rewound<TcpStream>),
    Tls(Box<Rewound<tokio_rustls::client::TlsStream<Rewound<TcpStream>>>>),
}

/// Reach the host at `addr` (as typed, the key in `known_hosts`) over `tcp`, as
/// [`Trust`] says; an error is one line for the person.
pub async fn secure(
    mut tcp: TcpStream,
    addr: &str,
    trust: &Trust,
) -> Result<(Link, Security), String> {
    // The key this run has held to comes first, whatever else was said: a rejoin is to
    // the same host. Taking a new key on purpose still takes it only over TLS.
    let expected = match trust.seen() {
        Some(fp) => Some(Expect::Key(fp)),
        None if trust.accept_new_key => Some(Expect::Any),
        None => trust.remembered(addr)?.map(Expect::Key),
    };
    if let Some(expect) = expected {
        // Known to speak TLS (or a new key taken on purpose): nothing else will do.
        return tls(Rewound::new(tcp, Vec::new(), true), addr, expect, trust).await;
    }
    let (greeting, offers_tls) = listen(&mut tcp).await?;
    if !offers_tls && trust.code.is_some() {
        // A private room is only ever entered over TLS: this is not the room.
        return Err(format!(
            "{addr} does not offer TLS, so it is not the private room of the code: not talking to it in clear"
        ));
    }
    if offers_tls {
        // The greeting was read off the socket already; TLS starts after it.
        return tls(
            Rewound::new(tcp, Vec::new(), false),
            addr,
            Expect::Any,
            trust,
        )
        .await;
    }
    Ok((
        Link::Plain(Rewound::new(tcp, greeting, false)),
        Security::Plain,
    ))
}

/// Reach the room at the first of `addrs` that answers and is secured as `trust`
/// says: the link, how it is secured, and which address it was. Used for the first
/// join and for every rejoin alike, so both go through the addresses the same way.
pub async fn reach(addrs: &[String], trust: &Trust) -> Result<(Link, Security, String), String> {
    let mut last = String::from("no address to join");
    for addr in addrs {
        let reached = match crate::client::connect(addr).await {
            Ok((tcp, _)) => secure(tcp, addr, trust).await,
            Err(e) => Err(e),
        };
        match reached {
            Ok((link, security)) => return Ok((link, security, addr.clone())),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Read what a far side says first, up to its first newline or [`GREETING_WAIT`]: the
/// bytes read, and whether they were a tchat greeting offering TLS.
async fn listen(tcp: &mut TcpStream) -> Result<(Vec<u8>, bool), String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 512];
        loop {
            // Peek first, and take off the socket only up to the end of the greeting:
            // what follows it may be the far side's TLS, or its next line.
            let n = tcp.peek(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            let take = match buf[..n].iter().position(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => n,
            };
            let mut exact = vec![0u8; take];
            tcp.read_exact(&mut exact).await?;
            got.extend_from_slice(&exact);
            if got.ends_with(b"\n") || got.len() >= GREETING_MAX {
                return Ok(());
            }
        }
    };
    // Silence for the whole wait is an answer too: a plain far side that waits.
    if let Ok(Err(e)) = tokio::time::timeout(GREETING_WAIT, read).await {
        return Err(crate::client::plain_io_error(&e));
    }
    let line = String::from_utf8_lossy(&got);
    let offers = protocol::banner_offers_tls(line.trim_end());
    Ok((got, offers))
}

async fn tls(
    stream: Rewound<TcpStream>,
    addr: &str,
    expect: Expect,
    trust: &Trust,
) -> Result<(Link, Security), String> {
    let (config, seen) = tls::client_config(expect.clone());
    let connector = tokio_rustls::TlsConnector::from(config);
    let shake = connector.connect(tls::server_name(), stream);
    let result = tokio::time::timeout(HANDSHAKE_WAIT, shake).await;
    let shown = seen.lock().ok().and_then(|s| s.clone());
    let stream = match result {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            return Err(match (&expect, shown) {
                (Expect::Key(want), Some(got)) if !tls::matches(want, &got) => {
                    if trust.invited.as_deref() == Some(want.as_str()) {
                        not_invited_key(addr, want, &got)
                    } else {
                        changed_key(addr, want, &got)
                    }
                }
                (Expect::Key(_), None) => format!(
                    "{addr} spoke TLS before and does not now ({}): not talking to it in clear",
                    crate::client::plain_io_error(&e)
                ),
                _ => format!(
                    "no secure connection to {addr}: {}",
                    crate::client::plain_io_error(&e)
                ),
            });
        }
        Err(_) => {
            return Err(format!(
                "no secure connection to {addr}: the handshake took too long"
            ));
        }
    };
    let fingerprint = shown.unwrap_or_default();
    trust.remember(addr, &fingerprint)?;
    let stream = inside(stream, addr, trust).await?;
    Ok((
        Link::Tls(Box::new(stream)),
        Security::Encrypted { fingerprint },
    ))
}

/// The first line inside TLS: a private room's asks for the code, which is proved
/// here (see [`crate::pake`]); any other is given back, for the session to read.
async fn inside(
    mut stream: tokio_rustls::client::TlsStream<Rewound<TcpStream>>,
    addr: &str,
    trust: &Trust,
) -> Result<Rewound<tokio_rustls::client::TlsStream<Rewound<TcpStream>>>, String> {
    use crate::pake::{self, Exchange, Line};
    use tokio::io::AsyncWriteExt;
    let lost = |e: std::io::Error| format!("lost {addr}: {}", crate::client::plain_io_error(&e));
    let first = tokio::time::timeout(
        HANDSHAKE_WAIT,
        crate::net::read_one_line(&mut stream, GREETING_MAX),
    )
    .await
    .map_err(|_| format!("{addr} said nothing after the secure handshake"))?
    .map_err(lost)?;
    let text = String::from_utf8_lossy(&first).into_owned();
    if let Some(why) = private_refusal(&text) {
        return Err(format!("{addr} turned us away: {why}"));
    }
    if !text.starts_with(pake::PROMPT) {
        return Ok(Rewound::new(stream, first, false));
    }
    let Some(code) = &trust.code else {
        return Err(format!(
            "{addr} is a private room: join with the invitation its host gave you (tchat --join TOKEN), or add --code CODE"
        ));
    };
    let mut binding = [0u8; pake::BINDING_LEN];
    stream
        .get_ref()
        .1
        .export_keying_material(&mut binding, pake::EXPORTER_LABEL, None)
        .map_err(|e| format!("no secure connection to {addr}: {e}"))?;
    let ours = Exchange::start(code, &binding);
    let start = Line::Pake {
        message: ours.message.clone(),
        confirm: None,
    };
    let prove = async {
        stream
            .write_all(start.render().as_bytes())
            .await
            .map_err(lost)?;
        let answer = crate::net::read_one_line(&mut stream, GREETING_MAX)
            .await
            .map_err(lost)?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let Some(Line::Pake {
            message,
            confirm: Some(theirs),
        }) = Line::parse(&answer)
        else {
            return Err(match private_refusal(&answer) {
                Some(why) => format!("{addr} turned us away: {why}"),
                None => format!("{addr} did not answer the room's code as a tchat host does"),
            });
        };
        let wrong = || format!("wrong code for the private room at {addr}: check it with the host");
        let key = ours.finish(&message).ok_or_else(wrong)?;
        if !key.verify("host", &theirs) {
            return Err(wrong());
        }
        let done = Line::Confirm(key.confirm("joiner"));
        stream
            .write_all(done.render().as_bytes())
            .await
            .map_err(lost)?;
        Ok(())
    };
    tokio::time::timeout(HANDSHAKE_WAIT, prove)
        .await
        .map_err(|_| format!("{addr} took too long over the room's code"))??;
    Ok(Rewound::new(stream, Vec::new(), false))
}

/// What a private room's host says when it turns a joiner away (too many wrong codes).
fn private_refusal(line: &str) -> Option<String> {
    if line.starts_with(crate::pake::PROMPT) {
        return None;
    }
    let rest = line.strip_prefix(crate::pake::PRIVATE_GREETING)?;
    Some(crate::sanitize::line(rest.trim()))
}

/// What a joiner is told when the host shows another key than its invitation names.
fn not_invited_key(addr: &str, want: &str, got: &str) -> String {
    format!(
        "the host at {addr} shows the key {}, not the key in the invitation ({}): someone \
         may be in the middle; check the invitation with the host",
        tls::short(got),
        tls::short(want)
    )
}

/// What a joiner is told when the host shows another key than the one it expects.
fn changed_key(addr: &str, want: &str, got: &str) -> String {
    format!(
        "the host key for {addr} has changed: it was {}, it is now {}. Someone may be \
         in the middle; if the host made a new key on purpose (ask its owner), join with \
         --accept-new-key",
        tls::short(want),
        tls::short(got)
    )
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_flush(cx),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Link::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A stream that first gives back bytes already read from it (`prefix`), and can skip
/// a plain greeting line that arrives before a TLS answer (`skip_greeting`: a host on
/// a slow path may have greeted in clear before it saw our TLS start; it then answers
/// in TLS after the greeting).
pub struct Rewound<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
    skip: Skip,
    /// The greeting being skipped, to see that it offers TLS (bounded).
    greeting: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Not yet known whether the first byte starts a greeting.
    Deciding,
    /// In a greeting: drop up to its newline.
    InGreeting,
    /// Pass everything on.
    Done,
}

impl<S> Rewound<S> {
    pub fn new(inner: S, prefix: Vec<u8>, skip_greeting: bool) -> Self {
        Rewound {
            prefix,
            at: 0,
            inner,
            greeting: Vec::new(),
            skip: if skip_greeting {
                Skip::Deciding
            } else {
                Skip::Done
            },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.skip == Skip::Done {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut scratch = [0u8; 1024];
            let mut tmp = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut tmp) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let got = tmp.filled();
            if got.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let mut rest = got;
            if this.skip == Skip::Deciding {
                this.skip = if rest[0] == b'*' {
                    Skip::InGreeting
                } else {
                    Skip::Done
                };
            }
            if this.skip == Skip::InGreeting {
                let end = rest.iter().position(|b| *b == b'\n');
                let line = &rest[..end.unwrap_or(rest.len())];
                if this.greeting.len() + line.len() > GREETING_MAX {
                    // No greeting is this long: this is not a host that takes TLS.
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "it sends a greeting without end instead of TLS",
                    )));
                }
                this.greeting.extend_from_slice(line);
                match end {
                    Some(i) => {
                        rest = &rest[i + 1..];
                        this.skip = Skip::Done;
                        let greeting = String::from_utf8_lossy(&this.greeting);
                        if !protocol::banner_offers_tls(greeting.trim_end()) {
                            // Not a host that takes TLS: no answer to our start will come.
                            return Poll::Ready(Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "it greets in clear and does not offer TLS",
                            )));
                        }
                    }
                    None => continue,
                }
            }
            if rest.is_empty() {
                continue;
            }
            // Hand on what fits now; keep the rest to give back first next time.
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.prefix = rest[n..].to_vec();
            this.at = 0;
            return Poll::Ready(Ok(()));
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn read_all<S: AsyncRead + Unpin>(mut s: S) -> Vec<u8> {
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn what_was_read_already_comes_first() {
        let (mut far, near) = tokio::io::duplex(64);
        far.write_all(b" world").await.unwrap();
        drop(far);
        let got = read_all(Rewound::new(near, b"hello".to_vec(), false)).await;
        assert_eq!(got, b"hello world");
    }

    #[tokio::test]
    async fn a_greeting_before_tls_is_skipped_and_nothing_else_is() {
        for (sent, want) in [
            (
                &b"* tchat/1 tls welcome\n\x16\x03\x03rest"[..],
                &b"\x16\x03\x03rest"[..],
            ),
            (
                b"\x16\x03\x03* not a greeting\n",
                b"\x16\x03\x03* not a greeting\n",
            ),
        ] {
            let (mut far, near) = tokio::io::duplex(8);
            let sent = sent.to_vec();
            let writer = tokio::spawn(async move {
                // A byte at a time: the greeting's end may come in any read.
                for b in sent {
                    far.write_all(&[b]).await.unwrap();
                }
            });
            let got = read_all(Rewound::new(near, Vec::new(), true)).await;
            writer.await.unwrap();
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn a_greeting_that_offers_no_tls_ends_the_wait_for_it() {
        let (mut far, near) = tokio::io::duplex(64);
        far.write_all(b"* tchat/1 welcome to an old room\n")
            .await
            .unwrap();
        let mut r = Rewound::new(near, Vec::new(), true);
        let mut buf = [0u8; 16];
        let err = r.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
