//! Encryption between tchat peers: the host's long-lived key, its fingerprint, TLS 1.3
//! configurations for both sides (rustls, ring), and the check a joiner makes of the
//! host's key.
//!
//! There is no certificate authority here. A host makes a key pair once (`rcgen`) and a
//! self-signed certificate for it, kept together under the config directory; what a
//! joiner trusts is the SHA-256 of that certificate, its *fingerprint*: the one in an
//! invitation, or else the one seen the first time (`known_hosts`, see [`KnownHosts`]).
//! The handshake proves the host holds the key (TLS 1.3 signs it), so another key, a
//! man in the middle's, shows as another fingerprint and is refused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The first byte of a TLS connection (a handshake record): how the host tells a TLS
/// client from a plain one on the same port.
pub const HANDSHAKE: u8 = 0x16;

/// The name the host's certificate is made out to, and the name a joiner asks for.
/// Addresses are not names here: trust is in the key, not in a name.
const NAME: &str = "tchat";

/// The file the host's key and certificate are kept in, in the config directory: one
/// file, so that it is made whole or not at all.
const KEY_FILE: &str = "host.key";

/// What the file starts with.
const KEY_FILE_MAGIC: &[u8] = b"tchat host key 1\n";

/// A host's key and its certificate (both DER).
#[derive(Clone)]
pub struct HostKey {
    pub cert: Vec<u8>,
    key: Vec<u8>,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostKey({})", short(&fingerprint(&self.cert)))
    }
}

impl HostKey {
    /// A new key pair (ECDSA P-256) and a self-signed certificate for it.
    pub fn generate() -> Result<HostKey, String> {
        let key = rcgen::KeyPair::generate().map_err(|e| format!("making a key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(vec![NAME.to_owned()])
            .map_err(|e| format!("making a certificate: {e}"))?;
        // The certificate only carries the key; it is trusted by its fingerprint, and
        // must not expire under a long-lived room.
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(9999, 12, 31);
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("making a certificate: {e}"))?;
        Ok(HostKey {
            cert: cert.der().to_vec(),
            key: key.serialize_der(),
        })
    }

    /// The host's key from `dir`, made there on first use, readable by its owner
    /// alone (0600), in a directory that is too (0700). Two hosts starting at once for
    /// the first time end up with the same key: the file is written aside and linked
    /// into place only if none is there yet.
    pub fn load_or_make(dir: &Path) -> Result<HostKey, String> {
        let path = dir.join(KEY_FILE);
        let shown = dir.display();
        match std::fs::read(&path) {
            Ok(bytes) => return HostKey::from_file(&bytes, &path),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot read the host key {}: {e}", path.display()));
            }
            Err(_) => {}
        }
        let k = HostKey::generate()?;
        make_private_dir(dir).map_err(|e| format!("cannot make {shown}: {e}"))?;
        let aside = dir.join(format!("{KEY_FILE}.{:016x}.new", rand::random::<u64>()));
        write_private(&aside, &k.to_file())
            .map_err(|e| format!("cannot keep the host key in {shown}: {e}"))?;
        let linked = std::fs::hard_link(&aside, &path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => Ok(k),
            // Another host made one first: that one is the key.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let bytes = std::fs::read(&path)
                    .map_err(|e| format!("cannot read the host key {}: {e}", path.display()))?;
                HostKey::from_file(&bytes, &path)
            }
            Err(e) => Err(format!("cannot keep the host key in {shown}: {e}")),
        }
    }

    /// The file's contents: the magic line, then the certificate and the key, each
    /// after its length (4 bytes, big-endian).
    fn to_file(&self) -> Vec<u8> {
        let mut out = KEY_FILE_MAGIC.to_vec();
        for part in [&self.cert, &self.key] {
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(0).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    fn from_file(bytes: &[u8], path: &Path) -> Result<HostKey, String> {
        let bad = || {
            format!(
                "the host key {} is not usable (move it away to make a new one)",
                path.display()
            )
        };
        let mut rest = bytes.strip_prefix(KEY_FILE_MAGIC).ok_or_else(bad)?;
        let mut part = || -> Option<Vec<u8>> {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
            let (p, tail) = (tail.get(..len)?, tail.get(len..)?);
            rest = tail;
            Some(p.to_vec())
        };
        let (Some(cert), Some(key)) = (part(), part()) else {
            return Err(bad());
        };
        let k = HostKey { cert, key };
        // A damaged file is found now, with the file named, not at the first join.
        server_config(&k).map_err(|_| bad())?;
        Ok(k)
    }

    /// The certificate's fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }
}

/// Where a host keeps its key, and a joiner its `known_hosts`: the config directory
/// (`$XDG_CONFIG_HOME/tchat` on Linux).
pub fn default_dir() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("tchat"))
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Write `bytes` to a file at `path` that only its owner may read (0600), replacing
/// any, and see it on the disk before saying it is written.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The SHA-256 of a certificate, as 64 lower-case hex digits.
pub fn fingerprint(cert_der: &[u8]) -> String {
    crate::pake::hex(ring::digest::digest(&ring::digest::SHA256, cert_der).as_ref())
}

/// Whether the fingerprint `fp` is the one `want` names: the same, or starting with it
/// where `want` is at least 128 bits long.
pub fn matches(want: &str, fp: &str) -> bool {
    want == fp || (want.len() >= crate::invite::KEY_DIGITS && fp.starts_with(want))
}

/// The first 80 bits of a fingerprint in groups of four, for reading aloud and for the
/// status line: `3f2a 91bc 0d4e 77a1 5c20`.
pub fn short(fingerprint: &str) -> String {
    let head: Vec<&str> = fingerprint
        .as_bytes()
        .chunks(4)
        .take(5)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    head.join(" ")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The host's side: TLS 1.3 with its key.
pub fn server_config(key: &HostKey) -> Result<Arc<rustls::ServerConfig>, String> {
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(key.cert.clone())], der)
        .map_err(|e| e.to_string())?;
    // Joiners do not resume sessions (a rejoin is a fresh handshake), so tickets would
    // be bytes and work for every connection, for nothing.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    // Once the handshake is over the host seals and opens records itself, with the
    // keys alone (see `records`).
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// What a joiner expects of a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// This fingerprint, or one that starts with it (an invitation carries the first
    /// [`crate::invite::KEY_DIGITS`] digits): another is refused.
    Key(String),
    /// Nothing yet (trust on first use): any key, to be remembered.
    Any,
}

/// The check a joiner makes of the host's certificate: its fingerprint against what is
/// expected. The handshake's signature is checked as TLS 1.3 says, so the host must
/// hold the key the certificate names.
#[derive(Debug)]
struct Pinned {
    expect: Expect,
    /// The fingerprint the host showed, for the caller to remember or report.
    seen: Arc<Mutex<Option<String>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(fp.clone());
        }
        match &self.expect {
            Expect::Key(want) if !matches(want, &fp) => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A joiner's side: TLS 1.3, the host's key checked against `expect`; the fingerprint
/// the host showed lands in the returned slot.
pub fn client_config(expect: Expect) -> (Arc<rustls::ClientConfig>, Arc<Mutex<Option<String>>>) {
    let seen = Arc::new(Mutex::new(None));
    let provider = provider();
    let verifier = Arc::new(Pinned {
        expect,
        seen: seen.clone(),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring offers TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    (Arc::new(config), seen)
}

/// The name a joiner asks the host for.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(NAME).expect("a valid name")
}

/// The hosts a joiner has met, by address, with the fingerprint each showed: a line
/// `HOST:PORT FINGERPRINT` each, in the file `known_hosts` in the config directory.
/// Lines that do not read are kept as they are and otherwise ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    lines: Vec<String>,
}

impl KnownHosts {
    /// The usual file: `known_hosts` beside the config file.
    pub fn default_path() -> Option<PathBuf> {
        default_dir().map(|d| d.join("known_hosts"))
    }

    /// What `text` (a file's contents) says.
    pub fn parse(text: &str) -> KnownHosts {
        KnownHosts {
            lines: text.lines().map(str::to_owned).collect(),
        }
    }

    /// The file at `path`; none at all is no hosts.
    pub fn load(path: &Path) -> Result<KnownHosts, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(KnownHosts::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownHosts::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The fingerprint remembered for `addr`.
    pub fn get(&self, addr: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(addr)).then(|| words.next()).flatten()
        })
    }

    /// Remember `fingerprint` for `addr`, in place of any before.
    pub fn set(&mut self, addr: &str, fingerprint: &str) {
        self.lines
            .retain(|l| l.split_whitespace().next() != Some(addr));
        self.lines.push(format!("{addr} {fingerprint}"));
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }

    /// Write the file at `path` (its directory made if need be): written aside and
    /// renamed into place, so that a reader, or another tchat joining at the same
    /// moment, never sees half of it.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let aside = path.with_extension(format!("{:016x}.new", rand::random::<u64>()));
        let written = write_private(&aside, self.render().as_bytes())
            .and_then(|()| std::fs::rename(&aside, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&aside);
        }
        written.map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_sha256_and_read_aloud_in_groups() {
        let fp = fingerprint(b"abc");
        assert_eq!(
            fp,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(short(&fp), "ba78 16bf 8f01 cfea 4141");
    }

    #[test]
    fn known_hosts_remember_one_key_an_address_and_keep_other_lines() {
        let mut k = KnownHosts::parse("# mine\n10.0.0.2:7878 aaaa\n[::1]:7000 bbbb\n");
        assert_eq!(k.get("10.0.0.2:7878"), Some("aaaa"));
        assert_eq!(k.get("[::1]:7000"), Some("bbbb"));
        assert_eq!(k.get("10.0.0.3:7878"), None);
        k.set("10.0.0.2:7878", "cccc");
        assert_eq!(k.get("10.0.0.2:7878"), Some("cccc"));
        assert_eq!(k.render(), "# mine\n[::1]:7000 bbbb\n10.0.0.2:7878 cccc\n");
    }

    #[test]
    fn a_host_key_is_made_once_kept_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("tchat-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let made = HostKey::load_or_make(&dir).unwrap();
        let again = HostKey::load_or_make(&dir).unwrap();
        assert_eq!(made.fingerprint(), again.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        std::fs::write(dir.join(KEY_FILE), b"not a key").unwrap();
        let err = HostKey::load_or_make(&dir).unwrap_err();
        assert!(err.contains("not usable"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn known_hosts_written_at_once_by_many_are_never_half_written() {
        let dir = std::env::temp_dir().join(format!("tchat-known-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("known_hosts");
        let fp = fingerprint(b"a key");
        std::thread::scope(|s| {
            for t in 0..8 {
                let path = &path;
                let fp = &fp;
                s.spawn(move || {
                    for i in 0..50 {
                        let mut k = KnownHosts::load(path).unwrap();
                        let addr = format!("127.0.0.1:{}", 1000 + t * 100 + i);
                        k.set(&addr, fp);
                        k.save(path).unwrap();
                        // Whatever is read back is whole: every line a full entry.
                        let back = KnownHosts::load(path).unwrap();
                        assert!(!back.lines.is_empty(), "an empty read");
                        for line in &back.lines {
                            assert!(line.ends_with(fp.as_str()), "{line:?}");
                        }
                    }
                });
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hosts_starting_at_once_for_the_first_time_share_one_key() {
        let dir = std::env::temp_dir().join(format!("tchat-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys: Vec<String> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| HostKey::load_or_make(&dir).unwrap().fingerprint()))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(HostKey::load_or_make(&dir).unwrap().fingerprint(), keys[0]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
