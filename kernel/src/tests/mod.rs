//! Host tests of the capability layer.
