//! Integration tests of the domain, one binary.
