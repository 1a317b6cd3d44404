//! Where a detector's value range comes from: learned causally, or given as NAB gives it.

/// Where a detector's value range comes from.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Range {
    /// Learned causally from the values seen so far (the default: a live stream cannot
    /// know its range in advance).
    Learned,
    /// Given in advance, as NAB gives every detector each file's min and max.
    Given(f64, f64),
}

impl Range {
    /// Parses `MIN:MAX` (`MIN < MAX`, both finite).
    pub fn parse(text: &str) -> Result<Range, String> {
        let (lo, hi) = text.split_once(':').ok_or_else(|| format!("'{text}': expected MIN:MAX"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("'{text}': '{s}' is not a number"))
        };
        let (lo, hi) = (number(lo)?, number(hi)?);
        if lo >= hi {
            return Err(format!("'{text}': MIN must be below MAX"));
        }
        Ok(Range::Given(lo, hi))
    }
}

/// The bounds `value` is judged in: the given range, or else the min and max so far,
/// `seen`, widened to include `value`.
#[inline]
pub fn bounds(given: Option<(f64, f64)>, seen: (&mut f64, &mut f64), value: f64) -> (f64, f64) {
    given.unwrap_or_else(|| {
        *seen.0 = seen.0.min(value);
        *seen.1 = seen.1.max(value);
        (*seen.0, *seen.1)
    })
}
