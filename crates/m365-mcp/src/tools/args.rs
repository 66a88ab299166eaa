//! Argument checks shared by tools, each failing with
//! `Invalid {param} '{value}': {reason}. Expected: {expected}`.

use crate::error::ToolError;

/// `true`, for `#[serde(default = …)]`.
pub fn default_true() -> bool {
    true
}

/// Checks `min <= value <= max` and returns it as a usize.
pub fn check_range(param: &str, value: i64, min: i64, max: i64) -> Result<usize, ToolError> {
    if value < min || value > max {
        return Err(ToolError::invalid(
            param,
            &value.to_string(),
            "out of range",
            &format!("an integer from {min} to {max}"),
        ));
    }
    Ok(value as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_errors_name_the_parameter_value_and_bounds() {
        assert_eq!(check_range("limit", 5, 1, 200).unwrap(), 5);
        let e = check_range("limit", 0, 1, 200).unwrap_err().to_string();
        assert_eq!(
            e,
            "Invalid limit '0': out of range. Expected: an integer from 1 to 200"
        );
    }
}
