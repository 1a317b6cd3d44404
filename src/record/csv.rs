//! Splitting one CSV line into fields without allocating.
//!
//! Unquoted lines, the common case, are split a word at a time and every field borrows
//! from the line. Quoted fields (RFC 4180, `""` as an escaped quote) are supported; only
//! a field that contains an escaped quote is copied.

use std::borrow::Cow;

/// Whether `line` is one of `headers`, ignoring a byte-order mark and trailing white
/// space (a `\r` from CRLF files).
pub fn is_header(line: &str, headers: &[&str]) -> bool {
    headers.contains(&line.trim_start_matches('\u{feff}').trim_end())
}

/// Splits `line` into at most `N` fields, or reports how many it found.
///
/// Returns `Err(found)` when the line does not have exactly `N` fields, and
/// `Err(usize::MAX)` when a quoted field is not closed properly.
///
/// An unquoted line is read eight bytes at a time, finding commas and quotes in one
/// pass: record fields are short, so a search call per comma would cost more than the
/// bytes it skips.
#[inline]
pub fn split<const N: usize>(line: &str) -> Result<[Cow<'_, str>; N], usize> {
    let mut fields: [Cow<'_, str>; N] = std::array::from_fn(|_| Cow::Borrowed(""));
    let bytes = line.as_bytes();
    let mut n = 0;
    let mut start = 0;
    // A comma at `at` ends field `n`; fields past `N - 1` are only counted.
    macro_rules! comma {
        ($at:expr) => {{
            let at = $at;
            if n + 1 < N {
                fields[n] = Cow::Borrowed(&line[start..at]);
            }
            n += 1;
            start = at + 1;
        }};
    }
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for (k, word) in words.enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        if zero_bytes(w ^ (ONES * b'"' as u64)) != 0 {
            return split_quoted(line, fields);
        }
        let mut commas = zero_bytes(w ^ (ONES * b',' as u64));
        while commas != 0 {
            comma!(k * 8 + (commas.trailing_zeros() / 8) as usize);
            commas &= commas - 1;
        }
    }
    let base = bytes.len() - tail.len();
    for (j, &b) in tail.iter().enumerate() {
        match b {
            b'"' => return split_quoted(line, fields),
            b',' => comma!(base + j),
            _ => {}
        }
    }
    if n + 1 != N {
        return Err(n + 1);
    }
    fields[n] = Cow::Borrowed(&line[start..]);
    Ok(fields)
}

const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each zero byte of `x`, exactly (no borrow from a lower byte).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

#[cold]
fn split_quoted<'a, const N: usize>(
    line: &'a str,
    mut fields: [Cow<'a, str>; N],
) -> Result<[Cow<'a, str>; N], usize> {
    let bytes = line.as_bytes();
    let mut n = 0;
    let mut i = 0;
    loop {
        let field: Cow<'a, str>;
        if bytes.get(i) == Some(&b'"') {
            let mut owned: Option<String> = None;
            let start = i + 1;
            let mut j = start;
            loop {
                match memchr::memchr(b'"', &bytes[j..]) {
                    None => return Err(usize::MAX),
                    Some(k) => {
                        let q = j + k;
                        if bytes.get(q + 1) == Some(&b'"') {
                            let s = owned.get_or_insert_with(String::new);
                            s.push_str(&line[j..=q]);
                            j = q + 2;
                        } else {
                            field = match owned.take() {
                                None => Cow::Borrowed(&line[start..q]),
                                Some(mut s) => {
                                    s.push_str(&line[j..q]);
                                    Cow::Owned(s)
                                }
                            };
                            i = q + 1;
                            break;
                        }
                    }
                }
            }
            if i < bytes.len() && bytes[i] != b',' {
                return Err(usize::MAX);
            }
        } else {
            let end = memchr::memchr(b',', &bytes[i..]).map_or(bytes.len(), |k| i + k);
            field = Cow::Borrowed(&line[i..end]);
            i = end;
        }
        if n < N {
            fields[n] = field;
        }
        n += 1;
        if i >= bytes.len() {
            break;
        }
        i += 1; // the comma
        if i == bytes.len() {
            // A trailing comma ends with an empty field.
            if n < N {
                fields[n] = Cow::Borrowed("");
            }
            n += 1;
            break;
        }
    }
    if n == N { Ok(fields) } else { Err(n) }
}

/// Appends `field` to `out`, quoting it when it holds a comma, quote or line break.
pub fn write_field(out: &mut Vec<u8>, field: &str) {
    if field.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for b in field.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_plain_and_quoted_fields() {
        let f = split::<3>("a,b,c").unwrap();
        assert_eq!(f, ["a", "b", "c"]);
        let f = split::<3>("a,\"b,1\",c").unwrap();
        assert_eq!(f, ["a", "b,1", "c"]);
        let f = split::<3>("\"a\"\"x\",,").unwrap();
        assert_eq!(f, ["a\"x", "", ""]);
        assert_eq!(split::<3>("a,b"), Err(2));
        assert_eq!(split::<3>("a,b,c,d"), Err(4));
        assert_eq!(split::<3>("a,\"b,c"), Err(usize::MAX));
        assert_eq!(split::<3>("a,\"b\"x,c"), Err(usize::MAX));
    }

    proptest::proptest! {
        /// Unquoted lines of any length split exactly where `str::split` does, and a
        /// wrong count is the number of fields found.
        #[test]
        fn unquoted_lines_split_at_every_comma(line in "[a-c,\\.\u{e9}0-9 ]{0,40}") {
            let expected: Vec<&str> = line.split(',').collect();
            match split::<4>(&line) {
                Ok(f) => proptest::prop_assert_eq!(f.to_vec(), expected),
                Err(k) => {
                    proptest::prop_assert_ne!(expected.len(), 4);
                    proptest::prop_assert_eq!(k, expected.len());
                }
            }
        }

        /// A quote anywhere in the line, at any distance from an eight-byte boundary,
        /// takes the quoted reader.
        #[test]
        fn a_quote_anywhere_is_read_as_csv_quoting(pad in 0usize..20) {
            let line = format!("{},\"x,y\",z", "a".repeat(pad));
            let a = "a".repeat(pad);
            proptest::prop_assert_eq!(split::<3>(&line).unwrap().to_vec(), vec![a.as_str(), "x,y", "z"]);
        }
    }

    #[test]
    fn quoting_round_trips() {
        let mut out = Vec::new();
        write_field(&mut out, "a,\"b\"");
        let text = String::from_utf8(out).unwrap();
        let line = format!("x,{text}");
        assert_eq!(split::<2>(&line).unwrap()[1], "a,\"b\"");
    }
}
