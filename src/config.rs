//! The config file: defaults a person sets once (`name`, `bell`, `color`, `port`,
//! `mouse`, `notify`, `links`), in
//! TOML, in the platform's config directory (`~/.config/tchat/config.toml` on Linux).
//! Flags override it; a missing file is no config at all.
//!
//! Reading and parsing are separate, so that what a file means is tested without files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::app::Bell;
use crate::sanitize;

/// The environment variable naming another config file (as `--config FILE` does).
pub const ENV: &str = "TCHAT_CONFIG";

/// What a config file says; each setting is `None` when the file leaves it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The name to join under, unless `--name` says otherwise.
    pub name: Option<String>,
    /// When the bell rings, unless `--bell` says otherwise.
    pub bell: Option<Bell>,
    /// `false` draws no colour, as `NO_COLOR` does.
    pub color: Option<bool>,
    /// The port to host on, and to join when an address has none.
    pub port: Option<u16>,
    /// `true` takes the mouse from the terminal (the wheel scrolls; selecting text then
    /// needs Shift); by default the terminal keeps it, for selecting and copying.
    pub mouse: Option<bool>,
    /// Desktop notifications on a mention while the window has no focus.
    pub notify: Option<crate::app::Notify>,
    /// `false` leaves web links in messages as plain text (by default they are
    /// hyperlinks, OSC 8, where the terminal knows them).
    pub links: Option<bool>,
}

/// The file as written: wider types than [`Config`], so that a bad value gets a message
/// of our own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    bell: Option<Bell>,
    color: Option<bool>,
    port: Option<i64>,
    mouse: Option<bool>,
    notify: Option<crate::app::Notify>,
    links: Option<bool>,
}

/// The usual config file for this platform: `CONFIG_DIR/tchat/config.toml`, where
/// `CONFIG_DIR` is `$XDG_CONFIG_HOME` or `~/.config` on Linux, `~/Library/Application
/// Support` on macOS, `%APPDATA%` on Windows. `None` when there is no home directory.
pub fn default_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("tchat").join("config.toml"))
}

/// Which file to read: `--config FILE`, else `$TCHAT_CONFIG` (when set and not empty),
/// else the usual one. The flag says whether the file was named on purpose, in which
/// case a missing file is an error rather than no config.
pub fn locate(flag: Option<&Path>, env: Option<&OsStr>) -> Option<(PathBuf, bool)> {
    if let Some(p) = flag {
        return Some((p.to_owned(), true));
    }
    if let Some(p) = env.filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), true));
    }
    default_path().map(|p| (p, false))
}

/// Read the config file that [`locate`] picks. The error is one line,
/// `config FILE: what is wrong`.
pub fn load(flag: Option<&Path>, env: Option<&OsStr>) -> Result<Config, String> {
    let Some((path, named)) = locate(flag, env) else {
        return Ok(Config::default());
    };
    let fail = |why: String| format!("config {}: {why}", shown(&path));
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text).map_err(fail),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => Ok(Config::default()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(fail("not UTF-8 text".to_owned()))
        }
        Err(e) => Err(fail(crate::client::plain_io_error(&e))),
    }
}

/// What the text of a config file says. The error is one line, with the line number
/// where the file goes wrong.
pub fn parse(text: &str) -> Result<Config, String> {
    let raw: Raw = toml::from_str(text).map_err(|e| {
        let what = e
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let what = sanitize::line(&what);
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {what}")
            }
            None => what,
        }
    })?;
    let port = match raw.port {
        None => None,
        Some(p) => match u16::try_from(p) {
            Ok(p) if p != 0 => Some(p),
            _ => return Err(format!("port = {p}: a port is 1-65535")),
        },
    };
    Ok(Config {
        name: raw.name,
        bell: raw.bell,
        color: raw.color,
        port,
        mouse: raw.mouse,
        notify: raw.notify,
        links: raw.links,
    })
}

/// Whether to draw in colour: not when `NO_COLOR` is set to anything but the empty
/// string (no-color.org), else as the config file says, else yes.
pub fn color_enabled(no_color: Option<&OsStr>, config: Option<bool>) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    config.unwrap_or(true)
}

/// A path as it may appear in a one-line message.
pub fn shown(path: &Path) -> String {
    sanitize::line(&path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key() {
        let c = parse(
            "name = \"zoe\"\nbell = \"all\"\ncolor = false\nport = 9000\nmouse = true\nlinks = false\n",
        );
        assert_eq!(
            c,
            Ok(Config {
                name: Some("zoe".into()),
                bell: Some(Bell::All),
                color: Some(false),
                port: Some(9000),
                mouse: Some(true),
                notify: None,
                links: Some(false),
            })
        );
        assert_eq!(
            parse("notify = \"osc777\"").map(|c| c.notify),
            Ok(Some(crate::app::Notify::Osc777))
        );
        assert!(parse("notify = \"loud\"").is_err());
        assert_eq!(parse(""), Ok(Config::default()));
        assert_eq!(parse("# nothing\n"), Ok(Config::default()));
        assert_eq!(
            parse("bell = \"never\"").map(|c| c.bell),
            Ok(Some(Bell::Never))
        );
    }

    #[test]
    fn mistakes_are_one_line_with_where() {
        let e = parse("name = \"a\"\ncolour = false\n").unwrap_err();
        assert!(e.starts_with("line 2: "), "{e}");
        assert!(e.contains("colour"), "{e}");
        let e = parse("bell = \"loud\"").unwrap_err();
        assert!(e.contains("loud") && e.contains("mention"), "{e}");
        let e = parse("name = ").unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
        let e = parse("port = \"x\"").unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
        for p in ["0", "70000", "-1"] {
            let e = parse(&format!("port = {p}")).unwrap_err();
            assert!(e.contains("1-65535"), "{e}");
        }
        let e = parse("\"\u{1b}[2J\" = 1").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e:?}");
        for e in [e, parse("[x\ny").unwrap_err()] {
            assert!(!e.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn which_file() {
        let flag = Path::new("/a.toml");
        let env = OsStr::new("/b.toml");
        assert_eq!(locate(Some(flag), Some(env)), Some((flag.to_owned(), true)));
        assert_eq!(locate(None, Some(env)), Some(("/b.toml".into(), true)));
        assert_eq!(
            locate(None, Some(OsStr::new(""))),
            default_path().map(|p| (p, false))
        );
        assert_eq!(locate(None, None), default_path().map(|p| (p, false)));
    }

    #[test]
    fn a_named_file_must_exist_and_the_usual_one_need_not() {
        let missing =
            std::env::temp_dir().join(format!("tchat-no-such-{}.toml", std::process::id()));
        let e = load(Some(&missing), None).unwrap_err();
        assert!(
            e.starts_with(&format!("config {}: ", missing.display())),
            "{e}"
        );
        assert!(e.contains("no such file"), "{e}");
        let e = load(None, Some(missing.as_os_str())).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(color_enabled(None, None));
        assert!(color_enabled(empty, None));
        assert!(!color_enabled(set, None));
        assert!(!color_enabled(set, Some(true)));
        assert!(!color_enabled(None, Some(false)));
        assert!(!color_enabled(empty, Some(false)));
        assert!(color_enabled(None, Some(true)));
    }
}
