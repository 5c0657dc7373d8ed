//! The Krake scheduler.
