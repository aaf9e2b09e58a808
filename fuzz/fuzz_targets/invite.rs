//! The invitation parser and the host's first-byte sniffing, on any input: never a
//! panic; a token that reads reads back the same from the token it makes; only a TLS
//! handshake byte is taken as TLS.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tchat::invite::Invitation;
use tchat::server::session::{Sniffed, sniffed};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(inv) = Invitation::parse(s)
    {
        assert_eq!(Invitation::parse(&inv.token()), Ok(inv));
    }
    let first = data.first().copied();
    let s = sniffed(first);
    assert_eq!(s == Sniffed::Tls, first == Some(0x16));
});
