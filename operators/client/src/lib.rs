//! Typed async client of the Krake API.
