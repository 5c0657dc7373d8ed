//! Controller runtime for Krake controllers.
