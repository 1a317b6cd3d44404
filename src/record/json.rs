//! A small JSON scanner for one line holding one flat object, without allocating.
//!
//! Record kinds that arrive as JSON lines (clicks, sensor readings, playback events)
//! read their fields with a [`Scan`]: strings without escapes are borrowed from the
//! line, numbers keep their text so they can be converted exactly ([`Number::fixed`]),
//! and fields a record does not know are skipped, however nested (up to
//! [`MAX_DEPTH`]). Every error names the byte where the line went wrong.

use std::borrow::Cow;

use super::ParseError;
use crate::money::MoneyError;

/// Nesting allowed in skipped values before a line is rejected.
pub const MAX_DEPTH: u32 = 64;

/// A JSON number's parts, as written.
pub struct Number<'a> {
    /// The number as written.
    pub text: &'a str,
    /// Whether it has a minus sign.
    pub negative: bool,
    /// The digits before the point.
    pub int: &'a [u8],
    /// The digits after the point.
    pub frac: &'a [u8],
    /// The exponent, saturated at ±[`MAX_EXPONENT`].
    pub exp: i64,
}

/// The largest exponent kept; larger ones saturate (and overflow any conversion).
pub const MAX_EXPONENT: i64 = 1_000_000;

impl Number<'_> {
    /// The number as an exact fixed-point integer with `decimals` decimals:
    /// `digits × 10^(exp − fraction digits + decimals)` must be a whole number that
    /// fits in 64 bits. Cents are `fixed(2)`.
    pub fn fixed(&self, decimals: u32) -> Result<i64, MoneyError> {
        let n = self.int.len() + self.frac.len();
        let digit = |k: usize| {
            if k < self.int.len() { self.int[k] - b'0' } else { self.frac[k - self.int.len()] - b'0' }
        };
        let scale = self.exp - self.frac.len() as i64 + decimals as i64;
        // Digits below the cent must all be zero.
        let whole = if scale >= 0 { n } else { n.saturating_sub(scale.unsigned_abs() as usize) };
        if (whole..n).any(|k| digit(k) != 0) {
            return Err(MoneyError::TooPrecise);
        }
        let mut value: i64 = 0;
        for k in 0..whole {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(digit(k) as i64))
                .ok_or(MoneyError::Overflow)?;
        }
        if value != 0 {
            // Overflows within 19 steps, so a huge exponent ends quickly.
            for _ in 0..scale.max(0) {
                value = value.checked_mul(10).ok_or(MoneyError::Overflow)?;
            }
        }
        Ok(if self.negative { -value } else { value })
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `chunk` (little-endian) that is `"`, `\` or below
/// 0x20, and possibly of bytes after the first such byte, never before it.
#[inline]
fn special_bytes(chunk: u64) -> u64 {
    let quote = chunk ^ (ONES * b'"' as u64);
    let backslash = chunk ^ (ONES * b'\\' as u64);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero(quote) | zero(backslash) | (chunk.wrapping_sub(ONES * 0x20) & !chunk)) & HIGH
}

/// A cursor over one line of JSON.
pub struct Scan<'a> {
    text: &'a str,
    b: &'a [u8],
    /// The position of the next byte to read.
    pub i: usize,
}

impl<'a> Scan<'a> {
    /// Whether every byte of the line has been read.
    pub fn at_end(&self) -> bool {
        self.i == self.b.len()
    }

    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Scan { text, b: text.as_bytes(), i: 0 }
    }

    /// A cursor inside the object that a JSON line holds, just after its `{` (a leading
    /// byte-order mark and white space are skipped); a blank line or a line holding
    /// something other than an object is an error that says what it found.
    pub fn line_object(line: &'a str) -> Result<Self, ParseError> {
        let mut s = Scan::new(line.strip_prefix('\u{feff}').unwrap_or(line));
        s.ws();
        match s.peek() {
            Some(b'{') => {
                s.i += 1;
                Ok(s)
            }
            None => Err(ParseError::fixed("blank line")),
            Some(_) => Err(ParseError::from(format!("expected a JSON object, found {}", s.kind()))),
        }
    }

    #[inline]
    /// The next byte, if any, without reading it.
    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    /// Skips white space.
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.i += 1;
        }
    }

    /// A malformed-JSON error at the cursor: `what` was expected.
    pub fn malformed(&self, what: &str) -> ParseError {
        let at = match self.peek() {
            None => "at end of line".to_owned(),
            Some(_) => format!("at byte {}", self.i + 1),
        };
        ParseError::from(format!("malformed JSON {at}: {what}"))
    }

    #[inline]
    /// Reads `byte`, or fails with `what` as the reason.
    pub fn eat(&mut self, byte: u8, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.malformed(what))
        }
    }

    /// Reads the members of an object whose `{` has been read, then checks that the
    /// object is the whole line and that every name in `fields` appeared. `member` is
    /// called at each member's value with its name and its index in `fields` (`None` if
    /// not listed); it must read the value (`skip_value` to ignore it). A listed name
    /// that appears twice is an error.
    pub fn object(
        &mut self,
        fields: &[&str],
        mut member: impl FnMut(&mut Self, &str, Option<usize>) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        assert!(fields.len() <= 32, "an object of at most 32 required fields");
        let mut seen = 0u32;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                if self.peek() != Some(b'"') {
                    return Err(self.malformed("expected a field name"));
                }
                let key = self.string()?;
                self.ws();
                self.eat(b':', "expected ':' after a field name")?;
                self.ws();
                let field = fields.iter().position(|f| *f == key);
                if let Some(f) = field {
                    if seen & (1 << f) != 0 {
                        return Err(ParseError::from(format!("duplicate field '{}'", fields[f])));
                    }
                    seen |= 1 << f;
                }
                member(self, &key, field)?;
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.malformed("expected ',' or '}'")),
                }
            }
        }
        self.ws();
        if !self.at_end() {
            return Err(self.malformed("unexpected text after the object"));
        }
        match (0..fields.len()).find(|f| seen & (1 << f) == 0) {
            Some(missing) => Err(ParseError::from(format!("missing field '{}'", fields[missing]))),
            None => Ok(()),
        }
    }

    /// The JSON type of the value starting here, for messages.
    pub fn kind(&self) -> &'static str {
        match self.peek() {
            Some(b'"') => "a string",
            Some(b'{') => "an object",
            Some(b'[') => "an array",
            Some(b't' | b'f') => "a boolean",
            Some(b'n') => "null",
            Some(b'-' | b'0'..=b'9') => "a number",
            Some(_) => "something that is not JSON",
            None => "nothing",
        }
    }

    /// An error for a `field` whose value is not of the `expected` type.
    pub fn wrong_type(&self, field: &str, expected: &str) -> ParseError {
        if matches!(self.kind(), "something that is not JSON" | "nothing") {
            return self.malformed("expected a value");
        }
        ParseError::from(format!("{field} must be {expected}, found {}", self.kind()))
    }

    /// A string starting at the current `"`; borrowed unless it has escapes.
    #[inline]
    pub fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let start = self.i + 1;
        let mut j = start;
        // Eight bytes at a time to the first quote, backslash or control character.
        while let Some(chunk) = self.b.get(j..j + 8) {
            let found = special_bytes(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
            if found != 0 {
                j += found.trailing_zeros() as usize / 8;
                break;
            }
            j += 8;
        }
        loop {
            match self.b.get(j) {
                Some(b'"') => {
                    self.i = j + 1;
                    return Ok(Cow::Borrowed(&self.text[start..j]));
                }
                Some(b'\\') => return self.escaped_string(start).map(Cow::Owned),
                Some(&c) if c < 0x20 => {
                    self.i = j;
                    return Err(self.malformed("control character in a string"));
                }
                Some(_) => j += 1,
                None => {
                    self.i = j;
                    return Err(self.malformed("unterminated string"));
                }
            }
        }
    }

    /// The slow path of [`Scan::string`]: decodes escapes into a new string.
    fn escaped_string(&mut self, start: usize) -> Result<String, ParseError> {
        let mut out = String::new();
        let (mut j, mut run) = (start, start);
        loop {
            match self.b.get(j) {
                Some(b'"') => {
                    out.push_str(&self.text[run..j]);
                    self.i = j + 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.text[run..j]);
                    self.i = j;
                    let (c, len) = match self.b.get(j + 1) {
                        Some(b'"') => ('"', 2),
                        Some(b'\\') => ('\\', 2),
                        Some(b'/') => ('/', 2),
                        Some(b'b') => ('\u{8}', 2),
                        Some(b'f') => ('\u{c}', 2),
                        Some(b'n') => ('\n', 2),
                        Some(b'r') => ('\r', 2),
                        Some(b't') => ('\t', 2),
                        Some(b'u') => self.unicode_escape(j)?,
                        _ => return Err(self.malformed("invalid escape in a string")),
                    };
                    out.push(c);
                    j += len;
                    run = j;
                }
                Some(&c) if c < 0x20 => {
                    self.i = j;
                    return Err(self.malformed("control character in a string"));
                }
                Some(_) => j += 1,
                None => {
                    self.i = j;
                    return Err(self.malformed("unterminated string"));
                }
            }
        }
    }

    /// The `\uXXXX` escape at `j` (or a surrogate pair of them) and its length.
    fn unicode_escape(&self, j: usize) -> Result<(char, usize), ParseError> {
        let hex = |at: usize| -> Option<u32> {
            let digits = self.b.get(at..at + 4)?;
            let text = std::str::from_utf8(digits).ok()?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(text, 16).ok()
        };
        let bad = || self.malformed("invalid \\u escape in a string");
        let first = hex(j + 2).ok_or_else(bad)?;
        match first {
            0xD800..=0xDBFF => {
                if self.b.get(j + 6..j + 8) != Some(b"\\u") {
                    return Err(self.malformed("unpaired surrogate in a string"));
                }
                let second = hex(j + 8).ok_or_else(bad)?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.malformed("unpaired surrogate in a string"));
                }
                let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                Ok((char::from_u32(c).ok_or_else(bad)?, 12))
            }
            0xDC00..=0xDFFF => Err(self.malformed("unpaired surrogate in a string")),
            c => Ok((char::from_u32(c).ok_or_else(bad)?, 6)),
        }
    }

    /// A number in JSON's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    pub fn number(&mut self) -> Result<Number<'a>, ParseError> {
        let b = self.b;
        let start = self.i;
        let digits_from = |mut j: usize| {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            j
        };
        let negative = b.get(start) == Some(&b'-');
        let int_start = start + negative as usize;
        let int_end = match b.get(int_start) {
            Some(b'0') => int_start + 1,
            Some(b'1'..=b'9') => digits_from(int_start + 1),
            _ => {
                self.i = int_start;
                return Err(self.malformed("invalid number"));
            }
        };
        let mut j = int_end;
        let mut frac: &[u8] = &[];
        if b.get(j) == Some(&b'.') {
            let end = digits_from(j + 1);
            if end == j + 1 {
                self.i = end;
                return Err(self.malformed("invalid number: no digits after '.'"));
            }
            frac = &b[j + 1..end];
            j = end;
        }
        let mut exp = 0i64;
        if let Some(b'e' | b'E') = b.get(j) {
            j += 1;
            let negative_exp = match b.get(j) {
                Some(b'-') => {
                    j += 1;
                    true
                }
                Some(b'+') => {
                    j += 1;
                    false
                }
                _ => false,
            };
            let end = digits_from(j);
            if end == j {
                self.i = end;
                return Err(self.malformed("invalid number: no digits in the exponent"));
            }
            for &d in &b[j..end] {
                exp = (exp * 10 + (d - b'0') as i64).min(MAX_EXPONENT);
            }
            if negative_exp {
                exp = -exp;
            }
            j = end;
        }
        self.i = j;
        Ok(Number { text: &self.text[start..j], negative, int: &b[int_start..int_end], frac, exp })
    }

    /// Reads the literal `word` (`true`, `false` or `null`).
    pub fn literal(&mut self, word: &[u8]) -> Result<(), ParseError> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.malformed("expected a value"))
        }
    }

    /// Skips any JSON value: the value of a field the job does not use.
    pub fn skip_value(&mut self, depth: u32) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.malformed("nested too deeply"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(drop),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if open == b'{' {
                        if self.peek() != Some(b'"') {
                            return Err(self.malformed("expected a field name"));
                        }
                        self.string()?;
                        self.ws();
                        self.eat(b':', "expected ':' after a field name")?;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ if open == b'{' => return Err(self.malformed("expected ',' or '}'")),
                        _ => return Err(self.malformed("expected ',' or ']'")),
                    }
                }
            }
            _ => Err(self.malformed("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_bytes_finds_the_first_quote_backslash_or_control() {
        for at in 0..8 {
            for special in [b'"', b'\\', 0, 0x1f] {
                for after in [b'a', b'"', 0x01, 0xff] {
                    let mut chunk = [b'x'; 8];
                    chunk[at] = special;
                    for b in chunk.iter_mut().skip(at + 1) {
                        *b = after;
                    }
                    let found = special_bytes(u64::from_le_bytes(chunk));
                    assert_eq!(found.trailing_zeros() as usize / 8, at, "{chunk:?}");
                }
            }
        }
        assert_eq!(special_bytes(u64::from_le_bytes(*b" ~!#[]\x7f\xc3")), 0);
    }

    #[test]
    fn numbers_convert_exactly_to_fixed_point() {
        let fixed = |text: &str, d| Scan::new(text).number().unwrap().fixed(d);
        assert_eq!(fixed("12.5", 2), Ok(1250));
        assert_eq!(fixed("1250e-2", 2), Ok(1250));
        assert_eq!(fixed("-0.125", 3), Ok(-125));
        assert_eq!(fixed("12.345", 2), Err(MoneyError::TooPrecise));
        assert_eq!(fixed("1e30", 2), Err(MoneyError::Overflow));
    }
}
