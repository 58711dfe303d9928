//! `coffre report` through the real binary (see the test below).
