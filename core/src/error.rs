//! The one error type of the project. Every message starts with a Redis error code, because the
//! server sends a module's error text as it is (only the leading `-` is added): a message
//! without a code reaches clients without one.

use std::fmt;

/// Everything that can make a command fail before or while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepError {
    /// The command was called with too few arguments; the binding answers with the server's
    /// own arity error.
    WrongArity,
    /// An argument that is not an option of the command.
    UnknownOption(String),
    /// An option that appeared more than once.
    Repeated(&'static str),
    /// An option whose value is missing.
    MissingValue(&'static str),
    /// An option whose value is not an integer or is below its minimum.
    BadInteger { option: &'static str, min: i64 },
    /// Two options that exclude each other were both given.
    Exclusive(&'static str, &'static str),
    /// A job id that is not a positive integer.
    BadJobId,
    /// No job has this id (or it is no longer kept).
    NoSuchJob(u64),
    /// The job has already ended.
    JobEnded(u64, &'static str),
    /// The caller cannot be blocked (MULTI, a script, a function or another module's call).
    CannotBlock,
    /// The node cannot run a sweep now (not a primary, a needed server API is missing, ...).
    Unavailable(String),
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepError::WrongArity => {
                write!(f, "ERR wrong number of arguments for 'sweep.clear' command")
            }
            SweepError::UnknownOption(opt) => write!(f, "ERR unknown option '{opt}'"),
            SweepError::Repeated(opt) => write!(f, "ERR {opt} given twice"),
            SweepError::MissingValue(opt) => write!(f, "ERR {opt} needs a value"),
            SweepError::BadInteger { option, min } => match min {
                1 => write!(f, "ERR {option} must be a positive integer"),
                0 => write!(f, "ERR {option} must be an integer of 0 or more"),
                _ => write!(f, "ERR {option} must be an integer of {min} or more"),
            },
            SweepError::Exclusive(a, b) => write!(f, "ERR {a} and {b} cannot be used together"),
            SweepError::BadJobId => write!(f, "ERR job id must be a positive integer"),
            SweepError::NoSuchJob(id) => write!(f, "ERR no sweep with id {id}"),
            SweepError::JobEnded(id, state) => {
                write!(f, "ERR sweep {id} has already ended ({state})")
            }
            SweepError::CannotBlock => write!(
                f,
                "ERR SWEEP.CLEAR cannot block its caller inside MULTI, a script, a function or \
                 a module call: add ASYNC to run it as a background job"
            ),
            SweepError::Unavailable(why) => write!(f, "ERR {why}"),
        }
    }
}

impl std::error::Error for SweepError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_starts_with_an_error_code() {
        let all = [
            SweepError::WrongArity,
            SweepError::UnknownOption("FOO".into()),
            SweepError::Repeated("COUNT"),
            SweepError::MissingValue("BATCH"),
            SweepError::BadInteger {
                option: "COUNT",
                min: 1,
            },
            SweepError::BadInteger {
                option: "LIMIT",
                min: 0,
            },
            SweepError::CannotBlock,
            SweepError::Exclusive("PERSISTENT", "VOLATILE"),
            SweepError::Unavailable("not now".into()),
            SweepError::BadJobId,
            SweepError::NoSuchJob(3),
            SweepError::JobEnded(3, "done"),
        ];
        for e in all {
            let text = e.to_string();
            assert!(text.starts_with("ERR "), "{text}");
            assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
        }
    }

    #[test]
    fn option_errors_name_the_option() {
        let e = SweepError::BadInteger {
            option: "COUNT",
            min: 1,
        };
        assert_eq!(e.to_string(), "ERR COUNT must be a positive integer");
        assert_eq!(
            SweepError::Repeated("BATCH").to_string(),
            "ERR BATCH given twice"
        );
        assert_eq!(
            SweepError::UnknownOption("FOO".into()).to_string(),
            "ERR unknown option 'FOO'"
        );
    }
}
