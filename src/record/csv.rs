//! Splitting one CSV line into fields without allocating.
//!
//! Unquoted lines, the common case, are split with `memchr` and every field borrows
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
#[inline]
pub fn split<const N: usize>(line: &str) -> Result<[Cow<'_, str>; N], usize> {
    let mut fields: [Cow<'_, str>; N] = std::array::from_fn(|_| Cow::Borrowed(""));
    if memchr::memchr(b'"', line.as_bytes()).is_none() {
        let bytes = line.as_bytes();
        let mut start = 0;
        let mut n = 0;
        for end in memchr::memchr_iter(b',', bytes) {
            if n + 1 >= N {
                return Err(bytes.iter().filter(|&&b| b == b',').count() + 1);
            }
            fields[n] = Cow::Borrowed(&line[start..end]);
            n += 1;
            start = end + 1;
        }
        if n + 1 != N {
            return Err(n + 1);
        }
        fields[n] = Cow::Borrowed(&line[start..]);
        return Ok(fields);
    }
    split_quoted(line, fields)
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

    #[test]
    fn quoting_round_trips() {
        let mut out = Vec::new();
        write_field(&mut out, "a,\"b\"");
        let text = String::from_utf8(out).unwrap();
        let line = format!("x,{text}");
        assert_eq!(split::<2>(&line).unwrap()[1], "a,\"b\"");
    }
}
