//! `LineDecoder` fed in arbitrary chunks, the way `net::LineReader` drives it: after
//! each chunk, `decode` until it says `None`; sometimes (a sender's pause) take the
//! partial line; at the end, `decode_eof` until `None`.
//!
//! Input: byte 0 picks the frame limit, byte 1 the largest chunk and how often a pause
//! happens, byte 2 seeds the chunk sizes; the rest is what the peer sends.
//!
//! Checked against a small model of the framing (split at `\n`, drop a line longer than
//! the limit and everything up to its newline, a partial leaves an incomplete UTF-8
//! tail behind), plus invariants that do not need the model.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tchat::protocol::{Frame, LineDecoder};
use tokio_util::codec::Decoder;

/// What the framing should do, written plainly (whole-buffer searches, no offsets).
struct Model {
    buf: Vec<u8>,
    skipping: bool,
    max: usize,
}

fn text(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    String::from_utf8_lossy(raw).into_owned()
}

/// The width of the UTF-8 sequence a byte starts, if it can start one.
fn lead_width(b: u8) -> Option<usize> {
    match b {
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

impl Model {
    fn decode(&mut self) -> Option<Frame> {
        loop {
            let nl = self.buf.iter().position(|&b| b == b'\n');
            if self.skipping {
                match nl {
                    Some(i) => {
                        self.buf.drain(..=i);
                        self.skipping = false;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
                continue;
            }
            return match nl {
                Some(i) if i <= self.max => {
                    let line: Vec<u8> = self.buf.drain(..=i).collect();
                    Some(Frame::Line(text(&line[..i])))
                }
                _ if self.buf.len() > self.max => {
                    self.skipping = true;
                    Some(Frame::TooLong)
                }
                _ => None,
            };
        }
    }

    fn decode_eof(&mut self) -> Option<Frame> {
        if let Some(f) = self.decode() {
            return Some(f);
        }
        if self.buf.is_empty() {
            return None;
        }
        let all = std::mem::take(&mut self.buf);
        Some(Frame::Line(text(&all)))
    }

    /// How many bytes at the end are a lead byte and fewer continuation bytes than it
    /// announces.
    fn tail(&self) -> usize {
        let n = self.buf.len();
        let conts = self.buf.iter().rev().take(3).take_while(|&&b| is_continuation(b)).count();
        if conts == n || conts == 3 {
            return 0;
        }
        match lead_width(self.buf[n - 1 - conts]) {
            Some(w) if conts + 1 < w => conts + 1,
            _ => 0,
        }
    }

    fn take_partial(&mut self) -> Option<String> {
        let keep = self.tail();
        if keep == self.buf.len() {
            return None;
        }
        let taken: Vec<u8> = self.buf.drain(..self.buf.len() - keep).collect();
        self.skipping = false;
        Some(text(&taken))
    }
}

struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        // xorshift32; never zero.
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

fn check_frame(f: &Frame, max: usize) {
    if let Frame::Line(l) = f {
        assert!(!l.contains('\n'), "a line holds a newline: {l:?}");
        // At most `max` bytes were read for it; each became at most one char (an
        // invalid byte becomes one U+FFFD of three bytes).
        assert!(l.chars().count() <= max, "{} chars over limit {max}", l.chars().count());
        assert!(l.len() <= max.saturating_mul(3), "{} bytes over limit {max}", l.len());
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (head, input) = data.split_at(3);
    let max = match head[0] >> 6 {
        0 | 1 => usize::from(head[0] & 0x3F),
        2 => usize::from(head[0] & 0x3F) * 16,
        _ => tchat::protocol::frame_limit(usize::from(head[0] & 0x3F)),
    };
    let max_chunk = usize::from(head[1] & 0x1F) + 1;
    let pause_in_8 = u32::from(head[1] >> 5);
    let mut rng = Rng(u32::from(head[2]) << 8 | 0x5A5A_0001);

    let mut dec = LineDecoder::new(max);
    let mut model = Model {
        buf: Vec::new(),
        skipping: false,
        max,
    };
    let mut buf = BytesMut::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = (rng.next() as usize % max_chunk + 1).min(rest.len());
        let (chunk, after) = rest.split_at(n);
        rest = after;
        assert!(buf.len() <= max, "undrained buffer {} over limit {max}", buf.len());
        buf.extend_from_slice(chunk);
        model.buf.extend_from_slice(chunk);
        loop {
            assert!(buf.len() <= max + n, "buffer {} > limit {max} + chunk {n}", buf.len());
            let got = dec.decode(&mut buf).expect("LineDecoder never fails");
            let want = model.decode();
            assert_eq!(got, want, "decode differs from the model");
            assert_eq!(&buf[..], &model.buf[..], "buffer differs from the model");
            match got {
                Some(f) => check_frame(&f, max),
                None => break,
            }
        }
        // Drained: at most a line's worth is left, waiting for its newline.
        assert!(buf.len() <= max, "drained buffer {} over limit {max}", buf.len());
        if rng.next() % 8 < pause_in_8 {
            let got = dec.take_partial(&mut buf);
            let want = model.take_partial();
            assert_eq!(got, want, "take_partial differs from the model");
            assert_eq!(&buf[..], &model.buf[..], "buffer after take_partial differs");
            if let Some(p) = &got {
                check_frame(&Frame::Line(p.clone()), max);
            }
            // What stays behind is only the start of one character.
            assert!(buf.len() <= 3, "{} bytes left after a partial", buf.len());
            if let Some((&lead, conts)) = buf.split_first() {
                let w = lead_width(lead).expect("held bytes start with a lead byte");
                assert!(buf.len() < w && conts.iter().all(|&b| is_continuation(b)));
            }
            // Nothing more to take right away.
            if got.is_some() {
                assert_eq!(dec.take_partial(&mut buf), None);
            }
        }
    }
    let mut rounds = 0;
    loop {
        let got = dec.decode_eof(&mut buf).expect("LineDecoder never fails");
        let want = model.decode_eof();
        assert_eq!(got, want, "decode_eof differs from the model");
        match got {
            Some(f) => check_frame(&f, max),
            None => break,
        }
        rounds += 1;
        assert!(rounds <= input.len() + 2, "decode_eof does not end");
    }
    assert!(buf.is_empty(), "bytes left after the end: {:?}", &buf[..]);
    assert_eq!(dec.decode_eof(&mut buf).unwrap(), None);
});
