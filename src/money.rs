//! Money as exact integer cents.
//!
//! Amounts are parsed from decimal text straight into integer cents and printed with
//! two decimals, so no total ever passes through a float.
//!
//! # Range: why no sum can wrap
//!
//! A parsed amount's magnitude is at most [`MAX_AMOUNT`], 10^15 cents (ten trillion
//! in whole units, beyond any single real payment); a larger one is rejected at parse
//! time as `out of range`. [`Cents`] holds an `i128`, and so do the totals jobs keep
//! (such as `jobs::sales::Totals`), so a sum of `k` amounts stays exact as long as
//! `k * 10^15 < 2^127`, that is for up to 1.7 × 10^23 records: no input a job can read
//! in any lifetime reaches it.

use std::fmt;

/// An amount of money in cents: one parsed amount (magnitude at most [`MAX_AMOUNT`]) or
/// a sum of them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Cents(pub i128);

/// The largest magnitude of one parsed amount: 10^15 cents, 10,000,000,000,000.00.
pub const MAX_AMOUNT: Cents = Cents(1_000_000_000_000_000);

/// Why a money field failed to parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoneyError {
    /// The field was empty.
    Empty,
    /// The field held something other than an optional sign, digits and one point.
    NotANumber,
    /// The field had more than two decimals, so it is not a whole number of cents.
    TooPrecise,
    /// The amount's magnitude is above [`MAX_AMOUNT`].
    Overflow,
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoneyError::Empty => "empty",
            MoneyError::NotANumber => "not a decimal number",
            MoneyError::TooPrecise => "more than two decimals",
            MoneyError::Overflow => "out of range (magnitude above 10000000000000.00)",
        })
    }
}

impl Cents {
    /// Parses `123`, `123.4`, `123.45`, `-0.50` or `.5` exactly. Trailing zeros beyond two
    /// decimals are accepted (`1.500`); other extra precision is an error.
    #[inline]
    pub fn parse(text: &[u8]) -> Result<Cents, MoneyError> {
        let (negative, body) = match text.first() {
            None => return Err(MoneyError::Empty),
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            Some(_) => (false, text),
        };
        if body.is_empty() {
            return Err(MoneyError::NotANumber);
        }
        let mut units: i64 = 0;
        let mut i = 0;
        while i < body.len() && body[i] != b'.' {
            let d = body[i].wrapping_sub(b'0');
            if d > 9 {
                return Err(MoneyError::NotANumber);
            }
            units =
                units.checked_mul(10).and_then(|u| u.checked_add(d as i64)).ok_or(MoneyError::Overflow)?;
            i += 1;
        }
        let mut cents = 0i64;
        if i < body.len() {
            let frac = &body[i + 1..];
            if i == 0 && frac.is_empty() {
                return Err(MoneyError::NotANumber);
            }
            for (k, &b) in frac.iter().enumerate() {
                let d = b.wrapping_sub(b'0');
                if d > 9 {
                    return Err(MoneyError::NotANumber);
                }
                match k {
                    0 => cents += d as i64 * 10,
                    1 => cents += d as i64,
                    _ if d != 0 => return Err(MoneyError::TooPrecise),
                    _ => {}
                }
            }
        }
        let value = units
            .checked_mul(100)
            .and_then(|u| u.checked_add(cents))
            .filter(|&v| v as i128 <= MAX_AMOUNT.0)
            .ok_or(MoneyError::Overflow)?;
        Ok(Cents(if negative { -value } else { value } as i128))
    }

    /// Appends the amount with two decimals, e.g. `-12.05`.
    pub fn write(self, out: &mut Vec<u8>) {
        let v = self.0;
        if v < 0 {
            out.push(b'-');
        }
        let abs = v.unsigned_abs();
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format(abs / 100).as_bytes());
        let c = (abs % 100) as u8;
        out.extend_from_slice(&[b'.', b'0' + c / 10, b'0' + c % 10]);
    }

    /// The mean of `count` amounts totalling `self`, rounded half away from zero to the cent.
    pub fn mean(self, count: u64) -> Cents {
        if count == 0 {
            return Cents(0);
        }
        let (total, n) = (self.0, count as i128);
        // |total| is far below 2^126 (see the module docs), so doubling it cannot wrap.
        let q = (total.abs() * 2 + n) / (2 * n);
        Cents(if total < 0 { -q } else { q })
    }

    /// The amount if it is a valid single amount (magnitude at most [`MAX_AMOUNT`]), for
    /// parsers that convert amounts themselves, such as JSON numbers.
    pub fn checked_range(self) -> Result<Cents, MoneyError> {
        if self.0.unsigned_abs() <= MAX_AMOUNT.0 as u128 { Ok(self) } else { Err(MoneyError::Overflow) }
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(24);
        self.write(&mut out);
        f.write_str(std::str::from_utf8(&out).expect("ascii"))
    }
}

/// Appends a fixed-point value with `decimals` decimals, e.g. `-0.050`.
pub fn write_fixed(out: &mut Vec<u8>, value: i128, decimals: u32) {
    if value < 0 {
        out.push(b'-');
    }
    let abs = value.unsigned_abs();
    let scale = 10u128.pow(decimals);
    out.extend_from_slice(itoa::Buffer::new().format(abs / scale).as_bytes());
    if decimals > 0 {
        out.push(b'.');
        let frac = itoa::Buffer::new().format(abs % scale).to_owned();
        out.extend(std::iter::repeat_n(b'0', decimals as usize - frac.len()));
        out.extend_from_slice(frac.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        let p = |s: &str| Cents::parse(s.as_bytes());
        assert_eq!(p("123.45"), Ok(Cents(12345)));
        assert_eq!(p("123.4"), Ok(Cents(12340)));
        assert_eq!(p("123"), Ok(Cents(12300)));
        assert_eq!(p("-0.05"), Ok(Cents(-5)));
        assert_eq!(p(".5"), Ok(Cents(50)));
        assert_eq!(p("1.500"), Ok(Cents(150)));
        assert_eq!(p("1.505"), Err(MoneyError::TooPrecise));
        assert_eq!(p("abc"), Err(MoneyError::NotANumber));
        assert_eq!(p("1.2.3"), Err(MoneyError::NotANumber));
        assert_eq!(p("."), Err(MoneyError::NotANumber));
        assert_eq!(p("-"), Err(MoneyError::NotANumber));
        assert_eq!(p(""), Err(MoneyError::Empty));
        assert_eq!(p("99999999999999999999"), Err(MoneyError::Overflow));
    }

    #[test]
    fn prints_two_decimals() {
        assert_eq!(Cents(12345).to_string(), "123.45");
        assert_eq!(Cents(-5).to_string(), "-0.05");
        assert_eq!(Cents(0).to_string(), "0.00");
        assert_eq!(Cents(i64::MIN as i128).to_string(), "-92233720368547758.08");
        assert_eq!(Cents(i128::MIN).to_string(), "-1701411834604692317316873037158841057.28");
    }

    #[test]
    fn amounts_beyond_ten_trillion_are_rejected_so_sums_cannot_wrap() {
        let p = |s: &str| Cents::parse(s.as_bytes());
        assert_eq!(p("10000000000000.00"), Ok(MAX_AMOUNT));
        assert_eq!(p("-10000000000000"), Ok(Cents(-MAX_AMOUNT.0)));
        // The case: two of these and 1.00 summed to 0.98 in i64.
        assert_eq!(p("92233720368547758.07"), Err(MoneyError::Overflow));
        assert_eq!(p("10000000000000.01"), Err(MoneyError::Overflow));
        // 2^40 maximal amounts of either sign still add up exactly.
        let total = Cents(MAX_AMOUNT.0 * (1 << 40));
        assert_eq!(total.to_string(), format!("{}.00", 10_000_000_000_000u128 << 40));
        assert_eq!(total.mean(1 << 40), MAX_AMOUNT);
    }

    #[test]
    fn mean_rounds_half_away_from_zero() {
        assert_eq!(Cents(10).mean(4), Cents(3));
        assert_eq!(Cents(-10).mean(4), Cents(-3));
        assert_eq!(Cents(10).mean(3), Cents(3));
        assert_eq!(Cents(11).mean(0), Cents(0));
    }
}
