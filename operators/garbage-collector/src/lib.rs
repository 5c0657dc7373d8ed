//! The Krake garbage collector.
