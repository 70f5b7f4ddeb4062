//! The value grammar every configuration text of Manul shares: the node manifest
//! ([`crate::manifest`]), the kernel command line and its `job=`/`vm=` shorthands (which are
//! manifest text), the console's `create`, and the xtask (`--job`, guest memory sizes). One
//! parser each: words ([`split_words`]), sizes ([`parse_size`]) and core lists
//! ([`CpuSet::parse`]), with the core-overlap check ([`CpuSet::intersection`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// CPUs a [`CpuSet`] can hold: cores 0 to 4095 (the kernel command line's bound too).
pub const MAX_CPUS: usize = 4096;

const WORD: usize = 64;

/// A set of CPU indices below [`MAX_CPUS`], as a bitset of 64-bit words (no 64-CPU limit).
///
/// Written and read as a list of numbers and inclusive ranges: `1-3,5`.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuSet {
    /// Invariant: no trailing zero word, so equal sets compare equal.
    words: Vec<u64>,
}

/// Why a core list was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuListError {
    /// Nothing in the list.
    Empty,
    /// An item that is not a number or a range (the item, shortened).
    NotANumber(String),
    /// A core at or beyond [`MAX_CPUS`] (the item, shortened).
    TooLarge(String),
    /// A range whose end comes before its start.
    Backwards { first: usize, last: usize },
}

impl fmt::Display for CpuListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "an empty core list (expected e.g. 1-3,5)"),
            Self::NotANumber(item) => write!(f, "`{item}` is not a core number or range (expected e.g. 1-3,5)"),
            Self::TooLarge(item) => write!(f, "core `{item}` is beyond the largest supported ({})", MAX_CPUS - 1),
            Self::Backwards { first, last } => write!(f, "range {first}-{last} runs backwards"),
        }
    }
}

impl CpuSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self { words: Vec::new() }
    }

    /// Cores `0..count` (a node's CPUs); `count` is capped at [`MAX_CPUS`].
    pub fn first_n(count: usize) -> Self {
        let mut set = Self::new();
        for cpu in 0..count.min(MAX_CPUS) {
            set.set_bit(cpu);
        }
        set
    }

    /// The cores of an iterator, refused whole if one is at or beyond [`MAX_CPUS`].
    pub fn from_cpus(cpus: impl IntoIterator<Item = usize>) -> Result<Self, CpuListError> {
        let mut set = Self::new();
        for cpu in cpus {
            set.insert(cpu)?;
        }
        Ok(set)
    }

    /// Adds `cpu`; `Ok(true)` if it was not there yet.
    pub fn insert(&mut self, cpu: usize) -> Result<bool, CpuListError> {
        if cpu >= MAX_CPUS {
            return Err(CpuListError::TooLarge(cpu.to_string()));
        }
        let had = self.contains(cpu);
        self.set_bit(cpu);
        Ok(!had)
    }

    /// Removes `cpu`; `true` if it was there.
    pub fn remove(&mut self, cpu: usize) -> bool {
        let had = self.contains(cpu);
        if let Some(word) = self.words.get_mut(cpu / WORD) {
            *word &= !(1u64 << (cpu % WORD));
        }
        self.trim();
        had
    }

    pub fn contains(&self, cpu: usize) -> bool {
        self.words.get(cpu / WORD).is_some_and(|w| w & (1u64 << (cpu % WORD)) != 0)
    }

    /// How many CPUs the set holds.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.words
            .iter()
            .enumerate()
            .flat_map(|(i, &w)| (0..WORD).filter(move |b| w & (1u64 << b) != 0).map(move |b| i * WORD + b))
    }

    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    pub fn last(&self) -> Option<usize> {
        self.iter().next_back()
    }

    pub fn to_vec(&self) -> Vec<usize> {
        self.iter().collect()
    }

    pub fn union(&self, other: &Self) -> Self {
        let n = self.words.len().max(other.words.len());
        let word = |s: &Self, i: usize| s.words.get(i).copied().unwrap_or(0);
        Self::from_words((0..n).map(|i| word(self, i) | word(other, i)).collect())
    }

    pub fn intersection(&self, other: &Self) -> Self {
        Self::from_words(self.words.iter().zip(&other.words).map(|(a, b)| a & b).collect())
    }

    /// The CPUs of `self` that are not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        let word = |i: usize| other.words.get(i).copied().unwrap_or(0);
        Self::from_words(self.words.iter().enumerate().map(|(i, a)| a & !word(i)).collect())
    }

    pub fn is_disjoint(&self, other: &Self) -> bool {
        self.words.iter().zip(&other.words).all(|(a, b)| a & b == 0)
    }

    pub fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }

    /// Parses `1-3,5` (spaces around items allowed; duplicates and overlapping ranges merge).
    pub fn parse(text: &str) -> Result<Self, CpuListError> {
        let mut set = Self::new();
        if text.trim().is_empty() {
            return Err(CpuListError::Empty);
        }
        for item in text.split(',') {
            let item = item.trim();
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (parse_cpu(a.trim(), item)?, parse_cpu(b.trim(), item)?),
                None => {
                    let n = parse_cpu(item, item)?;
                    (n, n)
                }
            };
            if first > last {
                return Err(CpuListError::Backwards { first, last });
            }
            for cpu in first..=last {
                set.set_bit(cpu);
            }
        }
        Ok(set)
    }

    fn from_words(words: Vec<u64>) -> Self {
        let mut set = Self { words };
        set.trim();
        set
    }

    /// Callers keep `cpu < MAX_CPUS`.
    pub(crate) fn set_bit(&mut self, cpu: usize) {
        let index = cpu / WORD;
        if self.words.len() <= index {
            self.words.resize(index + 1, 0);
        }
        if let Some(word) = self.words.get_mut(index) {
            *word |= 1u64 << (cpu % WORD);
        }
    }

    fn trim(&mut self) {
        while self.words.last() == Some(&0) {
            self.words.pop();
        }
    }
}

/// A core number of a list: ASCII digits only, below [`MAX_CPUS`].
fn parse_cpu(digits: &str, item: &str) -> Result<usize, CpuListError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CpuListError::NotANumber(shorten(item)));
    }
    match digits.parse::<usize>() {
        Ok(n) if n < MAX_CPUS => Ok(n),
        _ => Err(CpuListError::TooLarge(shorten(digits))),
    }
}

/// At most 32 characters of untrusted text, for error messages.
pub(crate) fn shorten(text: &str) -> String {
    shorten_to(text, 32)
}

/// At most `max` characters of `text`, then `...`.
pub(crate) fn shorten_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => alloc::format!("{}...", text.get(..at).unwrap_or("")),
        None => text.to_string(),
    }
}

impl core::str::FromStr for CpuSet {
    type Err = CpuListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `1-3,5`; the empty set prints as nothing.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cpus = self.iter().peekable();
        let mut first_item = true;
        while let Some(start) = cpus.next() {
            let mut end = start;
            while cpus.peek() == Some(&(end + 1)) {
                end += 1;
                cpus.next();
            }
            if !first_item {
                f.write_str(",")?;
            }
            first_item = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuSet({self})")
    }
}

/// Why a memory size was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// Not digits followed by an optional K, M, G or T (the text, shortened).
    Syntax(String),
    /// More than 2^64 - 1 bytes.
    TooLarge(String),
    /// Zero bytes.
    Zero,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(t) => write!(f, "`{t}` is not a size (expected e.g. 512M, 2G, 4096K)"),
            Self::TooLarge(t) => write!(f, "size `{t}` is too large"),
            Self::Zero => write!(f, "a size must be more than zero"),
        }
    }
}

/// `512M`, `2G`, `4096K`, `1T` (binary units, either case) or plain bytes; never zero.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let text = text.trim();
    let (digits, shift) = match text.as_bytes().last() {
        Some(b'K' | b'k') => (text.get(..text.len() - 1).unwrap_or(""), 10),
        Some(b'M' | b'm') => (text.get(..text.len() - 1).unwrap_or(""), 20),
        Some(b'G' | b'g') => (text.get(..text.len() - 1).unwrap_or(""), 30),
        Some(b'T' | b't') => (text.get(..text.len() - 1).unwrap_or(""), 40),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::Syntax(shorten(text)));
    }
    let n: u64 = digits.parse().map_err(|_| SizeError::TooLarge(shorten(text)))?;
    let bytes = n.checked_mul(1u64 << shift).ok_or_else(|| SizeError::TooLarge(shorten(text)))?;
    if bytes == 0 {
        return Err(SizeError::Zero);
    }
    Ok(bytes)
}

/// A byte count printed in the largest binary unit that divides it: `512M`, `3G`, `4100` (bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if n != 0 && n.is_multiple_of(1u64 << shift) {
                return write!(f, "{}{unit}", n >> shift);
            }
        }
        write!(f, "{n}")
    }
}

/// Why a value's words were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WordsError {
    /// A quote is opened and never closed.
    UnterminatedQuote,
}

impl fmt::Display for WordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnterminatedQuote => write!(f, "a quote is not closed"),
        }
    }
}

/// Splits at spaces and tabs; single or double quotes group (no escapes, nothing expanded);
/// quoted parts next to each other or to plain text make one word: `'it'"'"'s'` is `it's`.
pub fn split_words(text: &str) -> Result<Vec<String>, WordsError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut quote, mut in_word) = (None, false);
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                ' ' | '\t' => {
                    if in_word {
                        words.push(core::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            },
        }
    }
    if quote.is_some() {
        return Err(WordsError::UnterminatedQuote);
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The inverse of [`split_words`].
pub fn join_words(words: &[String]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if !w.is_empty() && !w.contains([' ', '\t', '\'', '"']) {
            out.push_str(w);
            continue;
        }
        let mut open = false;
        for c in w.chars() {
            if c == '\'' {
                if open {
                    out.push('\'');
                    open = false;
                }
                out.push_str("\"'\"");
            } else {
                if !open {
                    out.push('\'');
                    open = true;
                }
                out.push(c);
            }
        }
        if open {
            out.push('\'');
        }
        if w.is_empty() {
            out.push_str("''");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const M: u64 = 1 << 20;

    fn set(s: &str) -> CpuSet {
        CpuSet::parse(s).unwrap()
    }

    #[test]
    fn cpu_lists_parse_and_print() {
        assert_eq!(set("1-3,5").to_vec(), [1, 2, 3, 5]);
        assert_eq!(set(" 5 , 1 - 3 ,2").to_string(), "1-3,5");
        assert_eq!(set("0").to_string(), "0");
        assert_eq!(set("63-65,127,128").to_string(), "63-65,127-128");
        assert_eq!(set("4095").to_vec(), [4095]);
        assert_eq!(set("0-4095").len(), 4096);
        assert_eq!(set("3,3,3").len(), 1);
        assert_eq!(CpuSet::new().to_string(), "");
        assert_eq!(format!("{:?}", set("1,2")), "CpuSet(1-2)");
        assert_eq!("7".parse::<CpuSet>().unwrap(), set("7"));
    }

    #[test]
    fn cpu_lists_refused() {
        assert_eq!(CpuSet::parse(""), Err(CpuListError::Empty));
        assert_eq!(CpuSet::parse("  "), Err(CpuListError::Empty));
        assert_eq!(CpuSet::parse("3-1"), Err(CpuListError::Backwards { first: 3, last: 1 }));
        for bad in ["a", "1,", ",1", "1-", "-1", "+1", "1--2", "1-2-3", "1.5", "١", "1 2", "0x1"] {
            assert!(matches!(CpuSet::parse(bad), Err(CpuListError::NotANumber(_))), "{bad}");
        }
        for big in ["4096", "99999999999999999999999999", "1-4096"] {
            assert!(matches!(CpuSet::parse(big), Err(CpuListError::TooLarge(_))), "{big}");
        }
        let long = "9".repeat(10_000);
        let e = CpuSet::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 100, "{e}");
        assert!(CpuSet::parse("1-3x").unwrap_err().to_string().contains("`1-3x`"));
    }

    #[test]
    fn cpu_set_operations() {
        let mut a = set("1-3");
        assert_eq!(a.insert(70), Ok(true));
        assert_eq!(a.insert(70), Ok(false));
        assert!(a.insert(MAX_CPUS).is_err());
        assert!(a.contains(70) && !a.contains(69) && !a.contains(100_000));
        assert!(a.remove(70));
        assert!(!a.remove(70));
        assert!(!a.remove(usize::MAX));
        assert_eq!(a, set("1-3"), "trailing words trimmed");
        let b = set("3-5,200");
        assert_eq!(a.union(&b), set("1-5,200"));
        assert_eq!(a.intersection(&b), set("3"));
        assert_eq!(a.difference(&b), set("1-2"));
        assert_eq!(b.difference(&a), set("4-5,200"));
        assert!(!a.is_disjoint(&b));
        assert!(set("1").is_disjoint(&set("200")));
        assert!(set("2-3").is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(CpuSet::new().is_subset(&a));
        assert_eq!((b.first(), b.last()), (Some(3), Some(200)));
        assert_eq!(CpuSet::new().first(), None);
        assert_eq!(CpuSet::first_n(4), set("0-3"));
        assert_eq!(CpuSet::first_n(usize::MAX).len(), MAX_CPUS);
        assert_eq!(CpuSet::from_cpus([5, 1]).unwrap(), set("1,5"));
        assert!(CpuSet::from_cpus([1, 5000]).is_err());
        assert!(set("1").intersection(&set("100")).is_empty());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 * M));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("4096K"), Ok(4 * M));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size(" 8M "), Ok(8 * M));
        assert_eq!(parse_size("0"), Err(SizeError::Zero));
        assert_eq!(parse_size("0G"), Err(SizeError::Zero));
        for bad in ["", "M", "12X", "-1M", "+1M", "1.5G", "1 G", "1MB", "é"] {
            assert!(matches!(parse_size(bad), Err(SizeError::Syntax(_))), "{bad}");
        }
        assert!(matches!(parse_size("16777216T"), Err(SizeError::TooLarge(_))));
        assert!(matches!(parse_size("99999999999999999999"), Err(SizeError::TooLarge(_))));
        assert_eq!(Size(512 * M).to_string(), "512M");
        assert_eq!(Size(3 << 30).to_string(), "3G");
        assert_eq!(Size(1536 * M).to_string(), "1536M");
        assert_eq!(Size(4100).to_string(), "4100");
        assert_eq!(Size(0).to_string(), "0");
        assert_eq!(Size(u64::MAX).to_string(), u64::MAX.to_string());
    }

    #[test]
    fn words_split_and_join() {
        let w = |s: &str| split_words(s).unwrap();
        assert_eq!(w("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(w("'a b' \"c d\" e'f g'h"), ["a b", "c d", "ef gh"]);
        assert_eq!(w("'it'\"'\"'s'"), ["it's"]);
        assert_eq!(w("'' \"\""), ["", ""]);
        assert_eq!(w(""), Vec::<String>::new());
        assert_eq!(split_words("'open"), Err(WordsError::UnterminatedQuote));
        assert_eq!(split_words("\"open"), Err(WordsError::UnterminatedQuote));
        for words in [
            alloc::vec![
                "plain".to_string(),
                "with space".into(),
                "it's".into(),
                "say \"hi\"".into(),
                String::new(),
                "''".into()
            ],
            alloc::vec!["\t".into(), "a'b\"c".into(), "é ü".into()],
        ] {
            assert_eq!(split_words(&join_words(&words)).unwrap(), words, "{}", join_words(&words));
        }
    }
}
