//! A private room's code: a number and two words (`4821-tiger-piano`), about 30 bits,
//! short enough to read aloud or type from a phone. Pure; the words are our own list.

/// 256 short, common, easily spelled English words, no two alike in their first three
/// letters, so that a code read aloud is hard to mishear.
pub const WORDS: [&str; 256] = [
    "acorn", "adult", "agent", "album", "alley", "amber", "angle", "ankle", "apple", "april",
    "arena", "arrow", "atlas", "attic", "award", "bacon", "badge", "bagel", "bakery", "balloon",
    "bamboo", "banjo", "barrel", "basket", "beach", "beetle", "bench", "berry", "bicycle", "bingo",
    "biscuit", "blanket", "blossom", "boat", "bonnet", "border", "bottle", "bounce", "bracket",
    "bread", "brick", "broom", "bubble", "bucket", "buffalo", "bugle", "bundle", "butter", "cabin",
    "cactus", "camel", "candle", "cedar", "cinder", "carpet", "crystal", "castle", "cello",
    "chair", "cherry", "chimney", "circus", "clover", "cobalt", "coconut", "coffee", "comet",
    "copper", "corner", "cotton", "cousin", "coyote", "crayon", "cricket", "crown", "cuckoo",
    "cupboard", "curtain", "cushion", "daisy", "dancer", "desert", "dial", "dune", "dinner",
    "dolphin", "donkey", "dragon", "drum", "duck", "eagle", "earth", "easel", "echo", "eclipse",
    "eleven", "elbow", "embers", "engine", "envelope", "falcon", "famous", "feather", "ferry",
    "fiddle", "figure", "finch", "fishing", "flag", "flute", "forest", "fossil", "fountain", "fox",
    "frost", "fudge", "funnel", "galaxy", "garden", "goose", "gazelle", "gecko", "geyser", "giant",
    "ginger", "glacier", "globe", "goblet", "gondola", "gravel", "guitar", "gumbo", "hammer",
    "harbor", "hazel", "helmet", "heron", "hiking", "hockey", "honey", "horizon", "hotel",
    "humble", "husky", "iceberg", "igloo", "island", "ivory", "jacket", "jaguar", "jasmine",
    "jelly", "jigsaw", "jockey", "journey", "jungle", "jumbo", "kayak", "kettle", "kitten",
    "koala", "ladder", "lagoon", "lantern", "laptop", "lemon", "leopard", "lettuce", "library",
    "lizard", "lobster", "locket", "lunar", "magnet", "mango", "maple", "marble", "meadow",
    "melody", "mermaid", "mitten", "monkey", "mosaic", "muffin", "mustard", "napkin", "nectar",
    "needle", "nickel", "noodle", "north", "nugget", "oasis", "ocean", "olive", "onion", "orbit",
    "orchid", "otter", "oyster", "paddle", "panda", "parrot", "pasta", "peanut", "pebble",
    "pencil", "pepper", "piano", "pickle", "pigeon", "pillow", "planet", "plum", "pocket", "pony",
    "potato", "puzzle", "quartz", "quiet", "rabbit", "radar", "raisin", "raven", "record",
    "ribbon", "river", "robin", "rocket", "ruby", "saddle", "salmon", "sandal", "saturn", "scarf",
    "seagull", "shadow", "silver", "sketch", "sparrow", "spider", "squash", "summit", "sunset",
    "tablet", "tango", "teapot", "thunder", "tiger", "tomato", "tulip", "turtle", "velvet",
    "violin", "walnut", "zebra",
];

/// The numbers a code starts with: 0 to 16383 (14 bits; with two words of eight bits
/// each, 30 bits in all).
pub const NUMBERS: u32 = 1 << 14;

/// A code, as typed: `NUMBER-WORD-WORD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// A new code from `random` (any 30 or more random bits).
    pub fn from_random(random: u64) -> Code {
        let n = (random % u64::from(NUMBERS)) as usize;
        let a = ((random >> 14) & 0xff) as usize;
        let b = ((random >> 22) & 0xff) as usize;
        Code(format!("{n}-{}-{}", WORDS[a], WORDS[b]))
    }

    /// A new random code.
    pub fn generate() -> Code {
        Code::from_random(rand::random::<u64>())
    }

    /// A code as someone typed it: spaces or dashes between the parts, any case.
    pub fn parse(typed: &str) -> Option<Code> {
        let lower = typed.trim().to_lowercase();
        let parts: Vec<&str> = lower
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let [n, a, b] = parts[..] else {
            return None;
        };
        let n: u32 = n.parse().ok().filter(|n| *n < NUMBERS)?;
        if !WORDS.contains(&a) || !WORDS.contains(&b) {
            return None;
        }
        Some(Code(format!("{n}-{a}-{b}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_are_distinct_short_and_unlike_each_other() {
        let mut starts = std::collections::BTreeSet::new();
        for w in WORDS {
            assert!(
                w.len() <= 8 && w.chars().all(|c| c.is_ascii_lowercase()),
                "{w}"
            );
            assert!(starts.insert(&w[..3]), "{w} starts like another word");
        }
    }

    #[test]
    fn codes_read_back_however_they_are_typed() {
        let c = Code::from_random(0x3fff | (7 << 14) | (200 << 22));
        assert_eq!(c.as_str(), format!("16383-{}-{}", WORDS[7], WORDS[200]));
        assert_eq!(Code::parse(c.as_str()), Some(c.clone()));
        let shouted = c.as_str().replace('-', " ").to_uppercase();
        assert_eq!(Code::parse(&shouted), Some(c));
        for bad in [
            "",
            "12-tiger",
            "16384-tiger-piano",
            "1-tiger-pianoo",
            "x-tiger-piano",
            "1-2-3",
        ] {
            assert_eq!(Code::parse(bad), None, "{bad}");
        }
    }
}
