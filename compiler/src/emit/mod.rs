//! Emitters: artefacts generated from a SystemSpec for other tools to run. Pure: they return
//! text, the caller decides where it goes.

pub mod kubernetes;
