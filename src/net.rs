//! The socket edge shared by the host and the joiner: reading lines (with the pause rule
//! for senders that never send a newline) and writing queued lines in batches.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use crate::protocol::{Frame, IDLE_FLUSH, LineDecoder};

/// What one wait on a [`LineReader`] brought.
#[derive(Debug)]
pub enum Read {
    /// A line, or a too-long line that was dropped.
    Frame(Frame),
    /// Nothing arrived within the time asked for.
    Quiet,
    /// The far side closed its end (or the connection failed: `Some(reason)`).
    Closed(Option<String>),
}

/// Reads framed lines. Text that arrives without a newline is taken as a line once the
/// sender has paused for [`IDLE_FLUSH`]: the classic `s.send(b"hello")` shows as a message.
pub struct LineReader<R> {
    framed: FramedRead<R, LineDecoder>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// Reads `reader`, dropping lines over `frame_limit` bytes.
    pub fn new(reader: R, frame_limit: usize) -> Self {
        LineReader {
            framed: FramedRead::new(reader, LineDecoder::new(frame_limit)),
        }
    }

    /// The next line. With `quiet_after`, gives up and returns [`Read::Quiet`] when
    /// nothing at all arrives for that long.
    pub async fn next(&mut self, quiet_after: Option<Duration>) -> Read {
        let partial = !self.framed.read_buffer().is_empty();
        let wait = if partial {
            Some(IDLE_FLUSH)
        } else {
            quiet_after
        };
        let next = match wait {
            None => self.framed.next().await,
            // `FramedRead` keeps its state across a cancelled `next()`: no byte is lost.
            Some(d) => match tokio::time::timeout(d, self.framed.next()).await {
                Ok(next) => next,
                Err(_) if !partial => return Read::Quiet,
                Err(_) => match self.take_partial() {
                    Some(line) => return Read::Frame(Frame::Line(line)),
                    // Only part of one character is waiting: wait for the rest of it.
                    None if quiet_after.is_some() => return Read::Quiet,
                    None => self.framed.next().await,
                },
            },
        };
        match next {
            Some(Ok(frame)) => Read::Frame(frame),
            Some(Err(e)) => Read::Closed(Some(e.to_string())),
            None => Read::Closed(None),
        }
    }

    fn take_partial(&mut self) -> Option<String> {
        // The decoder and the buffer are lent one at a time, so the buffer steps out
        // while the decoder works on it.
        let mut buf = std::mem::take(self.framed.read_buffer_mut());
        let line = self.framed.decoder_mut().take_partial(&mut buf);
        *self.framed.read_buffer_mut() = buf;
        line
    }
}

/// Writes what arrives on `rx` to `writer`, as many queued lines per write as are
/// waiting, until `rx` is closed; then shuts the writer down.
pub async fn write_queued<W: AsyncWrite + Unpin>(
    writer: W,
    mut rx: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    let mut w = BufWriter::new(writer);
    while let Some(bytes) = rx.recv().await {
        w.write_all(&bytes).await?;
        while let Ok(bytes) = rx.try_recv() {
            w.write_all(&bytes).await?;
        }
        w.flush().await?;
    }
    w.shutdown().await
}
