//! One connection before the room hears of it: greet it, read its first line, and
//! decide what it is — a tchat client (its `hello`), a plain peer (`nc`, a script),
//! or something that is not a chat client at all (a TLS handshake, a web browser),
//! which is told so and closed without the room ever knowing it came.
//!
//! [`greeted`] is the decision, pure; [`handshake`] is the I/O around it. Everything a
//! connection must settle before it takes a seat (later: TLS and a room's code) belongs
//! here, so that the room only ever sees peers that are fully decided.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::net::{LineReader, Read};
use crate::protocol::{self, ClientMsg, Command, Frame, Hello};

/// How long the host waits for a new connection's first line before taking it as a
/// plain peer (`nc` waiting for the room to talk). It must be longer than a tchat
/// client's whole round trip: the client waits up to [`crate::client::GREETING_WAIT`]
/// for the greeting and answers at once, so a `hello` can arrive up to twice that after
/// the greeting left. A silent plain peer loses nothing by the wait: it is sent
/// everything said since it connected.
pub const HELLO_WAIT: Duration = Duration::from_secs(5);

/// How long the host waits for a new connection's first byte before greeting it in
/// clear: a TLS client starts its handshake at once, and on most paths its first bytes
/// come with the connection; `nc` waits to be greeted, and is, this much later. A TLS
/// start that comes later still is taken after the greeting (a joiner skips it).
pub const SNIFF_WAIT: Duration = Duration::from_millis(250);

/// The longest a TLS handshake may take.
pub const TLS_WAIT: Duration = Duration::from_secs(10);

/// What a connection's first byte says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A TLS handshake record.
    Tls,
    /// Something else: a plain peer's first line.
    Plain,
    /// Nothing yet.
    Quiet,
    /// It closed (or failed) before saying anything.
    Closed,
}

/// What a first byte means (`None`: none came).
pub fn sniffed(first: Option<u8>) -> Sniffed {
    match first {
        Some(crate::tls::HANDSHAKE) => Sniffed::Tls,
        Some(_) => Sniffed::Plain,
        None => Sniffed::Quiet,
    }
}

/// Wait up to `wait` for a connection's first byte, and look at it without taking it.
pub async fn sniff(stream: &tokio::net::TcpStream, wait: Duration) -> Sniffed {
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait, stream.peek(&mut first)).await {
        Err(_) => Sniffed::Quiet,
        Ok(Ok(0)) | Ok(Err(_)) => Sniffed::Closed,
        Ok(Ok(_)) => sniffed(Some(first[0])),
    }
}

/// What a connection's first line (or its silence) makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeted {
    /// A tchat client said hello.
    Tchat(Hello),
    /// A plain peer. What it sent first, if anything, is its first line in the room.
    Plain(Option<Frame>),
    /// Not a chat client: tell it this, and close.
    Refuse(&'static str),
    /// It left before joining (`exit` or `/quit` as its first line): close, and tell no
    /// one, since no one was told it came.
    Gone,
}

/// Decide what a connection is from its first frame (`None`: it stayed silent for
/// [`HELLO_WAIT`]).
pub fn greeted(first: Option<Frame>) -> Greeted {
    let line = match first {
        None => return Greeted::Plain(None),
        Some(Frame::TooLong) => return Greeted::Plain(Some(Frame::TooLong)),
        Some(Frame::Line(line)) => line,
    };
    if let Some(hello) = ClientMsg::parse_hello(&line) {
        return Greeted::Tchat(hello);
    }
    if let Some(why) = protocol::foreign_protocol(&line) {
        return Greeted::Refuse(why);
    }
    if line.trim() == "exit" || protocol::parse_command(&line) == Command::Quit {
        return Greeted::Gone;
    }
    Greeted::Plain(Some(Frame::Line(line)))
}

/// A connection that is to take a seat, as its handshake settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// A tchat client's hello; `None` for a plain peer.
    pub hello: Option<Hello>,
    /// A plain peer's first line (or too-long line), if it sent one.
    pub first: Option<Frame>,
}

/// Greet a connection and wait for what it is. `None` when it is over before it took a
/// seat (refused, gone, closed, or it sent too much without a newline); it has then
/// been told why, where there is something to tell.
pub async fn handshake<R, W>(
    lines: &mut LineReader<R>,
    w: &mut W,
    banner: Option<&str>,
    wait: Duration,
    cap: usize,
) -> Option<Decided>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // `None`: greeted already (in clear, while the host looked for a TLS start).
    if let Some(banner) = banner {
        // A fresh connection has an empty send buffer, so this never waits on the peer.
        let greeting = format!("{banner}\n");
        tokio::time::timeout(Duration::from_secs(5), w.write_all(greeting.as_bytes()))
            .await
            .ok()?
            .ok()?;
    }
    // A `hello` split by a stall on the path is waited for whole, not taken as a plain
    // peer's first line on the pause.
    lines.set_hold(Some(looks_like_json));
    let first = lines.next(Some(wait)).await;
    lines.set_hold(None);
    let first = match first {
        Read::Frame(frame) => Some(frame),
        Read::Quiet => None,
        Read::Overrun => {
            let why = format!(
                "* closing this connection: more than {cap} bytes arrived without a newline\n"
            );
            say_last(w, &why).await;
            return None;
        }
        Read::Closed(_) => return None,
    };
    match greeted(first) {
        Greeted::Refuse(why) => {
            say_last(w, &format!("* {why}\n")).await;
            None
        }
        Greeted::Gone => {
            let _ = w.shutdown().await;
            None
        }
        Greeted::Tchat(hello) => {
            lines.set_strict();
            Some(Decided {
                hello: Some(hello),
                first: None,
            })
        }
        Greeted::Plain(first) => Some(Decided { hello: None, first }),
    }
}

/// The start of a structured line (every client message is a JSON object).
fn looks_like_json(buffered: &[u8]) -> bool {
    buffered.first() == Some(&b'{')
}

/// Write a last line and close our side (the caller drains what still arrives, so that
/// the line is not lost to a reset).
pub(crate) async fn say_last<W: AsyncWrite + Unpin>(w: &mut W, line: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        w.write_all(line.as_bytes()).await?;
        w.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Option<Frame> {
        Some(Frame::Line(s.into()))
    }

    /// A client's `hello` as `name`, as it goes on the wire.
    fn hello_line(name: &str, session: Option<&str>) -> String {
        ClientMsg::Hello {
            v: 1,
            name: name.into(),
            client: None,
            session: session.map(str::to_owned),
            since: None,
        }
        .encode()
    }

    /// The handshake with the usual greeting and wait, over `lines` and `w`.
    async fn shake<R, W>(lines: &mut LineReader<R>, w: &mut W) -> Option<Decided>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        handshake(lines, w, Some("* tchat/1 welcome"), HELLO_WAIT, 1 << 16).await
    }

    #[test]
    fn a_hello_is_a_tchat_client_whenever_it_comes_first() {
        let hello = hello_line("alice", Some("s1"));
        match greeted(line(hello.trim_end())) {
            Greeted::Tchat(h) => {
                assert_eq!(h.name, "alice");
                assert_eq!(h.session.as_deref(), Some("s1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anything_else_is_plain_and_kept_as_its_first_line() {
        assert_eq!(greeted(None), Greeted::Plain(None));
        assert_eq!(greeted(line("hi")), Greeted::Plain(line("hi")));
        assert_eq!(
            greeted(line("{\"t\":\"say\",\"text\":\"x\"}")),
            Greeted::Plain(line("{\"t\":\"say\",\"text\":\"x\"}"))
        );
        assert_eq!(
            greeted(Some(Frame::TooLong)),
            Greeted::Plain(Some(Frame::TooLong))
        );
    }

    #[test]
    fn exit_or_quit_first_is_gone_and_tls_or_http_is_refused() {
        assert_eq!(greeted(line(" exit ")), Greeted::Gone);
        assert_eq!(greeted(line("/quit")), Greeted::Gone);
        let tls =
            String::from_utf8_lossy(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03").into_owned();
        assert!(matches!(greeted(line(&tls)), Greeted::Refuse(w) if w.contains("not TLS")));
        assert!(
            matches!(greeted(line("GET / HTTP/1.1")), Greeted::Refuse(w) if w.contains("web server"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hello_that_comes_late_is_still_a_hello() {
        let (near, mut far) = tokio::io::duplex(4096);
        let (r, mut w) = tokio::io::split(near);
        let mut lines = LineReader::new(r, 1 << 16);
        let hello = hello_line("slow", None);
        let client = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut greeting = [0u8; 8];
            far.read_exact(&mut greeting).await.unwrap();
            // A link slower than the old 0.7 s allowance, well within HELLO_WAIT.
            tokio::time::sleep(Duration::from_millis(2500)).await;
            far.write_all(hello.as_bytes()).await.unwrap();
            far
        });
        let got = shake(&mut lines, &mut w).await;
        assert!(matches!(got, Some(Decided { hello: Some(h), first: None }) if h.name == "slow"));
        drop(client.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hello_split_by_a_stall_is_still_a_hello_and_then_lines_are_strict() {
        let (near, mut far) = tokio::io::duplex(4096);
        let (r, mut w) = tokio::io::split(near);
        let mut lines = LineReader::new(r, 1 << 16);
        let hello = hello_line("far", None);
        let client = tokio::spawn(async move {
            let (a, b) = hello.as_bytes().split_at(10);
            far.write_all(a).await.unwrap();
            // A retransmission's worth of stall, longer than the pause rule.
            tokio::time::sleep(Duration::from_millis(400)).await;
            far.write_all(b).await.unwrap();
            far.write_all(b"{\"t\":\"say\",").await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
            far.write_all(b"\"text\":\"x\"}\n").await.unwrap();
            far
        });
        let got = shake(&mut lines, &mut w).await;
        assert!(matches!(got, Some(Decided { hello: Some(h), .. }) if h.name == "far"));
        let next = lines.next(None).await;
        assert!(
            matches!(&next, Read::Frame(Frame::Line(l)) if l == "{\"t\":\"say\",\"text\":\"x\"}"),
            "{next:?}"
        );
        drop(client.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_plain_once_the_wait_is_over() {
        let (near, _far) = tokio::io::duplex(4096);
        let (r, mut w) = tokio::io::split(near);
        let mut lines = LineReader::new(r, 1 << 16);
        let started = tokio::time::Instant::now();
        let got = shake(&mut lines, &mut w).await;
        assert_eq!(
            got,
            Some(Decided {
                hello: None,
                first: None
            })
        );
        assert_eq!(started.elapsed(), HELLO_WAIT);
    }
}
