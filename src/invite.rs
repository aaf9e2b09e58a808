//! The invitation: one word to paste after `tchat --join` that says where the room is,
//! which key its host holds, and (for a private room) the code. Pure.
//!
//! ```text
//! TOKEN = ADDRS "/" KEY [ "/" CODE ]
//! ADDRS = ADDR *( "," ADDR )        tried in order
//! ADDR  = HOST ":" PORT             split at the last ':' (an IPv6 host keeps its own
//!                                   colons, without brackets, which shells glob)
//! KEY   = 32 to 64 lower-case hex   the start of the host key's SHA-256 fingerprint
//! CODE  = DIGITS "-" WORD "-" WORD  a private room's code (see `crate::code`)
//! ```
//!
//! For example `192.168.1.5:7878,fe80::1:7878/3f2a91bc0d4e77a15c20aa00bb11cc22`. Every
//! character is one a shell passes through unquoted (letters, digits, `.:,/-_%`), so
//! the line can be pasted as it is. An address alone never holds a `/`, which is how
//! `--join` tells the two apart.

/// The hex digits of the fingerprint an invitation carries: 128 bits, far beyond any
/// search for another key with the same start.
pub const KEY_DIGITS: usize = 32;

/// The longest invitation read (a guard against pasting a file).
pub const MAX_LEN: usize = 2048;

/// What an invitation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Where the room is, best first: `HOST:PORT`, an IPv6 host in brackets.
    pub addrs: Vec<String>,
    /// The start of the host key's fingerprint (lower-case hex).
    pub key: String,
    /// The code of a private room.
    pub code: Option<String>,
}

impl Invitation {
    /// The token for a room at `addrs` (as `HOST:PORT` or `[V6]:PORT`) whose host key
    /// has `fingerprint`, with a private room's `code`.
    pub fn new(addrs: &[String], fingerprint: &str, code: Option<&str>) -> Invitation {
        Invitation {
            addrs: addrs.to_vec(),
            key: fingerprint.chars().take(KEY_DIGITS).collect(),
            code: code.map(str::to_owned),
        }
    }

    /// The one word to share.
    pub fn token(&self) -> String {
        let addrs: Vec<String> = self
            .addrs
            .iter()
            .map(
                |a| match a.strip_prefix('[').and_then(|r| r.split_once("]:")) {
                    Some((v6, port)) => format!("{v6}:{port}"),
                    None => a.clone(),
                },
            )
            .collect();
        let mut t = format!("{}/{}", addrs.join(","), self.key);
        if let Some(code) = &self.code {
            t.push('/');
            t.push_str(code);
        }
        t
    }

    /// Whether `arg` (what follows `--join`) is an invitation rather than an address.
    pub fn looks_like(arg: &str) -> bool {
        arg.contains('/')
    }

    /// Read a token; an error says what is wrong with it, in one line.
    pub fn parse(token: &str) -> Result<Invitation, String> {
        let bad = |why: &str| format!("not a tchat invitation: {why}");
        if token.len() > MAX_LEN {
            return Err(bad("too long"));
        }
        let token = token.trim();
        if let Some(c) = token.chars().find(|c| !shell_safe(*c)) {
            return Err(bad(&format!("it holds {c:?}")));
        }
        let mut parts = token.split('/');
        let (Some(addrs), Some(key)) = (parts.next(), parts.next()) else {
            return Err(bad("it has no key"));
        };
        let code = parts.next().map(str::to_owned);
        if parts.next().is_some() {
            return Err(bad("too many parts"));
        }
        if !(KEY_DIGITS..=64).contains(&key.len())
            || !key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("its key is not 32 to 64 hex digits"));
        }
        if let Some(c) = &code
            && crate::code::Code::parse(c).is_none()
        {
            return Err(bad("its code is not a number and two words"));
        }
        let mut out = Vec::new();
        for a in addrs.split(',') {
            let Some((host, port)) = a.rsplit_once(':') else {
                return Err(bad(&format!("{a:?} has no port")));
            };
            let port: u16 = match port.parse() {
                Ok(p) if p != 0 => p,
                _ => return Err(bad(&format!("{a:?} has no port"))),
            };
            if host.is_empty() {
                return Err(bad(&format!("{a:?} has no host")));
            }
            out.push(if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            });
        }
        Ok(Invitation {
            addrs: out,
            key: key.to_owned(),
            code,
        })
    }
}

/// Characters a shell passes through unquoted, and all an invitation needs.
fn shell_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || ".:,/-_%".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "3f2a91bc0d4e77a15c20aa00bb11cc22dd33ee44ff5566778899aabbccddeeff";

    #[test]
    fn a_token_reads_back_as_it_was_made() {
        let addrs = vec![
            "192.168.1.5:7878".to_owned(),
            "[fe80::1%eth0]:7878".to_owned(),
        ];
        let inv = Invitation::new(&addrs, FP, None);
        let t = inv.token();
        assert_eq!(
            t,
            "192.168.1.5:7878,fe80::1%eth0:7878/3f2a91bc0d4e77a15c20aa00bb11cc22"
        );
        assert!(Invitation::looks_like(&t));
        assert_eq!(Invitation::parse(&t), Ok(inv));
        let private = Invitation::new(&addrs[..1], FP, Some("7-tiger-piano"));
        assert_eq!(
            private.token(),
            "192.168.1.5:7878/3f2a91bc0d4e77a15c20aa00bb11cc22/7-tiger-piano"
        );
        assert_eq!(Invitation::parse(&private.token()), Ok(private));
    }

    #[test]
    fn an_address_is_not_an_invitation() {
        for a in ["10.0.0.2", "10.0.0.2:7878", "[::1]:7000", "example.org"] {
            assert!(!Invitation::looks_like(a));
        }
    }

    #[test]
    fn bad_tokens_say_what_is_wrong() {
        for (t, why) in [
            ("10.0.0.2:7878/xyz", "key"),
            ("10.0.0.2:7878", "no key"),
            ("10.0.0.2/3f2a91bc0d4e77a15c20aa00bb11cc22", "no port"),
            (":7878/3f2a91bc0d4e77a15c20aa00bb11cc22", "no host"),
            ("10.0.0.2:0/3f2a91bc0d4e77a15c20aa00bb11cc22", "no port"),
            (
                "10.0.0.2:7878/3f2a91bc0d4e77a15c20aa00bb11cc22/nope",
                "code",
            ),
            (
                "10.0.0.2:7878/3f2a91bc0d4e77a15c20aa00bb11cc22/7-a-b/x",
                "too many",
            ),
            (
                "10.0.0.2:7878;rm/3f2a91bc0d4e77a15c20aa00bb11cc22",
                "holds ';'",
            ),
            ("[::1]:7878/3f2a91bc0d4e77a15c20aa00bb11cc22", "holds '['"),
        ] {
            let err = Invitation::parse(t).unwrap_err();
            assert!(err.contains(why), "{t}: {err}");
            assert!(!err.contains('\n'));
        }
    }
}
