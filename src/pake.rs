//! Proving knowledge of a private room's code without showing it: SPAKE2 (the `spake2`
//! crate, Ed25519 group), bound to the TLS session it runs in. Pure: the messages are
//! lines, and the I/O around them lives with the host's handshake and the joiner's link.
//!
//! Inside TLS, in a private room:
//! ```text
//! host   → joiner   * tchat/1 private: ...        (the greeting of a private room)
//! joiner → host     pake HEX                      (its SPAKE2 message)
//! host   → joiner   pake HEX CONFIRM              (its message, and proof of the key)
//! joiner → host     confirm CONFIRM               (proof of the key)
//! ```
//! then the room's ordinary greeting. Both sides use the TLS session's exported secret
//! as SPAKE2's identity, so each exchange belongs to one TLS session: a man in the
//! middle holds two sessions with two secrets, and the keys on each side differ even
//! if he knows the code. A wrong code makes the keys differ: the confirmations fail,
//! and the one guess is all a try reveals.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::code::Code;

/// The label both sides export the TLS session's secret under.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-tchat-room-code";

/// Bytes exported from the TLS session.
pub const BINDING_LEN: usize = 32;

/// What a private room's host says first, inside TLS (or, turning a joiner away, the
/// same prefix with why).
pub const PRIVATE_GREETING: &str = "* tchat/1 private:";

/// The private greeting that asks for the code; any other line after
/// [`PRIVATE_GREETING`] turns the joiner away.
pub const PROMPT: &str = "* tchat/1 private: prove the room's code";

/// The longest line of the exchange (a message is 33 bytes, 66 in hex).
pub const MAX_LINE: usize = 512;

/// One side's half of the exchange, waiting for the other's message.
pub struct Exchange {
    state: Spake2<Ed25519Group>,
    /// Our message, to send.
    pub message: Vec<u8>,
}

/// The key both sides agree on (when the codes matched).
pub struct Key(Vec<u8>);

impl Exchange {
    /// Start proving `code` in the TLS session whose exported secret is `binding`.
    pub fn start(code: &Code, binding: &[u8]) -> Exchange {
        let (state, message) = Spake2::<Ed25519Group>::start_symmetric(
            &Password::new(code.as_str().as_bytes()),
            &Identity::new(binding),
        );
        Exchange { state, message }
    }

    /// The key, from the other side's message; `None` if the message is malformed.
    pub fn finish(self, theirs: &[u8]) -> Option<Key> {
        self.state.finish(theirs).ok().map(Key)
    }
}

impl Key {
    /// Proof of the key from one side (`host` or `joiner`), so that each side's proof
    /// differs and neither can be sent back as the other's.
    pub fn confirm(&self, side: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"tchat room code confirm: ");
        mac.update(side.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `proof` is the other side's proof of this key (in constant time).
    pub fn verify(&self, side: &str, proof: &[u8]) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        mac.update(b"tchat room code confirm: ");
        mac.update(side.as_bytes());
        mac.verify_slice(proof).is_ok()
    }
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex back to bytes; `None` for anything else.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || s.len() > MAX_LINE {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A line of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `pake HEX [CONFIRM]`
    Pake {
        message: Vec<u8>,
        confirm: Option<Vec<u8>>,
    },
    /// `confirm CONFIRM`
    Confirm(Vec<u8>),
}

impl Line {
    pub fn parse(line: &str) -> Option<Line> {
        let mut words = line.trim_end().split(' ');
        match words.next()? {
            "pake" => {
                let message = unhex(words.next()?)?;
                let confirm = match words.next() {
                    Some(w) => Some(unhex(w)?),
                    None => None,
                };
                words
                    .next()
                    .is_none()
                    .then_some(Line::Pake { message, confirm })
            }
            "confirm" => {
                let c = unhex(words.next()?)?;
                words.next().is_none().then_some(Line::Confirm(c))
            }
            _ => None,
        }
    }

    pub fn render(&self) -> String {
        match self {
            Line::Pake {
                message,
                confirm: None,
            } => format!("pake {}\n", hex(message)),
            Line::Pake {
                message,
                confirm: Some(c),
            } => format!("pake {} {}\n", hex(message), hex(c)),
            Line::Confirm(c) => format!("confirm {}\n", hex(c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> Code {
        Code::parse(s).unwrap()
    }

    /// Both sides of one exchange; whether each accepts the other's proof.
    fn run(
        host_code: &str,
        joiner_code: &str,
        host_bind: &[u8],
        joiner_bind: &[u8],
    ) -> (bool, bool) {
        let h = Exchange::start(&code(host_code), host_bind);
        let j = Exchange::start(&code(joiner_code), joiner_bind);
        let (hm, jm) = (h.message.clone(), j.message.clone());
        let hk = h.finish(&jm).unwrap();
        let jk = j.finish(&hm).unwrap();
        let joiner_accepts = jk.verify("host", &hk.confirm("host"));
        let host_accepts = hk.verify("joiner", &jk.confirm("joiner"));
        (host_accepts, joiner_accepts)
    }

    #[test]
    fn the_right_code_in_the_same_session_is_accepted_and_nothing_else_is() {
        let b = [7u8; BINDING_LEN];
        assert_eq!(run("7-tiger-piano", "7-tiger-piano", &b, &b), (true, true));
        assert_eq!(
            run("7-tiger-piano", "8-tiger-piano", &b, &b),
            (false, false)
        );
        // The right code through a man in the middle: two sessions, two bindings.
        assert_eq!(
            run("7-tiger-piano", "7-tiger-piano", &b, &[8u8; 32]),
            (false, false)
        );
    }

    #[test]
    fn a_proof_cannot_be_sent_back_as_the_other_sides() {
        let b = [1u8; BINDING_LEN];
        let h = Exchange::start(&code("1-acorn-zebra"), &b);
        let j = Exchange::start(&code("1-acorn-zebra"), &b);
        let hm = h.message.clone();
        let hk = h.finish(&j.message).unwrap();
        let jk = j.finish(&hm).unwrap();
        assert!(!hk.verify("joiner", &hk.confirm("host")));
        assert!(jk.verify("host", &hk.confirm("host")));
    }

    #[test]
    fn lines_read_back_and_junk_is_not_a_line() {
        let l = Line::Pake {
            message: vec![1, 2, 255],
            confirm: Some(vec![9]),
        };
        assert_eq!(Line::parse(&l.render()), Some(l));
        let c = Line::Confirm(vec![0xab; 32]);
        assert_eq!(Line::parse(&c.render()), Some(c));
        for junk in [
            "",
            "pake",
            "pake zz",
            "pake 0",
            "confirm",
            "confirm 00 00",
            "hello",
        ] {
            assert_eq!(Line::parse(junk), None, "{junk}");
        }
    }
}
