//! Decoding one structured line never panics, and whatever decodes encodes back to
//! itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tchat::protocol::{ClientMsg, ServerMsg};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);

    if let Ok(msg) = ServerMsg::decode(&line) {
        let wire = msg.encode();
        let again = ServerMsg::decode(one_line(&wire))
            .unwrap_or_else(|e| panic!("{msg:?} encodes to {wire:?}, which fails: {e}"));
        assert_eq!(again, msg, "encoded as {wire:?}");
        assert_eq!(again.encode(), wire, "encoding is not stable");
        let _ = msg.id();
        let _ = msg.to_plain();
    }

    let client = ClientMsg::decode(&line);
    if let Ok(msg) = &client {
        let wire = msg.encode();
        let again = ClientMsg::decode(one_line(&wire))
            .unwrap_or_else(|e| panic!("{msg:?} encodes to {wire:?}, which fails: {e}"));
        assert_eq!(&again, msg, "encoded as {wire:?}");
        assert_eq!(again.encode(), wire, "encoding is not stable");
    }

    // `parse_hello` is `decode` restricted to a `hello` written as a JSON object.
    match ClientMsg::parse_hello(&line) {
        Some(h) => {
            assert!(line.starts_with('{'));
            match client {
                Ok(ClientMsg::Hello {
                    v,
                    name,
                    session,
                    since,
                    ..
                }) => {
                    assert_eq!((h.v, &h.name, &h.session, &h.since), (v, &name, &session, &since));
                }
                other => panic!("parse_hello accepted what decode gives as {other:?}"),
            }
        }
        None => assert!(
            !line.starts_with('{') || !matches!(client, Ok(ClientMsg::Hello { .. })),
            "parse_hello refused a hello"
        ),
    }
});

/// An encoded message is exactly one line: strip its `\n`, and there is no other.
fn one_line(wire: &str) -> &str {
    let body = wire.strip_suffix('\n').expect("encode ends with a newline");
    assert!(!body.contains('\n'), "encode gives more than one line: {wire:?}");
    body
}
