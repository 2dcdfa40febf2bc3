//! Errors with a `file:line:col`, and the collector every phase reports
//! into.

use std::fmt;

use crate::model::Pos;

/// One problem found in a system description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The path of the description, as given to [`crate::parse`].
    pub file: String,
    /// 1-based; 0 only for an error that concerns the file as a whole (it
    /// could not be read).
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl Error {
    /// Where the error points.
    pub fn pos(&self) -> Pos {
        Pos { line: self.line, col: self.col }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (Line 0: about the file as a whole, no place in it.)
        if self.line == 0 {
            return write!(f, "error: {} (in {})", self.message, self.file);
        }
        write!(f, "error: {} at {}:{}:{}", self.message, self.file, self.line, self.col)
    }
}

impl std::error::Error for Error {}

/// Collects the errors of one phase.
pub(crate) struct Diagnostics {
    file: String,
    errors: Vec<Error>,
}

impl Diagnostics {
    pub(crate) fn new(file: &str) -> Self {
        Diagnostics { file: file.to_string(), errors: Vec::new() }
    }

    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(Error {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors in source order (errors at one position keep the order in
    /// which they were found).
    pub(crate) fn into_sorted(mut self) -> Vec<Error> {
        self.errors.sort_by_key(Error::pos);
        self.errors
    }

    /// `Ok(value)` if nothing was reported, else the sorted errors.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, Vec<Error>> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self.into_sorted())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_message_then_location() {
        let e = Error { file: "sys.xml".into(), line: 7, col: 5, message: "oops".into() };
        assert_eq!(e.to_string(), "error: oops at sys.xml:7:5");
    }

    #[test]
    fn errors_come_out_in_source_order() {
        let mut d = Diagnostics::new("f");
        d.error(Pos { line: 3, col: 1 }, "c");
        d.error(Pos { line: 1, col: 9 }, "b");
        d.error(Pos { line: 1, col: 2 }, "a");
        let messages: Vec<_> = d.into_sorted().into_iter().map(|e| e.message).collect();
        assert_eq!(messages, ["a", "b", "c"]);
    }
}
